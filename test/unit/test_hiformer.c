/*
 * test_hiformer.c: the Hiformer ranker (models/hiformer.c) against the
 * PyTorch reference (tools/models/hiformer.py through test/gen/golden_hiformer.py,
 * generated into test/unit/golden/hiformer by `make unit`).
 *
 * Per model (random full rank, low rank, one layer, and the committed demo
 * model): probabilities of 1,000 candidates within 1e-4 of PyTorch with
 * and without last-layer pruning and layer-0 reuse (and the four agreeing
 * with each other within 1e-5), in small chunks too, and the counts of
 * missing rows, missing values, NaN values and unknown codes.  Then: files
 * the binder must reject, values of the wrong kind, an arena too small,
 * 100,000 candidates through a small arena with interrupt checks between
 * chunks, and (reported, never asserted) the latency of 200 candidates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/arch.h"
#include "models/hiformer.h"
#include "proto/pgf.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define GOLDEN "test/unit/golden/hiformer"
#define PROB_TOL 1e-4
#define SAME_TOL 1e-5
#define MAX_MODELS 8
#define MAX_BROKEN 16

typedef struct Loaded
{
	uint8_t    *bytes;
	PgfModel	file;
	PgfHiformerModel *model;
} Loaded;

typedef struct GoldenRequest
{
	int			n;
	PgfHiformerValue *user;		/* NULL: no row */
	PgfHiformerValue *context;
	PgfHiformerValue *items;	/* [n * n_item] */
	bool	   *found;
	int64_t		counts[4];
	const float *probs;			/* [n * n_tasks], in the file */
} GoldenRequest;

/* The values of a rows file: the tensors val.kind, val.bits, val.count, codes */
typedef struct GoldenRows
{
	int64_t		n_values,
				n_codes;
	const int32_t *kind;
	const int64_t *bits;
	const int32_t *count;
	const int64_t *codes;
} GoldenRows;

typedef struct Golden
{
	GoldenFile	file;			/* the views below point into it */
	GoldenRows	values;
	int			n_req,
				n_tasks,
				n_user,
				n_context,
				n_item;
	GoldenRequest *req;
} Golden;

/* Opens and binds a model file; returns the status, message in err. */
static PgfStatus
load(const char *path, Loaded *out, char *err, size_t errlen)
{
	size_t		size;
	PgfStatus	st;

	memset(out, 0, sizeof(*out));
	out->bytes = pgf_read_file(path, &size);
	if (out->bytes == NULL)
	{
		snprintf(err, errlen, "cannot read %s", path);
		return PGF_ERR_IO;
	}
	st = pgf_open(&out->file, out->bytes, size, PGF_VERIFY_DATA, NULL, err, errlen);
	if (st != PGF_OK)
		return st;
	out->model = calloc(1, sizeof(PgfHiformerModel));
	return pgf_model_bind(&out->file, out->model, err, errlen);
}

static void
unload(Loaded *l)
{
	if (l->file.header)
		pgf_close(&l->file);
	free(l->model);
	free(l->bytes);
}

/* ---- the rows file (its tensors: test/gen/golden_hiformer.py) ---------------- */

/* Value i of the file as the caller of pgf_hiformer_score passes it. */
static PgfHiformerValue
value_at(const GoldenRows *v, int64_t i)
{
	PgfHiformerValue out;

	memset(&out, 0, sizeof(out));
	if (i < 0 || i >= v->n_values)
		tap_bail("a request reads value %lld of %lld", (long long) i, (long long) v->n_values);
	out.kind = (PgfHiformerValueKind) v->kind[i];
	if (out.kind == PGF_HIF_VALUE_NUMBER)
		memcpy(&out.number, &v->bits[i], sizeof(double));
	else if (out.kind == PGF_HIF_VALUE_CODE)
		out.code = v->bits[i];
	else if (out.kind == PGF_HIF_VALUE_CODES)
	{
		if (v->bits[i] < 0 || v->count[i] < 0 || v->bits[i] + v->count[i] >= v->n_codes)
			tap_bail("value %lld: codes outside the codes tensor", (long long) i);
		out.n_codes = v->count[i];
		out.codes = v->codes + v->bits[i];
	}
	return out;
}

/* n values from *next on (NULL when there is no row), advancing *next. */
static PgfHiformerValue *
take_values(const GoldenRows *v, int64_t *next, int n, bool present)
{
	PgfHiformerValue *out;

	if (!present)
		return NULL;
	out = calloc(n ? n : 1, sizeof(PgfHiformerValue));
	for (int i = 0; i < n; i++)
		out[i] = value_at(v, (*next)++);
	return out;
}

static const void *
rows_tensor(const GoldenFile *f, const char *name, int dtype, long numel)
{
	return golden_named(f, dtype, numel, name)->data;
}

/* Reads the rows file path into g (bails out on a missing or malformed one). */
static void
read_golden(const char *path, Golden *g)
{
	const int64_t *dims,
			   *meta;
	const int32_t *found;
	const float *probs;
	int64_t		candidates = 0,
				done = 0;

	memset(g, 0, sizeof(*g));
	golden_load(&g->file, path, false, "test/gen/golden_hiformer.py");
	dims = rows_tensor(&g->file, "dims", PGF_DTYPE_I64, 5);
	if (dims[0] < 1 || dims[0] > 1000 || dims[1] < 1 || dims[2] < 0 || dims[3] < 0 || dims[4] < 0)
		tap_bail("%s: bad dims", path);
	g->n_req = (int) dims[0];
	g->n_tasks = (int) dims[1];
	g->n_user = (int) dims[2];
	g->n_context = (int) dims[3];
	g->n_item = (int) dims[4];
	meta = rows_tensor(&g->file, "req.meta", PGF_DTYPE_I64, g->n_req * 8L);
	for (int q = 0; q < g->n_req; q++)
	{
		if (meta[q * 8] < 1 || meta[q * 8] > 100000)
			tap_bail("%s: request %d has %lld candidates", path, q, (long long) meta[q * 8]);
		candidates += meta[q * 8];
	}
	found = rows_tensor(&g->file, "req.found", PGF_DTYPE_I32, candidates);
	probs = rows_tensor(&g->file, "req.probs", PGF_DTYPE_F32, candidates * g->n_tasks);
	g->values.n_values = golden_named(&g->file, PGF_DTYPE_I32, -1, "val.kind")->numel;
	g->values.kind = rows_tensor(&g->file, "val.kind", PGF_DTYPE_I32, g->values.n_values);
	g->values.bits = rows_tensor(&g->file, "val.bits", PGF_DTYPE_I64, g->values.n_values);
	g->values.count = rows_tensor(&g->file, "val.count", PGF_DTYPE_I32, g->values.n_values);
	g->values.n_codes = golden_named(&g->file, PGF_DTYPE_I64, -1, "codes")->numel;
	g->values.codes = rows_tensor(&g->file, "codes", PGF_DTYPE_I64, g->values.n_codes);

	g->req = calloc(g->n_req, sizeof(GoldenRequest));
	for (int q = 0; q < g->n_req; q++)
	{
		GoldenRequest *gr = &g->req[q];
		const int64_t *m = meta + q * 8;
		int64_t		next = m[7];

		gr->n = (int) m[0];
		gr->user = take_values(&g->values, &next, g->n_user, m[1] != 0);
		gr->context = take_values(&g->values, &next, g->n_context, m[2] != 0);
		memcpy(gr->counts, m + 3, sizeof(gr->counts));
		gr->items = calloc((size_t) gr->n * g->n_item + 1, sizeof(PgfHiformerValue));
		gr->found = calloc(gr->n + 1, sizeof(bool));
		for (int j = 0; j < gr->n; j++)
		{
			gr->found[j] = found[done + j] != 0;
			if (gr->found[j])
				for (int s = 0; s < g->n_item; s++)
					gr->items[(size_t) j * g->n_item + s] = value_at(&g->values, next++);
		}
		gr->probs = probs + done * g->n_tasks;
		done += gr->n;
	}
}

static void
free_golden(Golden *g)
{
	for (int q = 0; q < g->n_req; q++)
	{
		free(g->req[q].user);
		free(g->req[q].context);
		free(g->req[q].items);
		free(g->req[q].found);
	}
	free(g->req);
	golden_unload(&g->file);
}

/* ---- helpers ------------------------------------------------------------------ */

typedef struct Arena
{
	void	   *memory;
	PgfArena	arena;
} Arena;

static void
arena_make(Arena *a, size_t bytes)
{
	if (posix_memalign(&a->memory, PGF_ARENA_ALIGN, bytes ? bytes : 64) != 0)
		abort();
	pgf_arena_init(&a->arena, a->memory, bytes);
}

static void
request_from(PgfHiformerRequest *req, const GoldenRequest *gr)
{
	memset(req, 0, sizeof(*req));
	req->user = gr->user;
	req->context = gr->context;
	req->n_candidates = gr->n;
	req->items = gr->items;
	req->item_found = gr->found;
}

/*
 * Scores every request of g with the given switches; returns the largest
 * difference from the reference (INFINITY on an error), out = all
 * probabilities.  counts_ok: every request's counts matched.
 */
static double
score_all(const PgfHiformerModel *m, const Golden *g, bool no_reuse, bool no_prune,
		  int chunk, float *out, bool *counts_ok)
{
	Arena		a;
	double		worst = 0;
	size_t		off = 0;
	char		err[256];

	arena_make(&a, pgf_hiformer_arena_bytes(m, chunk ? chunk : PGF_HIF_CHUNK));
	if (counts_ok)
		*counts_ok = true;
	for (int q = 0; q < g->n_req; q++)
	{
		const GoldenRequest *gr = &g->req[q];
		PgfHiformerRequest req;
		double		diff;

		request_from(&req, gr);
		req.no_layer0_reuse = no_reuse;
		req.no_pruning = no_prune;
		req.chunk = chunk;
		if (pgf_hiformer_score(m, &req, out + off, &a.arena, err, sizeof(err)) != 0)
		{
			tap_diag("request %d: %s", q, err);
			worst = INFINITY;
			break;
		}
		if (a.arena.used != 0)
			worst = INFINITY;
		diff = tap_max_abs_diff(out + off, gr->probs, (size_t) gr->n * g->n_tasks);
		if (diff > worst)
			worst = diff;
		if (counts_ok &&
			(req.counts.missing_rows != gr->counts[0] ||
			 req.counts.missing_values != gr->counts[1] ||
			 req.counts.nan_values != gr->counts[2] ||
			 req.counts.oov_codes != gr->counts[3]))
		{
			tap_diag("request %d counts %lld/%lld/%lld/%lld, expected %lld/%lld/%lld/%lld", q,
					 (long long) req.counts.missing_rows, (long long) req.counts.missing_values,
					 (long long) req.counts.nan_values, (long long) req.counts.oov_codes,
					 (long long) gr->counts[0], (long long) gr->counts[1],
					 (long long) gr->counts[2], (long long) gr->counts[3]);
			*counts_ok = false;
		}
		off += (size_t) gr->n * g->n_tasks;
	}
	free(a.memory);
	return worst;
}

static size_t
total_outputs(const Golden *g)
{
	size_t		n = 0;

	for (int q = 0; q < g->n_req; q++)
		n += (size_t) g->req[q].n * g->n_tasks;
	return n;
}

static void
check_model(const char *name, const PgfHiformerModel *m, const Golden *g)
{
	size_t		n = total_outputs(g);
	float	   *out[4];
	bool		counts_ok = false;
	double		same = 0;

	for (int v = 0; v < 4; v++)
	{
		bool		no_reuse = v & 1,
					no_prune = v & 2;
		double		diff;

		out[v] = malloc(sizeof(float) * (n + 1));
		diff = score_all(m, g, no_reuse, no_prune, 0, out[v], v == 0 ? &counts_ok : NULL);
		tap_ok(diff <= PROB_TOL,
			   "%s: %zu probabilities match PyTorch, layer-0 reuse %s, pruning %s (max abs diff %.3g, tolerance %.0e)",
			   name, n, no_reuse ? "off" : "on", no_prune ? "off" : "on", diff, PROB_TOL);
	}
	tap_ok(counts_ok, "%s: missing rows, missing values, NaN values and unknown codes are counted as PyTorch counts them", name);
	for (int v = 0; v < 3; v++)
	{
		double		d = tap_max_abs_diff(out[v], out[3], n);

		if (d > same)
			same = d;
	}
	tap_ok(same <= SAME_TOL,
		   "%s: pruning and layer-0 reuse do not change the probabilities (max abs diff %.3g)",
		   name, same);
	{
		double		diff = score_all(m, g, false, false, 7, out[0], NULL);

		tap_ok(diff <= PROB_TOL, "%s: the same in chunks of 7 candidates (max abs diff %.3g)",
			   name, diff);
	}
	for (int v = 0; v < 4; v++)
		free(out[v]);
}

/* ---- errors --------------------------------------------------------------------- */

static int	interrupts = 0;

static void
count_interrupt(void)
{
	interrupts++;
}

static const PgfHiformerFeature *
first_of(const PgfHiformerModel *m, PgfHiformerGroup g, PgfHiformerKind kind)
{
	for (int s = 0; s < m->n_group[g]; s++)
	{
		const PgfHiformerFeature *f = pgf_hiformer_group_feature(m, g, s);

		if (f->kind == kind)
			return f;
	}
	return NULL;
}

/* Scores one candidate with item value slot set to v; returns rc, message in err. */
static int
score_with_item_value(const PgfHiformerModel *m, int slot, PgfHiformerValue v,
					  char *err, size_t errlen)
{
	PgfHiformerValue items[PGF_HIF_MAX_FEATURES];
	PgfHiformerRequest req;
	Arena		a;
	float		out[PGF_HIF_MAX_TASKS];
	int			rc;

	memset(items, 0, sizeof(items));
	items[slot] = v;
	memset(&req, 0, sizeof(req));
	req.n_candidates = 1;
	req.items = items;
	arena_make(&a, pgf_hiformer_arena_bytes(m, 1));
	rc = pgf_hiformer_score(m, &req, out, &a.arena, err, errlen);
	free(a.memory);
	return rc;
}

static void
check_errors(const PgfHiformerModel *m)
{
	const PgfHiformerFeature *dense = first_of(m, PGF_HIF_ITEM, PGF_HIF_DENSE);
	const PgfHiformerFeature *cat = first_of(m, PGF_HIF_ITEM, PGF_HIF_CATEGORICAL);
	int64_t		codes[2] = {1, 2};
	PgfHiformerValue v;
	char		err[256];
	int			rc;

	memset(&v, 0, sizeof(v));
	v.kind = PGF_HIF_VALUE_CODES;
	v.n_codes = 2;
	v.codes = codes;
	err[0] = '\0';
	rc = score_with_item_value(m, dense->slot, v, err, sizeof(err));
	tap_ok(rc == -1 && strstr(err, dense->name) && strstr(err, "dense"),
		   "a list of codes for a dense feature is an error naming it: %s", err);
	err[0] = '\0';
	rc = score_with_item_value(m, cat->slot, v, err, sizeof(err));
	tap_ok(rc == -1 && strstr(err, cat->name) && strstr(err, "one category"),
		   "a list of codes for a categorical feature is an error: %s", err);
	memset(&v, 0, sizeof(v));
	v.kind = PGF_HIF_VALUE_NUMBER;
	v.number = 2.5;
	err[0] = '\0';
	rc = score_with_item_value(m, cat->slot, v, err, sizeof(err));
	tap_ok(rc == -1 && strstr(err, cat->name) && strstr(err, "not an integer"),
		   "a fractional number for a categorical feature is an error: %s", err);

	{
		PgfHiformerRequest req;
		Arena		a;
		float		out[PGF_HIF_MAX_TASKS];

		memset(&req, 0, sizeof(req));
		req.n_candidates = 1;
		arena_make(&a, 4096);
		err[0] = '\0';
		rc = pgf_hiformer_score(m, &req, out, &a.arena, err, sizeof(err));
		tap_ok(rc == -1 && strstr(err, "arena") && a.arena.used == 0,
			   "an arena too small is reported, not overrun: %s", err);
		req.n_candidates = 0;
		rc = pgf_hiformer_score(m, &req, out, &a.arena, err, sizeof(err));
		tap_ok(rc == 0, "no candidates is no work");
		free(a.memory);
	}
}

static void
check_broken(void)
{
	FILE	   *f = fopen(GOLDEN "/broken.txt", "r");
	char		line[512];

	while (f && fgets(line, sizeof(line), f))
	{
		char	   *bar = strchr(line, '|');
		char		err[512] = "";
		Loaded		l;
		PgfStatus	st;

		if (bar == NULL)
			continue;
		*bar = '\0';
		bar[strcspn(bar + 1, "\n") + 1] = '\0';
		st = load(line, &l, err, sizeof(err));
		tap_ok(st == PGF_ERR_CONFIG && strstr(err, bar + 1) != NULL,
			   "%s is rejected: %s", strrchr(line, '/') + 1, err);
		unload(&l);
	}
	if (f)
		fclose(f);
}

/* 100,000 candidates (request 5's, repeated) through an arena for 64. */
static void
check_many(const PgfHiformerModel *m, const Golden *g)
{
	const GoldenRequest *gr = &g->req[g->n_req - 1];
	int			n = 100000,
				t = g->n_tasks;
	PgfHiformerValue *items = malloc(sizeof(PgfHiformerValue) * ((size_t) n * g->n_item + 1));
	bool	   *found = malloc(n);
	float	   *out = malloc(sizeof(float) * n * t);
	float	   *want = malloc(sizeof(float) * n * t);
	PgfHiformerRequest req;
	Arena		a;
	char		err[256] = "";
	int			rc;

	for (int j = 0; j < n; j++)
	{
		int			src = j % gr->n;

		memcpy(items + (size_t) j * g->n_item, gr->items + (size_t) src * g->n_item,
			   sizeof(PgfHiformerValue) * g->n_item);
		found[j] = gr->found[src];
		memcpy(want + (size_t) j * t, gr->probs + (size_t) src * t, sizeof(float) * t);
	}
	request_from(&req, gr);
	req.n_candidates = n;
	req.items = items;
	req.item_found = found;
	arena_make(&a, pgf_hiformer_arena_bytes(m, 64));
	interrupts = 0;
	pgf_interrupt_hook = count_interrupt;
	rc = pgf_hiformer_score(m, &req, out, &a.arena, err, sizeof(err));
	pgf_interrupt_hook = NULL;
	tap_ok(rc == 0 && tap_max_abs_diff(out, want, (size_t) n * t) <= PROB_TOL,
		   "100,000 candidates through an arena sized for 64 (%zu bytes) match PyTorch %s",
		   a.arena.size, err);
	tap_ok(interrupts >= n / 64, "interrupts were checked between chunks (%d times)", interrupts);
	free(a.memory);
	free(items);
	free(found);
	free(out);
	free(want);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reports the time of one request of 200 candidates (never asserted). */
static void
report_latency(const char *name, const PgfHiformerModel *m, const Golden *g)
{
	const GoldenRequest *gr = &g->req[g->n_req - 1];
	float	   *out = malloc(sizeof(float) * gr->n * g->n_tasks);
	Arena		a;
	char		err[256];
	double		ms[4];

	arena_make(&a, pgf_hiformer_arena_bytes(m, 200));
	for (int v = 0; v < 4; v++)
	{
		PgfHiformerRequest req;
		double		best = INFINITY;

		request_from(&req, gr);
		req.n_candidates = gr->n < 200 ? gr->n : 200;
		req.no_layer0_reuse = v & 1;
		req.no_pruning = v & 2;
		for (int rep = 0; rep < 15; rep++)
		{
			double		t0 = now_seconds();

			pgf_hiformer_score(m, &req, out, &a.arena, err, sizeof(err));
			if (now_seconds() - t0 < best)
				best = now_seconds() - t0;
		}
		ms[v] = best * 1e3;
	}
	tap_diag("%s: 200 candidates in %.3f ms (reuse and pruning), %.3f ms (reuse only), %.3f ms (pruning only), %.3f ms (neither); arena %zu bytes",
			 name, ms[0], ms[2], ms[1], ms[3], a.arena.size);
	free(a.memory);
	free(out);
}

int
main(void)
{
	FILE	   *f = fopen(GOLDEN "/models.txt", "r");
	char		names[MAX_MODELS][64],
				pgfs[MAX_MODELS][256],
				rows[MAX_MODELS][256];
	int			n_models = 0,
				n_broken = 0;
	char		line[512];
	FILE	   *b = fopen(GOLDEN "/broken.txt", "r");

	if (f == NULL)
		tap_bail("%s/models.txt is missing: run `make unit` (it runs test/gen/golden_hiformer.py)", GOLDEN);
	while (n_models < MAX_MODELS && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %255s %255s", names[n_models], pgfs[n_models], rows[n_models]) == 3)
			n_models++;
	fclose(f);
	while (b && fgets(line, sizeof(line), b))
		n_broken += strchr(line, '|') != NULL;
	if (b)
		fclose(b);

	for (int i = 0; i < n_models; i++)
	{
		Loaded		l;
		Golden		g;
		char		err[512] = "";
		bool		ok = load(pgfs[i], &l, err, sizeof(err)) == PGF_OK;

		if (ok)
			read_golden(rows[i], &g);
		if (!tap_ok(ok, "%s: %s binds and its reference rows read %s", names[i], pgfs[i], err))
		{
			for (int k = 0; k < 7; k++)
				tap_ok(0, "%s: skipped", names[i]);
			if (i == 0)
				for (int k = 0; k < 5; k++)
					tap_ok(0, "errors: skipped");
			if (i == 2)
				for (int k = 0; k < 2; k++)
					tap_ok(0, "100,000 candidates: skipped");
			unload(&l);
			continue;
		}
		check_model(names[i], l.model, &g);
		if (i == 0)
			check_errors(l.model);
		if (i == 2)
			check_many(l.model, &g);
		if (i == n_models - 1)
			report_latency(names[i], l.model, &g);
		free_golden(&g);
		unload(&l);
	}
	check_broken();
	return tap_done_testing();
}
