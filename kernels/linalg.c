/*
 * linalg.c: dense linear algebra: GEMM (OpenBLAS above a size threshold,
 * plain loops below it, a fused row-dot kernel for up to four rows) and
 * linear layers over f32, f16, bf16 and Q8 weights, plus dequantising one
 * weight row.
 *
 * Few input rows (decoding, single recommendations) are bound by reading
 * the weights: each weight row is converted in registers and dotted with
 * up to four input rows in one pass (AVX2/FMA/F16C when the build targets
 * them, portable loops otherwise).  Many rows dequantise tiles of weight
 * rows into scratch and hand them to SGEMM.
 */
#include "kernels/kernels.h"
#include "kernels/gemm_avx512.h"
#include "kernels/vec.h"

#include <cblas.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define PGF_ROWDOT_SIMD 1
#include <immintrin.h>
#endif

/* Below this many multiply-adds a plain loop beats the BLAS call overhead. */
#define PGF_GEMM_BLAS_MACS 32768

/* Row length from which the row-dot kernel beats SGEMM for 2-4 rows. */
#define PGF_GEMM_ROWDOT_MIN_K 256

/* Up to this many input rows, linears dequantise on the fly (row dots). */
#define PGF_LINEAR_FUSED_ROWS 4

/* Floats of one weight row dequantised at a time on the fused path. */
#define PGF_LINEAR_CHUNK 512

/* Target size of one dequantised tile of weight rows (bytes). */
#ifndef PGF_LINEAR_TILE_BYTES
#define PGF_LINEAR_TILE_BYTES (256 * 1024)
#endif
#ifndef PGF_LINEAR_TILE_MIN_ROWS
#define PGF_LINEAR_TILE_MIN_ROWS 16
#endif

PgfMatrix
pgf_matrix_f32(const float *data, int rows, int cols)
{
	PgfMatrix	m;

	memset(&m, 0, sizeof(m));
	m.rows = rows;
	m.cols = cols;
	m.dtype = PGF_DTYPE_F32;
	m.data = data;
	return m;
}

/* ---- dequantisation -------------------------------------------------------- */

static inline float
q8_scale(const PgfMatrix *w, int r, int c)
{
	return w->scales[(size_t) r * (w->cols / w->quant_block) + c / w->quant_block];
}

static void
check_q8(const PgfMatrix *w)
{
	if (w->quant_block <= 0 || w->cols % w->quant_block != 0)
		pgf_fatal("Q8 weight [%d, %d] has quant_block %d, which does not divide its rows",
				  w->rows, w->cols, w->quant_block);
}

/* out[len] = w[r, c0 .. c0+len-1] as f32. */
static void
dequantise_span(float *restrict out, const PgfMatrix *w, int r, int c0, int len)
{
	size_t		base = (size_t) r * w->cols + c0;
	int			i = 0;

	switch (w->dtype)
	{
		case PGF_DTYPE_F32:
			memcpy(out, (const float *) w->data + base, sizeof(float) * len);
			break;
		case PGF_DTYPE_F16:
			{
				const uint16_t *src = (const uint16_t *) w->data + base;

#ifdef PGF_ROWDOT_SIMD
				for (; i + 8 <= len; i += 8)
					_mm256_storeu_ps(out + i,
									 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (src + i))));
#endif
				for (; i < len; i++)
					out[i] = pgf_f16_to_f32(src[i]);
			}
			break;
		case PGF_DTYPE_BF16:
			{
				const uint16_t *src = (const uint16_t *) w->data + base;

#ifdef PGF_ROWDOT_SIMD
				for (; i + 8 <= len; i += 8)
				{
					__m256i		h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) (src + i)));

					_mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
				}
#endif
				for (; i < len; i++)
					out[i] = pgf_bf16_to_f32(src[i]);
			}
			break;
		case PGF_DTYPE_Q8:
			{
				const int8_t *src = (const int8_t *) w->data + base;
				int			qb = w->quant_block;

				check_q8(w);
				while (i < len)
				{
					int			end = ((c0 + i) / qb + 1) * qb - c0;
					float		s = q8_scale(w, r, c0 + i);

					if (end > len)
						end = len;
#ifdef PGF_ROWDOT_SIMD
					for (; i + 8 <= end; i += 8)
					{
						__m256i		q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *) (src + i)));

						_mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q),
																_mm256_set1_ps(s)));
					}
#endif
					for (; i < end; i++)
						out[i] = s * (float) src[i];
				}
			}
			break;
		default:
			pgf_fatal("weight of dtype %d is not a float matrix", (int) w->dtype);
	}
}

/* out[w->cols] = row r of w as f32 (any float dtype). */
void
pgf_matrix_row(float *out, const PgfMatrix *w, int r)
{
	dequantise_span(out, w, r, 0, w->cols);
}

/* ---- fused row dots ---------------------------------------------------------- */

/*
 * sums[nb] = x_i . W[r] for nb <= 4 input rows x_i = x + i * ldx, reading
 * the weight row once.  f32 rows of W are ldw floats apart (other dtypes
 * are dense).
 */
#ifdef PGF_ROWDOT_SIMD

static inline float
hsum256(__m256 v)
{
	__m128		lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	__m128		sh = _mm_movehdup_ps(lo);

	lo = _mm_add_ps(lo, sh);
	sh = _mm_movehl_ps(sh, lo);
	return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

static inline __attribute__((always_inline)) __m256
load8(PgfDType dt, const void *row, int c)
{
	switch (dt)
	{
		case PGF_DTYPE_F16:
			return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) ((const uint16_t *) row + c)));
		case PGF_DTYPE_BF16:
			return _mm256_castsi256_ps(_mm256_slli_epi32(
														 _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) ((const uint16_t *) row + c))), 16));
		case PGF_DTYPE_Q8:
			return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
														   _mm_loadl_epi64((const __m128i *) ((const int8_t *) row + c))));
		default:
			return _mm256_loadu_ps((const float *) row + c);
	}
}

/* One weight row against NB input rows; DT and NB are constants here. */
static inline __attribute__((always_inline)) void
row_dot_simd(PgfDType dt, const int nb, const void *row, const float *scales, int qb,
			 int cols, const float *x, int ldx, float *sums)
{
	/* 4 x 8 columns per step for one or two rows, 2 x 8 for more */
	const int	unroll = nb <= 2 ? 4 : 2;
	__m256		acc[4][4];
	int			c = 0;

	for (int i = 0; i < 4; i++)
		for (int u = 0; u < 4; u++)
			acc[i][u] = _mm256_setzero_ps();
	if (dt != PGF_DTYPE_Q8)
	{
		for (; c + 8 * unroll <= cols; c += 8 * unroll)
			for (int u = 0; u < unroll; u++)
			{
				__m256		wv = load8(dt, row, c + 8 * u);

				for (int i = 0; i < nb; i++)
					acc[i][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t) i * ldx + c + 8 * u),
												acc[i][u]);
			}
		for (; c + 8 <= cols; c += 8)
		{
			__m256		wv = load8(dt, row, c);

			for (int i = 0; i < nb; i++)
				acc[i][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t) i * ldx + c), acc[i][0]);
		}
	}
	else if (qb % 32 == 0)
	{
		for (; c < cols; c += qb)
		{
			__m256		s = _mm256_set1_ps(scales[c / qb]);

			for (int cb = c; cb < c + qb; cb += 8 * unroll)
				for (int u = 0; u < unroll; u++)
				{
					__m256		wv = _mm256_mul_ps(load8(dt, row, cb + 8 * u), s);

					for (int i = 0; i < nb; i++)
						acc[i][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t) i * ldx + cb + 8 * u),
													acc[i][u]);
				}
		}
	}
	else if (qb % 8 == 0)
	{
		for (; c < cols; c += qb)
		{
			__m256		s = _mm256_set1_ps(scales[c / qb]);

			for (int cb = c; cb < c + qb; cb += 8)
			{
				__m256		wv = _mm256_mul_ps(load8(dt, row, cb), s);

				for (int i = 0; i < nb; i++)
					acc[i][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t) i * ldx + cb), acc[i][0]);
			}
		}
	}
	for (int i = 0; i < nb; i++)
		sums[i] = hsum256(_mm256_add_ps(_mm256_add_ps(acc[i][0], acc[i][1]),
										_mm256_add_ps(acc[i][2], acc[i][3])));
	/* the tail, and Q8 blocks that are not a multiple of 8 */
	for (; c < cols; c++)
	{
		float		wv;

		switch (dt)
		{
			case PGF_DTYPE_F16:
				wv = pgf_f16_to_f32(((const uint16_t *) row)[c]);
				break;
			case PGF_DTYPE_BF16:
				wv = pgf_bf16_to_f32(((const uint16_t *) row)[c]);
				break;
			case PGF_DTYPE_Q8:
				wv = scales[c / qb] * ((const int8_t *) row)[c];
				break;
			default:
				wv = ((const float *) row)[c];
		}
		for (int i = 0; i < nb; i++)
			sums[i] += wv * x[(size_t) i * ldx + c];
	}
}

#define ROW_DOT_NB(DT) \
	switch (nb) \
	{ \
		case 1: row_dot_simd(DT, 1, row, scales, qb, cols, x, ldx, sums); break; \
		case 2: row_dot_simd(DT, 2, row, scales, qb, cols, x, ldx, sums); break; \
		case 3: row_dot_simd(DT, 3, row, scales, qb, cols, x, ldx, sums); break; \
		default: row_dot_simd(DT, 4, row, scales, qb, cols, x, ldx, sums); break; \
	}

static void
row_dot(const PgfMatrix *w, size_t ldw, int r, const float *x, int ldx, int nb, float *sums)
{
	int			cols = w->cols;
	int			qb = w->quant_block;
	const float *scales = NULL;
	const void *row;

	switch (w->dtype)
	{
		case PGF_DTYPE_F32:
			row = (const float *) w->data + (size_t) r * ldw;
			ROW_DOT_NB(PGF_DTYPE_F32);
			break;
		case PGF_DTYPE_F16:
			row = (const uint16_t *) w->data + (size_t) r * cols;
			ROW_DOT_NB(PGF_DTYPE_F16);
			break;
		case PGF_DTYPE_BF16:
			row = (const uint16_t *) w->data + (size_t) r * cols;
			ROW_DOT_NB(PGF_DTYPE_BF16);
			break;
		case PGF_DTYPE_Q8:
			row = (const int8_t *) w->data + (size_t) r * cols;
			scales = w->scales + (size_t) r * (cols / qb);
			ROW_DOT_NB(PGF_DTYPE_Q8);
			break;
		default:
			pgf_fatal("weight of dtype %d is not a float matrix", (int) w->dtype);
	}
}

#else							/* portable: dequantise a chunk, then dot */

static void
row_dot(const PgfMatrix *w, size_t ldw, int r, const float *x, int ldx, int nb, float *sums)
{
	float		chunk[PGF_LINEAR_CHUNK] __attribute__((aligned(64)));
	int			cols = w->cols;

	for (int i = 0; i < nb; i++)
		sums[i] = 0;
	if (w->dtype == PGF_DTYPE_F32)
	{
		const float *row = (const float *) w->data + (size_t) r * ldw;

		for (int i = 0; i < nb; i++)
			sums[i] = pgf_vdot(row, x + (size_t) i * ldx, cols);
		return;
	}
	for (int c0 = 0; c0 < cols; c0 += PGF_LINEAR_CHUNK)
	{
		int			len = cols - c0 < PGF_LINEAR_CHUNK ? cols - c0 : PGF_LINEAR_CHUNK;

		dequantise_span(chunk, w, r, c0, len);
		for (int i = 0; i < nb; i++)
			sums[i] += pgf_vdot(chunk, x + (size_t) i * ldx + c0, len);
	}
}

#endif

/*
 * y[n, rows] (row stride ldy) = alpha x[n, cols] W^T + beta y, x with row
 * stride ldx, reading W once per PGF_LINEAR_FUSED_ROWS input rows.
 */
static void
rows_dot(const PgfMatrix *w, size_t ldw, const float *x, int ldx, int n,
		 float alpha, float beta, float *y, int ldy)
{
	if (w->dtype == PGF_DTYPE_Q8)
		check_q8(w);
	for (int i0 = 0; i0 < n; i0 += PGF_LINEAR_FUSED_ROWS)
	{
		int			nb = n - i0 < PGF_LINEAR_FUSED_ROWS ? n - i0 : PGF_LINEAR_FUSED_ROWS;
		const float *xb = x + (size_t) i0 * ldx;

		for (int r = 0; r < w->rows; r++)
		{
			float		sums[PGF_LINEAR_FUSED_ROWS];

			row_dot(w, ldw, r, xb, ldx, nb, sums);
			for (int i = 0; i < nb; i++)
			{
				float	   *yi = y + (size_t) (i0 + i) * ldy + r;

				*yi = alpha * sums[i] + (beta == 0.0f ? 0.0f : beta * *yi);
			}
		}
	}
}

/* ---- GEMM ------------------------------------------------------------------ */

/* c[m, n] (row stride ldc) = beta * c; beta == 0 clears (NaN-safe). */
static void
scale_output(float *c, int m, int n, int ldc, float beta)
{
	if (beta == 1.0f)
		return;
	for (int i = 0; i < m; i++)
	{
		float	   *ci = c + (size_t) i * ldc;

		if (beta == 0.0f)
			memset(ci, 0, sizeof(float) * n);
		else
			for (int j = 0; j < n; j++)
				ci[j] *= beta;
	}
}

/* Dot products shorter than this are done as row updates (see below). */
#define PGF_GEMM_SHORT_DOT 16
/* Largest transposed B kept on the stack (16 KiB). */
#define PGF_GEMM_STACK_FLOATS 4096

/* The loop kernel for small shapes; same contract as pgf_gemm. */
static void
gemm_loops(bool trans_a, bool trans_b, int m, int n, int k,
		   float alpha, const float *a, int lda, const float *b, int ldb,
		   float beta, float *c, int ldc)
{
	scale_output(c, m, n, ldc, beta);
	if (k == 0 || alpha == 0.0f)
		return;
	if (!trans_a && !trans_b)
	{
		/* c_i += sum_p a[i,p] * b_p: rows of B, contiguous */
		for (int i = 0; i < m; i++)
			for (int p = 0; p < k; p++)
				pgf_vaxpy(c + (size_t) i * ldc, alpha * a[(size_t) i * lda + p],
						  b + (size_t) p * ldb, n);
	}
	else if (!trans_a && trans_b && k < PGF_GEMM_SHORT_DOT && (size_t) k * n <= PGF_GEMM_STACK_FLOATS)
	{
		/*
		 * Short rows (a linear layer of few inputs): dot products of k
		 * values cost more in reductions than in multiplies, so transpose
		 * B onto the stack and accumulate whole rows of C instead.
		 */
		float		bt[PGF_GEMM_STACK_FLOATS];

		for (int j = 0; j < n; j++)
			for (int p = 0; p < k; p++)
				bt[(size_t) p * n + j] = b[(size_t) j * ldb + p];
		for (int i = 0; i < m; i++)
			for (int p = 0; p < k; p++)
				pgf_vaxpy(c + (size_t) i * ldc, alpha * a[(size_t) i * lda + p],
						  bt + (size_t) p * n, n);
	}
	else if (!trans_a && trans_b)
	{
		/* c[i,j] += a_i . b_j: dot products of rows */
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++)
				c[(size_t) i * ldc + j] += alpha *
					pgf_vdot(a + (size_t) i * lda, b + (size_t) j * ldb, k);
	}
	else if (trans_a && !trans_b)
	{
		/* A is [k, m]: c_i += sum_p a[p,i] * b_p */
		for (int p = 0; p < k; p++)
			for (int i = 0; i < m; i++)
				pgf_vaxpy(c + (size_t) i * ldc, alpha * a[(size_t) p * lda + i],
						  b + (size_t) p * ldb, n);
	}
	else
	{
		/* A is [k, m], B is [n, k] */
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++)
			{
				float		s = 0;

				for (int p = 0; p < k; p++)
					s += a[(size_t) p * lda + i] * b[(size_t) j * ldb + p];
				c[(size_t) i * ldc + j] += alpha * s;
			}
	}
}

/*
 * C[m, n] = alpha op(A) op(B) + beta C.  Shapes: op(A) [m, k], op(B) [k, n];
 * A is stored [m, k] or, when trans_a, [k, m] (row stride lda); B is
 * stored [k, n] or, when trans_b, [n, k] (row stride ldb).  A single row
 * or column of output goes to GEMV.
 */
void
pgf_gemm(bool trans_a, bool trans_b, int m, int n, int k,
		 float alpha, const float *a, int lda,
		 const float *b, int ldb,
		 float beta, float *c, int ldc)
{
	if (m <= 0 || n <= 0)
		return;
	if ((double) m * n * k < PGF_GEMM_BLAS_MACS || k <= 0)
	{
		gemm_loops(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	if (!trans_a && trans_b && m <= PGF_LINEAR_FUSED_ROWS && m > 1 &&
		k >= PGF_GEMM_ROWDOT_MIN_K)
	{
		/* a few long rows times B^T: one pass over B (SGEMM would pack it) */
		PgfMatrix	bm = pgf_matrix_f32(b, n, k);

		rows_dot(&bm, ldb, a, lda, m, alpha, beta, c, ldc);
		return;
	}
	if (m == 1)
	{
		/* c[1, n] = alpha a[1, k] op(B) + beta c */
		int			inc_a = trans_a ? lda : 1;

		if (beta == 0.0f)
			memset(c, 0, sizeof(float) * n);
		if (trans_b)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb,
						a, inc_a, beta, c, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb,
						a, inc_a, beta, c, 1);
		return;
	}
	if (n == 1)
	{
		/* c[m, 1] = alpha op(A) b[k, 1] + beta c, c with stride ldc */
		int			inc_b = trans_b ? 1 : ldb;

		if (beta == 0.0f)
			for (int i = 0; i < m; i++)
				c[(size_t) i * ldc] = 0;
		if (trans_a)
			cblas_sgemv(CblasRowMajor, CblasTrans, k, m, alpha, a, lda,
						b, inc_b, beta, c, ldc);
		else
			cblas_sgemv(CblasRowMajor, CblasNoTrans, m, k, alpha, a, lda,
						b, inc_b, beta, c, ldc);
		return;
	}
#ifdef PGF_HAVE_GEMM_AVX512
	if (!trans_a)
	{
		pgf_gemm_avx512(trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
#endif
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
				trans_b ? CblasTrans : CblasNoTrans, m, n, k,
				alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- linear layers --------------------------------------------------------- */

/* Rows of W dequantised per tile on the tiled path. */
static int
linear_tile_rows(const PgfMatrix *w)
{
	size_t		t = PGF_LINEAR_TILE_BYTES / ((size_t) w->cols * sizeof(float));

	if (t < PGF_LINEAR_TILE_MIN_ROWS)
		t = PGF_LINEAR_TILE_MIN_ROWS;
	if (t > (size_t) w->rows)
		t = w->rows;
	return (int) t;
}

static bool
linear_is_fused(const PgfMatrix *w, int n)
{
	return w->dtype != PGF_DTYPE_F32 && n <= PGF_LINEAR_FUSED_ROWS;
}

size_t
pgf_linear_scratch_bytes(const PgfMatrix *w, int n)
{
	if (w->dtype == PGF_DTYPE_F32 || linear_is_fused(w, n) || w->rows <= 0)
		return 0;
	return pgf_arena_round((size_t) linear_tile_rows(w) * w->cols * sizeof(float));
}

/* y[n, rows] = beta y + x W^T through dequantised tiles of W and GEMM. */
static void
linear_tiled(float *y, const float *x, int n, const PgfMatrix *w, float beta,
			 PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	int			tile_rows = linear_tile_rows(w);
	int			cols = w->cols;
	float	   *tile = pgf_arena_floats(scratch, (size_t) tile_rows * cols);

	for (int r0 = 0; r0 < w->rows; r0 += tile_rows)
	{
		int			tr = w->rows - r0 < tile_rows ? w->rows - r0 : tile_rows;

		for (int r = 0; r < tr; r++)
			dequantise_span(tile + (size_t) r * cols, w, r0 + r, 0, cols);
		pgf_gemm(false, true, n, tr, cols, 1.0f, x, cols, tile, cols,
				 beta, y + r0, w->rows);
	}
	pgf_arena_reset(scratch, mark);
}

static void
linear_impl(float *y, const float *x, int n, const PgfMatrix *w,
			const float *bias, PgfArena *scratch, float beta)
{
	if (n <= 0 || w->rows <= 0)
		return;
	if (y < x + (size_t) n * w->cols && x < y + (size_t) n * w->rows)
		pgf_fatal("linear layer [%d, %d]: the output overlaps the input", w->rows, w->cols);
	if (w->dtype == PGF_DTYPE_F32)
		pgf_gemm(false, true, n, w->rows, w->cols, 1.0f, x, w->cols,
				 (const float *) w->data, w->cols, beta, y, w->rows);
	else if (linear_is_fused(w, n) || scratch == NULL)
		rows_dot(w, w->cols, x, w->cols, n, 1.0f, beta, y, w->rows);
	else
		linear_tiled(y, x, n, w, beta, scratch);
	if (bias)
		pgf_add_bias(y, bias, n, w->rows);
}

/*
 * y[n, w->rows] = x[n, w->cols] W^T + bias.  Quantised weights use
 * `scratch` (pgf_linear_scratch_bytes) when n is large; with scratch NULL
 * they fall back to the slower fused path.
 */
void
pgf_linear(float *y, const float *x, int n, const PgfMatrix *w,
		   const float *bias, PgfArena *scratch)
{
	linear_impl(y, x, n, w, bias, scratch, 0.0f);
}

/* y[n, w->rows] += x[n, w->cols] W^T + bias */
void
pgf_linear_acc(float *y, const float *x, int n, const PgfMatrix *w,
			   const float *bias, PgfArena *scratch)
{
	linear_impl(y, x, n, w, bias, scratch, 1.0f);
}
