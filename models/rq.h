/*
 * rq.h: residual quantisation (RQ) of image features: the quantiser that
 * turns feature vectors into D codes of one shared codebook, and the
 * depth head (an RQ transformer) that predicts an image position's D codes
 * one depth after another from the LLM's hidden state, with classifier-free
 * guidance over a (cond, uncond) pair of rows.  Equations and tensor names:
 * docs/unifork.md; PyTorch reference: tools/models/unifork.py (rq_quantize,
 * DepthHead).
 *
 * The depth head keeps each block's keys and values across depths, so
 * depth j costs one position, not j + 1 (the released code recomputes;
 * the results are the same).  Views into the model file only; scratch and
 * state from the caller's arena.
 */
#ifndef PGF_RQ_H
#define PGF_RQ_H

#include "kernels/kernels.h"
#include "models/bind.h"
#include "models/sampling.h"

#define PGF_RQ_MAX_DEPTH 8
#define PGF_RQ_MAX_BLOCKS 16
#define PGF_RQ_MAX_ROWS 2		/* cond and uncond */

/*
 * codes[n * depth], zq[n * codebook->cols] (zq may be NULL): each row of
 * z[n, codebook->cols] quantised depth times against the residual left by
 * the codes before (Euclidean, ties to the lowest index); zq = the sum of
 * the chosen entries.  Scratch: pgf_rq_quantize_scratch_bytes.
 */
void		pgf_rq_quantize(int32_t *codes, float *zq, const float *z, int n, int depth,
							const PgfMatrix *codebook, PgfArena *scratch);
size_t		pgf_rq_quantize_scratch_bytes(int n, const PgfMatrix *codebook);

/* zq[n, codebook->cols] = sum over depth of codebook[codes[i * depth + j]]
 * (scratch: one codebook row of floats). */
void		pgf_rq_embed(float *zq, const int32_t *codes, int n, int depth,
						 const PgfMatrix *codebook, PgfArena *scratch);

typedef struct PgfDepthHeadConfig
{
	int			d;				/* the LLM's width */
	int			width;			/* attention width */
	int			n_heads;
	int			d_ff;
	int			n_blocks;
	int			depth;
	float		eps;			/* LayerNorm */
} PgfDepthHeadConfig;

typedef struct PgfDepthBlock
{
	const float *ln1_gamma,
			   *ln1_beta,
			   *ln2_gamma,
			   *ln2_beta;
	PgfMatrix	in_proj,		/* [width, d] */
				wq,
				wk,
				wv,
				proj,			/* [width, width] */
				out_proj,		/* [d, width] */
				mlp0,			/* [d_ff, d] */
				mlp2;			/* [d, d_ff] */
	const float *in_proj_bias,
			   *bq,
			   *bk,
			   *bv,
			   *proj_bias,
			   *out_proj_bias,
			   *mlp0_bias,
			   *mlp2_bias;
} PgfDepthBlock;

typedef struct PgfDepthHead
{
	PgfDepthHeadConfig cfg;
	const PgfMatrix *codebook;	/* [codebook_size, code_dim], the quantiser's */
	PgfMatrix	in_mlp_1,		/* [d, code_dim] */
				in_mlp_2;		/* [d, d] */
	const float *in_mlp_1_bias,
			   *in_mlp_2_bias,
			   *pos;			/* [depth, d] */
	PgfDepthBlock block[PGF_RQ_MAX_BLOCKS];
	const float *ln_cls_gamma,
			   *ln_cls_beta;
	PgfMatrix	classifier;		/* [codebook_size, d] */
	const float *classifier_bias;
} PgfDepthHead;

/*
 * Binds prefix + "in_mlp_1.weight", ... (docs/unifork.md) with the shapes
 * cfg and the codebook (kept by pointer, it must outlive h) imply.
 */
void		pgf_depth_head_bind(PgfDepthHead *h, PgfBinder *b, const char *prefix,
								const PgfDepthHeadConfig *cfg, const PgfMatrix *codebook);

/* Arena bytes of one pgf_depth_head_codes call for `rows` rows. */
size_t		pgf_depth_head_arena_bytes(const PgfDepthHead *h, int rows);

/*
 * The codes of one image position: hidden[rows, d] the LLM's last hidden
 * state per row (rows 1, or 2 for (cond, uncond) under guidance).  At each
 * depth the logits of the rows are mixed, l = l_u + cfg_scale (l_c - l_u)
 * when rows is 2, and one code is drawn by pgf_sample_token with s and
 * rng; both rows then read the same code.  codes[depth].  logits_out, when
 * not NULL, receives every row's raw logits [depth, rows, codebook_size].
 * Returns false if a depth had no code to draw (every logit NaN or -inf).
 */
bool		pgf_depth_head_codes(const PgfDepthHead *h, const float *hidden, int rows,
								 float cfg_scale, const PgfSampling *s, PgfRng *rng,
								 int32_t *codes, float *logits_out, PgfArena *arena);

/*
 * Teacher forcing for tests and scoring: the raw logits [depth, rows,
 * codebook_size] when the codes fed back are forced[depth] (the last is
 * not read), through the same cached path as pgf_depth_head_codes.
 */
void		pgf_depth_head_forced(const PgfDepthHead *h, const float *hidden, int rows,
								  const int32_t *forced, float *logits_out, PgfArena *arena);

#endif							/* PGF_RQ_H */
