/*
 * attention.c: scaled dot-product attention with grouped-query heads,
 * causal / prefix / bidirectional masks, padding keys and an additive bias
 * with per-head slopes.
 *
 * Work is done on "score rows": one (query, head) pair each.  Per head,
 * blocks of up to PGF_ATTN_QUERY_BLOCK queries form a GEMM Q K^T into a
 * scratch score matrix, which is masked, softmaxed and multiplied by V
 * (pgf_gemm picks BLAS or loops by size).  Causal blocks only compute the
 * keys their last query can see.  A single query (decoding) instead
 * batches the heads that share one key/value head, so each group is one
 * GEMM over the cache instead of one GEMV per head.
 */
#include "kernels/kernels.h"
#include "kernels/vec.h"

/* Queries per score block (bounds the scratch score matrix). */
#define PGF_ATTN_QUERY_BLOCK 256

/* Heads batched per score block when there is one query. */
#define PGF_ATTN_HEAD_BATCH 8

/*
 * Scratch for pgf_attention with n_q queries over n_kv keys: one score
 * block of [max(min(n_q, query block), head batch), n_kv] floats.
 */
size_t
pgf_attention_scratch_bytes(int n_q, int n_kv)
{
	size_t		rows = n_q < PGF_ATTN_QUERY_BLOCK ? n_q : PGF_ATTN_QUERY_BLOCK;

	if (rows < PGF_ATTN_HEAD_BATCH)
		rows = PGF_ATTN_HEAD_BATCH;
	if (n_kv <= 0)
		return 0;
	return pgf_arena_round(rows * (size_t) n_kv * sizeof(float));
}

/*
 * Keys [0, limit) that query position p may see before padding and bias:
 * everything for a bidirectional mask, keys <= p for a causal one, plus
 * keys < prefix_len for a prefix mask.  Clamped to [0, n_kv].
 */
static int
visible_limit(const PgfAttnMask *mask, int64_t p, int n_kv)
{
	int64_t		lim;

	if (mask->kind == PGF_MASK_BIDIRECTIONAL)
		return n_kv;
	lim = p + 1;
	if (mask->kind == PGF_MASK_PREFIX && mask->prefix_len > lim)
		lim = mask->prefix_len;
	if (lim < 0)
		lim = 0;
	return lim > n_kv ? n_kv : (int) lim;
}

/*
 * Few keys and short heads (feature-interaction models attend over a
 * dozen tokens, once per candidate): plain loops over a transposed key
 * block beat GEMM calls, whose overhead dominates at that size.  Every
 * inner loop runs over contiguous memory without a reduction, so the
 * compiler vectorises it.
 */
#define PGF_ATTN_SMALL_KEYS 32
#define PGF_ATTN_SMALL_DIM 128

/* Keys per vector block of the small path (one AVX-512 register). */
#define PGF_ATTN_SMALL_LANES 16

/*
 * scores[nr, n_kv] = scale * q[nr, hd] k[n_kv, hd]^T.  The transposed keys
 * are padded with zero columns to whole blocks of lanes, so the inner loop
 * has a fixed length and becomes one fused multiply-add per block.
 */
static void
small_scores(float *scores, const float *q, int q_rs, int nr, const float *k,
			 int kv_stride, int n_kv, int hd, float scale)
{
	int			w = (n_kv + PGF_ATTN_SMALL_LANES - 1) & ~(PGF_ATTN_SMALL_LANES - 1);
	float		kt[PGF_ATTN_SMALL_DIM * PGF_ATTN_SMALL_KEYS];
	float		acc[PGF_ATTN_SMALL_KEYS];

	for (int p = 0; p < hd; p++)
	{
		float	   *row = kt + p * w;

		for (int j = 0; j < n_kv; j++)
			row[j] = k[(size_t) j * kv_stride + p];
		for (int j = n_kv; j < w; j++)
			row[j] = 0.0f;
	}
	for (int r = 0; r < nr; r++)
	{
		const float *qr = q + (size_t) r * q_rs;

		for (int j = 0; j < w; j++)
			acc[j] = 0.0f;
		for (int p = 0; p < hd; p++)
		{
			float		qp = qr[p] * scale;
			const float *ktp = kt + p * w;

			for (int b = 0; b < w; b += PGF_ATTN_SMALL_LANES)
				for (int l = 0; l < PGF_ATTN_SMALL_LANES; l++)
					acc[b + l] += qp * ktp[b + l];
		}
		memcpy(scores + (size_t) r * n_kv, acc, sizeof(float) * n_kv);
	}
}

/* out[nr, hd] = scores[nr, n_kv] v[n_kv, hd] */
static void
small_values(float *out, int out_rs, const float *scores, int nr, const float *v,
			 int kv_stride, int n_kv, int hd)
{
	for (int r = 0; r < nr; r++)
	{
		float	   *o = out + (size_t) r * out_rs;
		const float *s = scores + (size_t) r * n_kv;

		for (int p = 0; p < hd; p++)
			o[p] = 0.0f;
		for (int j = 0; j < n_kv; j++)
		{
			float		sj = s[j];
			const float *vj = v + (size_t) j * kv_stride;

			if (sj == 0.0f)
				continue;		/* masked keys */
			for (int p = 0; p < hd; p++)
				o[p] += sj * vj[p];
		}
	}
}

/*
 * One block of nr score rows against one key/value head.  Row r is query
 * q0 + r * q_step of head h0 + r * h_step; its vector is at q + r * q_rs,
 * its output at out + r * out_rs.  k, v: [n_kv, hd] with row stride
 * kv_stride.  scores: scratch of nr * n_kv floats.
 */
static void
attend_rows(float *out, int out_rs, const float *q, int q_rs, int nr,
			int q0, int q_step, int h0, int h_step,
			const float *k, const float *v, int kv_stride, int n_kv, int hd,
			float scale, const PgfAttnMask *mask, float *scores)
{
	int			last_q = q0 + (nr - 1) * q_step;
	int			kv_end = visible_limit(mask, (int64_t) mask->q_pos0 + last_q, n_kv);
	int			ld;
	int			nr_masked = nr;	/* rows that need the per-row pass */

	/* q_step >= 0, so the last row sees the most keys */
	if (kv_end == 0)
	{
		for (int r = 0; r < nr; r++)
			memset(out + (size_t) r * out_rs, 0, sizeof(float) * hd);
		return;
	}
	ld = kv_end;
	if (kv_end <= PGF_ATTN_SMALL_KEYS && hd <= PGF_ATTN_SMALL_DIM)
		small_scores(scores, q, q_rs, nr, k, kv_stride, kv_end, hd, scale);
	else
		pgf_gemm(false, true, nr, kv_end, hd, scale, q, q_rs, k, kv_stride,
				 0.0f, scores, ld);
	if (mask->kind == PGF_MASK_BIDIRECTIONAL && !mask->bias && !mask->key_valid)
	{
		/* every row sees every key: one softmax over the block */
		pgf_softmax_rows(scores, nr, kv_end);
		nr_masked = 0;
	}
	for (int r = 0; r < nr_masked; r++)
	{
		int			qi = q0 + r * q_step;
		int			h = h0 + r * h_step;
		float	   *s = scores + (size_t) r * ld;
		int			lim = visible_limit(mask, (int64_t) mask->q_pos0 + qi, kv_end);

		if (mask->bias)
		{
			const float *b = mask->bias + (size_t) qi * n_kv;
			float		slope = mask->slopes ? mask->slopes[h] : 1.0f;

			for (int j = 0; j < lim; j++)
				s[j] += slope * b[j];
		}
		if (mask->key_valid)
			for (int j = 0; j < lim; j++)
				if (!mask->key_valid[j])
					s[j] = -INFINITY;
		if (lim > 0)
			pgf_softmax_rows(s, 1, lim);
		for (int j = lim; j < kv_end; j++)
			s[j] = 0.0f;
	}
	if (kv_end <= PGF_ATTN_SMALL_KEYS && hd <= PGF_ATTN_SMALL_DIM)
		small_values(out, out_rs, scores, nr, v, kv_stride, kv_end, hd);
	else
		pgf_gemm(false, false, nr, hd, kv_end, 1.0f, scores, ld, v, kv_stride,
				 0.0f, out, out_rs);
}

/*
 * out[n_q, H*hd] (row stride out_stride) = attention of q[n_q, H*hd]
 * (row stride q_stride) over k, v [n_kv, K*hd] (row stride kv_stride),
 * H = n_heads, K = n_kv_heads; head h reads key/value head h / (H / K).
 * out must not overlap q, k or v.  Scratch: pgf_attention_scratch_bytes.
 */
void
pgf_attention(float *out, int out_stride,
			  const float *q, int q_stride,
			  const float *k, const float *v, int kv_stride,
			  int n_q, int n_kv, int n_heads, int n_kv_heads,
			  int head_dim, float scale,
			  const PgfAttnMask *mask, PgfArena *scratch)
{
	PgfAttnMask bidirectional;
	int			group;
	size_t		mark;
	float	   *scores;

	if (n_q <= 0 || n_heads <= 0)
		return;
	if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0)
		pgf_fatal("attention: %d query heads cannot share %d key/value heads",
				  n_heads, n_kv_heads);
	if (mask == NULL)
	{
		memset(&bidirectional, 0, sizeof(bidirectional));
		mask = &bidirectional;
	}
	if (n_kv <= 0)
	{
		for (int i = 0; i < n_q; i++)
			memset(out + (size_t) i * out_stride, 0, sizeof(float) * n_heads * head_dim);
		return;
	}
	group = n_heads / n_kv_heads;
	mark = pgf_arena_mark(scratch);
	scores = (float *) pgf_arena_alloc(scratch, pgf_attention_scratch_bytes(n_q, n_kv));

	if (n_q == 1 && group > 1)
	{
		/* decoding: the heads of one group are consecutive rows of q */
		for (int g = 0; g < n_kv_heads; g++)
			for (int h0 = g * group; h0 < (g + 1) * group; h0 += PGF_ATTN_HEAD_BATCH)
			{
				int			nh = (g + 1) * group - h0;

				if (nh > PGF_ATTN_HEAD_BATCH)
					nh = PGF_ATTN_HEAD_BATCH;
				attend_rows(out + (size_t) h0 * head_dim, head_dim,
							q + (size_t) h0 * head_dim, head_dim, nh, 0, 0, h0, 1,
							k + (size_t) g * head_dim, v + (size_t) g * head_dim,
							kv_stride, n_kv, head_dim, scale, mask, scores);
			}
	}
	else
	{
		for (int h = 0; h < n_heads; h++)
		{
			int			g = h / group;

			pgf_check_interrupts();
			for (int i0 = 0; i0 < n_q; i0 += PGF_ATTN_QUERY_BLOCK)
			{
				int			nr = n_q - i0 < PGF_ATTN_QUERY_BLOCK ? n_q - i0 : PGF_ATTN_QUERY_BLOCK;

				attend_rows(out + (size_t) i0 * out_stride + (size_t) h * head_dim, out_stride,
							q + (size_t) i0 * q_stride + (size_t) h * head_dim, q_stride,
							nr, i0, 1, h, 0,
							k + (size_t) g * head_dim, v + (size_t) g * head_dim,
							kv_stride, n_kv, head_dim, scale, mask, scores);
			}
		}
	}
	pgf_arena_reset(scratch, mark);
}
