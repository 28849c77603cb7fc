/*
 * test_pixel_decoder.c: the VQ pixel decoder (models/pixel_decoder.c)
 * against tools/models/unifork.py's PixelDecoder (float64 PyTorch on the
 * float32 weights, written by test/gen/golden_unifork.py): the tiny config
 * (8 x 8 latent to 64 x 64 pixels, four levels, attention at the lowest)
 * and a narrow one (8 groups, a non-square latent, width changes through
 * 1x1 shortcuts).  Output before clamping within 1e-4 of the largest
 * reference value; an arena of exactly the size its function asks for (an
 * overrun stops the binary), given back at the end; interrupt checks
 * while decoding; the RGB conversion; a config that does not match the
 * tensors rejected naming the tensor; configs out of range rejected.
 * Reported, never asserted: the time of one tiny decode.
 */
#include "models/pixel_decoder.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define GOLDEN_PATH "test/unit/golden/unifork.pgf"
#define TOL 1e-4

static GoldenFile golden;
static int	interrupts;

static void
count_interrupt(void)
{
	interrupts++;
}

/* The case's config; *h, *w its latent grid. */
static PgfPixelDecoderConfig
case_config(const char *name, int *h, int *w)
{
	char		buf[PGF_NAME_MAX];
	const PgfTensor *t = golden_named(&golden, PGF_DTYPE_I32, -1, pgf_name(buf, "pixdec.%s.dims", name));
	const int32_t *d = t->data;
	PgfPixelDecoderConfig c = {.ch = d[0], .n_levels = d[1], .num_res_blocks = d[2], .z_channels = d[3],
	.embed_dim = d[4], .out_channels = d[5], .groups = d[6], .eps = 1e-6f};

	if (t->numel != 9 + c.n_levels || c.n_levels > PGF_PIXDEC_MAX_LEVELS)
		tap_bail("pixdec.%s.dims: %lld values", name, (long long) t->numel);
	*h = d[7];
	*w = d[8];
	for (int l = 0; l < c.n_levels; l++)
		c.ch_mult[l] = d[9 + l];
	return c;
}

static PgfStatus
bind(PgfPixelDecoder *d, const char *name, const PgfPixelDecoderConfig *c, char *err, size_t errlen)
{
	PgfBinder	b;
	char		prefix[64];

	pgf_binder_init(&b, &golden.file, err, errlen);
	snprintf(prefix, sizeof(prefix), "pixdec.%s.", name);
	pgf_pixel_decoder_bind(d, &b, prefix, c);
	return b.status;
}

static void
test_case(const char *name)
{
	int			h,
				w;
	PgfPixelDecoderConfig c = case_config(name, &h, &w);
	PgfPixelDecoder *d = calloc(1, sizeof(PgfPixelDecoder));
	char		err[512] = "",
				buf[PGF_NAME_MAX];
	int			s = 1 << (c.n_levels - 1);
	size_t		n_out = (size_t) h * s * w * s * c.out_channels;
	float	   *out = malloc(sizeof(float) * n_out);
	const float *want = golden_named(&golden, PGF_DTYPE_F32, (long) n_out,
									 pgf_name(buf, "pixdec.%s.out", name))->data;
	const float *zq = golden_named(&golden, PGF_DTYPE_F32, (long) h * w * c.embed_dim,
								   pgf_name(buf, "pixdec.%s.zq", name))->data;
	PgfArena	a;
	double		e,
				t0;

	if (!tap_ok(bind(d, name, &c, err, sizeof(err)) == PGF_OK, "%s: the decoder binds %s", name, err))
	{
		free(d);
		free(out);
		return;
	}
	a = test_arena(pgf_pixel_decoder_arena_bytes(d, h, w));
	interrupts = 0;
	pgf_interrupt_hook = count_interrupt;
	t0 = tap_now_ms();
	pgf_pixel_decode(d, zq, h, w, out, &a);
	t0 = tap_now_ms() - t0;
	pgf_interrupt_hook = NULL;
	e = tap_rel_error(out, want, n_out);
	tap_ok(e <= TOL, "%s: %dx%d latent -> %dx%d pixels match PyTorch (relative error %.2g, tolerance %.0e)",
		   name, h, w, h * s, w * s, e, TOL);
	tap_ok(interrupts >= 2 * (c.num_res_blocks + 1) * c.n_levels,
		   "%s: decoding checks for interrupts (%d times)", name, interrupts);
	tap_ok(a.used == 0, "%s: decoding in the %zu bytes its size function asks for gives them all back",
		   name, a.size);
	tap_diag("%s: one decode %.1f ms", name, t0);
	test_arena_free(&a);
	free(out);
	free(d);
}

static void
test_rgb(void)
{
	float		x[9] = {-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, NAN, 0.00392f, -0.9961f, 0.9961f};
	uint8_t		rgb[9];
	static const uint8_t want[9] = {0, 255, 128, 0, 255, 0, 128, 0, 255};

	pgf_pixels_to_rgb(rgb, x, 3);
	tap_ok(memcmp(rgb, want, 9) == 0,
		   "RGB: (x + 1) 127.5 rounded half to even, clamped to 0..255, NaN as 0 (%d %d %d %d %d %d %d %d %d)",
		   rgb[0], rgb[1], rgb[2], rgb[3], rgb[4], rgb[5], rgb[6], rgb[7], rgb[8]);
}

static void
test_mismatch(void)
{
	int			h,
				w;
	PgfPixelDecoderConfig c = case_config("tiny", &h, &w),
				bad;
	PgfPixelDecoder *d = calloc(1, sizeof(PgfPixelDecoder));
	char		err[512] = "";

	bad = c;
	bad.num_res_blocks++;
	tap_ok(bind(d, "tiny", &bad, err, sizeof(err)) == PGF_ERR_CONFIG &&
		   strstr(err, "pixdec.tiny.decoder.up.3.block.2.norm1.weight") != NULL,
		   "one residual block too many: rejected naming the missing tensor (%s)", err);
	bad = c;
	bad.embed_dim = 32;
	tap_ok(bind(d, "tiny", &bad, err, sizeof(err)) == PGF_ERR_CONFIG &&
		   strstr(err, "pixdec.tiny.post_quant_conv.weight") != NULL,
		   "a codebook width the tensors do not have: rejected naming the tensor (%s)", err);
	bad = c;
	bad.groups = 24;
	tap_ok(bind(d, "tiny", &bad, err, sizeof(err)) == PGF_ERR_CONFIG && strstr(err, "groups") != NULL,
		   "channels not a multiple of the groups: rejected (%s)", err);
	bad = c;
	bad.n_levels = PGF_PIXDEC_MAX_LEVELS + 1;
	tap_ok(bind(d, "tiny", &bad, err, sizeof(err)) == PGF_ERR_CONFIG && strstr(err, "levels") != NULL,
		   "too many levels: rejected (%s)", err);
	free(d);
}

int
main(void)
{
	golden_load(&golden, GOLDEN_PATH, false, "test/gen/golden_unifork.py");
	test_case("tiny");
	test_case("narrow");
	test_rgb();
	test_mismatch();
	golden_unload(&golden);
	return tap_done_testing();
}
