/*
 * block.c: one configurable transformer block (attention + feed-forward,
 * pre- or post-norm) over packed segments, with optional KV caches.
 *
 * Linear layers run once over all rows of all segments (padding-free
 * batching); rotary embedding, cache appends and attention run per
 * segment.  Every temporary lives in the scratch arena and is released
 * before returning; pgf_block_scratch_bytes mirrors the allocation order
 * below, so keep the two in step.
 */
#include "kernels/kernels.h"
#include "kernels/vec.h"

static size_t
floats_bytes(size_t n)
{
	return pgf_arena_round(n * sizeof(float));
}

/* Linear scratch for a [rows, cols] weight of any dtype over n inputs. */
static size_t
linear_bound(int rows, int cols, int n)
{
	PgfMatrix	m;

	memset(&m, 0, sizeof(m));
	m.rows = rows;
	m.cols = cols;
	m.dtype = PGF_DTYPE_Q8;		/* quantised needs the most */
	m.quant_block = 1;
	return pgf_linear_scratch_bytes(&m, n);
}

static size_t
max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

/*
 * Scratch bytes of pgf_block_forward over total_rows rows whose segments
 * attend over at most max_kv keys each (segment rows + cache length).
 */
size_t
pgf_block_scratch_bytes(const PgfBlockSpec *spec, int total_rows, int max_kv)
{
	size_t		n = total_rows > 0 ? total_rows : 0;
	int			d = spec->d_model;
	int			qd = spec->n_heads * spec->head_dim;
	int			kvd = spec->n_kv_heads * spec->head_dim;
	bool		swiglu = spec->activation == PGF_ACT_SWIGLU;
	size_t		normed = spec->placement == PGF_PRE_NORM ? floats_bytes(n * d) : 0;
	size_t		attn_queries = n < (size_t) max_kv ? n : (size_t) max_kv;
	size_t		attn,
				ffn;

	/* q, k, v, heads; then the normed input or attention or out proj */
	attn = 2 * floats_bytes(n * qd) + 2 * floats_bytes(n * kvd) +
		max_size(normed + max_size(linear_bound(qd, d, n), linear_bound(kvd, d, n)),
				 max_size(pgf_attention_scratch_bytes(attn_queries, max_kv),
						  spec->out_proj ? linear_bound(d, qd, n) : 0));
	/* w1 (and w3) outputs; then the normed input or the w2 tile */
	ffn = (swiglu ? 2 : 1) * floats_bytes(n * spec->d_ff) +
		max_size(normed + linear_bound(spec->d_ff, d, n),
				 linear_bound(d, spec->d_ff, n));
	return max_size(attn, ffn);
}

static void
normalise(const PgfBlockSpec *spec, float *out, const float *x, int n,
		  const float *gamma, const float *beta)
{
	if (spec->norm == PGF_NORM_RMS)
		pgf_rmsnorm(out, x, n, spec->d_model, gamma, spec->norm_eps);
	else
		pgf_layernorm(out, x, n, spec->d_model, gamma, beta, spec->norm_eps);
}

static void
activate(PgfActivation act, float *x, size_t n)
{
	switch (act)
	{
		case PGF_ACT_GELU_ERF:
			pgf_gelu_erf(x, n);
			break;
		case PGF_ACT_GELU_TANH:
			pgf_gelu_tanh(x, n);
			break;
		case PGF_ACT_RELU:
			pgf_relu(x, n);
			break;
		case PGF_ACT_SILU:
			pgf_silu(x, n);
			break;
		case PGF_ACT_SWIGLU:
			pgf_fatal("SwiGLU is not a pointwise activation");
	}
}

/* x[n, d] += attention sublayer of x (see pgf_block_forward). */
static void
attention_sublayer(const PgfBlockSpec *spec, const PgfBlockWeights *w,
				   float *x, int n, int row0, int n_segments,
				   const int *seg_offsets, const PgfAttnMask *masks,
				   PgfKVCache *caches, PgfArena *scratch)
{
	int			d = spec->d_model;
	int			hd = spec->head_dim;
	int			qd = spec->n_heads * hd;
	int			kvd = spec->n_kv_heads * hd;
	float		scale = 1.0f / sqrtf((float) hd);
	size_t		mark = pgf_arena_mark(scratch);
	float	   *q = pgf_arena_floats(scratch, (size_t) n * qd);
	float	   *k = pgf_arena_floats(scratch, (size_t) n * kvd);
	float	   *v = pgf_arena_floats(scratch, (size_t) n * kvd);
	float	   *heads = pgf_arena_floats(scratch, (size_t) n * qd);
	size_t		heads_mark = pgf_arena_mark(scratch);
	const float *in = x;

	if (spec->placement == PGF_PRE_NORM)
	{
		float	   *normed = pgf_arena_floats(scratch, (size_t) n * d);

		normalise(spec, normed, x, n, w->ln1_gamma, w->ln1_beta);
		in = normed;
	}
	pgf_linear(q, in, n, &w->wq, w->bq, scratch);
	pgf_linear(k, in, n, &w->wk, w->bk, scratch);
	pgf_linear(v, in, n, &w->wv, w->bv, scratch);
	pgf_arena_reset(scratch, heads_mark);

	for (int s = 0; s < n_segments; s++)
	{
		int			off = seg_offsets[s] - row0;
		int			rows = seg_offsets[s + 1] - seg_offsets[s];
		float	   *qs = q + (size_t) off * qd;
		float	   *ks = k + (size_t) off * kvd;
		float	   *vs = v + (size_t) off * kvd;
		const float *keys = ks;
		const float *values = vs;
		int			n_kv = rows;
		PgfAttnMask mask;

		if (rows <= 0)
			continue;
		if (masks)
			mask = masks[s];
		else
		{
			memset(&mask, 0, sizeof(mask));
			mask.q_pos0 = caches ? caches[s].len : 0;
		}
		if (spec->rope_theta > 0)
		{
			pgf_rope(qs, rows, spec->n_heads, hd, qd, NULL, mask.q_pos0, spec->rope_theta);
			pgf_rope(ks, rows, spec->n_kv_heads, hd, kvd, NULL, mask.q_pos0, spec->rope_theta);
		}
		if (caches)
		{
			PgfKVCache *c = &caches[s];

			if (c->len < 0 || rows > c->capacity - c->len)
				pgf_fatal("KV cache of segment %d holds %d of %d rows, %d more do not fit",
						  s, c->len, c->capacity, rows);
			memcpy(c->k + (size_t) c->len * kvd, ks, sizeof(float) * rows * kvd);
			memcpy(c->v + (size_t) c->len * kvd, vs, sizeof(float) * rows * kvd);
			keys = c->k;
			values = c->v;
			n_kv = c->len + rows;
		}
		pgf_check_interrupts();
		pgf_attention(heads + (size_t) off * qd, qd, qs, qd, keys, values, kvd,
					  rows, n_kv, spec->n_heads, spec->n_kv_heads, hd, scale,
					  &mask, scratch);
	}
	if (caches)
		for (int s = 0; s < n_segments; s++)
			caches[s].len += seg_offsets[s + 1] - seg_offsets[s];

	if (spec->out_proj)
		pgf_linear_acc(x, heads, n, &w->wo, w->bo, scratch);
	else
	{
		if (qd != d)
			pgf_fatal("a block without output projection needs n_heads * head_dim (%d) == d_model (%d)",
					  qd, d);
		pgf_add(x, heads, (size_t) n * d);
	}
	if (spec->placement == PGF_POST_NORM)
		normalise(spec, x, x, n, w->ln1_gamma, w->ln1_beta);
	pgf_arena_reset(scratch, mark);
}

/* x[n, d] += feed-forward sublayer of x (see pgf_block_forward). */
static void
ffn_sublayer(const PgfBlockSpec *spec, const PgfBlockWeights *w, float *x, int n,
			 PgfArena *scratch)
{
	int			d = spec->d_model;
	size_t		count = (size_t) n * spec->d_ff;
	size_t		mark = pgf_arena_mark(scratch);
	bool		swiglu = spec->activation == PGF_ACT_SWIGLU;
	float	   *hidden = pgf_arena_floats(scratch, count);
	float	   *up = swiglu ? pgf_arena_floats(scratch, count) : NULL;
	size_t		hidden_mark = pgf_arena_mark(scratch);
	const float *in = x;

	if (spec->placement == PGF_PRE_NORM)
	{
		float	   *normed = pgf_arena_floats(scratch, (size_t) n * d);

		normalise(spec, normed, x, n, w->ln2_gamma, w->ln2_beta);
		in = normed;
	}
	pgf_linear(hidden, in, n, &w->w1, w->b1, scratch);
	if (swiglu)
	{
		pgf_linear(up, in, n, &w->w3, w->b3, scratch);
		pgf_swiglu(hidden, up, count);
	}
	else
		activate(spec->activation, hidden, count);
	pgf_arena_reset(scratch, hidden_mark);
	pgf_linear_acc(x, hidden, n, &w->w2, w->b2, scratch);
	if (spec->placement == PGF_POST_NORM)
		normalise(spec, x, x, n, w->ln2_gamma, w->ln2_beta);
	pgf_arena_reset(scratch, mark);
}

/*
 * x [total, d_model] in place, total = seg_offsets[n_segments] -
 * seg_offsets[0]; segment s is rows seg_offsets[s] .. seg_offsets[s+1]-1
 * of x and attends within itself (or over caches[s] plus itself).
 *   pre-norm:  x += attn(norm1(x));  x += ffn(norm2(x))
 *   post-norm: x = norm1(x + attn(x));  x = norm2(x + ffn(x))
 * masks NULL: bidirectional, queries at the cache length (or 0).
 */
void
pgf_block_forward(const PgfBlockSpec *spec, const PgfBlockWeights *w,
				  float *x, int n_segments, const int *seg_offsets,
				  const PgfAttnMask *masks, PgfKVCache *caches,
				  PgfArena *scratch)
{
	int			row0,
				n;
	float	   *xs;

	if (n_segments <= 0)
		return;
	row0 = seg_offsets[0];
	n = seg_offsets[n_segments] - row0;
	if (n <= 0)
		return;
	xs = x + (size_t) row0 * spec->d_model;
	attention_sublayer(spec, w, xs, n, row0, n_segments, seg_offsets, masks,
					   caches, scratch);
	pgf_check_interrupts();
	ffn_sublayer(spec, w, xs, n, scratch);
}
