/*
 * fintrec_bench.c: pgformer's FinTRec model called directly (no SQL), on
 * the requests bench/fintrec_bench.py writes.
 *
 *   bench/fintrec_bench MODEL.pgf REQUESTS.pgf [REPEATS [single]]
 *
 * REQUESTS holds ev.offsets [N+1], ev.items, ev.times, ev.types (newest
 * first) and case.now [N].  Prints one JSON line: single-user latency
 * (median, p99 over every request, REPEATS rounds) of pgf_fintrec_recommend
 * with k = 10 and exclude_seen, and the throughput of
 * pgf_fintrec_recommend_batch over all users in batches of 64.
 * Build: make bench/fintrec_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/arch.h"
#include "models/fintrec.h"
#include "proto/pgf.h"

#define K 10
#define BATCH 64

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static const void *
tensor(const PgfModel *m, const char *name)
{
	const PgfTensor *t = pgf_find(m, name);

	if (!t)
	{
		fprintf(stderr, "requests: no tensor %s\n", name);
		exit(1);
	}
	return t->data;
}

static int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	size_t		model_size,
				req_size;
	uint8_t    *model_bytes,
			   *req_bytes;
	PgfModel	file,
				reqs;
	PgfFintrecModel *model = calloc(1, sizeof(PgfFintrecModel));
	char		err[512];
	int			repeats = argc > 3 ? atoi(argv[3]) : 3;
	const int64_t *offsets,
			   *items,
			   *times,
			   *nows;
	const int32_t *types;
	int			n;
	PgfFintrecEvents *ev;
	size_t		arena_bytes;
	void	   *arena_memory;
	PgfArena	arena;
	int64_t		ids[BATCH * K];
	float		scores[BATCH * K];
	int			counts[BATCH];
	double	   *lat;
	int			n_lat = 0;
	int			longest = 0;
	double		t0,
				batch_us;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s MODEL.pgf REQUESTS.pgf [REPEATS]\n", argv[0]);
		return 2;
	}
	model_bytes = pgf_read_file(argv[1], &model_size);
	req_bytes = pgf_read_file(argv[2], &req_size);
	if (!model_bytes || !req_bytes ||
		pgf_open(&file, model_bytes, model_size, PGF_VERIFY_DATA, NULL, err, sizeof(err)) != PGF_OK ||
		pgf_model_bind(&file, model, err, sizeof(err)) != PGF_OK ||
		pgf_open(&reqs, req_bytes, req_size, 0, NULL, err, sizeof(err)) != PGF_OK)
	{
		fprintf(stderr, "fintrec_bench: %s\n", err);
		return 1;
	}
	offsets = tensor(&reqs, "ev.offsets");
	items = tensor(&reqs, "ev.items");
	times = tensor(&reqs, "ev.times");
	types = tensor(&reqs, "ev.types");
	nows = tensor(&reqs, "case.now");
	n = (int) pgf_find(&reqs, "case.now")->shape[0];
	ev = calloc(n, sizeof(PgfFintrecEvents));
	for (int i = 0; i < n; i++)
	{
		ev[i].n = (int) (offsets[i + 1] - offsets[i]);
		ev[i].item_ids = items + offsets[i];
		ev[i].timestamps = times + offsets[i];
		ev[i].event_types = types + offsets[i];
		ev[i].newest_first = true;
		ev[i].now = nows[i];
		if (ev[i].n > longest)
			longest = ev[i].n;
	}
	arena_bytes = pgf_fintrec_arena_bytes(model, longest, BATCH);
	if (posix_memalign(&arena_memory, PGF_ARENA_ALIGN, arena_bytes) != 0)
		return 1;
	pgf_arena_init(&arena, arena_memory, arena_bytes);

	/* warm up, then single-user latency */
	for (int i = 0; i < n && i < 50; i++)
		pgf_fintrec_recommend(model, &ev[i], K, true, ids, scores, NULL, &arena, err, sizeof(err));
	lat = malloc(sizeof(double) * n * repeats);
	for (int r = 0; r < repeats; r++)
		for (int i = 0; i < n; i++)
		{
			double		t = now_us();

			if (pgf_fintrec_recommend(model, &ev[i], K, true, ids, scores, NULL, &arena,
								  err, sizeof(err)) < 0)
			{
				fprintf(stderr, "fintrec_bench: %s\n", err);
				return 1;
			}
			lat[n_lat++] = now_us() - t;
		}
	qsort(lat, n_lat, sizeof(double), compare_double);

	/* batch throughput: every user, BATCH at a time (skipped with "single") */
	t0 = now_us();
	for (int r = 0; r < repeats && !(argc > 4 && strcmp(argv[4], "single") == 0); r++)
		for (int i = 0; i < n; i += BATCH)
		{
			int			count = n - i < BATCH ? n - i : BATCH;

			if (pgf_fintrec_recommend_batch(model, &ev[i], count, K, true, ids, scores, counts,
										NULL, &arena, err, sizeof(err)) != 0)
			{
				fprintf(stderr, "fintrec_bench: %s\n", err);
				return 1;
			}
		}
	batch_us = (now_us() - t0) / repeats;
	printf("{\"users\": %d, \"single_median_us\": %.1f, \"single_p99_us\": %.1f, "
		   "\"batch_users_per_s\": %.1f}\n",
		   n, lat[n_lat / 2], lat[(int) (n_lat * 0.99)], n / (batch_us / 1e6));
	return 0;
}
