/*
 * kernels_bench.c: timings of the hot kernels (linear layers per weight
 * dtype, decode and prefill attention, small and Llama-sized blocks)
 * next to the OpenBLAS call they are built on, in one run.
 *
 *   make bench/kernels_bench
 *   OPENBLAS_NUM_THREADS=1 bench/kernels_bench
 *
 * Prints one line per case: best-of-N wall time per call and throughput.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "proto/pgf.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *
rand_floats(size_t n, float scale)
{
	float	   *x = aligned_alloc(64, pgf_arena_round(n * sizeof(float)));

	for (size_t i = 0; i < n; i++)
		x[i] = ((float) rand() / RAND_MAX * 2 - 1) * scale;
	return x;
}

/* Weight [rows, cols] of dtype built from random floats (Q8 block 32). */
static PgfMatrix
make_weight(PgfDType dt, int rows, int cols)
{
	size_t		n = (size_t) rows * cols;
	float	   *f = rand_floats(n, 0.05f);
	PgfMatrix	m = pgf_matrix_f32(f, rows, cols);

	if (dt == PGF_DTYPE_F16 || dt == PGF_DTYPE_BF16)
	{
		uint16_t   *h = aligned_alloc(64, pgf_arena_round(n * 2));

		for (size_t i = 0; i < n; i++)
		{
			uint32_t	bits;

			memcpy(&bits, &f[i], 4);
			/* bf16 truncation; for f16 any bit pattern of normal range will do */
			h[i] = dt == PGF_DTYPE_BF16 ? (uint16_t) (bits >> 16) : (uint16_t) (0x2000 + (rand() & 0x1fff));
		}
		m.dtype = dt;
		m.data = h;
	}
	else if (dt == PGF_DTYPE_Q8)
	{
		int8_t	   *q = aligned_alloc(64, pgf_arena_round(n));
		float	   *s = aligned_alloc(64, pgf_arena_round(n / 32 * sizeof(float)));

		for (size_t i = 0; i < n; i++)
			q[i] = (int8_t) (rand() % 255 - 127);
		for (size_t i = 0; i < n / 32; i++)
			s[i] = 0.001f;
		m.dtype = dt;
		m.data = q;
		m.scales = s;
		m.quant_block = 32;
	}
	return m;
}

static size_t
dtype_bytes(PgfDType dt)
{
	return dt == PGF_DTYPE_F32 ? 4 : dt == PGF_DTYPE_Q8 ? 1 : 2;
}

#define TIME_BEST(best, reps, stmt) \
	do { \
		(best) = 1e30; \
		for (int rep_ = 0; rep_ < (reps); rep_++) \
		{ \
			double t0_ = now(); \
			stmt; \
			double t_ = now() - t0_; \
			if (t_ < (best)) (best) = t_; \
		} \
	} while (0)

static void
bench_linear(int rows, int cols, int n)
{
	static const PgfDType dts[] = {PGF_DTYPE_F32, PGF_DTYPE_F16, PGF_DTYPE_BF16, PGF_DTYPE_Q8};
	float	   *x = rand_floats((size_t) n * cols, 1);
	float	   *y = rand_floats((size_t) n * rows, 1);
	int			reps = n == 1 ? 200 : 20;

	for (int d = 0; d < 4; d++)
	{
		PgfMatrix	w = make_weight(dts[d], rows, cols);
		size_t		bytes = pgf_linear_scratch_bytes(&w, n);
		void	   *base = aligned_alloc(64, pgf_arena_round(bytes ? bytes : 64));
		PgfArena	arena;
		double		best;

		pgf_arena_init(&arena, base, bytes);
		TIME_BEST(best, reps, pgf_linear(y, x, n, &w, NULL, &arena));
		printf("linear %-4s [%5d x %5d] n=%-3d %9.3f ms  %7.1f GFLOP/s  %6.1f GB/s of weights\n",
			   pgf_dtype_name(dts[d]), rows, cols, n, best * 1e3,
			   2.0 * rows * cols * n / best * 1e-9,
			   (double) rows * cols * dtype_bytes(dts[d]) / best * 1e-9);
		free(base);
	}
	free(x);
	free(y);
}

static void
bench_attention(int n_q, int n_kv, int heads, int kv_heads, int hd)
{
	float	   *q = rand_floats((size_t) n_q * heads * hd, 1);
	float	   *k = rand_floats((size_t) n_kv * kv_heads * hd, 1);
	float	   *v = rand_floats((size_t) n_kv * kv_heads * hd, 1);
	float	   *out = rand_floats((size_t) n_q * heads * hd, 1);
	size_t		bytes = pgf_attention_scratch_bytes(n_q, n_kv);
	void	   *base = aligned_alloc(64, pgf_arena_round(bytes));
	PgfArena	arena;
	PgfAttnMask mask;
	double		best;

	memset(&mask, 0, sizeof(mask));
	mask.kind = PGF_MASK_CAUSAL;
	mask.q_pos0 = n_kv - n_q;
	pgf_arena_init(&arena, base, bytes);
	TIME_BEST(best, n_q == 1 ? 200 : 10,
			  pgf_attention(out, heads * hd, q, heads * hd, k, v, kv_heads * hd, n_q, n_kv,
							heads, kv_heads, hd, 0.125f, &mask, &arena));
	printf("attention causal %4d queries x %5d keys, %2d/%d heads of %3d  %9.3f ms\n",
		   n_q, n_kv, heads, kv_heads, hd, best * 1e3);
	free(q);
	free(k);
	free(v);
	free(out);
	free(base);
}

static void
bench_block(const char *what, PgfBlockSpec spec, PgfDType dt, int n_segments, int rows_per_seg)
{
	int			d = spec.d_model,
				qd = spec.n_heads * spec.head_dim,
				kvd = spec.n_kv_heads * spec.head_dim;
	PgfBlockWeights w;
	int			offsets[257];
	int			total = n_segments * rows_per_seg;
	float	   *x = rand_floats((size_t) total * d, 1);
	PgfAttnMask masks[256];
	size_t		bytes = pgf_block_scratch_bytes(&spec, total, rows_per_seg);
	void	   *base = aligned_alloc(64, pgf_arena_round(bytes));
	PgfArena	arena;
	double		best;

	memset(&w, 0, sizeof(w));
	w.ln1_gamma = rand_floats(d, 1);
	w.ln2_gamma = rand_floats(d, 1);
	w.wq = make_weight(dt, qd, d);
	w.wk = make_weight(dt, kvd, d);
	w.wv = make_weight(dt, kvd, d);
	w.wo = make_weight(dt, d, qd);
	w.w1 = make_weight(dt, spec.d_ff, d);
	w.w2 = make_weight(dt, d, spec.d_ff);
	w.w3 = make_weight(dt, spec.d_ff, d);
	for (int s = 0; s <= n_segments; s++)
		offsets[s] = s * rows_per_seg;
	for (int s = 0; s < n_segments; s++)
	{
		memset(&masks[s], 0, sizeof(masks[s]));
		masks[s].kind = PGF_MASK_CAUSAL;
	}
	pgf_arena_init(&arena, base, bytes);
	TIME_BEST(best, 20, pgf_block_forward(&spec, &w, x, n_segments, offsets, masks, NULL, &arena));
	printf("block %-28s %-4s %3d x %4d rows  %9.3f ms  (scratch bound %zu, used %zu)\n",
		   what, pgf_dtype_name(dt), n_segments, rows_per_seg, best * 1e3, bytes, arena.high_water);
	free(x);
	free(base);
}

int
main(void)
{
	PgfBlockSpec sasrec = {64, 2, 2, 32, 256, PGF_NORM_LAYER, PGF_PRE_NORM, PGF_ACT_GELU_ERF,
	1e-5f, true, 0};
	PgfBlockSpec smollm = {576, 9, 3, 64, 1536, PGF_NORM_RMS, PGF_PRE_NORM, PGF_ACT_SWIGLU,
	1e-5f, true, 10000.0f};

	printf("BLAS threads: %d\n", pgf_get_threads());
	bench_linear(1536, 576, 1);
	bench_linear(4096, 4096, 1);
	bench_linear(4096, 4096, 4);
	bench_linear(1536, 576, 64);
	bench_linear(4096, 4096, 64);
	bench_attention(1, 512, 9, 3, 64);
	bench_attention(1, 4096, 32, 8, 128);
	bench_attention(512, 512, 9, 3, 64);
	bench_block("SASRec-like d64 50 tokens", sasrec, PGF_DTYPE_F32, 1, 50);
	bench_block("SASRec-like d64 64 users", sasrec, PGF_DTYPE_F32, 64, 50);
	bench_block("SmolLM2-like decode", smollm, PGF_DTYPE_F32, 1, 1);
	bench_block("SmolLM2-like decode", smollm, PGF_DTYPE_Q8, 1, 1);
	bench_block("SmolLM2-like prefill 128", smollm, PGF_DTYPE_F32, 1, 128);
	bench_block("SmolLM2-like prefill 128", smollm, PGF_DTYPE_BF16, 1, 128);
	return 0;
}
