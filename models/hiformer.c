/*
 * hiformer.c: binding and scoring the Hiformer ranker (see hiformer.h for
 * the model, the tensor layouts and the serving tricks).
 */
#include "models/hiformer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- binding --------------------------------------------------------------- */

static bool
parse_group(const char *s, PgfHiformerGroup *g)
{
	if (strcmp(s, "user") == 0)
		*g = PGF_HIF_USER;
	else if (strcmp(s, "context") == 0)
		*g = PGF_HIF_CONTEXT;
	else if (strcmp(s, "item") == 0)
		*g = PGF_HIF_ITEM;
	else
		return false;
	return true;
}

static const char *
group_name(PgfHiformerGroup g)
{
	return g == PGF_HIF_USER ? "user" : g == PGF_HIF_CONTEXT ? "context" : "item";
}

static bool
in_range(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v >= lo && v <= hi;
}

static const float *
bind3(PgfBinder *b, const char *name, int64_t a, int64_t c, int64_t e)
{
	int64_t		shape[3] = {a, c, e};

	return pgf_bind_f32(b, name, 3, shape, false);
}

static const float *
bind2(PgfBinder *b, const char *name, int64_t a, int64_t c)
{
	int64_t		shape[2] = {a, c};

	return pgf_bind_f32(b, name, 2, shape, false);
}

static void
bind_composite(PgfBinder *b, int l, const char *part, int rank, int T, int d, int hd,
			   PgfHiformerComposite *c)
{
	char		name[PGF_NAME_MAX];

	c->rank = rank;
	if (rank == 0)
	{
		c->inner = T * hd;
		c->down = bind2(b, pgf_name(name, "hif.l%d.attn.%s.full", l, part),
						(int64_t) T * hd, (int64_t) T * d);
		c->up = NULL;
	}
	else
	{
		c->inner = rank;
		c->down = bind2(b, pgf_name(name, "hif.l%d.attn.%s.down", l, part),
						rank, (int64_t) T * d);
		c->up = bind2(b, pgf_name(name, "hif.l%d.attn.%s.up", l, part),
					  (int64_t) T * hd, rank);
	}
	c->bias = pgf_bind_vector(b, pgf_name(name, "hif.l%d.attn.%s.bias", l, part),
							  (int64_t) T * hd, false);
}

static void
bind_features(PgfBinder *b, const Pgformer__ModelHeader *h, PgfHiformerModel *m)
{
	int			n_cat = 0,
				n_dense = 0;

	if (h->n_features != (size_t) (m->n_categorical + m->n_dense))
	{
		pgf_bind_fail(b, "hiformer: the header lists %zu features but the config has %d categorical and %d dense",
					  h->n_features, m->n_categorical, m->n_dense);
		return;
	}
	if (h->n_features > PGF_HIF_MAX_FEATURES)
	{
		pgf_bind_fail(b, "hiformer: %zu features, at most %d are supported",
					  h->n_features, PGF_HIF_MAX_FEATURES);
		return;
	}
	m->n_features = (int) h->n_features;
	for (int i = 0; i < m->n_features; i++)
	{
		const Pgformer__FeatureSpec *fs = h->features[i];
		PgfHiformerFeature *f = &m->features[i];

		f->name = fs->name;
		if (fs->name == NULL || fs->name[0] == '\0')
		{
			pgf_bind_fail(b, "hiformer: feature %d has no name", i);
			return;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(m->features[j].name, fs->name) == 0)
			{
				pgf_bind_fail(b, "hiformer: feature \"%s\" is listed twice", fs->name);
				return;
			}
		if (!parse_group(fs->group ? fs->group : "", &f->group))
		{
			pgf_bind_fail(b, "hiformer: feature \"%s\" has group \"%s\" (want user, context or item)",
						  fs->name, fs->group ? fs->group : "");
			return;
		}
		switch (fs->kind)
		{
			case PGFORMER__FEATURE_KIND__CATEGORICAL:
			case PGFORMER__FEATURE_KIND__MULTI_HOT:
				f->kind = fs->kind == PGFORMER__FEATURE_KIND__CATEGORICAL ?
					PGF_HIF_CATEGORICAL : PGF_HIF_MULTI_HOT;
				if (!in_range(fs->vocab_size, 1, PGF_HIF_MAX_VOCAB))
				{
					pgf_bind_fail(b, "hiformer: feature \"%s\" has vocab_size %u (1 to %d)",
								  fs->name, fs->vocab_size, PGF_HIF_MAX_VOCAB);
					return;
				}
				f->vocab_size = (int) fs->vocab_size;
				f->column = n_cat++;
				break;
			case PGFORMER__FEATURE_KIND__DENSE:
				f->kind = PGF_HIF_DENSE;
				if (!isfinite(fs->mean) || !isfinite(fs->default_value) ||
					!isfinite(fs->std) || !(fs->std > 0) ||
					!isfinite(fs->clip) || fs->clip < 0)
				{
					pgf_bind_fail(b, "hiformer: dense feature \"%s\" needs a finite mean and default, a positive std and a clip >= 0",
								  fs->name);
					return;
				}
				f->default_value = fs->default_value;
				f->mean = fs->mean;
				f->std = fs->std;
				f->clip = fs->clip;
				f->log1p = fs->log1p;
				f->column = n_dense++;
				break;
			default:
				pgf_bind_fail(b, "hiformer: feature \"%s\" has an unknown kind %d",
							  fs->name, (int) fs->kind);
				return;
		}
		f->slot = m->n_group[f->group]++;
		m->group_feature[f->group][f->slot] = i;
	}
	if (n_cat != m->n_categorical || n_dense != m->n_dense)
		pgf_bind_fail(b, "hiformer: the features are %d categorical and %d dense, the config says %d and %d",
					  n_cat, n_dense, m->n_categorical, m->n_dense);
}

PgfStatus
pgf_hiformer_bind(const PgfModel *file, void *model, char *err, size_t errlen)
{
	PgfHiformerModel *m = model;
	const Pgformer__ModelHeader *h = file->header;
	const Pgformer__HiformerConfig *cfg = h->hiformer;
	PgfBinder	b;
	char		name[PGF_NAME_MAX];
	int			T,
				d,
				hd,
				L;

	pgf_binder_init(&b, file, err, errlen);
	if (cfg == NULL)
	{
		pgf_bind_fail(&b, "hiformer: the header has no hiformer config");
		return b.status;
	}
	if (!in_range(cfg->n_layers, 1, PGF_HIF_MAX_LAYERS))
		pgf_bind_fail(&b, "hiformer: n_layers %u is out of range (1 to %d)",
					  cfg->n_layers, PGF_HIF_MAX_LAYERS);
	else if (!in_range(cfg->n_tasks, 1, PGF_HIF_MAX_TASKS))
		pgf_bind_fail(&b, "hiformer: n_tasks %u is out of range (1 to %d)",
					  cfg->n_tasks, PGF_HIF_MAX_TASKS);
	else if (!in_range(cfg->d_model, 1, PGF_HIF_MAX_DIM) ||
			 !in_range(cfg->n_heads, 1, PGF_HIF_MAX_DIM) ||
			 !in_range(cfg->head_dim, 1, PGF_HIF_MAX_DIM) ||
			 cfg->n_heads * cfg->head_dim > PGF_HIF_MAX_DIM ||
			 !in_range(cfg->d_ff, 1, PGF_HIF_MAX_DIM))
		pgf_bind_fail(&b, "hiformer: d_model %u, n_heads %u, head_dim %u, d_ff %u: each must be 1 to %d (n_heads * head_dim too)",
					  cfg->d_model, cfg->n_heads, cfg->head_dim, cfg->d_ff, PGF_HIF_MAX_DIM);
	else if ((cfg->n_dense == 0) != (cfg->n_dense_tokens == 0) ||
			 cfg->n_dense > PGF_HIF_MAX_FEATURES || cfg->n_dense_tokens > PGF_HIF_MAX_TOKENS)
		pgf_bind_fail(&b, "hiformer: %u dense features and %u dense tokens (both zero, or both positive)",
					  cfg->n_dense, cfg->n_dense_tokens);
	else if (cfg->n_categorical > PGF_HIF_MAX_FEATURES ||
			 cfg->n_categorical + cfg->n_dense_tokens + cfg->n_tasks > PGF_HIF_MAX_TOKENS)
		pgf_bind_fail(&b, "hiformer: %u categorical + %u dense + %u task tokens, at most %d tokens are supported",
					  cfg->n_categorical, cfg->n_dense_tokens, cfg->n_tasks, PGF_HIF_MAX_TOKENS);
	else if (cfg->rank_k > 65536 || cfg->rank_v > 65536)
		pgf_bind_fail(&b, "hiformer: ranks %u and %u, at most 65536", cfg->rank_k, cfg->rank_v);
	else if (cfg->n_tower_sizes + 1 > PGF_HIF_MAX_TOWER)
		pgf_bind_fail(&b, "hiformer: towers of %zu layers, at most %d",
					  cfg->n_tower_sizes + 1, PGF_HIF_MAX_TOWER);
	else if (!(cfg->norm_eps > 0) || !isfinite(cfg->norm_eps))
		pgf_bind_fail(&b, "hiformer: norm_eps must be positive");
	else if (cfg->activation != PGFORMER__ACTIVATION__GELU_ERF &&
			 cfg->activation != PGFORMER__ACTIVATION__GELU_TANH &&
			 cfg->activation != PGFORMER__ACTIVATION__RELU)
		pgf_bind_fail(&b, "hiformer: activation %d is not supported (gelu_erf, gelu_tanh or relu)",
					  (int) cfg->activation);
	else if (cfg->n_task_names != 0 && cfg->n_task_names != cfg->n_tasks)
		pgf_bind_fail(&b, "hiformer: %zu task names for %u tasks",
					  cfg->n_task_names, cfg->n_tasks);
	for (size_t i = 0; b.status == PGF_OK && i < cfg->n_tower_sizes; i++)
		if (!in_range(cfg->tower_sizes[i], 1, PGF_HIF_MAX_DIM))
			pgf_bind_fail(&b, "hiformer: tower size %u is out of range (1 to %d)",
						  cfg->tower_sizes[i], PGF_HIF_MAX_DIM);
	if (b.status != PGF_OK)
		return b.status;

	m->n_categorical = (int) cfg->n_categorical;
	m->n_dense = (int) cfg->n_dense;
	m->n_dense_tokens = (int) cfg->n_dense_tokens;
	m->n_tasks = (int) cfg->n_tasks;
	m->n_tokens = T = m->n_categorical + m->n_dense_tokens + m->n_tasks;
	m->d_model = d = (int) cfg->d_model;
	m->n_heads = (int) cfg->n_heads;
	m->head_dim = (int) cfg->head_dim;
	hd = m->n_heads * m->head_dim;
	m->d_ff = (int) cfg->d_ff;
	m->n_layers = L = (int) cfg->n_layers;
	m->prenorm = cfg->norm_placement == PGFORMER__NORM_PLACEMENT__PRE_NORM;
	m->activation = (PgfActivation) cfg->activation;
	m->norm_eps = cfg->norm_eps;
	for (int k = 0; k < m->n_tasks; k++)
		m->task_names[k] = cfg->n_task_names ? cfg->task_names[k] : NULL;

	bind_features(&b, h, m);
	if (b.status != PGF_OK)
		return b.status;

	/* which tokens change with the candidate */
	for (int i = 0; i < m->n_features; i++)
	{
		const PgfHiformerFeature *f = &m->features[i];

		if (f->group != PGF_HIF_ITEM)
			continue;
		if (f->kind == PGF_HIF_DENSE)
			for (int t = 0; t < m->n_dense_tokens; t++)
				m->per_candidate[m->n_categorical + t] = true;
		else
			m->per_candidate[f->column] = true;
	}

	for (int i = 0; i < m->n_features; i++)
	{
		PgfHiformerFeature *f = &m->features[i];

		if (f->kind != PGF_HIF_DENSE)
			f->table = pgf_bind_matrix(&b, pgf_name(name, "hif.emb.cat.%d.weight", f->column),
									   f->vocab_size, d, false);
	}
	if (m->n_dense_tokens)
	{
		m->dense_w = bind2(&b, "hif.emb.dense.weight", (int64_t) m->n_dense_tokens * d, m->n_dense);
		m->dense_b = pgf_bind_vector(&b, "hif.emb.dense.bias", (int64_t) m->n_dense_tokens * d, false);
	}
	m->task_tokens = bind2(&b, "hif.task_tokens", m->n_tasks, d);
	for (int l = 0; l < L; l++)
	{
		PgfHiformerLayer *y = &m->layers[l];

		y->wq = bind3(&b, pgf_name(name, "hif.l%d.attn.q.weight", l), T, hd, d);
		y->bq = bind2(&b, pgf_name(name, "hif.l%d.attn.q.bias", l), T, hd);
		bind_composite(&b, l, "k", (int) cfg->rank_k, T, d, hd, &y->k);
		bind_composite(&b, l, "v", (int) cfg->rank_v, T, d, hd, &y->v);
		y->wo = bind3(&b, pgf_name(name, "hif.l%d.attn.o.weight", l), T, d, hd);
		y->bo = bind2(&b, pgf_name(name, "hif.l%d.attn.o.bias", l), T, d);
		y->ln1_gamma = pgf_bind_vector(&b, pgf_name(name, "hif.l%d.ln1.gamma", l), d, false);
		y->ln1_beta = pgf_bind_vector(&b, pgf_name(name, "hif.l%d.ln1.beta", l), d, false);
		y->ln2_gamma = pgf_bind_vector(&b, pgf_name(name, "hif.l%d.ln2.gamma", l), d, false);
		y->ln2_beta = pgf_bind_vector(&b, pgf_name(name, "hif.l%d.ln2.beta", l), d, false);
		y->w1 = bind3(&b, pgf_name(name, "hif.l%d.ffn.w1", l), T, m->d_ff, d);
		y->b1 = bind2(&b, pgf_name(name, "hif.l%d.ffn.b1", l), T, m->d_ff);
		y->w2 = bind3(&b, pgf_name(name, "hif.l%d.ffn.w2", l), T, d, m->d_ff);
		y->b2 = bind2(&b, pgf_name(name, "hif.l%d.ffn.b2", l), T, d);
	}
	if (m->prenorm)
	{
		m->lnf_gamma = pgf_bind_vector(&b, "hif.lnf.gamma", d, false);
		m->lnf_beta = pgf_bind_vector(&b, "hif.lnf.beta", d, false);
	}
	for (int k = 0; k < m->n_tasks; k++)
	{
		PgfHiformerTower *tw = &m->towers[k];

		tw->n_fc = (int) cfg->n_tower_sizes + 1;
		tw->width[0] = d;
		for (int j = 0; j < (int) cfg->n_tower_sizes; j++)
			tw->width[j + 1] = (int) cfg->tower_sizes[j];
		tw->width[tw->n_fc] = 1;
		for (int j = 0; j < tw->n_fc; j++)
		{
			tw->w[j] = bind2(&b, pgf_name(name, "hif.head.%d.fc%d.weight", k, j),
							 tw->width[j + 1], tw->width[j]);
			tw->b[j] = pgf_bind_vector(&b, pgf_name(name, "hif.head.%d.fc%d.bias", k, j),
									   tw->width[j + 1], false);
		}
	}
	return b.status;
}

const PgfHiformerFeature *
pgf_hiformer_find_feature(const PgfHiformerModel *m, const char *name)
{
	for (int i = 0; i < m->n_features; i++)
		if (strcmp(m->features[i].name, name) == 0)
			return &m->features[i];
	return NULL;
}

const PgfHiformerFeature *
pgf_hiformer_group_feature(const PgfHiformerModel *m, PgfHiformerGroup g, int slot)
{
	if ((int) g < 0 || g >= PGF_HIF_N_GROUPS || slot < 0 || slot >= m->n_group[g])
		return NULL;
	return &m->features[m->group_feature[g][slot]];
}

int
pgf_hiformer_find_task(const PgfHiformerModel *m, const char *name)
{
	for (int k = 0; k < m->n_tasks; k++)
		if (m->task_names[k] && strcmp(m->task_names[k], name) == 0)
			return k;
	return -1;
}

/* ---- arena ------------------------------------------------------------------- */

/* Activations of one pass over n candidates, and the per-request constants. */
typedef struct HifBuffers
{
	/* per request */
	float	   *x0_base;		/* [T, d]: request-constant token rows */
	float	   *y0_base;		/* [T, d]: their LN1 (pre-LN) or themselves */
	float	   *q_base;			/* [T, HD]: their layer-0 queries */
	float	   *zk_base;		/* [inner_k]: their share of x Dk^T */
	float	   *zv_base;
	float	   *z_base;			/* [|D|]: user/context dense values */
	float	   *row;			/* [d]: one embedding row */
	/* per pass */
	float	   *x;				/* [n, T, d] */
	float	   *y;				/* [n, T, d] normed input (pre-LN) */
	float	   *u;				/* [n, T, d] attention or FFN output */
	float	   *q;				/* [n, T, HD] */
	float	   *a;				/* [n, T, HD] */
	float	   *zk;				/* [n, inner_k] */
	float	   *k;				/* [n, T, HD] (zk at full rank) */
	float	   *zv;
	float	   *v;
	float	   *hid;			/* [n, d_ff] */
	float	   *z;				/* [n, |D|] */
	float	   *t0,
			   *t1;				/* [n, widest tower layer] */
} HifBuffers;

static int
widest_tower(const PgfHiformerModel *m)
{
	int			w = 1;

	for (int k = 0; k < m->n_tasks; k++)
		for (int j = 0; j <= m->towers[k].n_fc; j++)
			if (m->towers[k].width[j] > w)
				w = m->towers[k].width[j];
	return w;
}

/* Bytes of n floats in the arena (at least one float, so never empty). */
static size_t
fbytes(size_t n)
{
	return pgf_arena_round((n ? n : 1) * sizeof(float));
}

static size_t
request_bytes(const PgfHiformerModel *m)
{
	size_t		T = m->n_tokens,
				d = m->d_model,
				hd = (size_t) m->n_heads * m->head_dim;

	return 2 * fbytes(T * d) + fbytes(T * hd) + fbytes(m->layers[0].k.inner) +
		fbytes(m->layers[0].v.inner) + fbytes(m->n_dense) + fbytes(d);
}

static size_t
pass_bytes(const PgfHiformerModel *m, size_t n)
{
	size_t		T = m->n_tokens,
				d = m->d_model,
				hd = (size_t) m->n_heads * m->head_dim;
	const PgfHiformerLayer *y = &m->layers[0];

	return 3 * fbytes(n * T * d) + 2 * fbytes(n * T * hd) +
		fbytes(n * y->k.inner) + (y->k.rank ? fbytes(n * T * hd) : 0) +
		fbytes(n * y->v.inner) + (y->v.rank ? fbytes(n * T * hd) : 0) +
		fbytes(n * m->d_ff) + fbytes(n * m->n_dense) +
		2 * fbytes(n * widest_tower(m)) +
		pgf_attention_scratch_bytes(m->n_tokens, m->n_tokens);
}

size_t
pgf_hiformer_arena_bytes(const PgfHiformerModel *m, int max_candidates)
{
	size_t		n = max_candidates < 1 ? 1 :
		max_candidates > PGF_HIF_CHUNK ? PGF_HIF_CHUNK : (size_t) max_candidates;

	return request_bytes(m) + pass_bytes(m, n);
}

static void
alloc_request(const PgfHiformerModel *m, PgfArena *a, HifBuffers *bf)
{
	size_t		T = m->n_tokens,
				d = m->d_model,
				hd = (size_t) m->n_heads * m->head_dim;

	bf->x0_base = pgf_arena_floats(a, T * d);
	bf->y0_base = pgf_arena_floats(a, T * d);
	bf->q_base = pgf_arena_floats(a, T * hd);
	bf->zk_base = pgf_arena_floats(a, m->layers[0].k.inner);
	bf->zv_base = pgf_arena_floats(a, m->layers[0].v.inner);
	bf->z_base = pgf_arena_floats(a, m->n_dense ? m->n_dense : 1);
	bf->row = pgf_arena_floats(a, d);
}

static void
alloc_pass(const PgfHiformerModel *m, PgfArena *a, size_t n, HifBuffers *bf)
{
	size_t		T = m->n_tokens,
				d = m->d_model,
				hd = (size_t) m->n_heads * m->head_dim;
	const PgfHiformerLayer *y = &m->layers[0];
	size_t		w = widest_tower(m);

	bf->x = pgf_arena_floats(a, n * T * d);
	bf->y = pgf_arena_floats(a, n * T * d);
	bf->u = pgf_arena_floats(a, n * T * d);
	bf->q = pgf_arena_floats(a, n * T * hd);
	bf->a = pgf_arena_floats(a, n * T * hd);
	bf->zk = pgf_arena_floats(a, n * y->k.inner);
	bf->k = y->k.rank ? pgf_arena_floats(a, n * T * hd) : bf->zk;
	bf->zv = pgf_arena_floats(a, n * y->v.inner);
	bf->v = y->v.rank ? pgf_arena_floats(a, n * T * hd) : bf->zv;
	bf->hid = pgf_arena_floats(a, n * m->d_ff);
	bf->z = pgf_arena_floats(a, m->n_dense ? n * m->n_dense : 1);
	bf->t0 = pgf_arena_floats(a, n * w);
	bf->t1 = pgf_arena_floats(a, n * w);
}

/* ---- input encoding -------------------------------------------------------- */

typedef struct HifEncoder
{
	const PgfHiformerModel *m;
	PgfHiformerCounts *counts;
	float	   *row;			/* [d] scratch for multi-hot rows */
	char	   *err;
	size_t		errlen;
} HifEncoder;

/* cand: candidate index, or -1 for the request's user / context row. */
static int
value_error(HifEncoder *e, const PgfHiformerFeature *f, int cand, const char *what)
{
	if (cand >= 0)
		snprintf(e->err, e->errlen, "hiformer: feature \"%s\" of candidate %d %s",
				 f->name, cand, what);
	else
		snprintf(e->err, e->errlen, "hiformer: %s feature \"%s\" %s",
				 group_name(f->group), f->name, what);
	return -1;
}

/*
 * z value of dense feature f.  v NULL: the row is missing (default, not
 * counted as a missing value).
 */
static int
encode_dense(HifEncoder *e, const PgfHiformerFeature *f, const PgfHiformerValue *v,
			 int cand, float *out)
{
	double		x = f->default_value;

	if (v != NULL)
		switch (v->kind)
		{
			case PGF_HIF_VALUE_MISSING:
				e->counts->missing_values++;
				break;
			case PGF_HIF_VALUE_NUMBER:
				if (isfinite(v->number))
					x = v->number;
				else
					e->counts->nan_values++;
				break;
			case PGF_HIF_VALUE_CODE:
				x = (double) v->code;
				break;
			case PGF_HIF_VALUE_CODES:
				return value_error(e, f, cand, "is dense but was given a list of codes");
			default:
				return value_error(e, f, cand, "has a value of unknown kind");
		}
	if (f->log1p)
		x = log1p(x > 0 ? x : 0);
	x = (x - f->mean) / f->std;
	if (f->clip > 0)
		x = x < -f->clip ? -f->clip : x > f->clip ? f->clip : x;
	*out = (float) x;
	return 0;
}

/* Table row of one code: in [0, vocab) or the unknown row 0. */
static int64_t
code_row(HifEncoder *e, const PgfHiformerFeature *f, int64_t c)
{
	if (c >= 0 && c < f->vocab_size)
		return c;
	e->counts->oov_codes++;
	return 0;
}

/* Embedding of categorical or multi-hot feature f into out[d]. */
static int
encode_categorical(HifEncoder *e, const PgfHiformerFeature *f, const PgfHiformerValue *v,
				   int cand, float *out)
{
	int			d = e->m->d_model;
	int64_t		row = 0;

	if (v != NULL)
		switch (v->kind)
		{
			case PGF_HIF_VALUE_MISSING:
				e->counts->missing_values++;
				break;
			case PGF_HIF_VALUE_NUMBER:
				if (!isfinite(v->number))
					e->counts->nan_values++;
				else if (v->number != floor(v->number))
					return value_error(e, f, cand, "is categorical but was given a number that is not an integer");
				else if (fabs(v->number) > 9.0e18)
					row = code_row(e, f, -1);
				else
					row = code_row(e, f, (int64_t) v->number);
				break;
			case PGF_HIF_VALUE_CODE:
				row = code_row(e, f, v->code);
				break;
			case PGF_HIF_VALUE_CODES:
				if (f->kind != PGF_HIF_MULTI_HOT)
					return value_error(e, f, cand, "takes one category but was given a list");
				if (v->n_codes < 0 || (v->n_codes > 0 && v->codes == NULL))
					return value_error(e, f, cand, "was given a list with a bad length");
				if (v->n_codes > 1)
				{
					float		w = 1.0f / (float) v->n_codes;

					memset(out, 0, sizeof(float) * d);
					for (int i = 0; i < v->n_codes; i++)
					{
						pgf_matrix_row(e->row, &f->table, (int) code_row(e, f, v->codes[i]));
						for (int j = 0; j < d; j++)
							out[j] += e->row[j] * w;
					}
					return 0;
				}
				if (v->n_codes == 1)
					row = code_row(e, f, v->codes[0]);
				break;
			default:
				return value_error(e, f, cand, "has a value of unknown kind");
		}
	pgf_matrix_row(out, &f->table, (int) row);
	return 0;
}

/* ---- the forward pass ------------------------------------------------------ */

/* y[n rows of stride ld] += bias[w] */
static void
add_bias_rows(float *y, int ld, int n, const float *bias, int w)
{
	for (int r = 0; r < n; r++)
		pgf_add(y + (size_t) r * ld, bias, w);
}

static void
activate(PgfActivation act, float *x, size_t n)
{
	if (act == PGF_ACT_RELU)
		pgf_relu(x, n);
	else if (act == PGF_ACT_GELU_TANH)
		pgf_gelu_tanh(x, n);
	else
		pgf_gelu_erf(x, n);
}

/*
 * The next run [*a, *b) of tokens at or after start whose per_candidate flag
 * equals want; false when there is none.
 */
static bool
next_run(const PgfHiformerModel *m, int start, bool want, int *a, int *b)
{
	int			i = start;

	while (i < m->n_tokens && m->per_candidate[i] != want)
		i++;
	if (i >= m->n_tokens)
		return false;
	*a = i;
	while (i < m->n_tokens && m->per_candidate[i] == want)
		i++;
	*b = i;
	return true;
}

/*
 * The request-constant part of X0 (user and context tokens, task tokens,
 * the dense tokens when no item feature is dense) in x0_base, the
 * user/context dense values in z_base, and, for layer-0 reuse, those rows'
 * queries and their share of the composite key and value products.
 */
static int
encode_request(const PgfHiformerModel *m, const PgfHiformerRequest *req, HifEncoder *e,
			   HifBuffers *bf, bool reuse)
{
	int			T = m->n_tokens,
				d = m->d_model,
				hd = m->n_heads * m->head_dim,
				L = m->n_categorical + m->n_dense_tokens;
	const PgfHiformerLayer *y = &m->layers[0];
	int			a,
				b;
	bool		first;

	memset(bf->x0_base, 0, sizeof(float) * T * d);
	if (m->n_dense)
		memset(bf->z_base, 0, sizeof(float) * m->n_dense);
	for (int g = PGF_HIF_USER; g <= PGF_HIF_CONTEXT; g++)
	{
		const PgfHiformerValue *row = g == PGF_HIF_USER ? req->user : req->context;

		if (row == NULL && m->n_group[g] > 0)
			e->counts->missing_rows++;
		for (int s = 0; s < m->n_group[g]; s++)
		{
			const PgfHiformerFeature *f = &m->features[m->group_feature[g][s]];
			const PgfHiformerValue *v = row ? &row[s] : NULL;
			int			rc;

			if (f->kind == PGF_HIF_DENSE)
				rc = encode_dense(e, f, v, -1, &bf->z_base[f->column]);
			else
				rc = encode_categorical(e, f, v, -1, bf->x0_base + (size_t) f->column * d);
			if (rc != 0)
				return rc;
		}
	}
	memcpy(bf->x0_base + (size_t) L * d, m->task_tokens, sizeof(float) * m->n_tasks * d);
	if (m->n_dense_tokens && !m->per_candidate[m->n_categorical])
	{
		float	   *dst = bf->x0_base + (size_t) m->n_categorical * d;

		pgf_gemm(false, true, 1, m->n_dense_tokens * d, m->n_dense, 1.0f,
				 bf->z_base, m->n_dense, m->dense_w, m->n_dense, 0.0f, dst,
				 m->n_dense_tokens * d);
		pgf_add(dst, m->dense_b, (size_t) m->n_dense_tokens * d);
	}
	if (!reuse)
		return 0;

	if (m->prenorm)
		pgf_layernorm(bf->y0_base, bf->x0_base, T, d, y->ln1_gamma, y->ln1_beta, m->norm_eps);
	else
		memcpy(bf->y0_base, bf->x0_base, sizeof(float) * T * d);
	for (int i = 0; i < T; i++)
		if (!m->per_candidate[i])
		{
			pgf_gemm(false, true, 1, hd, d, 1.0f, bf->y0_base + (size_t) i * d, d,
					 y->wq + (size_t) i * hd * d, d, 0.0f, bf->q_base + (size_t) i * hd, hd);
			pgf_add(bf->q_base + (size_t) i * hd, y->bq + (size_t) i * hd, hd);
		}
	memset(bf->zk_base, 0, sizeof(float) * y->k.inner);
	memset(bf->zv_base, 0, sizeof(float) * y->v.inner);
	first = true;
	for (int start = 0; next_run(m, start, false, &a, &b); start = b)
	{
		pgf_gemm(false, true, 1, y->k.inner, (b - a) * d, 1.0f, bf->y0_base + (size_t) a * d,
				 (b - a) * d, y->k.down + (size_t) a * d, T * d, first ? 0.0f : 1.0f,
				 bf->zk_base, y->k.inner);
		pgf_gemm(false, true, 1, y->v.inner, (b - a) * d, 1.0f, bf->y0_base + (size_t) a * d,
				 (b - a) * d, y->v.down + (size_t) a * d, T * d, first ? 0.0f : 1.0f,
				 bf->zv_base, y->v.inner);
		first = false;
	}
	return 0;
}

/* X0 of candidates c0 .. c0+n-1 into bf->x. */
static int
encode_candidates(const PgfHiformerModel *m, const PgfHiformerRequest *req, HifEncoder *e,
				  HifBuffers *bf, int c0, int n)
{
	int			T = m->n_tokens,
				d = m->d_model,
				D = m->n_dense,
				n_item = m->n_group[PGF_HIF_ITEM];

	for (int j = 0; j < n; j++)
	{
		int			cand = c0 + j;
		float	   *x = bf->x + (size_t) j * T * d;
		float	   *z = bf->z + (size_t) j * D;
		bool		found = req->items != NULL &&
			(req->item_found == NULL || req->item_found[cand]);
		const PgfHiformerValue *row = found ? req->items + (size_t) cand * n_item : NULL;

		memcpy(x, bf->x0_base, sizeof(float) * T * d);
		if (D)
			memcpy(z, bf->z_base, sizeof(float) * D);
		if (!found && n_item > 0)
			e->counts->missing_rows++;
		for (int s = 0; s < n_item; s++)
		{
			const PgfHiformerFeature *f = &m->features[m->group_feature[PGF_HIF_ITEM][s]];
			const PgfHiformerValue *v = row ? &row[s] : NULL;
			int			rc;

			if (f->kind == PGF_HIF_DENSE)
				rc = encode_dense(e, f, v, cand, &z[f->column]);
			else
				rc = encode_categorical(e, f, v, cand, x + (size_t) f->column * d);
			if (rc != 0)
				return rc;
		}
	}
	if (m->n_dense_tokens && m->per_candidate[m->n_categorical])
	{
		float	   *dst = bf->x + (size_t) m->n_categorical * d;

		pgf_gemm(false, true, n, m->n_dense_tokens * d, D, 1.0f, bf->z, D,
				 m->dense_w, D, 0.0f, dst, T * d);
		add_bias_rows(dst, T * d, n, m->dense_b, m->n_dense_tokens * d);
	}
	return 0;
}

/*
 * out[n, T HD] = vec(Y) W^T + bias for a composite projection; with reuse
 * (layer 0) only the candidate-dependent token rows are multiplied and the
 * request's share `base` is added.
 */
static void
composite(const PgfHiformerModel *m, const PgfHiformerComposite *c, const float *y,
		  int n, const float *base, float *z, float *out)
{
	int			T = m->n_tokens,
				d = m->d_model,
				thd = T * m->n_heads * m->head_dim;
	int			a,
				b;

	if (base)
	{
		for (int j = 0; j < n; j++)
			memcpy(z + (size_t) j * c->inner, base, sizeof(float) * c->inner);
		for (int start = 0; next_run(m, start, true, &a, &b); start = b)
			pgf_gemm(false, true, n, c->inner, (b - a) * d, 1.0f, y + (size_t) a * d, T * d,
					 c->down + (size_t) a * d, T * d, 1.0f, z, c->inner);
	}
	else
		pgf_gemm(false, true, n, c->inner, T * d, 1.0f, y, T * d, c->down, T * d,
				 0.0f, z, c->inner);
	if (c->rank)
		pgf_gemm(false, true, n, thd, c->rank, 1.0f, z, c->rank, c->up, c->rank,
				 0.0f, out, thd);
	add_bias_rows(out, thd, n, c->bias, thd);
}

/*
 * Layer l over n candidates in bf->x.  reuse: layer 0 with the request's
 * constants; prune: compute outputs for the task rows only.
 */
static void
run_layer(const PgfHiformerModel *m, int l, HifBuffers *bf, int n, bool reuse,
		  bool prune, PgfArena *arena)
{
	const PgfHiformerLayer *y = &m->layers[l];
	int			T = m->n_tokens,
				d = m->d_model,
				hd = m->n_heads * m->head_dim,
				ff = m->d_ff;
	int			r0 = prune ? T - m->n_tasks : 0;	/* first row computed */
	int			nr = T - r0;
	size_t		td = (size_t) T * d,
				thd = (size_t) T * hd;
	const float *in;

	/* queries, keys and values from Y = LN1(X) (pre-LN) or X */
	if (m->prenorm)
	{
		pgf_layernorm(bf->y, bf->x, n * T, d, y->ln1_gamma, y->ln1_beta, m->norm_eps);
		in = bf->y;
	}
	else
		in = bf->x;
	for (int i = r0; i < T; i++)
	{
		float	   *q = bf->q + (size_t) i * hd;

		if (reuse && !m->per_candidate[i])
		{
			for (int j = 0; j < n; j++)
				memcpy(q + j * thd, bf->q_base + (size_t) i * hd, sizeof(float) * hd);
			continue;
		}
		pgf_gemm(false, true, n, hd, d, 1.0f, in + (size_t) i * d, (int) td,
				 y->wq + (size_t) i * hd * d, d, 0.0f, q, (int) thd);
		add_bias_rows(q, (int) thd, n, y->bq + (size_t) i * hd, hd);
	}
	composite(m, &y->k, in, n, reuse ? bf->zk_base : NULL, bf->zk, bf->k);
	composite(m, &y->v, in, n, reuse ? bf->zv_base : NULL, bf->zv, bf->v);

	/* attention of rows r0.. over all T rows, one candidate at a time */
	for (int j = 0; j < n; j++)
		pgf_attention(bf->a + j * thd + (size_t) r0 * hd, hd,
					  bf->q + j * thd + (size_t) r0 * hd, hd,
					  bf->k + j * thd, bf->v + j * thd, hd,
					  nr, T, m->n_heads, m->n_heads, m->head_dim,
					  1.0f / sqrtf((float) m->head_dim), NULL, arena);

	/* per-token output projection, residual, LN1 (post-LN) */
	for (int i = r0; i < T; i++)
	{
		float	   *u = bf->u + (size_t) i * d;

		pgf_gemm(false, true, n, d, hd, 1.0f, bf->a + (size_t) i * hd, (int) thd,
				 y->wo + (size_t) i * d * hd, hd, 0.0f, u, (int) td);
		add_bias_rows(u, (int) td, n, y->bo + (size_t) i * d, d);
	}
	for (int j = 0; j < n; j++)
	{
		float	   *x = bf->x + j * td + (size_t) r0 * d;

		pgf_add(x, bf->u + j * td + (size_t) r0 * d, (size_t) nr * d);
		if (m->prenorm)
			pgf_layernorm(bf->y + j * td + (size_t) r0 * d, x, nr, d,
						  y->ln2_gamma, y->ln2_beta, m->norm_eps);
		else
			pgf_layernorm(x, x, nr, d, y->ln1_gamma, y->ln1_beta, m->norm_eps);
	}

	/* per-token FFN on X' (post-LN) or LN2(X') (pre-LN) */
	in = m->prenorm ? bf->y : bf->x;
	for (int i = r0; i < T; i++)
	{
		float	   *u = bf->u + (size_t) i * d;

		pgf_gemm(false, true, n, ff, d, 1.0f, in + (size_t) i * d, (int) td,
				 y->w1 + (size_t) i * ff * d, d, 0.0f, bf->hid, ff);
		add_bias_rows(bf->hid, ff, n, y->b1 + (size_t) i * ff, ff);
		activate(m->activation, bf->hid, (size_t) n * ff);
		pgf_gemm(false, true, n, d, ff, 1.0f, bf->hid, ff,
				 y->w2 + (size_t) i * d * ff, ff, 0.0f, u, (int) td);
		add_bias_rows(u, (int) td, n, y->b2 + (size_t) i * d, d);
	}
	for (int j = 0; j < n; j++)
	{
		float	   *x = bf->x + j * td + (size_t) r0 * d;

		pgf_add(x, bf->u + j * td + (size_t) r0 * d, (size_t) nr * d);
		if (!m->prenorm)
			pgf_layernorm(x, x, nr, d, y->ln2_gamma, y->ln2_beta, m->norm_eps);
	}
}

/* Task towers on the task rows of bf->x: out[(c0 + j) * t + k]. */
static void
run_towers(const PgfHiformerModel *m, HifBuffers *bf, int n, float *out)
{
	int			T = m->n_tokens,
				d = m->d_model,
				t = m->n_tasks,
				L = T - t;

	if (m->prenorm)
		for (int j = 0; j < n; j++)
		{
			float	   *x = bf->x + ((size_t) j * T + L) * d;

			pgf_layernorm(x, x, t, d, m->lnf_gamma, m->lnf_beta, m->norm_eps);
		}
	for (int k = 0; k < t; k++)
	{
		const PgfHiformerTower *tw = &m->towers[k];
		const float *in = bf->x + (size_t) (L + k) * d;
		int			ld = T * d;
		float	   *h = bf->t0;

		for (int f = 0; f < tw->n_fc; f++)
		{
			int			wi = tw->width[f],
						wo = tw->width[f + 1];

			pgf_gemm(false, true, n, wo, wi, 1.0f, in, ld, tw->w[f], wi, 0.0f, h, wo);
			add_bias_rows(h, wo, n, tw->b[f], wo);
			if (f + 1 < tw->n_fc)
				pgf_relu(h, (size_t) n * wo);
			in = h;
			ld = wo;
			h = (h == bf->t0) ? bf->t1 : bf->t0;
		}
		for (int j = 0; j < n; j++)
			out[(size_t) j * t + k] = (float) (1.0 / (1.0 + exp(-(double) in[j])));
	}
}

int
pgf_hiformer_score(const PgfHiformerModel *m, PgfHiformerRequest *req, float *out,
				   PgfArena *arena, char *err, size_t errlen)
{
	size_t		mark = pgf_arena_mark(arena);
	size_t		avail = arena->size - arena->used;
	bool		reuse = !req->no_layer0_reuse;
	int			n_total = req->n_candidates;
	int			chunk;
	HifBuffers	bf;
	HifEncoder	enc;
	int			rc = 0;

	memset(&req->counts, 0, sizeof(req->counts));
	if (n_total < 0)
	{
		snprintf(err, errlen, "hiformer: %d candidates", n_total);
		return -1;
	}
	if (n_total == 0)
		return 0;
	chunk = req->chunk > 0 ? req->chunk : PGF_HIF_CHUNK;
	if (chunk > n_total)
		chunk = n_total;
	if (request_bytes(m) + pass_bytes(m, chunk) > avail)
	{
		/* the largest chunk the arena holds (bytes grow with the chunk) */
		int			lo = 1,
					hi = chunk - 1;

		chunk = 0;
		while (lo <= hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (request_bytes(m) + pass_bytes(m, mid) <= avail)
			{
				chunk = mid;
				lo = mid + 1;
			}
			else
				hi = mid - 1;
		}
	}
	if (chunk == 0)
	{
		snprintf(err, errlen, "hiformer: the arena has %zu bytes free, scoring needs at least %zu (pgf_hiformer_arena_bytes)",
				 avail, request_bytes(m) + pass_bytes(m, 1));
		return -1;
	}

	memset(&bf, 0, sizeof(bf));
	alloc_request(m, arena, &bf);
	alloc_pass(m, arena, chunk, &bf);
	enc.m = m;
	enc.counts = &req->counts;
	enc.row = bf.row;
	enc.err = err;
	enc.errlen = errlen;

	rc = encode_request(m, req, &enc, &bf, reuse);
	for (int c0 = 0; rc == 0 && c0 < n_total; c0 += chunk)
	{
		int			n = n_total - c0 < chunk ? n_total - c0 : chunk;

		pgf_check_interrupts();
		rc = encode_candidates(m, req, &enc, &bf, c0, n);
		if (rc != 0)
			break;
		for (int l = 0; l < m->n_layers; l++)
		{
			if (l > 0)
				pgf_check_interrupts();
			run_layer(m, l, &bf, n, reuse && l == 0,
					  !req->no_pruning && l == m->n_layers - 1, arena);
		}
		run_towers(m, &bf, n, out + (size_t) c0 * m->n_tasks);
	}
	pgf_arena_reset(arena, mark);
	return rc;
}
