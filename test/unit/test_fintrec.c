/*
 * test_fintrec.c: the C FinTRec model against the PyTorch reference
 * (tools/models/fintrec.py through test/gen/golden_fintrec.py, which `make unit`
 * runs into test/unit/golden/fintrec/).
 *
 * Per model (random-weight decoder, encoder and SASRec, and the committed
 * demo models): logits of 100 requests within 1e-4 of the float64
 * reference, identical top-10 (a swap is accepted only between items whose
 * reference scores are within the tolerance), unknown-id counts, the
 * batched entry point against single calls, k clamping, cold start and
 * arena sizing.  Then invalid requests, invalid files, and a rough timing
 * (printed, never asserted).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/arch.h"
#include "models/fintrec.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define GOLDEN_DIR "test/unit/golden/fintrec"
#define TOL 1e-4
#define TOP 10
#define MAX_MODELS 8
#define CHECKS_PER_MODEL 10
#define GENERAL_CHECKS 14

typedef GoldenFile Loaded;

typedef struct Cases
{
	Loaded		f;
	int			n;
	int			R;
	int			S;
	int			F;
	int			max_events;
	const int64_t *offsets;
	const int64_t *items;
	const int64_t *times;
	const int32_t *types;
	const int32_t *chans;
	const int32_t *flags;
	const int32_t *placement;
	const int64_t *now;
	const int32_t *stat;
	const float *fm;
	const float *logits;
	const int64_t *top_ids;
	const float *top_scores;
	const int32_t *top_count;
	const int32_t *unknown;
	const int32_t *eligible;
} Cases;

static void
load(const char *path, Loaded *out)
{
	golden_load(out, path, false, "test/gen/golden_fintrec.py");
}

/* The data of tensor name, which must hold numel values (numel < 0: any). */
static const void *
need(const Loaded *l, const char *name, long numel)
{
	return golden_named(l, -1, numel, name)->data;
}

static void
load_cases(const char *path, Cases *c)
{
	const PgfTensor *t;

	load(path, &c->f);
	t = pgf_find(&c->f.file, "ref.logits");
	if (!t || t->ndim != 2)
		tap_bail("%s: no ref.logits", path);
	c->n = (int) t->shape[0];
	c->R = (int) t->shape[1];
	c->logits = t->data;
	c->offsets = need(&c->f, "ev.offsets", c->n + 1);
	c->items = need(&c->f, "ev.items", c->offsets[c->n]);
	c->times = need(&c->f, "ev.times", c->offsets[c->n]);
	c->types = need(&c->f, "ev.types", c->offsets[c->n]);
	c->chans = need(&c->f, "ev.chans", c->offsets[c->n]);
	c->flags = need(&c->f, "case.flags", c->n * 5);
	c->placement = need(&c->f, "case.placement", c->n);
	c->now = need(&c->f, "case.now", c->n);
	t = pgf_find(&c->f.file, "case.static");
	c->S = t ? (int) t->shape[1] : 0;
	c->stat = need(&c->f, "case.static", -1);
	t = pgf_find(&c->f.file, "case.fm");
	c->F = t ? (int) t->shape[1] : 0;
	c->fm = need(&c->f, "case.fm", -1);
	c->top_ids = need(&c->f, "ref.top_ids", c->n * TOP);
	c->top_scores = need(&c->f, "ref.top_scores", c->n * TOP);
	c->top_count = need(&c->f, "ref.top_count", c->n);
	c->unknown = need(&c->f, "ref.unknown", c->n);
	c->eligible = need(&c->f, "ref.eligible", c->n);
	c->max_events = 0;
	for (int i = 0; i < c->n; i++)
		if (c->offsets[i + 1] - c->offsets[i] > c->max_events)
			c->max_events = (int) (c->offsets[i + 1] - c->offsets[i]);
}

static PgfFintrecEvents
case_events(const Cases *c, int i)
{
	PgfFintrecEvents ev;
	int64_t		o = c->offsets[i];
	const int32_t *fl = c->flags + (size_t) i * 5;

	memset(&ev, 0, sizeof(ev));
	ev.n = (int) (c->offsets[i + 1] - o);
	ev.item_ids = c->items + o;
	ev.timestamps = c->times + o;
	ev.event_types = fl[0] ? c->types + o : NULL;
	ev.channels = fl[1] ? c->chans + o : NULL;
	ev.static_values = fl[2] ? c->stat + (size_t) i * c->S : NULL;
	ev.fm = fl[3] ? c->fm + (size_t) i * c->F : NULL;
	ev.newest_first = fl[4] != 0;
	ev.placement = c->placement[i];
	ev.now = c->now[i];
	return ev;
}

/*
 * got[0..n) against the reference top list of case i: the same length,
 * and at each position either the same id or an item whose reference
 * score is within TOL of the reference's (a near-tie).
 */
static bool
same_top(const PgfFintrecModel *m, const Cases *c, int i, const int64_t *got, int n,
		 bool *exact)
{
	const int64_t *ref = c->top_ids + (size_t) i * TOP;
	const float *ref_s = c->top_scores + (size_t) i * TOP;
	const float *logits = c->logits + (size_t) i * c->R;

	*exact = (n == c->top_count[i]);
	if (n != c->top_count[i])
		return false;
	for (int j = 0; j < n; j++)
	{
		int			row = pgf_fintrec_item_row(m, got[j]);

		if (got[j] == ref[j])
			continue;
		*exact = false;
		if (row < m->item_first || fabs((double) logits[row] - ref_s[j]) > TOL)
			return false;
	}
	return true;
}

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
check_model(const char *name, PgfFintrecModel *m, Cases *c)
{
	char		err[512];
	size_t		bytes = pgf_fintrec_arena_bytes(m, c->max_events, c->n);
	void	   *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
	PgfArena	arena;
	float	   *logits = malloc(sizeof(float) * c->R);
	int			kbig = c->R + 5;
	int64_t    *ids = malloc(sizeof(int64_t) * kbig);
	float	   *scores = malloc(sizeof(float) * kbig);
	int64_t    *single_ids = calloc((size_t) c->n * TOP, sizeof(int64_t));
	float	   *single_scores = calloc((size_t) c->n * TOP, sizeof(float));
	int		   *single_n = calloc(c->n, sizeof(int));
	int64_t    *batch_ids = calloc((size_t) c->n * TOP, sizeof(int64_t));
	float	   *batch_scores = calloc((size_t) c->n * TOP, sizeof(float));
	int		   *batch_n = calloc(c->n, sizeof(int));
	int		   *batch_unknown = calloc(c->n, sizeof(int));
	double		worst = 0,
				worst_top = 0,
				worst_batch = 0;
	int			logit_fail = 0,
				unknown_fail = 0,
				top_fail = 0,
				top_exact = 0,
				clamp_fail = 0,
				cold_fail = 0,
				cold_cases = 0,
				batch_fail = 0;

	pgf_arena_init(&arena, mem, (bytes + 63) / 64 * 64);
	for (int i = 0; i < c->n; i++)
	{
		PgfFintrecEvents ev = case_events(c, i);
		int			unknown = -1,
					got;
		bool		exact;
		double		diff;

		/* logits over every row */
		if (pgf_fintrec_logits(m, &ev, logits, &unknown, &arena, err, sizeof(err)) != 0)
		{
			tap_diag("%s case %d: %s", name, i, err);
			logit_fail++;
			continue;
		}
		diff = tap_max_abs_diff(logits, c->logits + (size_t) i * c->R, c->R);
		if (diff > worst)
			worst = diff;
		if (diff > TOL)
			logit_fail++;
		if (unknown != c->unknown[i])
			unknown_fail++;

		/* top 10, seen items excluded */
		got = pgf_fintrec_recommend(m, &ev, TOP, true, ids, scores, NULL, &arena, err, sizeof(err));
		if (got < 0 || !same_top(m, c, i, ids, got, &exact))
		{
			if (top_fail++ < 3)
				tap_diag("%s case %d: top-%d differs (%d results, %s)", name, i, TOP, got,
						 got < 0 ? err : "ids");
		}
		else
		{
			top_exact += exact;
			diff = tap_max_abs_diff(scores, c->top_scores + (size_t) i * TOP, got);
			if (diff > worst_top)
				worst_top = diff;
			if (diff > TOL)
				top_fail++;
		}
		if (got > 0)
		{
			single_n[i] = got;
			memcpy(single_ids + (size_t) i * TOP, ids, sizeof(int64_t) * got);
			memcpy(single_scores + (size_t) i * TOP, scores, sizeof(float) * got);
		}

		/* cold start answers */
		if (ev.n == 0)
		{
			cold_cases++;
			if (got != (c->eligible[i] < TOP ? c->eligible[i] : TOP))
				cold_fail++;
		}

		/* k beyond the catalogue is clamped to what may be returned */
		got = pgf_fintrec_recommend(m, &ev, kbig, true, ids, scores, NULL, &arena, err, sizeof(err));
		if (got != c->eligible[i])
			clamp_fail++;
		else
			for (int j = 1; j < got; j++)
				if (!(scores[j] <= scores[j - 1]) || ids[j] < 0)
				{
					clamp_fail++;
					break;
				}
	}
	tap_ok(logit_fail == 0, "%s: logits of %d requests within %.0e of PyTorch (max abs diff %.3g)",
		   name, c->n, TOL, worst);
	tap_ok(unknown_fail == 0, "%s: unknown-id counts match (%d wrong)", name, unknown_fail);
	tap_ok(top_fail == 0, "%s: top-%d lists match (%d of %d identical, the rest near-ties; score diff %.3g)",
		   name, TOP, top_exact, c->n, worst_top);
	tap_ok(cold_cases > 0 && cold_fail == 0, "%s: %d cold-start requests answered", name,
		   cold_cases);
	tap_ok(clamp_fail == 0, "%s: k = %d is clamped to the eligible items, sorted", name, kbig);

	/* all requests in one batched call */
	{
		PgfFintrecEvents *evs = malloc(sizeof(PgfFintrecEvents) * c->n);

		for (int i = 0; i < c->n; i++)
			evs[i] = case_events(c, i);
		if (pgf_fintrec_recommend_batch(m, evs, c->n, TOP, true, batch_ids, batch_scores, batch_n,
									batch_unknown, &arena, err, sizeof(err)) != 0)
		{
			tap_diag("%s batch: %s", name, err);
			batch_fail = c->n;
		}
		else
			for (int i = 0; i < c->n; i++)
			{
				bool		exact;
				double		diff;

				if (batch_unknown[i] != c->unknown[i] ||
					!same_top(m, c, i, batch_ids + (size_t) i * TOP, batch_n[i], &exact))
				{
					batch_fail++;
					continue;
				}
				diff = tap_max_abs_diff(batch_scores + (size_t) i * TOP,
										single_scores + (size_t) i * TOP, batch_n[i]);
				if (diff > worst_batch)
					worst_batch = diff;
				if (diff > TOL)
					batch_fail++;
			}
		free(evs);
	}
	tap_ok(batch_fail == 0, "%s: one batched call of %d users agrees with single calls (%d differ, score diff %.3g)",
		   name, c->n, batch_fail, worst_batch);
	tap_ok(arena.high_water <= arena.size,
		   "%s: arena of %zu bytes (high water %zu) holds a batch of %d users of up to %d events",
		   name, arena.size, arena.high_water, c->n, c->max_events);

	/* without exclusion: the reference's best real items */
	{
		int			fail = 0;
		int32_t    *idx = malloc(sizeof(int32_t) * c->R);
		float	   *ref_s = malloc(sizeof(float) * c->R);

		for (int i = 0; i < c->n; i += 7)
		{
			PgfFintrecEvents ev = case_events(c, i);
			float	   *row = malloc(sizeof(float) * c->R);
			int			got,
						want;

			memcpy(row, c->logits + (size_t) i * c->R, sizeof(float) * c->R);
			for (int r = 0; r < m->item_first; r++)
				row[r] = NAN;
			want = pgf_topk(row, c->R, TOP, NULL, idx, ref_s);
			got = pgf_fintrec_recommend(m, &ev, TOP, false, ids, scores, NULL, &arena, err,
									sizeof(err));
			if (got != want)
				fail++;
			else
				for (int j = 0; j < got; j++)
					if (ids[j] != pgf_fintrec_row_id(m, idx[j]) &&
						fabs((double) row[pgf_fintrec_item_row(m, ids[j])] - ref_s[j]) > TOL)
						fail++;
			free(row);
		}
		free(idx);
		free(ref_s);
		tap_ok(fail == 0, "%s: with exclude_seen off, seen items are ranked too", name);
	}

	/* the user vector reproduces the logits: u . T[a] + beta_a + beta_place */
	{
		float	   *u = malloc(sizeof(float) * m->d);
		float	   *t = malloc(sizeof(float) * m->d);
		double		vworst = 0;
		int			vfail = 0;

		for (int i = 0; i < c->n; i += 9)
		{
			PgfFintrecEvents ev = case_events(c, i);

			if (pgf_fintrec_user_vector(m, &ev, u, NULL, &arena, err, sizeof(err)) != 0)
			{
				vfail++;
				continue;
			}
			for (int r = m->item_first; r < c->R; r += 13)
			{
				double		dot = 0;

				pgf_matrix_row(t, &m->score_table, r);
				for (int j = 0; j < m->d; j++)
					dot += (double) u[j] * t[j];
				dot += (m->bias_item ? m->bias_item[r] : 0) +
					(m->bias_place ? m->bias_place[ev.placement] : 0);
				if (fabs(dot - c->logits[(size_t) i * c->R + r]) > vworst)
					vworst = fabs(dot - c->logits[(size_t) i * c->R + r]);
			}
		}
		tap_ok(vfail == 0 && vworst <= TOL,
			   "%s: the user vector scores items like the logits (max abs diff %.3g)", name, vworst);
		free(u);
		free(t);
	}

	/* cold start and unknown ids on the largest request of unknown ids */
	{
		PgfFintrecEvents ev;
		int64_t		unknown_ids[3] = {INT64_MIN, -7, INT64_MAX};
		int64_t		ts[3] = {1500000000, 1500003600, 1500007200};
		int			n_unknown = -1,
					got;

		memset(&ev, 0, sizeof(ev));
		ev.n = 3;
		ev.item_ids = unknown_ids;
		ev.timestamps = ts;
		ev.now = 1500010000;
		/* ids the random models cannot hold (they are drawn from [-1000, 1e9)) */
		got = pgf_fintrec_recommend(m, &ev, TOP, true, ids, scores, &n_unknown, &arena, err,
								sizeof(err));
		(void) got;
		tap_ok(got == (m->n_ids < TOP ? m->n_ids : TOP) && n_unknown == 3 -
			   (pgf_fintrec_item_row(m, -7) != m->item_unknown),
			   "%s: unknown ids are counted (%d) and still get %d answers", name, n_unknown, got);
	}

	free(mem);
	free(logits);
	free(ids);
	free(scores);
	free(single_ids);
	free(single_scores);
	free(single_n);
	free(batch_ids);
	free(batch_scores);
	free(batch_n);
	free(batch_unknown);
}

/* Requests and files a user can get wrong. */
static void
check_errors(PgfFintrecModel *m, Loaded *file)
{
	char		err[512];
	size_t		bytes = pgf_fintrec_arena_bytes(m, 4, 2);
	void	   *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
	PgfArena	arena;
	int64_t		items[3] = {m->item_ids[0], m->item_ids[1], m->item_ids[2]};
	int64_t		ts[3] = {1500000000, 1500003600, 1500007200};
	int32_t		types[3] = {0, 1, 2};
	int32_t		static_ok[FINTREC_MAX_STATIC] = {0};
	int64_t		ids[TOP];
	float		scores[TOP];
	PgfFintrecEvents ev,
				bad;
	Pgformer__FinTRecConfig *cfg = file->file.header->fintrec;
	PgfFintrecModel *scratch = calloc(1, sizeof(PgfFintrecModel));
	float		tau;
	int			got;

	pgf_arena_init(&arena, mem, (bytes + 63) / 64 * 64);
	memset(&ev, 0, sizeof(ev));
	ev.n = 3;
	ev.item_ids = items;
	ev.timestamps = ts;
	ev.event_types = types;
	ev.static_values = static_ok;
	ev.now = 1500010000;

	got = pgf_fintrec_recommend(m, &ev, TOP, true, ids, scores, NULL, &arena, err, sizeof(err));
	tap_ok(got == TOP, "a valid request gets %d items (%d)", TOP, got);
	got = pgf_fintrec_recommend(m, &ev, 0, true, ids, scores, NULL, &arena, err, sizeof(err));
	tap_ok(got == 0, "k = 0 returns nothing");

#define EXPECT_ERROR(what, mutate) \
	do { \
		bad = ev; \
		mutate; \
		err[0] = '\0'; \
		got = pgf_fintrec_recommend(m, &bad, TOP, true, ids, scores, NULL, &arena, err, sizeof(err)); \
		tap_ok(got == -1 && err[0] != '\0', "%s is rejected: %s", what, err); \
	} while (0)

	EXPECT_ERROR("a placement out of range", bad.placement = m->n_placements);
	types[1] = m->n_event_types;
	EXPECT_ERROR("an event type out of range", (void) 0);
	types[1] = 1;
	static_ok[1] = m->static_vocab[1];
	EXPECT_ERROR("a static value out of range", (void) 0);
	static_ok[1] = 0;
	EXPECT_ERROR("missing timestamps", bad.timestamps = NULL);
	EXPECT_ERROR("a negative event count", bad.n = -1);
	EXPECT_ERROR("events without ids", bad.item_ids = NULL);
	bad = ev;
	got = pgf_fintrec_recommend(m, &bad, -1, true, ids, scores, NULL, &arena, err, sizeof(err));
	tap_ok(got == -1 && err[0] != '\0', "a negative k is rejected: %s", err);

	/* files whose config disagrees with their tensors */
	cfg->n_items += 1;
	tap_ok(pgf_model_bind(&file->file, scratch, err, sizeof(err)) == PGF_ERR_CONFIG,
		   "a wrong n_items is rejected: %s", err);
	cfg->n_items -= 1;
	cfg->item_first += 1;
	tap_ok(pgf_model_bind(&file->file, scratch, err, sizeof(err)) == PGF_ERR_CONFIG,
		   "an item table that does not start at item_first is rejected: %s", err);
	cfg->item_first -= 1;
	cfg->n_event_types += 1;
	tap_ok(pgf_model_bind(&file->file, scratch, err, sizeof(err)) == PGF_ERR_CONFIG,
		   "a wrong event-type count is rejected: %s", err);
	cfg->n_event_types -= 1;
	tau = cfg->time_bias_tau;
	cfg->time_bias_tau = 0;
	tap_ok(pgf_model_bind(&file->file, scratch, err, sizeof(err)) == PGF_ERR_CONFIG,
		   "a time bias without tau is rejected: %s", err);
	cfg->time_bias_tau = tau;
	tap_ok(pgf_model_bind(&file->file, scratch, err, sizeof(err)) == PGF_OK,
		   "the restored header binds again");
	free(scratch);
	free(mem);
}

/* A rough per-user CPU time on a model (printed only, never asserted). */
static void
timing(const char *name, const PgfFintrecModel *m)
{
	int			n = m->max_events,
				B = 64,
				reps = 20;
	size_t		bytes = pgf_fintrec_arena_bytes(m, n, B);
	void	   *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
	PgfArena	arena;
	int64_t    *items = malloc(sizeof(int64_t) * n);
	int64_t    *ts = malloc(sizeof(int64_t) * n);
	PgfFintrecEvents *evs = malloc(sizeof(PgfFintrecEvents) * B);
	int64_t    *ids = malloc(sizeof(int64_t) * B * TOP);
	float	   *scores = malloc(sizeof(float) * B * TOP);
	int		   *counts = malloc(sizeof(int) * B);
	char		err[256];
	double		t0,
				single,
				batch;

	/* one BLAS thread: the calling thread's CPU time is then all the work */
	pgf_set_threads(1);
	pgf_arena_init(&arena, mem, (bytes + 63) / 64 * 64);
	for (int i = 0; i < n; i++)
	{
		items[i] = m->item_ids[(i * 7919) % m->n_ids];
		ts[i] = 1400000000 + (int64_t) i * 5000;
	}
	for (int b = 0; b < B; b++)
	{
		memset(&evs[b], 0, sizeof(PgfFintrecEvents));
		evs[b].n = n;
		evs[b].item_ids = items;
		evs[b].timestamps = ts;
		evs[b].now = ts[n - 1] + 600;
	}
	pgf_fintrec_recommend(m, &evs[0], TOP, true, ids, scores, NULL, &arena, err, sizeof(err));
	t0 = seconds();
	for (int r = 0; r < reps; r++)
		pgf_fintrec_recommend(m, &evs[0], TOP, true, ids, scores, NULL, &arena, err, sizeof(err));
	single = (seconds() - t0) / reps;
	pgf_fintrec_recommend_batch(m, evs, B, TOP, true, ids, scores, counts, NULL, &arena, err,
							sizeof(err));
	t0 = seconds();
	for (int r = 0; r < 3; r++)
		pgf_fintrec_recommend_batch(m, evs, B, TOP, true, ids, scores, counts, NULL, &arena, err,
								sizeof(err));
	batch = (seconds() - t0) / (3 * B);
	tap_diag("%s: %d events, %d items: %.0f us CPU per single call, %.0f us per user in a batch of %d (BLAS threads %d)",
			 name, n, m->n_ids, single * 1e6, batch * 1e6, B, pgf_get_threads());
	free(mem);
	free(items);
	free(ts);
	free(evs);
	free(ids);
	free(scores);
	free(counts);
}

int
main(void)
{
	char		names[MAX_MODELS][128];
	int			n_models = 0;
	char		path[2048],
				err[512];
	FILE	   *list = fopen(GOLDEN_DIR "/models.txt", "r");
	Loaded		files[MAX_MODELS];
	PgfFintrecModel *models[MAX_MODELS];

	if (!list)
		tap_bail("%s/models.txt is missing: run `make unit` (it runs test/gen/golden_fintrec.py)",
			 GOLDEN_DIR);
	while (n_models < MAX_MODELS && fscanf(list, "%127s", names[n_models]) == 1)
		n_models++;
	fclose(list);

	for (int i = 0; i < n_models; i++)
	{
		Cases		cases;
		PgfStatus	st;

		snprintf(path, sizeof(path), "%s/%s.pgf", GOLDEN_DIR, names[i]);
		load(path, &files[i]);
		models[i] = calloc(1, sizeof(PgfFintrecModel));
		st = pgf_model_bind(&files[i].file, models[i], err, sizeof(err));
		tap_ok(st == PGF_OK, "%s binds%s%s", names[i], st == PGF_OK ? "" : ": ",
			   st == PGF_OK ? "" : err);
		if (st != PGF_OK)
		{
			for (int j = 0; j < CHECKS_PER_MODEL; j++)
				tap_ok(0, "%s: skipped, the model does not bind", names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.cases.pgf", GOLDEN_DIR, names[i]);
		load_cases(path, &cases);
		if (cases.R != pgf_fintrec_rows(models[i]))
			tap_bail("%s: %d reference rows for %d model rows", names[i], cases.R,
				 pgf_fintrec_rows(models[i]));
		check_model(names[i], models[i], &cases);
		golden_unload(&cases.f);
	}
	if (n_models == 0 || strcmp(names[0], "random_decoder") != 0)
		tap_bail("the first golden model must be random_decoder");
	check_errors(models[0], &files[0]);
	for (int i = 0; i < n_models; i++)
		if (strncmp(names[i], "fintrec_movielens", 17) == 0)
			timing(names[i], models[i]);
	for (int i = 0; i < n_models; i++)
	{
		free(models[i]);
		golden_unload(&files[i]);
	}
	return tap_done_testing();
}
