/*
 * hiformer_bench.c: pgformer's Hiformer ranker called directly on one
 * request (one user, N candidates) that bench/hiformer_bench.py writes, with
 * and without each serving trick.
 *
 *   bench/hiformer_bench MODEL.pgf REQUEST.txt [RUNS]
 *
 * REQUEST.txt: "n_user n_context n_item n_candidates", then one value per
 * line (user features, context features, then each candidate's item
 * features, in the order the model's header lists each group):
 *   m | n <number> | c <code> | l <k> <code>...
 * Prints one JSON line: median and p99 latency (microseconds) of
 * pgf_hiformer_score for the whole request with both tricks, without
 * last-layer pruning, without layer-0 reuse and without both, and the
 * first task's probabilities of the first candidates (to compare engines).
 * Build: make bench/hiformer_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/arch.h"
#include "models/hiformer.h"
#include "proto/pgf.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static void
read_value(FILE *f, PgfHiformerValue *v)
{
	char		kind[4];

	memset(v, 0, sizeof(*v));
	if (fscanf(f, "%3s", kind) != 1)
		exit(1);
	if (kind[0] == 'n')
	{
		v->kind = PGF_HIF_VALUE_NUMBER;
		if (fscanf(f, "%lf", &v->number) != 1)
			exit(1);
	}
	else if (kind[0] == 'c')
	{
		long long	c;

		v->kind = PGF_HIF_VALUE_CODE;
		if (fscanf(f, "%lld", &c) != 1)
			exit(1);
		v->code = c;
	}
	else if (kind[0] == 'l')
	{
		int64_t    *codes;

		v->kind = PGF_HIF_VALUE_CODES;
		if (fscanf(f, "%d", &v->n_codes) != 1)
			exit(1);
		codes = malloc(sizeof(int64_t) * (v->n_codes + 1));
		for (int i = 0; i < v->n_codes; i++)
		{
			long long	c;

			if (fscanf(f, "%lld", &c) != 1)
				exit(1);
			codes[i] = c;
		}
		v->codes = codes;
	}
	else
		v->kind = PGF_HIF_VALUE_MISSING;
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	size_t		size;
	uint8_t    *bytes;
	PgfModel	file;
	PgfHiformerModel *model = calloc(1, sizeof(PgfHiformerModel));
	char		err[512];
	int			n_user,
				n_context,
				n_item,
				n;
	PgfHiformerValue *user,
			   *context,
			   *items;
	int			runs = argc > 3 ? atoi(argv[3]) : 300;
	size_t		arena_bytes;
	void	   *memory;
	PgfArena	arena;
	float	   *probs;
	double	   *lat = malloc(sizeof(double) * runs);
	double		median[4],
				p99[4];

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s MODEL.pgf REQUEST.txt [RUNS]\n", argv[0]);
		return 2;
	}
	bytes = pgf_read_file(argv[1], &size);
	if (!bytes)
	{
		perror(argv[1]);
		return 1;
	}
	if (pgf_open(&file, bytes, size, PGF_VERIFY_DATA, NULL, err, sizeof(err)) != PGF_OK ||
		pgf_model_bind(&file, model, err, sizeof(err)) != PGF_OK)
	{
		fprintf(stderr, "hiformer_bench: %s\n", err);
		return 1;
	}
	f = fopen(argv[2], "r");
	if (!f || fscanf(f, "%d %d %d %d", &n_user, &n_context, &n_item, &n) != 4)
		return 1;
	user = calloc(n_user + 1, sizeof(PgfHiformerValue));
	context = calloc(n_context + 1, sizeof(PgfHiformerValue));
	items = calloc((size_t) n * n_item + 1, sizeof(PgfHiformerValue));
	for (int i = 0; i < n_user; i++)
		read_value(f, &user[i]);
	for (int i = 0; i < n_context; i++)
		read_value(f, &context[i]);
	for (int i = 0; i < n * n_item; i++)
		read_value(f, &items[i]);
	fclose(f);

	arena_bytes = pgf_hiformer_arena_bytes(model, n);
	if (posix_memalign(&memory, PGF_ARENA_ALIGN, arena_bytes) != 0)
		return 1;
	pgf_arena_init(&arena, memory, arena_bytes);
	probs = malloc(sizeof(float) * n * model->n_tasks);

	for (int variant = 0; variant < 4; variant++)
	{
		PgfHiformerRequest req;

		memset(&req, 0, sizeof(req));
		req.user = user;
		req.context = context;
		req.items = items;
		req.n_candidates = n;
		req.no_pruning = (variant & 1) != 0;
		req.no_layer0_reuse = (variant & 2) != 0;
		for (int r = -20; r < runs; r++)
		{
			double		t = now_us();

			if (pgf_hiformer_score(model, &req, probs, &arena, err, sizeof(err)) != 0)
			{
				fprintf(stderr, "hiformer_bench: %s\n", err);
				return 1;
			}
			if (r >= 0)
				lat[r] = now_us() - t;
		}
		qsort(lat, runs, sizeof(double), compare_double);
		median[variant] = lat[runs / 2];
		p99[variant] = lat[(int) (runs * 0.99)];
	}
	printf("{\"candidates\": %d, \"median_us\": %.1f, \"p99_us\": %.1f, "
		   "\"no_pruning_median_us\": %.1f, \"no_reuse_median_us\": %.1f, "
		   "\"neither_median_us\": %.1f, \"first\": [",
		   n, median[0], p99[0], median[1], median[2], median[3]);
	for (int i = 0; i < n && i < 5; i++)
		printf("%s%.7f", i ? ", " : "", probs[(size_t) i * model->n_tasks]);
	printf("]}\n");
	return 0;
}
