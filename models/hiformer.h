/*
 * hiformer.h: the Hiformer ranker (Gui et al. 2023;
 * docs/hiformer.md): a pointwise model over user, context
 * and item features that scores N candidates for one request.
 *
 * Tokens.  The feature specs of the file (ModelHeader.features) define the
 * inputs.  Categorical and multi-hot features, in header order, are tokens
 * 0 .. n_C-1 (row e = E_i[code]; multi-hot: the mean of the rows of its
 * codes).  Dense features, in header order, are the columns of the dense
 * block z (|D| values), projected to n_D tokens: rows n_C .. n_C+n_D-1 of
 * reshape(z W_D^T + b_D, (n_D, d)).  Then t task tokens.  T = n_C + n_D + t.
 *
 * Dense value of feature j (raw x):  x missing, NaN or infinite -> default;
 *   v = log1p(max(x, 0)) if log1p, else x;  z_j = (v - mean) / std,
 *   clipped to [-clip, clip] when the feature's clip > 0.
 * Categorical code c: c in [0, vocab) -> row c; anything else (out of the
 * vocabulary) -> row 0, the unknown row; missing -> row 0.  Multi-hot: each
 * code mapped the same way, then the mean; an empty list -> row 0.
 *
 * Layer l (X [T, d], H heads of head_dim dk, HD = H dk, x = vec(X) [T d]):
 *   Y = prenorm ? LN1(X) : X
 *   q_i = Y_i Wq_i^T + bq_i                     per token, [HD]
 *   K = reshape(x_Y Wk^T + bk, (T, HD))          composite, x_Y = vec(Y);
 *       low rank: x_Y Wk^T = (x_Y Dk^T) Uk^T    (Dk [r_k, T d], Uk [T HD, r_k])
 *   V likewise;  head h of row i is columns h dk .. (h+1) dk - 1
 *   A_i = concat_h softmax(q_i^h K^h^T / sqrt(dk)) V^h   (no mask)
 *   U_i = A_i Wo_i^T + bo_i
 *   post-LN: X' = LN1(X + U);  X = LN2(X' + FFN(X'))
 *   pre-LN:  X' = X + U;       X = X' + FFN(LN2(X'))   and LNf after the
 *            last layer
 *   FFN_i(y) = W2_i act(W1_i y + b1_i) + b2_i    per token
 * Task k: p_k = sigmoid(tower_k(X[n_C + n_D + k])), a tower being linear
 * layers with ReLU between them.
 *
 * Tensors (f32; embedding tables may be any float dtype).  Linear weights
 * are [out, in]; per-token weights carry a leading T:
 *   hif.emb.cat.{i}.weight   [V_i, d]          i = categorical token
 *   hif.emb.dense.weight     [n_D d, |D|]      hif.emb.dense.bias [n_D d]
 *   hif.task_tokens          [t, d]
 *   hif.l{l}.attn.q.weight   [T, HD, d]        hif.l{l}.attn.q.bias [T, HD]
 *   hif.l{l}.attn.k.down     [r_k, T d]        hif.l{l}.attn.k.up [T HD, r_k]
 *   hif.l{l}.attn.k.full     [T HD, T d]       (rank_k = 0 instead)
 *   hif.l{l}.attn.k.bias     [T HD]            (v likewise with rank_v)
 *   hif.l{l}.attn.o.weight   [T, d, HD]        hif.l{l}.attn.o.bias [T, d]
 *   hif.l{l}.ln1.gamma/.beta [d]               hif.l{l}.ln2.gamma/.beta [d]
 *   hif.l{l}.ffn.w1 [T, d_ff, d]  .b1 [T, d_ff]  .w2 [T, d, d_ff]  .b2 [T, d]
 *   hif.lnf.gamma/.beta      [d]               (pre-LN only)
 *   hif.head.{k}.fc{m}.weight [out_m, in_m]    hif.head.{k}.fc{m}.bias [out_m]
 *     in_0 = d, out_m = tower_sizes[m], the last out = 1
 * tools/models/hiformer.py is the PyTorch reference of all of this.
 *
 * Serving.  Candidates are scored in chunks of rows (one GEMM per
 * projection and token over the chunk), with pgf_check_interrupts()
 * between chunks and layers, so any number of candidates works in a
 * bounded arena.  Two tricks, each of which can be switched off per request
 * (the result is the same):
 *   - layer-0 reuse: user, context and task tokens are the same for every
 *     candidate, so their layer-0 queries and their share of x Dk^T (and of
 *     x Wk^T at full rank) are computed once per request; per candidate only
 *     the candidate-dependent token rows (item features; the dense tokens
 *     when an item feature is dense) are multiplied;
 *   - last-layer pruning: only the task tokens are read after the last
 *     layer, so there Q, attention, W_O, the norms and the FFN run for the t
 *     task rows only (keys and values still cover all T rows).
 */
#ifndef PGF_HIFORMER_H
#define PGF_HIFORMER_H

#include "models/bind.h"

#define PGF_HIF_MAX_FEATURES 512
#define PGF_HIF_MAX_TOKENS 256
#define PGF_HIF_MAX_LAYERS 16
#define PGF_HIF_MAX_TASKS 16
#define PGF_HIF_MAX_TOWER 8		/* linear layers per tower */
#define PGF_HIF_MAX_DIM 4096		/* d, HD, d_ff, tower widths */
#define PGF_HIF_MAX_VOCAB (1 << 24)
#define PGF_HIF_CHUNK 256		/* candidates per pass by default */

/* Where a feature's value comes from. */
typedef enum PgfHiformerGroup
{
	PGF_HIF_USER = 0,			/* one row per request */
	PGF_HIF_CONTEXT = 1,		/* one row per request */
	PGF_HIF_ITEM = 2			/* one row per candidate */
} PgfHiformerGroup;

#define PGF_HIF_N_GROUPS 3

/* Values equal FeatureKind of model.proto. */
typedef enum PgfHiformerKind
{
	PGF_HIF_CATEGORICAL = 0,
	PGF_HIF_DENSE = 1,
	PGF_HIF_MULTI_HOT = 2
} PgfHiformerKind;

typedef struct PgfHiformerFeature
{
	const char *name;			/* points into the file header */
	PgfHiformerKind kind;
	PgfHiformerGroup group;
	int			slot;			/* position in its group's value array */
	int			column;			/* categorical: token; dense: column of z */
	int			vocab_size;		/* categorical and multi-hot */
	float		default_value;	/* dense: raw value used when missing */
	float		mean;
	float		std;
	float		clip;			/* 0: none */
	bool		log1p;
	PgfMatrix	table;			/* categorical: [vocab_size, d] */
} PgfHiformerFeature;

/* A composite key or value projection. */
typedef struct PgfHiformerComposite
{
	int			rank;			/* 0: full rank */
	int			inner;			/* columns of x D^T: rank, or T HD at full rank */
	const float *down;			/* [inner, T d]: Dk, or the full Wk */
	const float *up;			/* [T HD, rank], NULL at full rank */
	const float *bias;			/* [T HD] */
} PgfHiformerComposite;

typedef struct PgfHiformerLayer
{
	const float *wq,
			   *bq;				/* [T, HD, d], [T, HD] */
	PgfHiformerComposite k,
				v;
	const float *wo,
			   *bo;				/* [T, d, HD], [T, d] */
	const float *ln1_gamma,
			   *ln1_beta,
			   *ln2_gamma,
			   *ln2_beta;
	const float *w1,
			   *b1,
			   *w2,
			   *b2;				/* [T, d_ff, d], [T, d_ff], [T, d, d_ff], [T, d] */
} PgfHiformerLayer;

typedef struct PgfHiformerTower
{
	int			n_fc;
	int			width[PGF_HIF_MAX_TOWER + 1];	/* width[0] = d, last = 1 */
	const float *w[PGF_HIF_MAX_TOWER];
	const float *b[PGF_HIF_MAX_TOWER];
} PgfHiformerTower;

typedef struct PgfHiformerModel
{
	int			n_categorical;	/* n_C */
	int			n_dense;		/* |D| */
	int			n_dense_tokens; /* n_D */
	int			n_tasks;		/* t */
	int			n_tokens;		/* T */
	int			d_model;
	int			n_heads;
	int			head_dim;
	int			d_ff;
	int			n_layers;
	bool		prenorm;
	PgfActivation activation;	/* GELU_ERF, GELU_TANH or RELU */
	float		norm_eps;

	int			n_features;
	PgfHiformerFeature features[PGF_HIF_MAX_FEATURES];
	int			n_group[PGF_HIF_N_GROUPS];	/* features per group */
	/* group_feature[g][slot]: index into features */
	int			group_feature[PGF_HIF_N_GROUPS][PGF_HIF_MAX_FEATURES];
	/* which tokens depend on the candidate (layer-0 reuse skips the others) */
	bool		per_candidate[PGF_HIF_MAX_TOKENS];

	const float *dense_w;		/* [n_D d, |D|] */
	const float *dense_b;		/* [n_D d] */
	const float *task_tokens;	/* [t, d] */
	PgfHiformerLayer layers[PGF_HIF_MAX_LAYERS];
	const float *lnf_gamma,
			   *lnf_beta;		/* pre-LN only */
	PgfHiformerTower towers[PGF_HIF_MAX_TASKS];
	const char *task_names[PGF_HIF_MAX_TASKS];	/* NULL when unnamed */
} PgfHiformerModel;

PgfStatus	pgf_hiformer_bind(const PgfModel *file, void *model, char *err, size_t errlen);

/* The feature called name, or NULL. */
const PgfHiformerFeature *pgf_hiformer_find_feature(const PgfHiformerModel *m,
													const char *name);

/* Feature slot of group g (0 <= slot < m->n_group[g]). */
const PgfHiformerFeature *pgf_hiformer_group_feature(const PgfHiformerModel *m,
													 PgfHiformerGroup g, int slot);

/* The task called name, or -1. */
int			pgf_hiformer_find_task(const PgfHiformerModel *m, const char *name);

/* ---- scoring ------------------------------------------------------------- */

typedef enum PgfHiformerValueKind
{
	PGF_HIF_VALUE_MISSING = 0,	/* SQL NULL, or no such column */
	PGF_HIF_VALUE_NUMBER = 1,	/* dense; categorical if integral */
	PGF_HIF_VALUE_CODE = 2,		/* categorical, multi-hot (one code), dense */
	PGF_HIF_VALUE_CODES = 3		/* multi-hot: n_codes codes */
} PgfHiformerValueKind;

/* One feature value of one row, as the caller read it. */
typedef struct PgfHiformerValue
{
	PgfHiformerValueKind kind;
	int			n_codes;		/* CODES */
	double		number;			/* NUMBER (NaN and infinities: missing) */
	int64_t		code;			/* CODE */
	const int64_t *codes;		/* CODES: caller's memory */
} PgfHiformerValue;

/* What pgf_hiformer_score had to fill in, for the caller to report. */
typedef struct PgfHiformerCounts
{
	int64_t		missing_rows;	/* no user / context row, candidates without a row */
	int64_t		missing_values; /* NULL values in rows that exist */
	int64_t		nan_values;		/* NaN or infinite numbers (used as missing) */
	int64_t		oov_codes;		/* codes outside [0, vocab): unknown row */
} PgfHiformerCounts;

typedef struct PgfHiformerRequest
{
	/* user[m->n_group[USER]] in slot order; NULL: no user row */
	const PgfHiformerValue *user;
	/* context[m->n_group[CONTEXT]]; NULL: no context row */
	const PgfHiformerValue *context;
	int			n_candidates;
	/* items[n_candidates * n_group[ITEM]], candidate-major; NULL: no rows */
	const PgfHiformerValue *items;
	/* item_found[n_candidates]: false = no row (defaults); NULL: all found */
	const bool *item_found;
	bool		no_pruning;		/* run the last layer over every token */
	bool		no_layer0_reuse;	/* recompute layer 0 per candidate */
	int			chunk;			/* candidates per pass; 0: PGF_HIF_CHUNK */
	PgfHiformerCounts counts;	/* output */
} PgfHiformerRequest;

/*
 * Arena bytes for scoring up to max_candidates per pass (more candidates
 * are scored in passes of the largest chunk the arena holds).
 */
size_t		pgf_hiformer_arena_bytes(const PgfHiformerModel *m, int max_candidates);

/*
 * Scores req->n_candidates candidates: out[n * n_tasks + k] = probability of
 * task k for candidate n.  Fills req->counts.  Returns 0, or -1 with a
 * message in err (a value of the wrong kind for its feature, an arena too
 * small for even one candidate).  The arena is left as it was found.
 */
int			pgf_hiformer_score(const PgfHiformerModel *m, PgfHiformerRequest *req,
							   float *out, PgfArena *arena, char *err, size_t errlen);

#endif							/* PGF_HIFORMER_H */
