/*
 * solo_bench.c: prefill and decode speed of a "solo" model file (the
 * Llama-family decoder), to set next to bench/solo_bench.py (PyTorch on the
 * same weights).
 *
 *   make bench/solo_bench          (bench/solo_bench.sh runs it next to PyTorch)
 *   OPENBLAS_NUM_THREADS=1 bench/solo_bench MODEL.pgf [PROMPT_TOKENS [NEW_TOKENS [THREADS]]]
 *
 * The prompt is PROMPT_TOKENS ids (a fixed pseudo-random sequence of
 * ordinary tokens); decoding is greedy for exactly NEW_TOKENS steps (stop
 * tokens ignored).  Prints the best of three runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/arch.h"
#include "models/solo.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : NULL;
	int			n_prompt = argc > 2 ? atoi(argv[2]) : 64;
	int			n_new = argc > 3 ? atoi(argv[3]) : 64;
	int			threads = argc > 4 ? atoi(argv[4]) : 1;
	size_t		size;
	void	   *bytes;
	PgfModel	file;
	PgfSoloModel *m = calloc(1, sizeof(PgfSoloModel));
	char		err[512];
	PgfArena	arena;
	size_t		arena_size;
	int32_t    *ids;
	float	   *x;
	double		best_prefill = 1e30,
				best_decode = 1e30;

	if (!path || n_prompt < 1 || n_new < 1 || threads < 1)
	{
		fprintf(stderr, "usage: solo_bench MODEL.pgf [PROMPT_TOKENS [NEW_TOKENS [THREADS]]]\n");
		return 2;
	}
	bytes = pgf_read_file(path, &size);
	if (!bytes)
	{
		perror(path);
		return 1;
	}
	if (pgf_open(&file, bytes, size, 0, NULL, err, sizeof(err)) != PGF_OK ||
		pgf_model_bind(&file, m, err, sizeof(err)) != PGF_OK)
	{
		fprintf(stderr, "%s: %s\n", path, err);
		return 1;
	}
	pgf_set_threads(threads);

	ids = malloc(sizeof(int32_t) * n_prompt);
	srand(1);
	for (int i = 0; i < n_prompt; i++)
		ids[i] = 100 + rand() % (m->suppress_from - 100 > 0 ? m->suppress_from - 100 : 1);
	x = malloc(sizeof(float) * n_prompt * m->dec.d_model);
	arena_size = pgf_decoder_state_bytes(&m->dec, n_prompt + n_new, PGF_SOLO_PREFILL_CHUNK);
	pgf_arena_init(&arena, aligned_alloc(64, pgf_arena_round(arena_size)), pgf_arena_round(arena_size));

	for (int run = 0; run < 3; run++)
	{
		PgfDecoderState st;
		double		t0,
					t1,
					t2;
		int			tok;

		pgf_arena_reset(&arena, 0);
		if (pgf_decoder_state_init(&st, &m->dec, n_prompt + n_new, PGF_SOLO_PREFILL_CHUNK,
								   &arena, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		pgf_decoder_embed(&m->dec, ids, n_prompt, x, err, sizeof(err));
		t0 = now();
		pgf_decoder_forward(&st, x, n_prompt, true, err, sizeof(err));
		t1 = now();
		for (int i = 0; i < n_new; i++)
		{
			tok = pgf_argmax(st.logits, m->suppress_from);
			if (i + 1 < n_new)
				pgf_decoder_step(&st, tok, err, sizeof(err));
		}
		t2 = now();
		if (t1 - t0 < best_prefill)
			best_prefill = t1 - t0;
		if (t2 - t1 < best_decode)
			best_decode = t2 - t1;
	}
	printf("%s: %d threads, prefill %d tokens %.1f ms (%.0f tok/s), decode %d tokens %.1f ms (%.1f tok/s)\n",
		   path, threads, n_prompt, best_prefill * 1e3, n_prompt / best_prefill,
		   n_new, best_decode * 1e3, (n_new - 1) / best_decode);
	return 0;
}
