/*
 * test_gemm.c: pgf_gemm on the shapes that reach its blocked paths
 * (the AVX-512 kernel where built, BLAS otherwise) against a double
 * precision loop: row counts around the 12-row tile, column counts around
 * the 32-column panel and the 256-column block, inner dimensions past the
 * 256-deep block, padded strides, both layouts of B, alpha and beta.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test/unit/tap.h"

static float
rnd(unsigned *state)
{
	*state = *state * 1103515245u + 12345u;
	return ((float) ((*state >> 8) & 0xFFFF) / 65536.0f) - 0.5f;
}

/* Largest |C - reference| relative to the largest |reference|. */
static double
check(bool trans_b, int m, int n, int k, float alpha, float beta, unsigned seed)
{
	int			lda = k + 3,
				ldb = (trans_b ? k : n) + 5,
				ldc = n + 7;
	float	   *a = malloc(sizeof(float) * (size_t) m * lda);
	float	   *b = malloc(sizeof(float) * (size_t) (trans_b ? n : k) * ldb);
	float	   *c = malloc(sizeof(float) * (size_t) m * ldc);
	double	   *ref = malloc(sizeof(double) * (size_t) m * n);
	double		worst = 0,
				scale = 1e-30;

	for (size_t i = 0; i < (size_t) m * lda; i++)
		a[i] = rnd(&seed);
	for (size_t i = 0; i < (size_t) (trans_b ? n : k) * ldb; i++)
		b[i] = rnd(&seed);
	for (size_t i = 0; i < (size_t) m * ldc; i++)
		c[i] = rnd(&seed);
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++)
		{
			double		s = 0;

			for (int p = 0; p < k; p++)
				s += (double) a[(size_t) i * lda + p] *
					(trans_b ? b[(size_t) j * ldb + p] : b[(size_t) p * ldb + j]);
			ref[(size_t) i * n + j] = alpha * s + (beta != 0 ? beta * c[(size_t) i * ldc + j] : 0);
		}
	pgf_gemm(false, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++)
		{
			double		d = fabs(c[(size_t) i * ldc + j] - ref[(size_t) i * n + j]);

			scale = fmax(scale, fabs(ref[(size_t) i * n + j]));
			worst = fmax(worst, isnan(d) ? INFINITY : d);
		}
	/* the padding beyond n of each C row is untouched */
	for (int i = 0; i < m; i++)
		for (int j = n; j < ldc && i < m - 1; j++)
			if (c[(size_t) i * ldc + j] != c[(size_t) i * ldc + j])
				worst = INFINITY;
	free(a);
	free(b);
	free(c);
	free(ref);
	return worst / scale;
}

int
main(void)
{
	static const int ms[] = {2, 11, 12, 13, 25, 64, 200};
	static const int ns[] = {3, 31, 32, 33, 255, 257, 600};
	static const int ks[] = {7, 64, 255, 256, 257, 700};
	unsigned	seed = 1;
	int			t = 0;

	for (int tb = 0; tb < 2; tb++)
		for (int mi = 0; mi < 7; mi++)
			for (int ni = 0; ni < 7; ni++)
				for (int ki = 0; ki < 6; ki++)
				{
					double		e;
					float		beta = (t % 3 == 0) ? 0.0f : (t % 3 == 1 ? 1.0f : -0.5f);

					if ((mi + ni + ki) % 3 != 0)
						continue;	/* a third of the grid keeps the test quick */
					e = check(tb, ms[mi], ns[ni], ks[ki], t % 2 ? 0.75f : 1.0f, beta, seed++);
					tap_ok(e < 1e-5, "%s m=%d n=%d k=%d beta=%g: relative error %.2g",
						   tb ? "A B^T" : "A B", ms[mi], ns[ni], ks[ki], beta, e);
					t++;
				}
	tap_ok(check(true, 1000, 96, 64, 1.0f, 0.0f, 99) < 1e-5, "a long A (1000 rows) times B^T");
	tap_ok(check(false, 37, 1024, 1100, 1.0f, 1.0f, 98) < 1e-5, "a deep, wide product accumulating into C");
	return tap_done_testing();
}
