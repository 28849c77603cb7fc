/*
 * unifork.h: the UniFork architecture ("unifork"): a Y-shaped
 * Llama-family LLM whose lower layers both branches share, the
 * understanding branch (all layers and the final norm) and the generation
 * fork (fresh upper layers and their own norm) that, through the depth
 * head (models/rq.h), draws a grid of residual codes that the pixel decoder
 * (models/pixel_decoder.h) turns into an image.  docs/unifork.md has the
 * equations, config and tensor names; tools/models/unifork.py (UniFork) is
 * the PyTorch reference.
 */
#ifndef PGF_UNIFORK_H
#define PGF_UNIFORK_H

#include "models/decoder.h"
#include "models/pixel_decoder.h"
#include "models/rq.h"
#include "models/tokenizer.h"

#define PGF_UNIFORK_MAX_GRID 64

typedef struct PgfUniforkModel
{
	PgfDecoder	und;			/* "uf": every layer, the understanding branch */
	PgfStack	fork;			/* "uf.gen": the generation fork's own layers */
	PgfDecoder	gen;			/* und's shared layers, then fork's, then norm_gen */
	int			shared_layers;
	PgfTokenizer tok;
	PgfMatrix	codebook;		/* [codebook_size, code_dim] */
	PgfMatrix	proj1,			/* [d, code_dim] */
				proj2;			/* [d, d] */
	const float *proj1_bias,
			   *proj2_bias,
			   *boi_eoi;		/* [2, d]: begin and end of image */
	PgfDepthHead depth;
	PgfPixelDecoder vq;
	int			grid;			/* image positions per side */
	int			rq_depth;
	float		cfg_scale;		/* default guidance */
	const char *gen_template;	/* "{prompt}" marks the caller's text */
	const char *uncond_prompt;
	/* the image encoder ("uf.enc"); has_encoder false when the file has none */
	bool		has_encoder;
	PgfStack	enc;
	int			image_side;		/* images are resized to this square */
	int			enc_patch;
	int			enc_tokens;		/* (image_side / enc_patch)^2 */
	PgfMatrix	enc_patch_proj, /* [d_enc, 3 P^2] */
				enc_out;		/* [code_dim, d_enc] */
	const float *enc_patch_bias,
			   *enc_pos,		/* [enc_tokens, d_enc] */
			   *enc_out_bias;
} PgfUniforkModel;

PgfStatus	pgf_unifork_bind(const PgfModel *file, void *model, char *err, size_t errlen);

/*
 * The token ids of an image prompt: gen_template with each "{prompt}"
 * replaced by text[len] (plain text; the template's own text with special
 * tokens recognised).  ids has room for pgf_unifork_prompt_bound(m, len)
 * ids; scratch: pgf_tokenizer_encode_scratch_bytes of the longer text.
 * The unconditional prompt is the same template around uncond_prompt.
 */
int			pgf_unifork_prompt_bound(const PgfUniforkModel *m, size_t text_len);
int			pgf_unifork_prompt(const PgfUniforkModel *m, const char *text, size_t text_len,
							   int32_t *ids, PgfArena *scratch);

/* Pixels per side of a generated image. */
int			pgf_unifork_image_side(const PgfUniforkModel *m);

/* Arena bytes of pgf_unifork_generate for prompts of these lengths. */
size_t		pgf_unifork_generate_bytes(const PgfUniforkModel *m, int n_cond, int n_uncond);

/*
 * Draws an image for the token ids cond[n_cond] (the prompt) against
 * uncond[n_uncond] (the unconditional prompt; either may be empty): each
 * is its own sequence, [tokens; boi] from position 0, then one position
 * per image position on the generation path.  At each image position the
 * depth head draws rq_depth codes under guidance cfg_scale with sampling s
 * (seeded by s->seed); their code sum, through the projector, is the next
 * input of both sequences.  codes[grid * grid * rq_depth]; pixels, when
 * not NULL, [side * side * 3], the decoder's output before clamping.
 * Checks for interrupts at every image position and, when on_position is
 * not NULL, calls on_position(arg, positions done) after each.  Returns 0,
 * or -1 with a message (a prompt too long for the model's positions, no
 * code to draw).
 */
typedef struct PgfUniforkProgress
{
	void		(*on_position) (void *arg, int done);
	void	   *arg;
} PgfUniforkProgress;

int			pgf_unifork_generate(const PgfUniforkModel *m, const int32_t *cond, int n_cond,
								 const int32_t *uncond, int n_uncond, float cfg_scale,
								 const PgfSampling *s, int32_t *codes, float *pixels,
								 const PgfUniforkProgress *progress, PgfArena *arena,
								 char *err, size_t errlen);

/* Arena bytes of pgf_unifork_image_codes. */
size_t		pgf_unifork_image_codes_bytes(const PgfUniforkModel *m);

/*
 * The residual codes of an image: patches[enc_tokens, 3 P^2] (the image
 * resized to image_side, channel-major patches in [-1, 1]) through the
 * encoder, then quantised: codes[enc_tokens * rq_depth].  The model must
 * have an encoder (has_encoder).
 */
void		pgf_unifork_image_codes(const PgfUniforkModel *m, const float *patches, int32_t *codes,
									PgfArena *arena);

#endif							/* PGF_UNIFORK_H */
