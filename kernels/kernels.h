/*
 * kernels.h: the tensor operations every pgformer model is built from.
 *
 * Plain C11 over float32 activations; no PostgreSQL headers.  Matrices are
 * row-major.  Shapes are given in the comment of each function as
 * [rows, cols].  Weights are read-only views (PgfMatrix) into a mapped
 * model file and may be f32, f16, bf16 or int8 with per-block scales;
 * activations are always f32.
 *
 * Nothing here allocates: scratch memory comes from a caller-owned arena
 * (arena.h).  Long loops call pgf_check_interrupts() (runtime.h) between
 * chunks of work, never inside a BLAS call.
 */
#ifndef PGF_KERNELS_H
#define PGF_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/arena.h"
#include "kernels/runtime.h"

/* Element types of weights; values equal the DType enum of model.proto. */
typedef enum PgfDType
{
	PGF_DTYPE_F32 = 1,
	PGF_DTYPE_F16 = 2,
	PGF_DTYPE_BF16 = 3,
	PGF_DTYPE_Q8 = 4,
	PGF_DTYPE_I32 = 5,
	PGF_DTYPE_I64 = 6
} PgfDType;

/*
 * A weight matrix [rows, cols].  For a linear layer rows = out, cols = in
 * (PyTorch's nn.Linear layout), so y = x * W^T.  Q8: data holds int8
 * values, scales holds one float per quant_block consecutive elements of a
 * row (cols % quant_block == 0).
 */
typedef struct PgfMatrix
{
	int			rows;
	int			cols;
	PgfDType	dtype;
	const void *data;
	const float *scales;		/* Q8 only */
	int			quant_block;	/* Q8 only */
} PgfMatrix;

/* A view on a plain f32 matrix [rows, cols]. */
PgfMatrix	pgf_matrix_f32(const float *data, int rows, int cols);

/* ---- dense linear algebra ---------------------------------------------- */

/*
 * C[m, n] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
 * A is [m, k] (or [k, m] when trans_a), B is [k, n] (or [n, k] when
 * trans_b); lda/ldb/ldc are row strides.  Uses cblas_sgemm when the work is
 * large enough to pay for it, a plain loop otherwise.
 */
void		pgf_gemm(bool trans_a, bool trans_b, int m, int n, int k,
					 float alpha, const float *a, int lda,
					 const float *b, int ldb,
					 float beta, float *c, int ldc);

/*
 * y[n, w->rows] = x[n, w->cols] * W^T + bias (bias may be NULL).
 * x row stride is w->cols, y row stride is w->rows.  f32 weights go through
 * BLAS (GEMV for n == 1); f16, bf16 and Q8 weights are dequantised in tiles
 * into `scratch` (may be NULL for f32) and multiplied there.
 */
void		pgf_linear(float *y, const float *x, int n, const PgfMatrix *w,
					   const float *bias, PgfArena *scratch);

/* As pgf_linear, but y += x * W^T (+ bias). */
void		pgf_linear_acc(float *y, const float *x, int n, const PgfMatrix *w,
						   const float *bias, PgfArena *scratch);

/* Scratch bytes pgf_linear needs for this weight and row count. */
size_t		pgf_linear_scratch_bytes(const PgfMatrix *w, int n);

/* out[d] = row r of w, converted to f32 (any dtype). */
void		pgf_matrix_row(float *out, const PgfMatrix *w, int r);

/*
 * Embedding gather: out[n, table->cols] = table[rows[i]] for i < n.
 * Rows outside [0, table->rows) give zeros (callers map unknown ids first).
 */
void		pgf_embedding_gather(float *out, const PgfMatrix *table,
								 const int32_t *rows, int n);

/* ---- normalisation and activations ------------------------------------- */

/* out[n, d] = gamma * (x - mean) / sqrt(var + eps) + beta, per row.
 * beta may be NULL; out may equal x. */
void		pgf_layernorm(float *out, const float *x, int n, int d,
						  const float *gamma, const float *beta, float eps);

/* out[n, d] = w * x / sqrt(mean(x^2) + eps), per row; out may equal x. */
void		pgf_rmsnorm(float *out, const float *x, int n, int d,
						const float *w, float eps);

/* x[n, d]: softmax of each row in place (max-subtracted, -INFINITY safe:
 * a row of all -INFINITY becomes all zeros). */
void		pgf_softmax_rows(float *x, int n, int d);

/* In place over x[n]. */
void		pgf_gelu_erf(float *x, size_t n);
void		pgf_gelu_tanh(float *x, size_t n);
void		pgf_relu(float *x, size_t n);
void		pgf_silu(float *x, size_t n);
/* gate[n] = silu(gate) * up, the SwiGLU product. */
void		pgf_swiglu(float *gate, const float *up, size_t n);

/* x[n] += y[n] */
void		pgf_add(float *x, const float *y, size_t n);
/* x[n] *= s */
void		pgf_scale(float *x, float s, size_t n);
/* x[rows, d] += bias[d] per row */
void		pgf_add_bias(float *x, const float *bias, int rows, int d);

/*
 * Rotary position embedding, rotate-half (NeoX / Hugging Face) form, in
 * place.  x is [n, row_stride]; each row holds n_heads heads of head_dim
 * values starting at column 0.  Row i sits at position positions[i]
 * (or pos0 + i when positions is NULL).
 *   inv_freq[j] = theta^(-2j/head_dim), j < head_dim/2
 *   x'[j]       = x[j] cos(p inv_freq[j]) - x[j + h/2] sin(p inv_freq[j])
 *   x'[j + h/2] = x[j + h/2] cos(p inv_freq[j]) + x[j] sin(p inv_freq[j])
 */
void		pgf_rope(float *x, int n, int n_heads, int head_dim, int row_stride,
					 const int32_t *positions, int pos0, float theta);

/* ---- attention ---------------------------------------------------------- */

typedef enum PgfMaskKind
{
	PGF_MASK_BIDIRECTIONAL = 0, /* every query sees every key */
	PGF_MASK_CAUSAL = 1,		/* query at position p sees keys at <= p */
	PGF_MASK_PREFIX = 2			/* causal, plus keys < prefix_len seen by
								 * every query (prefix LM) */
} PgfMaskKind;

/*
 * What one query block may see.  Query row i sits at position q_pos0 + i,
 * key row j at position j (keys are the whole cache or segment).
 */
typedef struct PgfAttnMask
{
	PgfMaskKind kind;
	int			prefix_len;		/* PGF_MASK_PREFIX */
	int			q_pos0;			/* position of query row 0 */
	const uint8_t *key_valid;	/* optional [n_kv]: 0 marks a padding key */
	/*
	 * Optional additive bias [n_q, n_kv] (row stride n_kv), shared by all
	 * heads; head h adds slopes[h] * bias (slopes NULL: factor 1).
	 */
	const float *bias;
	const float *slopes;
} PgfAttnMask;

/*
 * Multi-head attention with grouped-query heads:
 *   q   [n_q, n_heads * head_dim]     (row stride q_stride)
 *   k,v [n_kv, n_kv_heads * head_dim] (row strides kv_stride)
 *   out [n_q, n_heads * head_dim]     (row stride out_stride)
 * Query head h reads key/value head h / (n_heads / n_kv_heads).
 *   out_h = softmax(q_h k_g^T * scale + mask + bias) v_g
 * A query that can see no key gets zeros.  Scratch: pgf_attention_scratch_bytes.
 */
void		pgf_attention(float *out, int out_stride,
						  const float *q, int q_stride,
						  const float *k, const float *v, int kv_stride,
						  int n_q, int n_kv, int n_heads, int n_kv_heads,
						  int head_dim, float scale,
						  const PgfAttnMask *mask, PgfArena *scratch);
size_t		pgf_attention_scratch_bytes(int n_q, int n_kv);

/* ---- one configurable transformer block ------------------------------- */

typedef enum PgfNormKind
{
	PGF_NORM_LAYER = 0,
	PGF_NORM_RMS = 1
} PgfNormKind;

typedef enum PgfNormPlacement
{
	PGF_PRE_NORM = 0,			/* x += f(norm(x)) */
	PGF_POST_NORM = 1			/* x = norm(x + f(x)) */
} PgfNormPlacement;

typedef enum PgfActivation
{
	PGF_ACT_GELU_ERF = 0,
	PGF_ACT_GELU_TANH = 1,
	PGF_ACT_RELU = 2,
	PGF_ACT_SILU = 3,
	PGF_ACT_SWIGLU = 4			/* w2(silu(w1 x) * w3 x) */
} PgfActivation;

typedef struct PgfBlockSpec
{
	int			d_model;
	int			n_heads;
	int			n_kv_heads;
	int			head_dim;
	int			d_ff;
	PgfNormKind norm;
	PgfNormPlacement placement;
	PgfActivation activation;
	float		norm_eps;
	bool		out_proj;		/* false: concatenated heads are the output
								 * (needs n_heads * head_dim == d_model) */
	float		rope_theta;		/* 0: no rotary embedding */
} PgfBlockSpec;

/*
 * Weights of one block.  Linear weights are [out, in]:
 *   wq [H*hd, d]  wk, wv [K*hd, d]  wo [d, H*hd]
 *   w1 [d_ff, d]  w3 [d_ff, d] (SwiGLU only)  w2 [d, d_ff]
 * Any bias or beta may be NULL; ln*_beta are unused by RMSNorm.
 */
typedef struct PgfBlockWeights
{
	const float *ln1_gamma, *ln1_beta;
	PgfMatrix	wq, wk, wv, wo;
	const float *bq, *bk, *bv, *bo;
	const float *ln2_gamma, *ln2_beta;
	PgfMatrix	w1, w2, w3;
	const float *b1, *b2, *b3;
} PgfBlockWeights;

/*
 * Keys and values of one layer for one sequence: k, v [capacity, K*hd].
 * len rows are filled.
 */
typedef struct PgfKVCache
{
	float	   *k;
	float	   *v;
	int			capacity;
	int			len;
} PgfKVCache;

/*
 * Runs one block over packed sequences, in place.
 *   x [total, d_model], total = seg_offsets[n_segments]; segment s owns
 *   rows seg_offsets[s] .. seg_offsets[s+1]-1 and attends only within
 *   itself (padding-free batching).  masks[s] describes segment s.
 * With caches != NULL (one per segment) the segment's new keys and values
 * are appended to caches[s] and its queries attend over the whole cache;
 * masks[s].q_pos0 should then equal the cache length before the call.
 * Rotary positions are q_pos0 + row within the segment.
 * Scratch: pgf_block_scratch_bytes(spec, total, max keys per segment).
 */
void		pgf_block_forward(const PgfBlockSpec *spec, const PgfBlockWeights *w,
							  float *x, int n_segments, const int *seg_offsets,
							  const PgfAttnMask *masks, PgfKVCache *caches,
							  PgfArena *scratch);
size_t		pgf_block_scratch_bytes(const PgfBlockSpec *spec, int total_rows,
									int max_kv);

/* ---- feature maps (conv.c) ------------------------------------------- */

/*
 * Feature maps are position-major: x[h * w, c], row y * w + x holding the c
 * channels of pixel (y, x).
 *
 * out[h * w, weight->rows] = conv(x) + bias (bias may be NULL): a kernel x
 * kernel convolution, stride 1, zero padding (kernel - 1) / 2, kernel 1 or
 * 3.  weight is [c_out, kernel * kernel * c_in] in (ky, kx, c_in) order
 * (PyTorch's [c_out, c_in, ky, kx] permuted), any dtype.  out must not
 * overlap x.  Scratch: pgf_conv2d_scratch_bytes.
 */
void		pgf_conv2d(float *out, const float *x, int h, int w, int c_in, int kernel,
					   const PgfMatrix *weight, const float *bias, PgfArena *scratch);
size_t		pgf_conv2d_scratch_bytes(int h, int w, int c_in, int kernel,
									 const PgfMatrix *weight);

/* out[n, c] = GroupNorm(x) (torch.nn.GroupNorm over n positions, c % groups
 * == 0); gamma, beta may be NULL; out may equal x. */
void		pgf_groupnorm(float *out, const float *x, int n, int c, int groups,
						  const float *gamma, const float *beta, float eps);

/* out[(2h) * (2w), c] = x[h * w, c], each pixel repeated 2 x 2 (nearest). */
void		pgf_upsample_nearest2(float *out, const float *x, int h, int w, int c);

/* A spatial self-attention block: GroupNorm, 1x1 q, k, v, one head, 1x1 proj. */
typedef struct PgfSpatialAttention
{
	int			groups;
	float		norm_eps;
	const float *norm_gamma, *norm_beta;
	PgfMatrix	wq, wk, wv, wo;		/* [c, c] */
	const float *bq, *bk, *bv, *bo;
} PgfSpatialAttention;

/* x[n, c] += wo(softmax(q k^T / sqrt(c)) v), q, k, v = w(GroupNorm(x)), in place. */
void		pgf_spatial_attention(float *x, int n, int c, const PgfSpatialAttention *a,
								  PgfArena *scratch);
size_t		pgf_spatial_attention_scratch_bytes(int n, int c, const PgfSpatialAttention *a);

/* ---- selection --------------------------------------------------------- */

/*
 * The k largest of scores[n] (k <= n), skipping indices whose skip[i] is
 * nonzero (skip may be NULL) and NaN scores, with a size-k min-heap:
 * O(n log k).  Writes up to k indices and scores sorted by descending score
 * (ties: lower index first) and returns how many were written.
 */
int			pgf_topk(const float *scores, int n, int k, const uint8_t *skip,
					 int32_t *idx_out, float *score_out);

#endif							/* PGF_KERNELS_H */
