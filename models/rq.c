/*
 * rq.c: the residual quantiser and the depth head (rq.h).
 */
#include <math.h>
#include <string.h>

#include "models/rq.h"

/* ---- the quantiser ------------------------------------------------------------ */

size_t
pgf_rq_quantize_scratch_bytes(int n, const PgfMatrix *codebook)
{
	size_t		k = codebook->rows,
				d = codebook->cols;

	return pgf_arena_round(sizeof(float) * n * k) + pgf_arena_round(sizeof(float) * k) +
		pgf_arena_round(sizeof(float) * n * d) + pgf_arena_round(sizeof(float) * d) +
		pgf_arena_round(pgf_linear_scratch_bytes(codebook, n));
}

void
pgf_rq_quantize(int32_t *codes, float *zq, const float *z, int n, int depth,
				const PgfMatrix *codebook, PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	int			k = codebook->rows,
				d = codebook->cols;
	float	   *dots = pgf_arena_floats(scratch, (size_t) n * k),
			   *norms = pgf_arena_floats(scratch, k),
			   *r = pgf_arena_floats(scratch, (size_t) n * d),
			   *entry = pgf_arena_floats(scratch, d);

	for (int c = 0; c < k; c++)
	{
		pgf_matrix_row(entry, codebook, c);
		norms[c] = 0;
		for (int j = 0; j < d; j++)
			norms[c] += entry[j] * entry[j];
	}
	memcpy(r, z, sizeof(float) * n * d);
	if (zq)
		memset(zq, 0, sizeof(float) * n * d);
	for (int level = 0; level < depth; level++)
	{
		/* |r - C_c|^2 = |r|^2 - 2 r.C_c + |C_c|^2; |r|^2 is the same for every c */
		pgf_linear(dots, r, n, codebook, NULL, scratch);
		for (int i = 0; i < n; i++)
		{
			const float *row = dots + (size_t) i * k;
			int			best = 0;
			float		best_dist = norms[0] - 2 * row[0];

			for (int c = 1; c < k; c++)
			{
				float		dist = norms[c] - 2 * row[c];

				if (dist < best_dist)
				{
					best = c;
					best_dist = dist;
				}
			}
			codes[(size_t) i * depth + level] = best;
			pgf_matrix_row(entry, codebook, best);
			for (int j = 0; j < d; j++)
			{
				r[(size_t) i * d + j] -= entry[j];
				if (zq)
					zq[(size_t) i * d + j] += entry[j];
			}
		}
		pgf_check_interrupts();
	}
	pgf_arena_reset(scratch, mark);
}

void
pgf_rq_embed(float *zq, const int32_t *codes, int n, int depth, const PgfMatrix *codebook,
			 PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	int			d = codebook->cols;
	float	   *entry = pgf_arena_floats(scratch, d);

	memset(zq, 0, sizeof(float) * n * d);
	for (int i = 0; i < n; i++)
		for (int level = 0; level < depth; level++)
		{
			int			c = codes[(size_t) i * depth + level];

			if (c < 0 || c >= codebook->rows)
				pgf_fatal("rq_embed: code %d of a %d-entry codebook", c, codebook->rows);
			pgf_matrix_row(entry, codebook, c);
			pgf_add(zq + (size_t) i * d, entry, d);
		}
	pgf_arena_reset(scratch, mark);
}

/* ---- the depth head: binding ---------------------------------------------------- */

static PgfMatrix
bind_linear(PgfBinder *b, const char *name, int rows, int cols, const float **bias)
{
	char		buf[PGF_NAME_MAX];
	PgfMatrix	m = pgf_bind_matrix(b, pgf_name(buf, "%s.weight", name), rows, cols, false);

	*bias = pgf_bind_vector(b, pgf_name(buf, "%s.bias", name), rows, false);
	return m;
}

static void
bind_ln(PgfBinder *b, const char *name, int d, const float **gamma, const float **beta)
{
	char		buf[PGF_NAME_MAX];

	*gamma = pgf_bind_vector(b, pgf_name(buf, "%s.weight", name), d, false);
	*beta = pgf_bind_vector(b, pgf_name(buf, "%s.bias", name), d, false);
}

void
pgf_depth_head_bind(PgfDepthHead *h, PgfBinder *b, const char *prefix,
					const PgfDepthHeadConfig *cfg, const PgfMatrix *codebook)
{
	char		buf[PGF_NAME_MAX];
	int64_t		pos_shape[2] = {cfg->depth, cfg->d};

	memset(h, 0, sizeof(*h));
	h->cfg = *cfg;
	h->codebook = codebook;
	if (cfg->d < 1 || cfg->width < 1 || cfg->n_heads < 1 || cfg->width % cfg->n_heads != 0 ||
		cfg->d_ff < 1 || !(cfg->eps > 0))
	{
		pgf_bind_fail(b, "depth head: widths must be positive and the attention width (%d) a multiple of the heads (%d)",
					  cfg->width, cfg->n_heads);
		return;
	}
	if (cfg->depth < 1 || cfg->depth > PGF_RQ_MAX_DEPTH || cfg->n_blocks < 1 || cfg->n_blocks > PGF_RQ_MAX_BLOCKS)
	{
		pgf_bind_fail(b, "depth head: depth %d (1 to %d) and %d blocks (1 to %d)",
					  cfg->depth, PGF_RQ_MAX_DEPTH, cfg->n_blocks, PGF_RQ_MAX_BLOCKS);
		return;
	}
	h->in_mlp_1 = bind_linear(b, pgf_name(buf, "%sin_mlp_1", prefix), cfg->d, codebook->cols, &h->in_mlp_1_bias);
	h->in_mlp_2 = bind_linear(b, pgf_name(buf, "%sin_mlp_2", prefix), cfg->d, cfg->d, &h->in_mlp_2_bias);
	h->pos = pgf_bind_f32(b, pgf_name(buf, "%spos_emb_d", prefix), 2, pos_shape, false);
	for (int i = 0; i < cfg->n_blocks; i++)
	{
		PgfDepthBlock *k = &h->block[i];
		char		p[PGF_NAME_MAX];

		pgf_name(p, "%sblocks.%d", prefix, i);
		bind_ln(b, pgf_name(buf, "%s.ln1", p), cfg->d, &k->ln1_gamma, &k->ln1_beta);
		k->in_proj = bind_linear(b, pgf_name(buf, "%s.attn_in_proj", p), cfg->width, cfg->d, &k->in_proj_bias);
		k->wq = bind_linear(b, pgf_name(buf, "%s.query", p), cfg->width, cfg->width, &k->bq);
		k->wk = bind_linear(b, pgf_name(buf, "%s.key", p), cfg->width, cfg->width, &k->bk);
		k->wv = bind_linear(b, pgf_name(buf, "%s.value", p), cfg->width, cfg->width, &k->bv);
		k->proj = bind_linear(b, pgf_name(buf, "%s.proj", p), cfg->width, cfg->width, &k->proj_bias);
		k->out_proj = bind_linear(b, pgf_name(buf, "%s.attn_out_proj", p), cfg->d, cfg->width, &k->out_proj_bias);
		bind_ln(b, pgf_name(buf, "%s.ln2", p), cfg->d, &k->ln2_gamma, &k->ln2_beta);
		k->mlp0 = bind_linear(b, pgf_name(buf, "%s.mlp0", p), cfg->d_ff, cfg->d, &k->mlp0_bias);
		k->mlp2 = bind_linear(b, pgf_name(buf, "%s.mlp2", p), cfg->d, cfg->d_ff, &k->mlp2_bias);
	}
	bind_ln(b, pgf_name(buf, "%sln_cls", prefix), cfg->d, &h->ln_cls_gamma, &h->ln_cls_beta);
	h->classifier = bind_linear(b, pgf_name(buf, "%sclassifier", prefix), codebook->rows, cfg->d,
								&h->classifier_bias);
}

/* ---- the depth head: running ---------------------------------------------------- */

/* The per-call buffers, all from the arena. */
typedef struct DepthWork
{
	float	   *x,				/* [rows, d] */
			   *a,				/* [rows, d] */
			   *u,				/* [rows, width] */
			   *q,
			   *t,
			   *o,
			   *f,				/* [rows, d_ff] */
			   *partial,		/* [rows, code_dim] */
			   *entry,			/* [code_dim] */
			   *logits,			/* [rows, K] */
			   *mixed,			/* [K] */
			   *kv;				/* [blocks, rows, 2, depth, width] */
} DepthWork;

static size_t
max_linear_scratch(const PgfDepthHead *h, int rows)
{
	size_t		s = pgf_linear_scratch_bytes(&h->classifier, rows);
	const PgfMatrix *all[] = {&h->in_mlp_1, &h->in_mlp_2};

	for (int i = 0; i < 2; i++)
		s = s > pgf_linear_scratch_bytes(all[i], rows) ? s : pgf_linear_scratch_bytes(all[i], rows);
	for (int i = 0; i < h->cfg.n_blocks; i++)
	{
		const PgfDepthBlock *k = &h->block[i];
		const PgfMatrix *m[] = {&k->in_proj, &k->wq, &k->wk, &k->wv, &k->proj, &k->out_proj, &k->mlp0, &k->mlp2};

		for (int j = 0; j < 8; j++)
			s = s > pgf_linear_scratch_bytes(m[j], rows) ? s : pgf_linear_scratch_bytes(m[j], rows);
	}
	return s;
}

size_t
pgf_depth_head_arena_bytes(const PgfDepthHead *h, int rows)
{
	const PgfDepthHeadConfig *c = &h->cfg;
	size_t		k = h->codebook->rows,
				bytes = 0,
				kernel = max_linear_scratch(h, rows),
				attn = pgf_attention_scratch_bytes(1, c->depth),
				sample = pgf_sample_scratch_bytes((int) k);
	size_t		floats[] = {
		(size_t) rows * c->d, (size_t) rows * c->d, (size_t) rows * c->width, (size_t) rows * c->width,
		(size_t) rows * c->width, (size_t) rows * c->width, (size_t) rows * c->d_ff,
		(size_t) rows * h->codebook->cols, h->codebook->cols, rows * k, k,
		(size_t) c->n_blocks * rows * 2 * c->depth * c->width
	};

	for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++)
		bytes += pgf_arena_round(sizeof(float) * floats[i]);
	kernel = kernel > attn ? kernel : attn;
	kernel = kernel > sample ? kernel : sample;
	return bytes + pgf_arena_round(kernel);
}

/* Cached keys (kind 0) or values (1) of block b, row r. */
static float *
cache_of(const PgfDepthHead *h, const DepthWork *w, int rows, int b, int r, int kind)
{
	const PgfDepthHeadConfig *c = &h->cfg;

	return w->kv + ((((size_t) b * rows + r) * 2 + kind) * c->depth) * c->width;
}

/* w->logits [rows, K] for depth j; x already holds the depth's input. */
static void
depth_step(const PgfDepthHead *h, DepthWork *w, int rows, int j, PgfArena *arena)
{
	const PgfDepthHeadConfig *c = &h->cfg;
	int			hd = c->width / c->n_heads;
	PgfAttnMask mask = {.kind = PGF_MASK_BIDIRECTIONAL};

	pgf_add_bias(w->x, h->pos + (size_t) j * c->d, rows, c->d);
	for (int b = 0; b < c->n_blocks; b++)
	{
		const PgfDepthBlock *k = &h->block[b];

		pgf_layernorm(w->a, w->x, rows, c->d, k->ln1_gamma, k->ln1_beta, c->eps);
		pgf_linear(w->u, w->a, rows, &k->in_proj, k->in_proj_bias, arena);
		pgf_linear(w->q, w->u, rows, &k->wq, k->bq, arena);
		pgf_linear(w->t, w->u, rows, &k->wk, k->bk, arena);
		for (int r = 0; r < rows; r++)
			memcpy(cache_of(h, w, rows, b, r, 0) + (size_t) j * c->width, w->t + (size_t) r * c->width,
				   sizeof(float) * c->width);
		pgf_linear(w->t, w->u, rows, &k->wv, k->bv, arena);
		for (int r = 0; r < rows; r++)
		{
			memcpy(cache_of(h, w, rows, b, r, 1) + (size_t) j * c->width, w->t + (size_t) r * c->width,
				   sizeof(float) * c->width);
			/* the newest depth sees every depth before it: the causal mask */
			pgf_attention(w->o + (size_t) r * c->width, c->width, w->q + (size_t) r * c->width, c->width,
						  cache_of(h, w, rows, b, r, 0), cache_of(h, w, rows, b, r, 1), c->width,
						  1, j + 1, c->n_heads, c->n_heads, hd, 1.0f / sqrtf((float) hd), &mask, arena);
		}
		pgf_linear(w->t, w->o, rows, &k->proj, k->proj_bias, arena);
		pgf_linear_acc(w->x, w->t, rows, &k->out_proj, k->out_proj_bias, arena);
		pgf_layernorm(w->a, w->x, rows, c->d, k->ln2_gamma, k->ln2_beta, c->eps);
		pgf_linear(w->f, w->a, rows, &k->mlp0, k->mlp0_bias, arena);
		pgf_gelu_erf(w->f, (size_t) rows * c->d_ff);
		pgf_linear_acc(w->x, w->f, rows, &k->mlp2, k->mlp2_bias, arena);
	}
	pgf_layernorm(w->a, w->x, rows, c->d, h->ln_cls_gamma, h->ln_cls_beta, c->eps);
	pgf_linear(w->logits, w->a, rows, &h->classifier, h->classifier_bias, arena);
}

/*
 * The depth loop shared by sampling and teacher forcing: with forced, the
 * code fed back at depth j is forced[j]; otherwise it is drawn.
 */
static bool
depth_loop(const PgfDepthHead *h, const float *hidden, int rows, const int32_t *forced,
		   float cfg_scale, const PgfSampling *s, PgfRng *rng, int32_t *codes,
		   float *logits_out, PgfArena *arena)
{
	const PgfDepthHeadConfig *c = &h->cfg;
	size_t		mark = pgf_arena_mark(arena),
				k = h->codebook->rows,
				e = h->codebook->cols;
	DepthWork	w;
	bool		ok = true;

	if (rows < 1 || rows > PGF_RQ_MAX_ROWS)
		pgf_fatal("depth head: %d rows", rows);
	w.x = pgf_arena_floats(arena, (size_t) rows * c->d);
	w.a = pgf_arena_floats(arena, (size_t) rows * c->d);
	w.u = pgf_arena_floats(arena, (size_t) rows * c->width);
	w.q = pgf_arena_floats(arena, (size_t) rows * c->width);
	w.t = pgf_arena_floats(arena, (size_t) rows * c->width);
	w.o = pgf_arena_floats(arena, (size_t) rows * c->width);
	w.f = pgf_arena_floats(arena, (size_t) rows * c->d_ff);
	w.partial = pgf_arena_floats(arena, rows * e);
	w.entry = pgf_arena_floats(arena, e);
	w.logits = pgf_arena_floats(arena, rows * k);
	w.mixed = pgf_arena_floats(arena, k);
	w.kv = pgf_arena_floats(arena, (size_t) c->n_blocks * rows * 2 * c->depth * c->width);
	memset(w.partial, 0, sizeof(float) * rows * e);

	pgf_linear(w.x, hidden, rows, &h->in_mlp_2, h->in_mlp_2_bias, arena);
	for (int j = 0; j < c->depth; j++)
	{
		int			code;

		if (j > 0)
		{
			for (int r = 0; r < rows; r++)
				pgf_add(w.partial + r * e, w.entry, e);
			pgf_linear(w.x, w.partial, rows, &h->in_mlp_1, h->in_mlp_1_bias, arena);
		}
		depth_step(h, &w, rows, j, arena);
		if (logits_out)
			memcpy(logits_out + (size_t) j * rows * k, w.logits, sizeof(float) * rows * k);
		if (forced)
			code = forced[j];
		else
		{
			size_t		m = pgf_arena_mark(arena);

			for (size_t i = 0; i < k; i++)
				w.mixed[i] = rows == 2 ? w.logits[k + i] + cfg_scale * (w.logits[i] - w.logits[k + i])
					: w.logits[i];
			code = pgf_sample_token(s, rng, w.mixed, (int) k, arena);
			pgf_arena_reset(arena, m);
			if (code < 0)
			{
				ok = false;
				break;
			}
			codes[j] = code;
		}
		if (j + 1 == c->depth)
			break;				/* the last code feeds nothing */
		if (code < 0 || code >= (int) k)
			pgf_fatal("depth head: code %d of a %zu-entry codebook", code, k);
		pgf_matrix_row(w.entry, h->codebook, code);
	}
	pgf_arena_reset(arena, mark);
	return ok;
}

bool
pgf_depth_head_codes(const PgfDepthHead *h, const float *hidden, int rows,
					 float cfg_scale, const PgfSampling *s, PgfRng *rng,
					 int32_t *codes, float *logits_out, PgfArena *arena)
{
	return depth_loop(h, hidden, rows, NULL, cfg_scale, s, rng, codes, logits_out, arena);
}

void
pgf_depth_head_forced(const PgfDepthHead *h, const float *hidden, int rows,
					  const int32_t *forced, float *logits_out, PgfArena *arena)
{
	depth_loop(h, hidden, rows, forced, 0, NULL, NULL, NULL, logits_out, arena);
}
