/*
 * gemm_avx512.h: the AVX-512 GEMM behind pgf_gemm (gemm_avx512.c), present
 * when the compiler targets AVX-512.
 */
#ifndef PGF_GEMM_AVX512_H
#define PGF_GEMM_AVX512_H

#include <stdbool.h>

#ifdef __AVX512F__
#define PGF_HAVE_GEMM_AVX512 1

/*
 * C[m, n] = alpha * A[m, k] op(B) + beta * C, B stored [k, n] or, when
 * trans_b, [n, k]; row strides lda, ldb, ldc.  Not reentrant across
 * threads (static packing buffers).
 */
void		pgf_gemm_avx512(bool trans_b, int m, int n, int k, float alpha,
							const float *a, int lda, const float *b, int ldb,
							float beta, float *c, int ldc);
#endif

#endif							/* PGF_GEMM_AVX512_H */
