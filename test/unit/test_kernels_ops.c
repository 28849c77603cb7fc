/*
 * test_kernels_ops.c: unit tests of the dense kernels (GEMM, linear layers
 * over every weight dtype, embedding gather, norms, softmax, activations,
 * RoPE, elementwise ops, top-k), each against a naive loop written here
 * and against PyTorch references from test/gen/golden_kernels.py.
 *
 * Tolerances are relative to the largest reference value of each tensor:
 * f32 kernels 1e-5 (PyTorch runs in float64), quantised weights 1e-5
 * against PyTorch on the dequantised weights, RoPE 2e-6, GELU 1e-6.
 */
#include "test/unit/kernels_golden.h"
#include "kernels/vec.h"

/* ---- GEMM ------------------------------------------------------------------ */

static void
naive_gemm(bool ta, bool tb, int m, int n, int k, float alpha,
		   const float *a, int lda, const float *b, int ldb,
		   float beta, float *c, int ldc)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++)
		{
			double		s = 0;

			for (int p = 0; p < k; p++)
				s += (double) (ta ? a[p * lda + i] : a[i * lda + p]) *
					(tb ? b[j * ldb + p] : b[p * ldb + j]);
			c[i * ldc + j] = (float) (alpha * s + (beta == 0 ? 0.0 : beta * (double) c[i * ldc + j]));
		}
}

static void
test_gemm_golden(void)
{
	static const char *sizes[] = {"small", "blas", "row", "col"};
	static const char *ops[] = {"nn", "nt", "tn", "tt"};

	for (int s = 0; s < 4; s++)
		for (int o = 0; o < 4; o++)
		{
			const int32_t *dims = golden_i32(8, "gemm.%s_%s.dims", sizes[s], ops[o]);
			const float *ab = golden_f32(2, "gemm.%s_%s.f", sizes[s], ops[o]);
			int			ta = dims[0],
						tb = dims[1],
						m = dims[2],
						n = dims[3],
						k = dims[4],
						lda = dims[5],
						ldb = dims[6],
						ldc = dims[7];
			const float *a = golden_f32(-1, "gemm.%s_%s.a", sizes[s], ops[o]);
			const float *b = golden_f32(-1, "gemm.%s_%s.b", sizes[s], ops[o]);
			const float *c0 = golden_f32((long) m * ldc, "gemm.%s_%s.c", sizes[s], ops[o]);
			const float *want = golden_f32((long) m * ldc, "gemm.%s_%s.out", sizes[s], ops[o]);
			float	   *c = test_copy(c0, (size_t) m * ldc);
			float	   *naive = test_copy(c0, (size_t) m * ldc);

			pgf_gemm(ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc);
			naive_gemm(ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], naive, ldc);
			check_rel(c, want, (size_t) m * ldc, 1e-5,
					  "gemm %s %s [%d,%d,%d] strides %d/%d/%d vs torch", sizes[s], ops[o],
					  m, n, k, lda, ldb, ldc);
			check_rel(c, naive, (size_t) m * ldc, 1e-5, "gemm %s %s vs naive loop",
					  sizes[s], ops[o]);
			free(c);
			free(naive);
		}
}

/* Shapes around the BLAS threshold and GEMV cases, every transpose. */
static void
test_gemm_sweep(void)
{
	static const int shapes[][3] = {
		{1, 1, 1}, {2, 3, 0}, {3, 1, 17}, {1, 64, 700}, {64, 1, 700}, {31, 33, 31},
		{32, 32, 32}, {33, 32, 33}, {7, 300, 20}, {65, 70, 90}, {1, 3, 5}, {4, 1, 2}
	};
	double		worst = 0;
	bool		nan_free = true;

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (int op = 0; op < 4; op++)
		{
			int			m = shapes[s][0],
						n = shapes[s][1],
						k = shapes[s][2];
			bool		ta = op & 1,
						tb = op & 2;
			int			lda = (ta ? m : k) + 1,
						ldb = (tb ? k : n) + 2,
						ldc = n + 3;
			float	   *a = test_rand_floats((size_t) (ta ? k : m) * lda + 1, 1);
			float	   *b = test_rand_floats((size_t) (tb ? n : k) * ldb + 1, 1);
			float	   *c = malloc(sizeof(float) * m * ldc);
			float	   *want = malloc(sizeof(float) * m * ldc);
			double		e;

			/* beta 0 must ignore whatever C held, NaN included */
			for (int i = 0; i < m * ldc; i++)
				c[i] = want[i] = NAN;
			for (int i = 0; i < m; i++)
				for (int j = 0; j < n; j++)
					want[i * ldc + j] = 0;
			naive_gemm(ta, tb, m, n, k, 1.25f, a, lda, b, ldb, 0.0f, want, ldc);
			pgf_gemm(ta, tb, m, n, k, 1.25f, a, lda, b, ldb, 0.0f, c, ldc);
			for (int i = 0; i < m; i++)
				for (int j = 0; j < n; j++)
					nan_free &= !isnan(c[i * ldc + j]);
			/* the padding between rows is untouched */
			for (int i = 0; i < m; i++)
				for (int j = n; j < ldc; j++)
					nan_free &= isnan(c[i * ldc + j]);
			/* compare the m x n results, packed */
			for (int i = 0; i < m; i++)
				for (int j = 0; j < n; j++)
				{
					c[i * n + j] = c[i * ldc + j];
					want[i * n + j] = want[i * ldc + j];
				}
			e = tap_rel_error(c, want, (size_t) m * n);
			worst = e > worst ? e : worst;
			free(a);
			free(b);
			free(c);
			free(want);
		}
	tap_ok(worst <= 1e-5, "gemm sweep over 48 shapes x transposes vs naive (relative error %.2g)",
		   worst);
	tap_ok(nan_free, "gemm with beta 0 overwrites NaN output and leaves row padding alone");
}

/* ---- linear layers --------------------------------------------------------- */

static const char *dtypes[] = {"f32", "f16", "bf16", "q8"};

static PgfMatrix
golden_matrix(const char *fmt, const char *arg)
{
	return pgf_tensor_matrix(golden_tensor(fmt, arg));
}

static void
naive_linear(float *y, const float *x, int n, const float *w, int rows, int cols,
			 const float *bias)
{
	for (int i = 0; i < n; i++)
		for (int r = 0; r < rows; r++)
		{
			double		s = bias ? bias[r] : 0;

			for (int c = 0; c < cols; c++)
				s += (double) x[i * cols + c] * w[r * cols + c];
			y[i * rows + r] = (float) s;
		}
}

static void
test_linear(void)
{
	static const int ns[] = {1, 3, 64};
	const float *bias = golden_f32(96, "linear.bias");

	for (int d = 0; d < 4; d++)
	{
		PgfMatrix	w = golden_matrix("linear.%s.w", dtypes[d]);
		const float *deq = golden_f32((long) w.rows * w.cols, "linear.%s.deq", dtypes[d]);

		for (int t = 0; t < 3; t++)
		{
			int			n = ns[t];
			const float *x = golden_f32((long) n * w.cols, "linear.n%d.x", n);
			const float *want = golden_f32((long) n * w.rows, "linear.%s.n%d.out", dtypes[d], n);
			size_t		bytes = pgf_linear_scratch_bytes(&w, n);
			PgfArena	arena = test_arena(bytes);
			float	   *y = malloc(sizeof(float) * n * w.rows);
			float	   *naive = malloc(sizeof(float) * n * w.rows);

			for (int i = 0; i < n * w.rows; i++)
				y[i] = NAN;
			pgf_linear(y, x, n, &w, bias, &arena);
			naive_linear(naive, x, n, deq, w.rows, w.cols, bias);
			check_rel(y, want, (size_t) n * w.rows, 1e-5,
					  "linear %s [%d,%d] n=%d vs torch on dequantised weights (scratch %zu bytes, used %zu)",
					  dtypes[d], w.rows, w.cols, n, bytes, arena.high_water);
			check_rel(y, naive, (size_t) n * w.rows, 1e-5,
					  "linear %s n=%d vs naive loop", dtypes[d], n);
			test_arena_free(&arena);
			free(y);
			free(naive);
		}
	}
}

/* pgf_linear_acc, the no-scratch fallback and a Q8 block straddling chunks. */
static void
test_linear_variants(void)
{
	PgfMatrix	wq8 = golden_matrix("linear.%s.w", "q8");
	const float *deq = golden_f32((long) wq8.rows * wq8.cols, "linear.q8.deq");
	const float *x = golden_f32(64L * wq8.cols, "linear.n64.x");
	const float *want = golden_f32(64L * wq8.rows, "linear.q8.n64.out");
	const float *bias = golden_f32(96, "linear.bias");
	float	   *y = malloc(sizeof(float) * 64 * wq8.rows);
	float	   *y0 = test_rand_floats(64 * wq8.rows, 1);
	float	   *acc = test_copy(y0, 64 * wq8.rows);
	float	   *naive = malloc(sizeof(float) * 64 * wq8.rows);
	PgfArena	arena = test_arena(pgf_linear_scratch_bytes(&wq8, 64));

	pgf_linear(y, x, 64, &wq8, bias, NULL);
	check_rel(y, want, 64 * wq8.rows, 1e-5, "linear q8 n=64 without scratch (fused fallback) vs torch");

	pgf_linear_acc(acc, x, 64, &wq8, bias, &arena);
	naive_linear(naive, x, 64, deq, wq8.rows, wq8.cols, bias);
	pgf_add(naive, y0, 64 * wq8.rows);
	check_rel(acc, naive, 64 * wq8.rows, 1e-5, "linear_acc q8 n=64 (tiled) adds to y");

	{
		PgfMatrix	w32 = golden_matrix("linear.%s.w", "f32");
		float	   *acc1 = test_copy(y0, w32.rows);

		pgf_linear_acc(acc1, x, 1, &w32, NULL, NULL);
		naive_linear(naive, x, 1, (const float *) w32.data, w32.rows, w32.cols, NULL);
		pgf_add(naive, y0, w32.rows);
		check_rel(acc1, naive, w32.rows, 1e-5, "linear_acc f32 n=1 (GEMV) adds to y");
		free(acc1);
	}

	/* Q8, quant_block 48: blocks straddle the 512-float dequantisation chunk */
	{
		int			rows = 40,
					cols = 960,
					qb = 48;
		int8_t	   *q = malloc(rows * cols);
		float	   *scales = malloc(sizeof(float) * rows * cols / qb);
		float	   *w = malloc(sizeof(float) * rows * cols);
		float	   *xs = test_rand_floats(6 * cols, 1);
		float	   *ys = malloc(sizeof(float) * 6 * rows);
		float	   *ref = malloc(sizeof(float) * 6 * rows);
		PgfMatrix	m;
		PgfArena	a2;
		double		e1,
					e6;

		for (int i = 0; i < rows * cols / qb; i++)
			scales[i] = 0.001f + 0.01f * (test_rand() + 1.0f);
		for (int i = 0; i < rows * cols; i++)
		{
			q[i] = (int8_t) (int) (test_rand() * 127.0f);
			w[i] = q[i] * scales[i / qb];
		}
		memset(&m, 0, sizeof(m));
		m.rows = rows;
		m.cols = cols;
		m.dtype = PGF_DTYPE_Q8;
		m.data = q;
		m.scales = scales;
		m.quant_block = qb;
		a2 = test_arena(pgf_linear_scratch_bytes(&m, 6));
		naive_linear(ref, xs, 6, w, rows, cols, NULL);
		pgf_linear(ys, xs, 1, &m, NULL, &a2);
		e1 = tap_rel_error(ys, ref, rows);
		pgf_linear(ys, xs, 6, &m, NULL, NULL);
		e6 = tap_rel_error(ys, ref, 6 * rows);
		tap_ok(e1 <= 1e-5 && e6 <= 1e-5,
			   "linear q8 quant_block 48 (blocks across chunks), n=1 and n=6 (rows 4 + 2) vs naive (%.2g, %.2g)",
			   e1, e6);
		pgf_linear(ys, xs, 6, &m, NULL, &a2);
		check_rel(ys, ref, 6 * rows, 1e-5, "linear q8 quant_block 48 n=6 through tiles vs naive");
		test_arena_free(&a2);
		free(q);
		free(scales);
		free(w);
		free(xs);
		free(ys);
		free(ref);
	}
	test_arena_free(&arena);
	free(y);
	free(y0);
	free(acc);
	free(naive);
}

/*
 * Every dtype on odd shapes: columns not a multiple of the vector width
 * (tails), Q8 blocks of 4 (the scalar path), one to nine input rows, with
 * and without scratch, against a naive loop on weights dequantised here.
 */
static void
test_linear_odd_shapes(void)
{
	static const PgfDType dts[] = {PGF_DTYPE_F32, PGF_DTYPE_F16, PGF_DTYPE_BF16, PGF_DTYPE_Q8};
	int			rows = 37,
				cols = 100,
				qb = 4;

	for (int d = 0; d < 4; d++)
	{
		float	   *w = malloc(sizeof(float) * rows * cols);
		uint16_t   *h = malloc(sizeof(uint16_t) * rows * cols);
		int8_t	   *q = malloc(rows * cols);
		float	   *scales = malloc(sizeof(float) * rows * cols / qb);
		float	   *x = test_rand_floats(9 * cols, 1);
		float	   *bias = test_rand_floats(rows, 1);
		float	   *y = malloc(sizeof(float) * 9 * rows);
		float	   *ref = malloc(sizeof(float) * 9 * rows);
		PgfMatrix	m = pgf_matrix_f32(w, rows, cols);
		double		worst = 0;

		for (int i = 0; i < rows * cols; i++)
		{
			float		v = test_rand();

			switch (dts[d])
			{
				case PGF_DTYPE_F16:
					h[i] = (uint16_t) (0x3000 + ((int) ((v + 1) * 3000) & 0x3fff)) ^
						(v < 0 ? 0x8000 : 0);
					w[i] = pgf_f16_to_f32(h[i]);
					break;
				case PGF_DTYPE_BF16:
					h[i] = (uint16_t) (pgf_float_bits(v) >> 16);
					w[i] = pgf_bf16_to_f32(h[i]);
					break;
				case PGF_DTYPE_Q8:
					if (i % qb == 0)
						scales[i / qb] = 0.01f * (1.5f + v);
					q[i] = (int8_t) (int) (v * 127);
					w[i] = scales[i / qb] * q[i];
					break;
				default:
					w[i] = v;
			}
		}
		if (dts[d] != PGF_DTYPE_F32)
		{
			m.dtype = dts[d];
			m.data = dts[d] == PGF_DTYPE_Q8 ? (const void *) q : (const void *) h;
			m.scales = scales;
			m.quant_block = qb;
		}
		for (int n = 1; n <= 9; n++)
			for (int use_scratch = 0; use_scratch < 2; use_scratch++)
			{
				PgfArena	a = test_arena(pgf_linear_scratch_bytes(&m, n));
				double		e;

				naive_linear(ref, x, n, w, rows, cols, bias);
				pgf_linear(y, x, n, &m, bias, use_scratch ? &a : NULL);
				e = tap_rel_error(y, ref, (size_t) n * rows);
				worst = e > worst ? e : worst;
				test_arena_free(&a);
			}
		tap_ok(worst <= 1e-5, "linear %s [37, 100] (q8 block 4), n = 1..9, with and without scratch, vs naive (%.2g)",
			   dtypes[d], worst);
		free(w);
		free(h);
		free(q);
		free(scales);
		free(x);
		free(bias);
		free(y);
		free(ref);
	}
}

/* pgf_matrix_row and pgf_embedding_gather for every dtype. */
static void
test_embedding(void)
{
	static const int32_t ids[] = {0, 5, 95, -1, 96, 42};

	for (int d = 0; d < 4; d++)
	{
		PgfMatrix	w = golden_matrix("linear.%s.w", dtypes[d]);
		const float *deq = golden_f32((long) w.rows * w.cols, "linear.%s.deq", dtypes[d]);
		float	   *out = malloc(sizeof(float) * 6 * w.cols);
		float	   *want = calloc(6 * w.cols, sizeof(float));

		for (int i = 0; i < 6; i++)
			if (ids[i] >= 0 && ids[i] < w.rows)
				memcpy(want + i * w.cols, deq + ids[i] * w.cols, sizeof(float) * w.cols);
		pgf_embedding_gather(out, &w, ids, 6);
		tap_ok(memcmp(out, want, sizeof(float) * 6 * w.cols) == 0,
			   "embedding gather %s equals the Python dequantisation; ids out of range give zeros",
			   dtypes[d]);
		free(out);
		free(want);
	}
}

static void
test_half_conversion(void)
{
	static const struct
	{
		uint16_t	bits;
		float		value;
	}			cases[] = {
		{0x0000, 0.0f}, {0x8000, -0.0f}, {0x3c00, 1.0f}, {0xc000, -2.0f},
		{0x7bff, 65504.0f}, {0x0001, 0x1p-24f}, {0x03ff, 1023 * 0x1p-24f},
		{0x0400, 0x1p-14f}, {0x3555, 0.333251953125f}, {0x7c00, INFINITY},
		{0xfc00, -INFINITY}
	};
	bool		ok = true;
	uint16_t	nan_bits = 0x7e00;
	PgfMatrix	m;
	float		row[16];
	uint16_t	data[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		float		v = pgf_f16_to_f32(cases[i].bits);

		ok &= v == cases[i].value && signbit(v) == signbit(cases[i].value);
	}
	ok &= isnan(pgf_f16_to_f32(nan_bits));
	/* the vector path (F16C) agrees with the scalar one */
	for (int i = 0; i < 16; i++)
		data[i] = i < 11 ? cases[i].bits : (uint16_t) (0x1234 * i);
	m = pgf_matrix_f32(NULL, 1, 16);
	m.dtype = PGF_DTYPE_F16;
	m.data = data;
	pgf_matrix_row(row, &m, 0);
	for (int i = 0; i < 16; i++)
		ok &= pgf_float_bits(row[i]) == pgf_float_bits(pgf_f16_to_f32(data[i]));
	tap_ok(ok, "f16 -> f32 conversion is exact (zeros, subnormals, max, infinities, NaN)");
}

/* ---- norms, softmax, activations -------------------------------------------- */

static void
test_norms(void)
{
	int			n = 13,
				d = 80;
	const float *x = golden_f32(n * d, "norm.x");
	const float *gamma = golden_f32(d, "norm.gamma");
	const float *beta = golden_f32(d, "norm.beta");
	const float *w = golden_f32(d, "norm.w");
	const float *eps = golden_f32(2, "norm.f");
	float	   *out = malloc(sizeof(float) * n * d);
	float	   *inplace = test_copy(x, n * d);
	float	   *naive = malloc(sizeof(float) * n * d);

	pgf_layernorm(out, x, n, d, gamma, beta, eps[0]);
	check_rel(out, golden_f32(n * d, "norm.layernorm"), n * d, 1e-5, "layernorm vs torch");
	for (int r = 0; r < n; r++)
	{
		double		mean = 0,
					var = 0;

		for (int j = 0; j < d; j++)
			mean += x[r * d + j];
		mean /= d;
		for (int j = 0; j < d; j++)
			var += (x[r * d + j] - mean) * (x[r * d + j] - mean);
		var /= d;
		for (int j = 0; j < d; j++)
			naive[r * d + j] = (float) ((x[r * d + j] - mean) / sqrt(var + eps[0]) * gamma[j] + beta[j]);
	}
	check_rel(out, naive, n * d, 1e-5, "layernorm vs naive loop");
	pgf_layernorm(inplace, inplace, n, d, gamma, NULL, eps[0]);
	check_rel(inplace, golden_f32(n * d, "norm.layernorm_nobeta"), n * d, 1e-5,
			  "layernorm in place without beta vs torch");

	pgf_rmsnorm(out, x, n, d, w, eps[1]);
	check_rel(out, golden_f32(n * d, "norm.rmsnorm"), n * d, 1e-5, "rmsnorm vs torch");
	for (int r = 0; r < n; r++)
	{
		double		ms = 0;

		for (int j = 0; j < d; j++)
			ms += (double) x[r * d + j] * x[r * d + j];
		for (int j = 0; j < d; j++)
			naive[r * d + j] = (float) (w[j] * x[r * d + j] / sqrt(ms / d + eps[1]));
	}
	check_rel(out, naive, n * d, 1e-5, "rmsnorm vs naive loop");
	memcpy(inplace, x, sizeof(float) * n * d);
	pgf_rmsnorm(inplace, inplace, n, d, w, eps[1]);
	check_rel(inplace, out, n * d, 0, "rmsnorm in place equals out of place");
	free(out);
	free(inplace);
	free(naive);
}

static void
test_softmax(void)
{
	int			n = 6,
				d = 37;
	float	   *x = test_copy(golden_f32(n * d, "softmax.x"), n * d);
	float	   *naive = test_copy(x, n * d);
	float		nan_row[3] = {-INFINITY, NAN, -INFINITY};

	pgf_softmax_rows(x, n, d);
	check_rel(x, golden_f32(n * d, "softmax.out"), n * d, 1e-5,
			  "softmax rows (all -inf row -> zeros, large values) vs torch");
	for (int r = 0; r < n; r++)
	{
		double		m = -INFINITY,
					s = 0;

		for (int j = 0; j < d; j++)
			m = naive[r * d + j] > m ? naive[r * d + j] : m;
		for (int j = 0; j < d; j++)
			s += m == -INFINITY ? 0 : exp(naive[r * d + j] - m);
		for (int j = 0; j < d; j++)
			naive[r * d + j] = s == 0 ? 0 : (float) (exp(naive[r * d + j] - m) / s);
	}
	check_rel(x, naive, n * d, 1e-5, "softmax rows vs naive loop");
	pgf_softmax_rows(nan_row, 1, 3);
	tap_ok(isnan(nan_row[1]), "softmax propagates NaN");
	free(x);
	free(naive);
}

static double
gelu_erf_ref(double x)
{
	return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double
gelu_tanh_ref(double x)
{
	return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double
silu_ref(double x)
{
	return x / (1.0 + exp(-x));
}

static void
test_activations(void)
{
	size_t		n = 1000;
	const float *x = golden_f32(n, "act.x");
	const float *up = golden_f32(n, "act.up");
	float	   *y = malloc(sizeof(float) * n);
	float	   *naive = malloc(sizeof(float) * n);
	float		special[3] = {NAN, INFINITY, -200.0f};

	memcpy(y, x, sizeof(float) * n);
	pgf_gelu_erf(y, n);
	check_rel(y, golden_f32(n, "act.gelu_erf"), n, 1e-6, "gelu (erf) vs torch");
	for (size_t i = 0; i < n; i++)
		naive[i] = (float) gelu_erf_ref(x[i]);
	check_rel(y, naive, n, 1e-6, "gelu (erf) vs libm erf");

	memcpy(y, x, sizeof(float) * n);
	pgf_gelu_tanh(y, n);
	check_rel(y, golden_f32(n, "act.gelu_tanh"), n, 1e-6, "gelu (tanh) vs torch");
	for (size_t i = 0; i < n; i++)
		naive[i] = (float) gelu_tanh_ref(x[i]);
	check_rel(y, naive, n, 1e-6, "gelu (tanh) vs libm tanh");

	memcpy(y, x, sizeof(float) * n);
	pgf_relu(y, n);
	check_rel(y, golden_f32(n, "act.relu"), n, 0, "relu vs torch");

	memcpy(y, x, sizeof(float) * n);
	pgf_silu(y, n);
	check_rel(y, golden_f32(n, "act.silu"), n, 1e-6, "silu vs torch");
	for (size_t i = 0; i < n; i++)
		naive[i] = (float) silu_ref(x[i]);
	check_rel(y, naive, n, 1e-6, "silu vs libm exp");

	memcpy(y, x, sizeof(float) * n);
	pgf_swiglu(y, up, n);
	check_rel(y, golden_f32(n, "act.swiglu"), n, 1e-6, "swiglu vs torch");
	for (size_t i = 0; i < n; i++)
		naive[i] = (float) (silu_ref(x[i]) * up[i]);
	check_rel(y, naive, n, 1e-6, "swiglu vs naive loop");

	/* relative accuracy of the vectorised exp over its whole range */
	{
		double		worst = 0;

		for (float v = -87.0f; v < 88.7f; v += 0.0137f)
		{
			double		ref = exp((double) v);
			double		e = fabs(pgf_expf(v) - ref) / ref;

			worst = e > worst ? e : worst;
		}
		tap_ok(worst < 3e-7 && pgf_expf(-200.0f) == 0 && isinf(pgf_expf(100.0f)) &&
			   isnan(pgf_expf(NAN)) && pgf_expf(0) == 1.0f,
			   "pgf_expf within 3e-7 relative on [-87, 88.7], 0 / inf / NaN at the edges (%.2g)",
			   worst);
	}
	pgf_gelu_erf(special, 3);
	tap_ok(isnan(special[0]) && special[1] == INFINITY && special[2] == 0,
		   "gelu of NaN, +inf, -200 is NaN, inf, 0");
	free(y);
	free(naive);
}

/* ---- RoPE -------------------------------------------------------------------- */

static void
naive_rope(float *x, int n, int heads, int hd, int stride, const int32_t *pos,
		   int pos0, double theta)
{
	for (int i = 0; i < n; i++)
		for (int h = 0; h < heads; h++)
		{
			float	   *v = x + i * stride + h * hd;

			for (int j = 0; j < hd / 2; j++)
			{
				double		p = pos ? pos[i] : pos0 + i;
				double		ang = p * pow(theta, -2.0 * j / hd);
				double		a = v[j],
							b = v[j + hd / 2];

				v[j] = (float) (a * cos(ang) - b * sin(ang));
				v[j + hd / 2] = (float) (b * cos(ang) + a * sin(ang));
			}
		}
}

static void
test_rope(void)
{
	const int32_t *dims = golden_i32(5, "rope.dims");
	int			n = dims[0],
				heads = dims[1],
				hd = dims[2],
				stride = dims[3],
				pos0 = dims[4];
	float		theta = golden_f32(1, "rope.f")[0];
	const float *x = golden_f32(n * stride, "rope.x");
	const int32_t *positions = golden_i32(n, "rope.positions");
	float	   *y = test_copy(x, n * stride);
	float	   *naive = test_copy(x, n * stride);

	pgf_rope(y, n, heads, hd, stride, NULL, pos0, theta);
	check_rel(y, golden_f32(n * stride, "rope.out_pos0"), n * stride, 2e-6,
			  "rope (pos0 %d, row stride %d) vs Hugging Face rotate_half", pos0, stride);
	naive_rope(naive, n, heads, hd, stride, NULL, pos0, theta);
	check_rel(y, naive, n * stride, 2e-6, "rope vs naive float64 loop");

	memcpy(y, x, sizeof(float) * n * stride);
	pgf_rope(y, n, heads, hd, stride, positions, 0, theta);
	check_rel(y, golden_f32(n * stride, "rope.out_positions"), n * stride, 2e-6,
			  "rope at explicit positions up to 4000 vs Hugging Face (float32 angles)");
	free(y);
	free(naive);
}

/* ---- elementwise ------------------------------------------------------------ */

static void
test_elementwise(void)
{
	float		x[12],
				y[12],
				bias[4] = {1, -2, 3, 0.5f};
	bool		ok = true;

	for (int i = 0; i < 12; i++)
	{
		x[i] = (float) i;
		y[i] = (float) (2 * i + 1);
	}
	pgf_add(x, y, 12);
	for (int i = 0; i < 12; i++)
		ok &= x[i] == 3 * i + 1;
	pgf_scale(x, 0.5f, 12);
	for (int i = 0; i < 12; i++)
		ok &= x[i] == (3 * i + 1) * 0.5f;
	pgf_add_bias(x, bias, 3, 4);
	for (int i = 0; i < 12; i++)
		ok &= x[i] == (3 * i + 1) * 0.5f + bias[i % 4];
	tap_ok(ok, "add, scale and add_bias");
}

/* ---- top-k -------------------------------------------------------------------- */

static void
test_topk(void)
{
	int			n = 1000;
	const float *scores = golden_f32(n, "topk.scores");
	const int32_t *skip32 = golden_i32(n, "topk.skip");
	uint8_t    *skip = malloc(n);
	static const int ks[] = {1, 10, 50};

	for (int i = 0; i < n; i++)
		skip[i] = (uint8_t) skip32[i];
	for (int t = 0; t < 3; t++)
	{
		int			k = ks[t];
		int32_t		idx[50];
		float		sc[50];
		const int32_t *want_idx = golden_i32(k, "topk.k%d.idx", k);
		const float *want_sc = golden_f32(k, "topk.k%d.score", k);
		int			got = pgf_topk(scores, n, k, skip, idx, sc);

		tap_ok(got == k && memcmp(idx, want_idx, sizeof(int32_t) * k) == 0 &&
			   memcmp(sc, want_sc, sizeof(float) * k) == 0,
			   "topk k=%d with skip mask, NaN and +-inf equals torch.topk", k);
	}

	/* ties: lower index first; all candidates fewer than k */
	{
		float		tied[9] = {1, 3, 3, NAN, 2, 3, 1, NAN, 2};
		uint8_t		sk[9] = {0, 0, 0, 0, 0, 0, 1, 0, 0};
		int32_t		idx[9];
		float		sc[9];
		int			got = pgf_topk(tied, 9, 9, sk, idx, sc);
		static const int32_t want[6] = {1, 2, 5, 4, 8, 0};

		tap_ok(got == 6 && memcmp(idx, want, sizeof(want)) == 0 && sc[0] == 3 && sc[5] == 1,
			   "topk ties by lower index, NaN and skipped left out, returns how many (%d)", got);
		got = pgf_topk(tied, 9, 2, sk, idx, sc);
		tap_ok(got == 2 && idx[0] == 1 && idx[1] == 2, "topk k=2 among three tied maxima keeps the lowest indices");
		memset(sk, 1, sizeof(sk));
		tap_ok(pgf_topk(tied, 9, 3, sk, idx, sc) == 0 && pgf_topk(tied, 9, 0, NULL, idx, sc) == 0,
			   "topk with everything skipped or k=0 returns 0");
	}

	/* random sweep against a sort-free naive selection */
	{
		bool		ok = true;

		for (int trial = 0; trial < 20; trial++)
		{
			int			m = 1 + trial * 37;
			int			k = 1 + trial % 13;
			float	   *s = malloc(sizeof(float) * m);
			int32_t    *idx = malloc(sizeof(int32_t) * m);
			float	   *sc = malloc(sizeof(float) * m);
			uint8_t    *taken = calloc(m, 1);
			int			got;

			for (int i = 0; i < m; i++)
				s[i] = rintf(test_rand() * 20);		/* many ties */
			got = pgf_topk(s, m, k, NULL, idx, sc);
			ok &= got == (k < m ? k : m);
			for (int r = 0; r < got; r++)
			{
				int			best = -1;

				for (int i = 0; i < m; i++)
					if (!taken[i] && (best < 0 || s[i] > s[best]))
						best = i;
				taken[best] = 1;
				ok &= idx[r] == best && sc[r] == s[best];
			}
			free(s);
			free(idx);
			free(sc);
			free(taken);
		}
		tap_ok(ok, "topk random sweep with ties vs naive selection");
	}
	free(skip);
}

int
main(void)
{
	golden_open();
	test_gemm_golden();
	test_gemm_sweep();
	test_linear();
	test_linear_variants();
	test_linear_odd_shapes();
	test_embedding();
	test_half_conversion();
	test_norms();
	test_softmax();
	test_activations();
	test_rope();
	test_elementwise();
	test_topk();
	golden_unload(&golden);
	return tap_done_testing();
}
