/*
 * linalg.c: dense linear algebra: GEMM (OpenBLAS above a size threshold,
 * plain loops below it) and linear layers over f32, f16, bf16 and Q8
 * weights, plus dequantising one weight row.
 */
#include "kernels/kernels.h"
#include "kernels/vec.h"

#include <cblas.h>
#include <string.h>

#ifdef __F16C__
#include <immintrin.h>
#endif

/* Below this many multiply-adds a plain loop beats the BLAS call overhead. */
#define PGF_GEMM_BLAS_MACS 32768

/* Up to this many input rows, quantised linears dequantise on the fly. */
#define PGF_LINEAR_FUSED_ROWS 4

/* Floats of one weight row dequantised at a time on the fused path. */
#define PGF_LINEAR_CHUNK 512

/* Target size of one dequantised tile of weight rows (bytes). */
#define PGF_LINEAR_TILE_BYTES (256 * 1024)
#define PGF_LINEAR_TILE_MIN_ROWS 16

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
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
				trans_b ? CblasTrans : CblasNoTrans, m, n, k,
				alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- dequantisation -------------------------------------------------------- */

/* out[len] = w[r, c0 .. c0+len-1] as f32. */
static void
dequantise_span(float *restrict out, const PgfMatrix *w, int r, int c0, int len)
{
	size_t		base = (size_t) r * w->cols + c0;

	switch (w->dtype)
	{
		case PGF_DTYPE_F32:
			memcpy(out, (const float *) w->data + base, sizeof(float) * len);
			break;
		case PGF_DTYPE_F16:
			{
				const uint16_t *src = (const uint16_t *) w->data + base;
				int			i = 0;

#ifdef __F16C__
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

				for (int i = 0; i < len; i++)
					out[i] = pgf_bf16_to_f32(src[i]);
			}
			break;
		case PGF_DTYPE_Q8:
			{
				const int8_t *src = (const int8_t *) w->data + base;
				int			qb = w->quant_block;
				const float *scales;
				int			i = 0;

				if (qb <= 0 || w->cols % qb != 0)
					pgf_fatal("Q8 weight [%d, %d] has quant_block %d, which does not divide its rows",
							  w->rows, w->cols, qb);
				scales = w->scales + (size_t) r * (w->cols / qb);
				while (i < len)
				{
					int			blk = (c0 + i) / qb;
					int			end = (blk + 1) * qb - c0;
					float		s = scales[blk];

					if (end > len)
						end = len;
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

/*
 * y[n, rows] = beta y + x[n, cols] W^T, dequantising W one chunk of one row
 * at a time and reusing it for up to PGF_LINEAR_FUSED_ROWS input rows.
 */
static void
linear_fused(float *y, const float *x, int n, const PgfMatrix *w, float beta)
{
	float		chunk[PGF_LINEAR_CHUNK] __attribute__((aligned(64)));
	int			rows = w->rows,
				cols = w->cols;

	for (int i0 = 0; i0 < n; i0 += PGF_LINEAR_FUSED_ROWS)
	{
		int			nb = n - i0 < PGF_LINEAR_FUSED_ROWS ? n - i0 : PGF_LINEAR_FUSED_ROWS;

		for (int r = 0; r < rows; r++)
		{
			float		acc[PGF_LINEAR_FUSED_ROWS] = {0};

			for (int c0 = 0; c0 < cols; c0 += PGF_LINEAR_CHUNK)
			{
				int			len = cols - c0 < PGF_LINEAR_CHUNK ? cols - c0 : PGF_LINEAR_CHUNK;

				dequantise_span(chunk, w, r, c0, len);
				for (int i = 0; i < nb; i++)
					acc[i] += pgf_vdot(chunk, x + (size_t) (i0 + i) * cols + c0, len);
			}
			for (int i = 0; i < nb; i++)
			{
				float	   *yi = y + (size_t) (i0 + i) * rows + r;

				*yi = (beta == 0.0f ? 0.0f : *yi) + acc[i];
			}
		}
	}
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
	if (w->dtype == PGF_DTYPE_F32)
		pgf_gemm(false, true, n, w->rows, w->cols, 1.0f, x, w->cols,
				 (const float *) w->data, w->cols, beta, y, w->rows);
	else if (linear_is_fused(w, n) || scratch == NULL)
		linear_fused(y, x, n, w, beta);
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
