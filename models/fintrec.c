/*
 * fintrec.c: binding and running the FinTRec recommender (see fintrec.h;
 * the reference definition is tools/models/fintrec.py).
 *
 * One call, for B users:
 *   1. check every request (nothing is computed for an invalid batch);
 *   2. lay out each user's tokens back to back in x [total, d]:
 *      [FM] [static...] [events, oldest first] [query], and its time-bias
 *      matrix [len, len];
 *   3. the transformer blocks over the packed segments (prefix-LM causal
 *      or bidirectional mask per segment); the last layer only for the
 *      read-out token (run_stack);
 *   4. gather h_u per user, apply W_c; then one GEMM of all users' vectors
 *      against the item table (+ per-item bias);
 *   5. per user: mark pad/unknown/seen rows NaN (work proportional to the
 *      user's events, not the catalogue), top-k, ids, placement bias.
 */
#include "models/fintrec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FINTREC_MAX_ROWS (1 << 28)
#define FINTREC_MAX_VOCAB (1 << 24)
#define FINTREC_MAX_EVENTS 65536
#define FINTREC_SCORE_CHUNK 256	/* users per scoring GEMM between
								 * interrupt checks */

/* ---- binding ------------------------------------------------------------ */

PgfStatus
pgf_fintrec_bind(const PgfModel *file, void *model, char *err, size_t errlen)
{
	PgfFintrecModel *m = model;
	const Pgformer__FinTRecConfig *cfg = file->header->fintrec;
	const Pgformer__ItemTable *items = file->header->items;
	PgfBinder	b;
	char		name[PGF_NAME_MAX];
	const char *head;
	int			d;

	pgf_binder_init(&b, file, err, errlen);
	if (cfg == NULL)
	{
		pgf_bind_fail(&b, "fintrec: the header has no FinTRec config");
		return b.status;
	}
	m->decoder = (cfg->variant == PGFORMER__SEQUENCE_VARIANT__DECODER);
	if (!m->decoder && cfg->variant != PGFORMER__SEQUENCE_VARIANT__ENCODER)
	{
		pgf_bind_fail(&b, "fintrec: unknown variant %d", (int) cfg->variant);
		return b.status;
	}
	pgf_stack_bind(&b, cfg->blocks, m->decoder ? "fin.dec" : "fin.enc", &m->stack);
	if (b.status != PGF_OK)
		return b.status;
	d = m->d = m->stack.spec.d_model;
	m->n_heads = m->stack.spec.n_heads;

	/* sizes and switches */
	if (cfg->n_items == 0 || cfg->n_items > FINTREC_MAX_ROWS)
		pgf_bind_fail(&b, "fintrec: n_items %u is out of range (1 to %d)",
					  cfg->n_items, FINTREC_MAX_ROWS);
	else if (cfg->item_pad >= cfg->item_first || cfg->item_unknown >= cfg->item_first ||
			 cfg->item_first > cfg->n_items)
		pgf_bind_fail(&b, "fintrec: item rows must satisfy item_pad, item_unknown < item_first <= n_items (have %u, %u, %u, %u)",
					  cfg->item_pad, cfg->item_unknown, cfg->item_first, cfg->n_items);
	else if (cfg->max_events == 0 || cfg->max_events > FINTREC_MAX_EVENTS)
		pgf_bind_fail(&b, "fintrec: max_events %u is out of range (1 to %d)",
					  cfg->max_events, FINTREC_MAX_EVENTS);
	else if (cfg->n_event_types > FINTREC_MAX_VOCAB || cfg->n_channels > FINTREC_MAX_VOCAB ||
			 cfg->n_placements > FINTREC_MAX_VOCAB)
		pgf_bind_fail(&b, "fintrec: n_event_types, n_channels or n_placements exceed %d",
					  FINTREC_MAX_VOCAB);
	else if (cfg->n_static_tokens > FINTREC_MAX_STATIC ||
			 cfg->n_static_vocab != cfg->n_static_tokens)
		pgf_bind_fail(&b, "fintrec: %u static tokens with %zu vocabulary sizes (at most %d tokens, one size each)",
					  cfg->n_static_tokens, cfg->n_static_vocab, FINTREC_MAX_STATIC);
	else if (cfg->d_fm > 65536)
		pgf_bind_fail(&b, "fintrec: d_fm %u exceeds 65536", cfg->d_fm);
	else if (cfg->time_bias && !(cfg->time_bias_tau > 0 && isfinite(cfg->time_bias_tau)))
		pgf_bind_fail(&b, "fintrec: time_bias needs a positive time_bias_tau");
	else if (!(cfg->index_bias >= 0 && isfinite(cfg->index_bias)))
		pgf_bind_fail(&b, "fintrec: index_bias must be a finite value >= 0");
	else if ((!cfg->readout_last_event || cfg->placement_bias) && cfg->n_placements == 0)
		pgf_bind_fail(&b, "fintrec: a query token or a placement bias needs n_placements >= 1");
	if (b.status != PGF_OK)
		return b.status;
	for (size_t k = 0; k < cfg->n_static_vocab; k++)
		if (cfg->static_vocab[k] == 0 || cfg->static_vocab[k] > FINTREC_MAX_VOCAB)
		{
			pgf_bind_fail(&b, "fintrec: static token %zu has vocabulary %u (1 to %d)",
						  k, cfg->static_vocab[k], FINTREC_MAX_VOCAB);
			return b.status;
		}

	m->n_rows = (int) cfg->n_items;
	m->item_pad = (int) cfg->item_pad;
	m->item_unknown = (int) cfg->item_unknown;
	m->item_first = (int) cfg->item_first;
	m->max_events = (int) cfg->max_events;
	m->n_event_types = (int) cfg->n_event_types;
	m->n_channels = (int) cfg->n_channels;
	m->n_placements = (int) cfg->n_placements;
	m->n_static = (int) cfg->n_static_tokens;
	m->d_fm = (int) cfg->d_fm;
	m->n_prefix = (m->d_fm ? 1 : 0) + m->n_static;
	m->time_encoding = cfg->time_encoding;
	m->time_bias = cfg->time_bias;
	m->time_bias_tau = cfg->time_bias_tau;
	m->index_bias = cfg->index_bias;
	m->has_bias = m->time_bias || m->index_bias > 0;
	m->learned_positions = cfg->learned_positions;
	m->query_token = !cfg->readout_last_event;
	m->item_scale = cfg->scale_embeddings ? sqrtf((float) d) : 1.0f;

	/* the item-id table: rows item_first .. n_items - 1 */
	if (file->item_ids == NULL || items == NULL)
	{
		pgf_bind_fail(&b, "fintrec: the file has no item-id table");
		return b.status;
	}
	if (items->first_row != cfg->item_first ||
		file->n_items != (size_t) (cfg->n_items - cfg->item_first))
	{
		pgf_bind_fail(&b, "fintrec: the item-id table holds %zu ids from row %u, but the config has %u real rows from row %u",
					  file->n_items, items->first_row, cfg->n_items - cfg->item_first,
					  cfg->item_first);
		return b.status;
	}
	m->item_ids = file->item_ids;
	m->n_ids = (int) file->n_items;

	/* embeddings */
	m->item_emb = pgf_bind_matrix(&b, "fin.emb.prod.weight", m->n_rows, d, false);
	if (m->n_event_types)
		m->evt_emb = pgf_bind_matrix(&b, "fin.emb.evt.weight", m->n_event_types, d, false);
	if (m->n_channels)
		m->chan_emb = pgf_bind_matrix(&b, "fin.emb.chan.weight", m->n_channels, d, false);
	if (m->time_encoding)
		m->time_w = pgf_bind_matrix(&b, "fin.emb.time.w", d, FINTREC_TIME_FEATURES, false);
	if (m->learned_positions)
		m->pos_emb = pgf_bind_matrix(&b, "fin.emb.pos.weight", m->max_events + 1, d, false);
	if (m->query_token)
	{
		m->query_emb = pgf_bind_vector(&b, "fin.emb.query", d, false);
		m->place_emb = pgf_bind_matrix(&b, "fin.emb.place.weight", m->n_placements, d, false);
	}
	if (m->n_static)
	{
		m->static_field = pgf_bind_matrix(&b, "fin.emb.sfield.weight", m->n_static, d, false);
		for (int k = 0; k < m->n_static; k++)
		{
			m->static_vocab[k] = (int) cfg->static_vocab[k];
			m->static_value[k] = pgf_bind_matrix(&b, pgf_name(name, "fin.emb.sval.%d.weight", k),
												 m->static_vocab[k], d, false);
		}
	}
	if (m->d_fm)
	{
		m->fm_w = pgf_bind_matrix(&b, "fin.emb.fm.w", d, m->d_fm, false);
		m->fm_b = pgf_bind_vector(&b, "fin.emb.fm.b", d, false);
	}
	if (m->has_bias)
		m->slopes = pgf_bind_vector(&b, "fin.alibi.slopes", m->n_heads, false);

	/* scoring head */
	head = m->decoder ? "fin.ctr" : "fin.cvr";
	if (cfg->score_transform)
		m->score_w = pgf_bind_matrix(&b, pgf_name(name, "%s.wc", head), d, d, false);
	if (cfg->tied_item_table)
		m->score_table = m->item_emb;
	else
		m->score_table = pgf_bind_matrix(&b, pgf_name(name, "%s.w", head), m->n_rows, d, false);
	if (cfg->item_bias)
		m->bias_item = pgf_bind_vector(&b, pgf_name(name, "%s.bias_prod", head), m->n_rows, false);
	if (cfg->placement_bias)
		m->bias_place = pgf_bind_vector(&b, pgf_name(name, "%s.bias_place", head),
										m->n_placements, false);
	return b.status;
}

/* ---- small helpers -------------------------------------------------------- */

int
pgf_fintrec_rows(const PgfFintrecModel *m)
{
	return m->n_rows;
}

/*
 * Branch-free binary search (the comparison becomes a conditional move):
 * a request looks up every one of its events, and the branches of the
 * textbook search mispredict about half the time.
 */
int
pgf_fintrec_item_row(const PgfFintrecModel *m, int64_t id)
{
	const int64_t *base = m->item_ids;
	int			n = m->n_ids;

	if (n == 0)
		return m->item_unknown;
	/* the last id <= id stays within [base, base + n) */
	while (n > 1)
	{
		int			half = n >> 1;

		base = base[half] <= id ? base + half : base;
		n -= half;
	}
	return *base == id ? m->item_first + (int) (base - m->item_ids) : m->item_unknown;
}

int64_t
pgf_fintrec_row_id(const PgfFintrecModel *m, int row)
{
	if (row < m->item_first || row >= m->item_first + m->n_ids)
		return -1;
	return m->item_ids[row - m->item_first];
}

static bool
uses_time(const PgfFintrecModel *m)
{
	return m->time_encoding || m->time_bias;
}

/* Events kept as model input: the newest max_events. */
static int
kept_events(const PgfFintrecModel *m, const PgfFintrecEvents *ev)
{
	return ev->n < m->max_events ? ev->n : m->max_events;
}

/* Tokens of a request. */
static int
token_count(const PgfFintrecModel *m, int kept)
{
	return m->n_prefix + kept + (m->query_token ? 1 : 0);
}

/* Array index of kept event i (0 = oldest kept). */
static inline int
event_index(const PgfFintrecEvents *ev, int kept, int i)
{
	return ev->newest_first ? kept - 1 - i : ev->n - kept + i;
}

/*
 * Days since 1970-01-01 to (month 1..12, day 1..31), proleptic Gregorian
 * (H. Hinnant's civil_from_days); the same arithmetic as tools/models/fintrec.py.
 */
static void
civil_from_days(int64_t days, int *month, int *day)
{
	int64_t		z = days + 719468;
	int64_t		era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t		doe = z - era * 146097;
	int64_t		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t		mp = (5 * doy + 2) / 153;

	*day = (int) (doy - (153 * mp + 2) / 5 + 1);
	*month = (int) (mp < 10 ? mp + 3 : mp - 9);
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t		q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The 9 time features of TE(t) (UTC), gap = seconds since the previous
 * event (clamped at 0). */
static void
time_features(float *out, int64_t t, double gap)
{
	const double two_pi = 2.0 * M_PI;
	int64_t		days = floor_div(t, 86400);
	double		hour = (double) (t - days * 86400) / 3600.0;
	int64_t		dow = ((days + 3) % 7 + 7) % 7;
	int			month,
				dom;
	double		angles[4];

	civil_from_days(days, &month, &dom);
	angles[0] = two_pi * hour / 24.0;
	angles[1] = two_pi * (double) dow / 7.0;
	angles[2] = two_pi * (double) (dom - 1) / 31.0;
	angles[3] = two_pi * (double) (month - 1) / 12.0;
	for (int i = 0; i < 4; i++)
	{
		out[2 * i] = (float) sin(angles[i]);
		out[2 * i + 1] = (float) cos(angles[i]);
	}
	out[8] = (float) log1p((gap > 0 ? gap : 0.0) / 3600.0);
}

/* x[d] += row r of w. */
static void
add_row(float *x, const PgfMatrix *w, int r, float *tmp, int d)
{
	pgf_matrix_row(tmp, w, r);
	pgf_add(x, tmp, (size_t) d);
}

/* ---- request checks -------------------------------------------------------- */

static int
check_request(const PgfFintrecModel *m, const PgfFintrecEvents *ev, int user,
			  char *err, size_t errlen)
{
	char		who[32] = "";

	if (user >= 0)
		snprintf(who, sizeof(who), "user %d: ", user);
	if (ev->n < 0)
	{
		snprintf(err, errlen, "%s%d events given; the count cannot be negative", who, ev->n);
		return -1;
	}
	if (ev->n > 0 && ev->item_ids == NULL)
	{
		snprintf(err, errlen, "%s%d events given without item ids", who, ev->n);
		return -1;
	}
	if (ev->n > 0 && ev->timestamps == NULL && uses_time(m))
	{
		snprintf(err, errlen, "%sthis model uses event times, but no timestamps were given", who);
		return -1;
	}
	if (ev->placement < 0 ||
		ev->placement >= (m->n_placements > 0 ? m->n_placements : 1))
	{
		snprintf(err, errlen, "%splacement %d is out of range; this model has %d placement%s (0 to %d)",
				 who, ev->placement, m->n_placements > 0 ? m->n_placements : 1,
				 m->n_placements > 1 ? "s" : "",
				 (m->n_placements > 0 ? m->n_placements : 1) - 1);
		return -1;
	}
	if (m->n_event_types && ev->event_types)
		for (int i = 0; i < ev->n; i++)
			if (ev->event_types[i] < 0 || ev->event_types[i] >= m->n_event_types)
			{
				snprintf(err, errlen, "%sevent %d has event type %d; this model knows types 0 to %d",
						 who, i, ev->event_types[i], m->n_event_types - 1);
				return -1;
			}
	if (m->n_channels && ev->channels)
		for (int i = 0; i < ev->n; i++)
			if (ev->channels[i] < 0 || ev->channels[i] >= m->n_channels)
			{
				snprintf(err, errlen, "%sevent %d has channel %d; this model knows channels 0 to %d",
						 who, i, ev->channels[i], m->n_channels - 1);
				return -1;
			}
	if (ev->static_values)
		for (int k = 0; k < m->n_static; k++)
			if (ev->static_values[k] < 0 || ev->static_values[k] >= m->static_vocab[k])
			{
				snprintf(err, errlen, "%sstatic feature %d has value %d; this model knows values 0 to %d",
						 who, k, ev->static_values[k], m->static_vocab[k] - 1);
				return -1;
			}
	if (ev->fm && m->d_fm)
		for (int j = 0; j < m->d_fm; j++)
			if (!isfinite(ev->fm[j]))
			{
				snprintf(err, errlen, "%sthe foundation-model embedding has a non-finite value at %d",
						 who, j);
				return -1;
			}
	return 0;
}

/* ---- arena sizing ------------------------------------------------------------ */

static size_t
floats(size_t n)
{
	return pgf_arena_round(n * sizeof(float));
}

/*
 * Mirrors the allocations of score_users(), user_vectors() and
 * build_tokens(): u lives through the call; the token/stack phase and the
 * scoring phase come one after the other.
 */
size_t
pgf_fintrec_arena_bytes(const PgfFintrecModel *m, int max_events, int batch)
{
	int			kept = max_events < 0 ? 0 : (max_events < m->max_events ? max_events : m->max_events);
	size_t		T = (size_t) token_count(m, kept);
	size_t		B = batch < 1 ? 1 : (size_t) batch;
	size_t		d = (size_t) m->d;
	size_t		rows = (size_t) m->n_rows;
	size_t		chunk = B < FINTREC_SCORE_CHUNK ? B : FINTREC_SCORE_CHUNK;
	size_t		layout,
				build,
				stack,
				readout,
				encode,
				score,
				scratch;

	layout = pgf_arena_round((B + 1) * sizeof(int)) * 2 +	/* offsets, readout */
		pgf_arena_round(B * sizeof(int)) +	/* segment users */
		pgf_arena_round(B * sizeof(PgfAttnMask)) +
		floats(B * T * d) +		/* x */
		pgf_arena_round(B * sizeof(float *)) +
		(m->has_bias ? B * floats(T * T) : 0) +
		floats(B * d);			/* hs */

	scratch = m->time_encoding ? pgf_linear_scratch_bytes(&m->time_w, (int) T) : 0;
	if (m->d_fm && pgf_linear_scratch_bytes(&m->fm_w, 1) > scratch)
		scratch = pgf_linear_scratch_bytes(&m->fm_w, 1);
	build = floats(d) +			/* tmp */
		pgf_arena_round(T * sizeof(int32_t)) * 2 +	/* rows, aux */
		pgf_arena_round(T * sizeof(int64_t)) +	/* times */
		floats(T * d) +			/* gathered */
		floats(T * FINTREC_TIME_FEATURES) + scratch;
	stack = pgf_stack_scratch_bytes(&m->stack, (int) (B * T), (int) T);
	{
		/* the pruned last layer (run_stack) */
		const PgfBlockSpec *spec = &m->stack.spec;
		size_t		kvd = (size_t) spec->n_kv_heads * spec->head_dim;
		size_t		last = pgf_block_scratch_bytes(spec, (int) B, (int) T);
		const PgfBlockWeights *w = &m->stack.layers[m->stack.run[m->stack.n_run > 0 ? m->stack.n_run - 1 : 0]];
		size_t		proj = pgf_linear_scratch_bytes(&w->wk, (int) (B * T));
		size_t		pruned;

		if (pgf_linear_scratch_bytes(&w->wv, (int) (B * T)) > proj)
			proj = pgf_linear_scratch_bytes(&w->wv, (int) (B * T));
		pruned = floats(B * T * d) + 2 * floats(B * T * kvd) +
			pgf_arena_round(B * sizeof(PgfKVCache)) +
			pgf_arena_round(B * sizeof(PgfAttnMask)) +
			pgf_arena_round((B + 1) * sizeof(int)) + (last > proj ? last : proj);
		if (pruned > stack)
			stack = pruned;
	}
	readout = floats(B * d) +	/* h */
		(m->score_w.data ? pgf_linear_scratch_bytes(&m->score_w, (int) B) : 0);
	encode = build > stack ? build : stack;
	encode = layout + (encode > readout ? encode : readout);

	scratch = pgf_linear_scratch_bytes(&m->score_table, (int) chunk);
	if (pgf_arena_round(rows * sizeof(int32_t)) > scratch)
		scratch = pgf_arena_round(rows * sizeof(int32_t));	/* top-k indices */
	score = floats(B * rows) + scratch;

	return floats(B * d) + (encode > score ? encode : score) + PGF_ARENA_ALIGN;
}

/* ---- building one user's tokens --------------------------------------------- */

/*
 * Writes the tokens of request ev into x [len, d] and, with a time bias,
 * its bias matrix [len, len].
 */
static void
build_tokens(const PgfFintrecModel *m, const PgfFintrecEvents *ev, float *x, float *bias,
			 PgfArena *arena)
{
	size_t		mark = pgf_arena_mark(arena);
	int			d = m->d;
	int			kept = kept_events(m, ev);
	int			len = token_count(m, kept);
	int			np = m->n_prefix;
	int			n_timed = kept + (m->query_token ? 1 : 0);
	float	   *tmp = pgf_arena_floats(arena, (size_t) d);
	int32_t    *rows = pgf_arena_alloc(arena, sizeof(int32_t) * (kept + 1));
	int32_t    *aux = pgf_arena_alloc(arena, sizeof(int32_t) * (kept + 1));
	int64_t    *times = pgf_arena_alloc(arena, sizeof(int64_t) * (kept + 1));
	float	   *gathered = pgf_arena_floats(arena, (size_t) (kept + 1) * d);
	float	   *ev_x = x + (size_t) np * d;
	int			row = 0;

	/* prefix: FM token, static tokens */
	if (m->d_fm)
	{
		if (ev->fm)
			pgf_linear(x, ev->fm, 1, &m->fm_w, m->fm_b, arena);
		else
			memcpy(x, m->fm_b, sizeof(float) * d);
		row++;
	}
	for (int k = 0; k < m->n_static; k++, row++)
	{
		float	   *xr = x + (size_t) row * d;

		pgf_matrix_row(xr, &m->static_field, k);
		add_row(xr, &m->static_value[k], ev->static_values ? ev->static_values[k] : 0, tmp, d);
	}

	/* events, oldest first */
	for (int i = 0; i < kept; i++)
		rows[i] = pgf_fintrec_item_row(m, ev->item_ids[event_index(ev, kept, i)]);
	if (kept > 0)
	{
		pgf_embedding_gather(ev_x, &m->item_emb, rows, kept);
		if (m->item_scale != 1.0f)
			pgf_scale(ev_x, m->item_scale, (size_t) kept * d);
		if (m->n_event_types)
		{
			for (int i = 0; i < kept; i++)
				aux[i] = ev->event_types ? ev->event_types[event_index(ev, kept, i)] : 0;
			pgf_embedding_gather(gathered, &m->evt_emb, aux, kept);
			pgf_add(ev_x, gathered, (size_t) kept * d);
		}
		if (m->n_channels)
		{
			for (int i = 0; i < kept; i++)
				aux[i] = ev->channels ? ev->channels[event_index(ev, kept, i)] : 0;
			pgf_embedding_gather(gathered, &m->chan_emb, aux, kept);
			pgf_add(ev_x, gathered, (size_t) kept * d);
		}
	}

	/* query token */
	if (m->query_token)
	{
		float	   *q = ev_x + (size_t) kept * d;

		memcpy(q, m->query_emb, sizeof(float) * d);
		add_row(q, &m->place_emb, ev->placement, tmp, d);
	}

	/* positions of events and query: 0 .. n_timed - 1 */
	if (m->learned_positions && n_timed > 0)
	{
		for (int i = 0; i < n_timed; i++)
			aux[i] = i;
		pgf_embedding_gather(gathered, &m->pos_emb, aux, n_timed);
		pgf_add(ev_x, gathered, (size_t) n_timed * d);
	}

	/* event times, then the query's (now) */
	if (uses_time(m))
	{
		for (int i = 0; i < kept; i++)
			times[i] = ev->timestamps[event_index(ev, kept, i)];
		times[kept] = ev->now;
	}

	/* TE(t) of events and query (their rows are contiguous) */
	if (m->time_encoding && n_timed > 0)
	{
		float	   *tf = pgf_arena_floats(arena, (size_t) n_timed * FINTREC_TIME_FEATURES);

		for (int i = 0; i < n_timed; i++)
			time_features(tf + (size_t) i * FINTREC_TIME_FEATURES, times[i],
						  i == 0 ? 0.0 : (double) times[i] - (double) times[i - 1]);
		pgf_linear_acc(ev_x, tf, n_timed, &m->time_w, NULL, arena);
	}

	/*
	 * attention bias: -D_ij between timed tokens (events and query, at
	 * positions 0 .. n_timed - 1), 0 with a prefix token; the kernel scales
	 * it by each head's slope
	 */
	if (m->has_bias)
	{
		memset(bias, 0, sizeof(float) * (size_t) len * len);
		for (int i = 0; i < n_timed; i++)
		{
			float	   *bi = bias + (size_t) (np + i) * len + np;

			for (int j = 0; j <= i; j++)
			{
				double		dist = m->index_bias * (double) (i - j);
				float		v;

				if (m->time_bias)
					dist += fabs((double) times[i] - (double) times[j]) / m->time_bias_tau;
				v = (float) -dist;

				bi[j] = v;
				bias[(size_t) (np + j) * len + np + i] = v;
			}
		}
	}
	pgf_arena_reset(arena, mark);
}

/* ---- the shared forward ----------------------------------------------------- */

/*
 * Runs the stack over packed segments and writes the final state of each
 * segment's last token to hs [n_seg, d].  Only that token's output is
 * read, so with pre-norm blocks the last layer is pruned: it computes the
 * keys and values of every token (norm and two projections), then the
 * whole block for the last token alone, attending over those keys as a
 * KV cache.  Releases everything it allocates.
 */
static void
run_stack(const PgfFintrecModel *m, float *x, int n_seg, const int *offsets,
		  const PgfAttnMask *masks, float *hs, PgfArena *arena)
{
	const PgfStack *st = &m->stack;
	const PgfBlockSpec *spec = &st->spec;
	int			d = spec->d_model;
	int			kvd = spec->n_kv_heads * spec->head_dim;
	int			total = offsets[n_seg];
	size_t		mark = pgf_arena_mark(arena);
	bool		prune = st->n_run > 0 && spec->placement == PGF_PRE_NORM &&
		spec->rope_theta == 0;
	int			full = prune ? st->n_run - 1 : st->n_run;

	for (int i = 0; i < full; i++)
	{
		pgf_check_interrupts();
		pgf_block_forward(spec, &st->layers[st->run[i]], x, n_seg, offsets, masks, NULL,
						  arena);
	}
	for (int s = 0; s < n_seg; s++)
		memcpy(hs + (size_t) s * d, x + (size_t) (offsets[s + 1] - 1) * d, sizeof(float) * d);
	if (prune)
	{
		const PgfBlockWeights *w = &st->layers[st->run[full]];
		float	   *y = pgf_arena_floats(arena, (size_t) total * d);
		float	   *k = pgf_arena_floats(arena, (size_t) total * kvd);
		float	   *v = pgf_arena_floats(arena, (size_t) total * kvd);
		PgfKVCache *caches = pgf_arena_alloc(arena, sizeof(PgfKVCache) * n_seg);
		PgfAttnMask *last = pgf_arena_alloc(arena, sizeof(PgfAttnMask) * n_seg);
		int		   *one_each = pgf_arena_alloc(arena, sizeof(int) * (n_seg + 1));

		pgf_check_interrupts();
		if (spec->norm == PGF_NORM_RMS)
			pgf_rmsnorm(y, x, total, d, w->ln1_gamma, spec->norm_eps);
		else
			pgf_layernorm(y, x, total, d, w->ln1_gamma, w->ln1_beta, spec->norm_eps);
		pgf_linear(k, y, total, &w->wk, w->bk, arena);
		pgf_linear(v, y, total, &w->wv, w->bv, arena);
		for (int s = 0; s <= n_seg; s++)
			one_each[s] = s;
		for (int s = 0; s < n_seg; s++)
		{
			int			len = offsets[s + 1] - offsets[s];

			caches[s].k = k + (size_t) offsets[s] * kvd;
			caches[s].v = v + (size_t) offsets[s] * kvd;
			caches[s].capacity = len;
			caches[s].len = len - 1;
			last[s] = masks[s];
			last[s].q_pos0 = len - 1;
			if (masks[s].bias)
				last[s].bias = masks[s].bias + (size_t) (len - 1) * len;
		}
		pgf_block_forward(spec, w, hs, n_seg, one_each, last, caches, arena);
	}
	pgf_stack_final_norm(st, hs, n_seg);
	pgf_arena_reset(arena, mark);
}

/*
 * Runs B checked requests through the stack and writes each user's query
 * vector u = W_c h_u (h_u without W_c; zeros for an empty SASRec-style
 * request) to u [B, d].  Unknown counts (over all events given) go to
 * n_unknown[b] when not NULL.  Everything else it allocates is released.
 */
static void
user_vectors(const PgfFintrecModel *m, const PgfFintrecEvents *users, int B, float *u,
			 int *n_unknown, PgfArena *arena)
{
	size_t		mark = pgf_arena_mark(arena);
	int			d = m->d;
	int			total = 0,
				n_seg = 0;
	int		   *offsets = pgf_arena_alloc(arena, sizeof(int) * (B + 1));
	int		   *readout = pgf_arena_alloc(arena, sizeof(int) * (B + 1));
	int		   *seg_user = pgf_arena_alloc(arena, sizeof(int) * B);
	PgfAttnMask *masks = pgf_arena_alloc(arena, sizeof(PgfAttnMask) * B);
	float	   *x,
			   *hs,
			   *h;
	float	  **bias_of;

	/* layout: segment s (users with at least one token) owns rows offsets[s].. */
	offsets[0] = 0;
	for (int b = 0; b < B; b++)
	{
		int			len = token_count(m, kept_events(m, &users[b]));

		readout[b] = len > 0 ? total + len - 1 : -1;
		if (len > 0)
		{
			seg_user[n_seg++] = b;
			total += len;
			offsets[n_seg] = total;
		}
		if (n_unknown)
		{
			int			unknown = 0;

			for (int i = 0; i < users[b].n; i++)
				if (pgf_fintrec_item_row(m, users[b].item_ids[i]) == m->item_unknown)
					unknown++;
			n_unknown[b] = unknown;
		}
	}
	x = pgf_arena_floats(arena, (size_t) (total > 0 ? total : 1) * d);
	bias_of = pgf_arena_alloc(arena, sizeof(float *) * (n_seg > 0 ? n_seg : 1));
	for (int s = 0; s < n_seg; s++)
	{
		int			len = offsets[s + 1] - offsets[s];

		bias_of[s] = m->has_bias ? pgf_arena_floats(arena, (size_t) len * len) : NULL;
	}
	for (int s = 0; s < n_seg; s++)
	{
		pgf_check_interrupts();
		build_tokens(m, &users[seg_user[s]], x + (size_t) offsets[s] * d, bias_of[s], arena);
		memset(&masks[s], 0, sizeof(PgfAttnMask));
		masks[s].kind = m->decoder ? PGF_MASK_PREFIX : PGF_MASK_BIDIRECTIONAL;
		masks[s].prefix_len = m->decoder ? m->n_prefix : 0;
		masks[s].bias = bias_of[s];
		masks[s].slopes = m->has_bias ? m->slopes : NULL;
	}

	/* the stack: hs [n_seg, d] gets each segment's read-out state */
	hs = pgf_arena_floats(arena, (size_t) (n_seg > 0 ? n_seg : 1) * d);
	if (n_seg > 0)
		run_stack(m, x, n_seg, offsets, masks, hs, arena);

	/* h_u per user (zeros for an empty SASRec-style request) */
	h = pgf_arena_floats(arena, (size_t) B * d);
	for (int b = 0, s = 0; b < B; b++)
	{
		if (readout[b] >= 0)
			memcpy(h + (size_t) b * d, hs + (size_t) s++ * d, sizeof(float) * d);
		else
			memset(h + (size_t) b * d, 0, sizeof(float) * d);
	}
	if (m->score_w.data)
		pgf_linear(u, h, B, &m->score_w, NULL, arena);
	else
		memcpy(u, h, sizeof(float) * (size_t) B * d);
	pgf_arena_reset(arena, mark);
}

/*
 * Runs B checked requests and returns their raw logits [B, n_rows] (item
 * bias included, placement bias not), allocated in the arena: one GEMM per
 * chunk of FINTREC_SCORE_CHUNK users over the item table.
 */
static float *
score_users(const PgfFintrecModel *m, const PgfFintrecEvents *users, int B, int *n_unknown,
			PgfArena *arena)
{
	int			d = m->d;
	float	   *u = pgf_arena_floats(arena, (size_t) B * d);
	float	   *logits;

	user_vectors(m, users, B, u, n_unknown, arena);
	logits = pgf_arena_floats(arena, (size_t) B * m->n_rows);
	for (int b0 = 0; b0 < B; b0 += FINTREC_SCORE_CHUNK)
	{
		int			nb = B - b0 < FINTREC_SCORE_CHUNK ? B - b0 : FINTREC_SCORE_CHUNK;
		size_t		mark = pgf_arena_mark(arena);

		pgf_check_interrupts();
		pgf_linear(logits + (size_t) b0 * m->n_rows, u + (size_t) b0 * d, nb,
				   &m->score_table, m->bias_item, arena);
		pgf_arena_reset(arena, mark);
	}
	return logits;
}

/* Top k of one user's logits row (destroys it: excluded rows become NaN). */
static int
select_top(const PgfFintrecModel *m, const PgfFintrecEvents *ev, float *row, int k,
		   bool exclude_seen, int64_t *out_ids, float *out_scores, int32_t *idx)
{
	float		shift = m->bias_place ? m->bias_place[ev->placement] : 0.0f;
	int			got;

	row[m->item_pad] = NAN;
	row[m->item_unknown] = NAN;
	if (exclude_seen)
		for (int i = 0; i < ev->n; i++)
			row[pgf_fintrec_item_row(m, ev->item_ids[i])] = NAN;
	if (k > m->n_rows)
		k = m->n_rows;
	if (k <= 0)
		return 0;
	got = pgf_topk(row, m->n_rows, k, NULL, idx, out_scores);
	for (int i = 0; i < got; i++)
	{
		out_ids[i] = pgf_fintrec_row_id(m, idx[i]);
		out_scores[i] += shift;
	}
	return got;
}

/* ---- entry points ----------------------------------------------------------- */

int
pgf_fintrec_recommend_batch(const PgfFintrecModel *m, const PgfFintrecEvents *users, int n_users,
						int k, bool exclude_seen, int64_t *out_ids, float *out_scores,
						int *out_counts, int *n_unknown, PgfArena *arena,
						char *err, size_t errlen)
{
	size_t		mark;
	float	   *logits;
	int32_t    *idx;

	if (n_users < 0 || k < 0)
	{
		snprintf(err, errlen, "%s cannot be negative (%d given)",
				 n_users < 0 ? "the number of users" : "k", n_users < 0 ? n_users : k);
		return -1;
	}
	for (int b = 0; b < n_users; b++)
		if (check_request(m, &users[b], n_users > 1 ? b : -1, err, errlen) != 0)
			return -1;
	if (n_users == 0)
		return 0;
	mark = pgf_arena_mark(arena);
	logits = score_users(m, users, n_users, n_unknown, arena);
	idx = pgf_arena_alloc(arena, sizeof(int32_t) * m->n_rows);
	for (int b = 0; b < n_users; b++)
	{
		if (b % 64 == 63)
			pgf_check_interrupts();
		out_counts[b] = select_top(m, &users[b], logits + (size_t) b * m->n_rows, k,
								   exclude_seen, out_ids + (size_t) b * k,
								   out_scores + (size_t) b * k, idx);
	}
	pgf_arena_reset(arena, mark);
	return 0;
}

int
pgf_fintrec_recommend(const PgfFintrecModel *m, const PgfFintrecEvents *ev, int k,
				  bool exclude_seen, int64_t *out_ids, float *out_scores,
				  int *n_unknown, PgfArena *arena, char *err, size_t errlen)
{
	int			count = 0;

	if (pgf_fintrec_recommend_batch(m, ev, 1, k, exclude_seen, out_ids, out_scores, &count,
								n_unknown, arena, err, errlen) != 0)
		return -1;
	return count;
}

int
pgf_fintrec_logits(const PgfFintrecModel *m, const PgfFintrecEvents *ev, float *out_logits,
			   int *n_unknown, PgfArena *arena, char *err, size_t errlen)
{
	size_t		mark;
	float	   *logits;
	float		shift;

	if (check_request(m, ev, -1, err, errlen) != 0)
		return -1;
	mark = pgf_arena_mark(arena);
	logits = score_users(m, ev, 1, n_unknown, arena);
	shift = m->bias_place ? m->bias_place[ev->placement] : 0.0f;
	for (int i = 0; i < m->n_rows; i++)
		out_logits[i] = logits[i] + shift;
	pgf_arena_reset(arena, mark);
	return 0;
}

int
pgf_fintrec_user_vector(const PgfFintrecModel *m, const PgfFintrecEvents *ev, float *out,
					int *n_unknown, PgfArena *arena, char *err, size_t errlen)
{
	size_t		mark;

	if (check_request(m, ev, -1, err, errlen) != 0)
		return -1;
	mark = pgf_arena_mark(arena);
	user_vectors(m, ev, 1, out, n_unknown, arena);
	pgf_arena_reset(arena, mark);
	return 0;
}
