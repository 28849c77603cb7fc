/*
 * gemm_avx512.c: single-precision GEMM for AVX-512 machines, for the
 * shapes transformer layers use (C = alpha A op(B) + beta C with A not
 * transposed): a linear layer x W^T over [out, in] weights, attention's
 * Q K^T and P V.
 *
 * The library's BLAS is held to AVX2 kernels on these CPUs (see
 * docs/design.md, "Machine and threading"), which leaves half of the machine's
 * floating-point width unused.  This is the classic blocked scheme: B is
 * packed in blocks of KC rows by NC columns into panels of NR = 32
 * columns (two 16-float vectors), and a 12 x 32 register tile of C is
 * accumulated over each panel with one broadcast of A per row and k.
 * Column edges use masked loads and stores; the last rows of A go through
 * a zero-padded copy.
 *
 * Built only when the compiler targets AVX-512 (-march=native on such a
 * machine); pgf_gemm falls back to BLAS otherwise.  The packing buffers
 * are static: the kernels run on one thread per process.
 */
#include "kernels/kernels.h"
#include "kernels/gemm_avx512.h"

#ifdef __AVX512F__

#include <immintrin.h>
#include <string.h>

#define MR 12
#define NR 32
#define KC 256
#define NC 256

/* B packed as [NC / NR panels][KC][NR] */
static float packed_b[KC * NC] __attribute__((aligned(64)));
/* the last MR rows of A, zero-padded to MR: [MR][KC] */
static float padded_a[MR * KC] __attribute__((aligned(64)));
/* C tile of the padded rows */
static float padded_c[MR * NC] __attribute__((aligned(64)));

/* Transposes the 16 x 16 block held in r[0..15] (rows) in place. */
static inline void
transpose16(__m512 r[16])
{
	__m512		t[16];

	for (int i = 0; i < 16; i += 2)
	{
		t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
	}
	for (int i = 0; i < 16; i += 4)
	{
		r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
		r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
		r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
		r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
	}
	for (int h = 0; h < 16; h += 8)
		for (int i = 0; i < 4; i++)
		{
			t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
			t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
		}
	for (int i = 0; i < 8; i++)
	{
		r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
		r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
	}
}

/* Packs B[k0:k0+kc, j0:j0+nc] (logical, [k, n]) into panels of NR columns;
 * columns past n are zeros. */
static void
pack_b(bool trans_b, const float *b, int ldb, int k0, int kc, int j0, int nc)
{
	for (int jp = 0; jp < nc; jp += NR)
	{
		float	   *panel = packed_b + (size_t) jp * kc;
		int			w = nc - jp < NR ? nc - jp : NR;

		if (!trans_b)
		{
			/* rows of B are contiguous: copy NR-wide strips */
			for (int p = 0; p < kc; p++)
			{
				const float *src = b + (size_t) (k0 + p) * ldb + j0 + jp;
				float	   *dst = panel + (size_t) p * NR;

				memcpy(dst, src, sizeof(float) * w);
				for (int j = w; j < NR; j++)
					dst[j] = 0.0f;
			}
		}
		else
		{
			/* B is stored [n, k]: transpose 16 x 16 blocks in registers */
			for (int jb = 0; jb < NR; jb += 16)
				for (int p0 = 0; p0 < kc; p0 += 16)
				{
					__m512		r[16];
					int			kw = kc - p0 < 16 ? kc - p0 : 16;
					__mmask16	km = kw == 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << kw) - 1);

					for (int j = 0; j < 16; j++)
						r[j] = jb + j < w ?
							_mm512_maskz_loadu_ps(km, b + (size_t) (j0 + jp + jb + j) * ldb + k0 + p0) :
							_mm512_setzero_ps();
					transpose16(r);
					for (int p = 0; p < kw; p++)
						_mm512_store_ps(panel + (size_t) (p0 + p) * NR + jb, r[p]);
				}
		}
	}
}

/*
 * c[MR rows of stride ldc, w <= NR columns] = alpha * a[MR, kc] panel[kc, NR]
 * + (accumulate ? c : beta * c).
 */
static inline void
micro_kernel(int kc, const float *a, int lda, const float *panel, float *c, int ldc,
			 int w, float alpha, float beta, bool accumulate)
{
	__m512		acc[MR][2];
	__mmask16	m0 = w >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << w) - 1);
	__mmask16	m1 = w >= 32 ? (__mmask16) 0xFFFF : w > 16 ? (__mmask16) ((1u << (w - 16)) - 1) : 0;
	__m512		va = _mm512_set1_ps(alpha);

	for (int r = 0; r < MR; r++)
		acc[r][0] = acc[r][1] = _mm512_setzero_ps();
	for (int p = 0; p < kc; p++)
	{
		__m512		b0 = _mm512_load_ps(panel + (size_t) p * NR);
		__m512		b1 = _mm512_load_ps(panel + (size_t) p * NR + 16);

#pragma GCC unroll 12
		for (int r = 0; r < MR; r++)
		{
			__m512		ar = _mm512_set1_ps(a[(size_t) r * lda + p]);

			acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
			acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
		}
	}
	for (int r = 0; r < MR; r++)
	{
		float	   *cr = c + (size_t) r * ldc;
		__m512		c0 = _mm512_mul_ps(acc[r][0], va);
		__m512		c1 = _mm512_mul_ps(acc[r][1], va);

		if (accumulate)
		{
			c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, cr));
			c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, cr + 16));
		}
		else if (beta != 0.0f)
		{
			__m512		vb = _mm512_set1_ps(beta);

			c0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, c0);
			c1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, c1);
		}
		_mm512_mask_storeu_ps(cr, m0, c0);
		if (m1)
			_mm512_mask_storeu_ps(cr + 16, m1, c1);
	}
}

void
pgf_gemm_avx512(bool trans_b, int m, int n, int k, float alpha,
				const float *a, int lda, const float *b, int ldb,
				float beta, float *c, int ldc)
{
	for (int k0 = 0; k0 < k; k0 += KC)
	{
		int			kc = k - k0 < KC ? k - k0 : KC;
		bool		accumulate = k0 > 0;

		for (int j0 = 0; j0 < n; j0 += NC)
		{
			int			nc = n - j0 < NC ? n - j0 : NC;
			int			i0;

			pack_b(trans_b, b, ldb, k0, kc, j0, nc);
			for (i0 = 0; i0 + MR <= m; i0 += MR)
				for (int jp = 0; jp < nc; jp += NR)
					micro_kernel(kc, a + (size_t) i0 * lda + k0, lda,
								 packed_b + (size_t) jp * kc,
								 c + (size_t) i0 * ldc + j0 + jp, ldc,
								 nc - jp < NR ? nc - jp : NR, alpha, beta, accumulate);
			if (i0 < m)
			{
				/* the last rows: a zero-padded copy of A and a C tile */
				int			rows = m - i0;

				memset(padded_a, 0, sizeof(padded_a));
				for (int r = 0; r < rows; r++)
					memcpy(padded_a + (size_t) r * KC, a + (size_t) (i0 + r) * lda + k0,
						   sizeof(float) * kc);
				for (int r = 0; r < rows; r++)
					memcpy(padded_c + (size_t) r * NC, c + (size_t) (i0 + r) * ldc + j0,
						   sizeof(float) * nc);
				for (int jp = 0; jp < nc; jp += NR)
					micro_kernel(kc, padded_a, KC, packed_b + (size_t) jp * kc,
								 padded_c + jp, NC, nc - jp < NR ? nc - jp : NR,
								 alpha, beta, accumulate);
				for (int r = 0; r < rows; r++)
					memcpy(c + (size_t) (i0 + r) * ldc + j0, padded_c + (size_t) r * NC,
						   sizeof(float) * nc);
			}
		}
	}
}

#endif							/* __AVX512F__ */
