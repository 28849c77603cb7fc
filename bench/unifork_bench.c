/*
 * unifork_bench.c: seconds per image of a "unifork" model file in C, split
 * into the LLM steps, the depth head and the pixel decoder, to set next to
 * bench/unifork_bench.py (PyTorch on the same weights).
 *
 *   make bench/unifork_bench        (bench/unifork_bench.sh runs both)
 *   OPENBLAS_NUM_THREADS=1 bench/unifork_bench MODEL.pgf [RUNS]
 *
 * One image of the prompt "a photo of a bag" against the model's
 * unconditional prompt, greedy (top_k 1) under the model's guidance; the
 * depth head and the decoder are then timed alone on the same hidden
 * states and codes, and the LLM is the rest.  Prints the best of RUNS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/arch.h"
#include "models/unifork.h"

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
	int			runs = argc > 2 ? atoi(argv[2]) : 5;
	const char *prompt = "a photo of a bag";
	size_t		size;
	void	   *bytes;
	PgfModel	file;
	PgfUniforkModel *m = calloc(1, sizeof(PgfUniforkModel));
	char		err[512];
	PgfArena	arena;
	size_t		arena_size;
	int32_t    *cond,
			   *uncond,
			   *codes;
	int			n_cond,
				n_uncond,
				n_pos,
				side;
	float	   *pixels,
			   *hidden,
			   *zq;
	PgfSampling greedy = {.temperature = 1.0f, .top_k = 1};
	PgfRng		rng;
	double		best_total = 1e30,
				best_head = 1e30,
				best_decode = 1e30;

	if (!path || runs < 1)
	{
		fprintf(stderr, "usage: unifork_bench MODEL.pgf [RUNS]\n");
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
	n_pos = m->grid * m->grid;
	side = pgf_unifork_image_side(m);
	arena_size = pgf_tokenizer_encode_scratch_bytes(1024);
	arena_size = arena_size > pgf_unifork_generate_bytes(m, 256, 256) ? arena_size :
		pgf_unifork_generate_bytes(m, 256, 256);
	pgf_arena_init(&arena, aligned_alloc(PGF_ARENA_ALIGN, pgf_arena_round(arena_size)), arena_size);
	cond = malloc(sizeof(int32_t) * (pgf_unifork_prompt_bound(m, strlen(prompt)) + 1));
	uncond = malloc(sizeof(int32_t) * (pgf_unifork_prompt_bound(m, strlen(m->uncond_prompt)) + 1));
	n_cond = pgf_unifork_prompt(m, prompt, strlen(prompt), cond, &arena);
	n_uncond = pgf_unifork_prompt(m, m->uncond_prompt, strlen(m->uncond_prompt), uncond, &arena);
	codes = malloc(sizeof(int32_t) * n_pos * m->rq_depth);
	pixels = malloc(sizeof(float) * side * side * 3);
	hidden = malloc(sizeof(float) * 2 * m->und.d_model);
	zq = malloc(sizeof(float) * n_pos * m->codebook.cols);
	for (int i = 0; i < 2 * m->und.d_model; i++)
		hidden[i] = (float) ((i * 37) % 17) / 17.0f - 0.5f;

	for (int r = 0; r < runs; r++)
	{
		double		t0 = now(),
					t;

		if (pgf_unifork_generate(m, cond, n_cond, uncond, n_uncond, m->cfg_scale, &greedy, codes, pixels,
								 NULL, &arena, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		t = now() - t0;
		best_total = t < best_total ? t : best_total;
		t0 = now();
		pgf_rng_seed(&rng, 1);
		for (int p = 0; p < n_pos; p++)
			pgf_depth_head_codes(&m->depth, hidden, 2, m->cfg_scale, &greedy, &rng, codes + p * m->rq_depth,
								 NULL, &arena);
		t = now() - t0;
		best_head = t < best_head ? t : best_head;
		t0 = now();
		pgf_rq_embed(zq, codes, n_pos, m->rq_depth, &m->codebook, &arena);
		pgf_pixel_decode(&m->vq, zq, m->grid, m->grid, pixels, &arena);
		t = now() - t0;
		best_decode = t < best_decode ? t : best_decode;
	}
	printf("pgformer: %.2f ms per image (%dx%d pixels, %d positions x %d codes): LLM %.2f ms, depth head %.2f ms, pixel decoder %.2f ms\n",
		   best_total * 1e3, side, side, n_pos, m->rq_depth, (best_total - best_head - best_decode) * 1e3,
		   best_head * 1e3, best_decode * 1e3);
	return 0;
}
