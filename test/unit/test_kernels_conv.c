/*
 * test_kernels_conv.c: the feature-map kernels (kernels/conv.c): 3x3 and
 * 1x1 convolution (f32 and bf16 weights, one band and several), GroupNorm,
 * nearest x2 upsampling and spatial self-attention, against PyTorch
 * (torch.nn.functional in float64, test/gen/golden_kernels.py) and, for
 * the convolution, against a direct loop written here.  Every call gets an
 * arena of exactly the bytes its *_scratch_bytes function asks for (an
 * arena overrun stops the test binary).
 *
 * Tolerances relative to the largest reference value: 1e-5 (the bf16 case
 * against PyTorch on the weights as stored).  Reported, never asserted: the
 * time of im2col + GEMM against the direct loop on a decoder-sized layer.
 */
#include "test/unit/kernels_golden.h"

/*
 * The direct convolution, written as independently of conv.c as a C
 * version can be: for each output channel and kernel tap, a whole-row
 * multiply-add over valid pixels (the form a direct kernel vectorises).
 * weight [c_out, k, k, c_in] (f32), x and out position-major.
 */
static void
direct_conv(float *out, const float *x, int h, int w, int c_in, int c_out, int k,
			const float *weight, const float *bias)
{
	int			pad = (k - 1) / 2;

	for (int p = 0; p < h * w; p++)
		for (int co = 0; co < c_out; co++)
			out[(size_t) p * c_out + co] = bias ? bias[co] : 0.0f;
	for (int ky = 0; ky < k; ky++)
		for (int kx = 0; kx < k; kx++)
			for (int y = 0; y < h; y++)
			{
				int			sy = y + ky - pad;

				if (sy < 0 || sy >= h)
					continue;
				for (int xx = 0; xx < w; xx++)
				{
					int			sx = xx + kx - pad;
					const float *in;
					float	   *o = out + ((size_t) y * w + xx) * c_out;

					if (sx < 0 || sx >= w)
						continue;
					in = x + ((size_t) sy * w + sx) * c_in;
					for (int co = 0; co < c_out; co++)
					{
						const float *wr = weight + (((size_t) co * k + ky) * k + kx) * c_in;
						float		s = 0;

						for (int ci = 0; ci < c_in; ci++)
							s += wr[ci] * in[ci];
						o[co] += s;
					}
				}
			}
}

/* The golden weight of a case as a matrix of its stored dtype. */
static PgfMatrix
golden_matrix(const char *name)
{
	const PgfTensor *t = golden_tensor("%s", name);
	PgfMatrix	m = {.rows = (int) t->shape[0], .cols = (int) t->shape[1], .dtype = t->dtype, .data = t->data};

	return m;
}

static void
test_conv_golden(void)
{
	static const char *cases[] = {"k3", "k3_band", "k3_bf16", "k1"};

	for (int i = 0; i < 4; i++)
	{
		const int32_t *d = golden_i32(5, "conv.%s.dims", cases[i]);
		int			h = d[0],
					w = d[1],
					cin = d[2],
					cout = d[3],
					k = d[4];
		char		name[64];
		PgfMatrix	wt;
		const float *x = golden_f32((long) h * w * cin, "conv.%s.x", cases[i]);
		const float *b = golden_f32(cout, "conv.%s.b", cases[i]);
		const float *want = golden_f32((long) h * w * cout, "conv.%s.out", cases[i]);
		float	   *out = malloc(sizeof(float) * (size_t) h * w * cout);
		PgfArena	a;

		snprintf(name, sizeof(name), "conv.%s.w", cases[i]);
		wt = golden_matrix(name);
		a = test_arena(pgf_conv2d_scratch_bytes(h, w, cin, k, &wt));
		pgf_conv2d(out, x, h, w, cin, k, &wt, b, &a);
		check_rel(out, want, (size_t) h * w * cout, 1e-5,
				  "conv2d %s: %dx%d kernel, %dx%d pixels, %d -> %d channels, %s weight, matches PyTorch",
				  cases[i], k, k, h, w, cin, cout, wt.dtype == PGF_DTYPE_BF16 ? "bf16" : "f32");
		if (wt.dtype == PGF_DTYPE_F32)
		{
			float	   *direct = malloc(sizeof(float) * (size_t) h * w * cout);

			direct_conv(direct, x, h, w, cin, cout, k, wt.data, b);
			check_rel(out, direct, (size_t) h * w * cout, 1e-5,
					  "conv2d %s: equals the direct loop", cases[i]);
			free(direct);
		}
		test_arena_free(&a);
		free(out);
	}
}

static void
test_conv_speed(void)
{
	int			h = 64,
				w = 64,
				c = 64;
	float	   *x = test_rand_floats((size_t) h * w * c, 1.0f),
			   *weight = test_rand_floats((size_t) c * 9 * c, 0.05f),
			   *out = malloc(sizeof(float) * (size_t) h * w * c),
			   *direct = malloc(sizeof(float) * (size_t) h * w * c);
	PgfMatrix	wt = pgf_matrix_f32(weight, c, 9 * c);
	PgfArena	a = test_arena(pgf_conv2d_scratch_bytes(h, w, c, 3, &wt));
	double		t0,
				t_im2col,
				t_direct;

	pgf_conv2d(out, x, h, w, c, 3, &wt, NULL, &a);	/* warm up */
	t0 = tap_now_ms();
	for (int r = 0; r < 3; r++)
		pgf_conv2d(out, x, h, w, c, 3, &wt, NULL, &a);
	t_im2col = (tap_now_ms() - t0) / 3;
	t0 = tap_now_ms();
	direct_conv(direct, x, h, w, c, c, 3, weight, NULL);
	t_direct = tap_now_ms() - t0;
	check_rel(out, direct, (size_t) h * w * c, 1e-5, "conv2d 64x64x64 3x3: im2col + GEMM equals the direct loop");
	tap_diag("conv2d 3x3, 64x64 pixels, 64 -> 64 channels (%.0f MMAC): im2col + GEMM %.2f ms, direct loop %.2f ms",
			 h * w * 9.0 * c * c / 1e6, t_im2col, t_direct);
	test_arena_free(&a);
	free(x);
	free(weight);
	free(out);
	free(direct);
}

static void
test_groupnorm_golden(void)
{
	static const char *cases[] = {"g32", "g4"};

	for (int i = 0; i < 2; i++)
	{
		const int32_t *d = golden_i32(3, "groupnorm.%s.dims", cases[i]);
		int			n = d[0],
					c = d[1],
					groups = d[2];
		const float *x = golden_f32((long) n * c, "groupnorm.%s.x", cases[i]);
		const float *want = golden_f32((long) n * c, "groupnorm.%s.out", cases[i]);
		float	   *out = test_copy(x, (size_t) n * c);

		pgf_groupnorm(out, out, n, c, groups, golden_f32(c, "groupnorm.%s.gamma", cases[i]),
					  golden_f32(c, "groupnorm.%s.beta", cases[i]), 1e-6f);
		check_rel(out, want, (size_t) n * c, 1e-5,
				  "groupnorm %s: %d positions, %d channels in %d groups, in place, matches PyTorch",
				  cases[i], n, c, groups);
		free(out);
	}
}

static void
test_upsample_golden(void)
{
	const int32_t *d = golden_i32(3, "upsample.dims");
	int			h = d[0],
				w = d[1],
				c = d[2];
	float	   *out = malloc(sizeof(float) * (size_t) 4 * h * w * c);

	pgf_upsample_nearest2(out, golden_f32((long) h * w * c, "upsample.x"), h, w, c);
	tap_ok(memcmp(out, golden_f32(4L * h * w * c, "upsample.out"), sizeof(float) * 4 * h * w * c) == 0,
		   "nearest x2 upsampling of %dx%d pixels equals PyTorch's bit for bit", h, w);
	free(out);
}

static void
test_spatial_attention_golden(void)
{
	const int32_t *d = golden_i32(4, "spatial.dims");
	int			n = d[0] * d[1],
				c = d[2];
	PgfSpatialAttention s = {.groups = d[3], .norm_eps = 1e-6f};
	float	   *x = test_copy(golden_f32((long) n * c, "spatial.x"), (size_t) n * c);
	PgfArena	a;

	s.norm_gamma = golden_f32(c, "spatial.gamma");
	s.norm_beta = golden_f32(c, "spatial.beta");
	s.wq = pgf_matrix_f32(golden_f32((long) c * c, "spatial.q.w"), c, c);
	s.wk = pgf_matrix_f32(golden_f32((long) c * c, "spatial.k.w"), c, c);
	s.wv = pgf_matrix_f32(golden_f32((long) c * c, "spatial.v.w"), c, c);
	s.wo = pgf_matrix_f32(golden_f32((long) c * c, "spatial.proj_out.w"), c, c);
	s.bq = golden_f32(c, "spatial.q.b");
	s.bk = golden_f32(c, "spatial.k.b");
	s.bv = golden_f32(c, "spatial.v.b");
	s.bo = golden_f32(c, "spatial.proj_out.b");
	a = test_arena(pgf_spatial_attention_scratch_bytes(n, c, &s));
	pgf_spatial_attention(x, n, c, &s, &a);
	check_rel(x, golden_f32((long) n * c, "spatial.out"), (size_t) n * c, 1e-5,
			  "spatial attention over %dx%d pixels, %d channels, matches a PyTorch AttnBlock", d[0], d[1], c);
	test_arena_free(&a);
	free(x);
}

int
main(void)
{
	golden_open();
	test_conv_golden();
	test_conv_speed();
	test_groupnorm_golden();
	test_upsample_golden();
	test_spatial_attention_golden();
	golden_unload(&golden);
	return tap_done_testing();
}
