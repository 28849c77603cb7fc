/*
 * test_unifork.c: a whole UniFork model (models/unifork.c) against
 * tools/models/unifork.py on a random tiny file (test/gen/golden_unifork.py
 * writes it with its references): the file binds as architecture
 * "unifork"; the understanding branch's logits after a prompt within 1e-4
 * of PyTorch; greedy generation under guidance draws PyTorch's codes at
 * every image position and depth, and the pixel decoder turns them into
 * PyTorch's pixels (1e-4 relative, before clamping), and as PNG they
 * decode with libpng to the same RGB bytes; a seed draws the
 * same image twice and another seed another one; generation checks for
 * interrupts at every image position; a prompt longer than the model's
 * positions is an error that says so; the image encoder and quantiser
 * give PyTorch's codes; files whose config does not match their tensors
 * are rejected naming the tensor.
 */
#include "models/arch.h"
#include "models/image.h"
#include "models/unifork.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define GOLDEN_DIR "test/unit/golden/"

static GoldenFile golden;
static int	interrupts;

static void
count_interrupt(void)
{
	interrupts++;
}

/* positions[0]: calls, positions[1]: the last count reported */
static void
count_position(void *arg, int done)
{
	int		   *positions = arg;

	positions[0]++;
	positions[1] = done;
}

typedef struct Loaded
{
	void	   *bytes;
	PgfModel	file;
	PgfUniforkModel *m;
} Loaded;

static PgfStatus
load(const char *path, Loaded *l, char *err, size_t errlen)
{
	size_t		size;
	PgfStatus	st;

	memset(l, 0, sizeof(*l));
	l->bytes = pgf_read_file(path, &size);
	if (!l->bytes)
	{
		snprintf(err, errlen, "%s is missing: run `make unit` (it runs test/gen/golden_unifork.py)", path);
		return PGF_ERR_IO;
	}
	st = pgf_open(&l->file, l->bytes, size, PGF_VERIFY_DATA, NULL, err, errlen);
	if (st != PGF_OK)
		return st;
	l->m = calloc(1, sizeof(PgfUniforkModel));
	return pgf_model_bind(&l->file, l->m, err, errlen);
}

static void
unload(Loaded *l)
{
	if (l->file.header)
		pgf_close(&l->file);
	free(l->m);
	free(l->bytes);
}

static void
test_understanding(const PgfUniforkModel *m, const int32_t *cond, int n_cond)
{
	PgfArena	a = test_arena(pgf_decoder_state_bytes(&m->und, n_cond, n_cond));
	PgfDecoderState st;
	float	   *x = malloc(sizeof(float) * n_cond * m->und.d_model);
	char		err[256] = "";
	bool		ok = pgf_decoder_state_init(&st, &m->und, n_cond, n_cond, &a, err, sizeof(err)) == 0 &&
		pgf_decoder_embed(&m->und, cond, n_cond, x, err, sizeof(err)) == 0 &&
		pgf_decoder_forward(&st, x, n_cond, true, err, sizeof(err)) == 0;
	double		e = ok ? tap_rel_error(st.logits, golden_named(&golden, PGF_DTYPE_F32, m->und.vocab_size,
														  "model.und_logits")->data, m->und.vocab_size) : INFINITY;

	tap_ok(ok && e < 1e-4, "the understanding branch's logits after the prompt match PyTorch (relative %.2g) %s",
		   e, err);
	free(x);
	test_arena_free(&a);
}

static void
test_generation(const PgfUniforkModel *m)
{
	const PgfTensor *ct = golden_named(&golden, PGF_DTYPE_I32, -1, "model.cond"),
			   *ut = golden_named(&golden, PGF_DTYPE_I32, -1, "model.uncond");
	int			n_cond = (int) ct->numel,
				n_uncond = (int) ut->numel,
				n_codes = m->grid * m->grid * m->rq_depth,
				side = pgf_unifork_image_side(m);
	size_t		n_pixels = (size_t) side * side * 3;
	float		scale = ((const float *) golden_named(&golden, PGF_DTYPE_F32, 1, "model.cfg")->data)[0];
	const int32_t *want = golden_named(&golden, PGF_DTYPE_I32, n_codes, "model.codes")->data;
	int32_t    *codes = malloc(sizeof(int32_t) * n_codes),
			   *again = malloc(sizeof(int32_t) * n_codes),
			   *other = malloc(sizeof(int32_t) * n_codes);
	float	   *pixels = malloc(sizeof(float) * n_pixels);
	PgfSampling greedy = {.temperature = 0},
				drawn = {.temperature = 1.0f, .top_k = 20, .top_p = 0.96f, .seed = 7};
	PgfArena	a = test_arena(pgf_unifork_generate_bytes(m, n_cond, n_uncond));
	char		err[256] = "";
	int			rc,
				positions[2] = {0, 0};
	PgfUniforkProgress progress = {count_position, positions};
	double		t0;

	test_understanding(m, ct->data, n_cond);
	interrupts = 0;
	pgf_interrupt_hook = count_interrupt;
	t0 = tap_now_ms();
	rc = pgf_unifork_generate(m, ct->data, n_cond, ut->data, n_uncond, scale, &greedy, codes, pixels,
							  &progress, &a, err, sizeof(err));
	t0 = tap_now_ms() - t0;
	pgf_interrupt_hook = NULL;
	tap_ok(rc == 0 && memcmp(codes, want, sizeof(int32_t) * n_codes) == 0,
		   "greedy generation under guidance %.0f: PyTorch's %d codes (%d positions x %d depths) %s",
		   scale, n_codes, m->grid * m->grid, m->rq_depth, err);
	tap_ok(rc == 0 && tap_rel_error(pixels, golden_named(&golden, PGF_DTYPE_F32, (long) n_pixels, "model.pixels")->data,
							   n_pixels) < 1e-4,
		   "and PyTorch's %dx%d pixels from them", side, side);
	tap_ok(interrupts >= m->grid * m->grid, "generation checks for interrupts at every image position (%d checks)",
		   interrupts);
	{
		PgfImage	img = {.width = side, .height = side, .channels = 3, .pixels = malloc(n_pixels)},
					back;
		uint8_t    *png;
		size_t		png_len;
		char		ierr[256] = "";
		bool		same;

		pgf_pixels_to_rgb(img.pixels, pixels, (size_t) side * side);
		same = pgf_png_encode(&img, NULL, &png, &png_len, ierr, sizeof(ierr)) == PGF_IMAGE_OK &&
			pgf_image_decode(png, png_len, 3, 1 << 20, NULL, &back, ierr, sizeof(ierr)) == PGF_IMAGE_OK &&
			back.width == side && back.height == side && memcmp(back.pixels, img.pixels, n_pixels) == 0;
		tap_ok(same, "the image written as PNG decodes with libpng to the same %dx%d RGB pixels %s", side, side, ierr);
		if (same)
		{
			free(png);
			pgf_image_release(&back, NULL);
		}
		free(img.pixels);
	}
	tap_ok(positions[0] == m->grid * m->grid && positions[1] == m->grid * m->grid,
		   "the progress callback hears of every image position (%d calls, last %d)", positions[0], positions[1]);
	tap_ok(a.used == 0, "generation gives its arena back");
	tap_diag("greedy generation of %d positions and the decode: %.1f ms", m->grid * m->grid, t0);

	rc = pgf_unifork_generate(m, ct->data, n_cond, ut->data, n_uncond, scale, &drawn, codes, NULL, NULL, &a, err, sizeof(err));
	rc |= pgf_unifork_generate(m, ct->data, n_cond, ut->data, n_uncond, scale, &drawn, again, NULL, NULL, &a, err, sizeof(err));
	drawn.seed = 8;
	rc |= pgf_unifork_generate(m, ct->data, n_cond, ut->data, n_uncond, scale, &drawn, other, NULL, NULL, &a, err, sizeof(err));
	tap_ok(rc == 0 && memcmp(codes, again, sizeof(int32_t) * n_codes) == 0,
		   "sampling: the same seed draws the same codes");
	tap_ok(rc == 0 && memcmp(codes, other, sizeof(int32_t) * n_codes) != 0, "another seed draws other codes");
	test_arena_free(&a);

	{
		int			n_long = m->und.max_positions;
		int32_t    *ids = calloc(n_long, sizeof(int32_t));
		PgfArena	b;

		b = test_arena(pgf_decoder_state_bytes(&m->gen, 1, 1) + 4096);
		rc = pgf_unifork_generate(m, ids, n_long, ut->data, n_uncond, scale, &greedy, codes, NULL, NULL, &b, err, sizeof(err));
		tap_ok(rc == -1 && strstr(err, "positions") != NULL,
			   "a prompt of %d tokens with %d image positions is an error: %s", n_long, m->grid * m->grid, err);
		test_arena_free(&b);
		free(ids);
	}
	free(codes);
	free(again);
	free(other);
	free(pixels);
}

static void
test_image_codes(const PgfUniforkModel *m)
{
	int			n = m->enc_tokens * m->rq_depth;
	const float *patches = golden_named(&golden, PGF_DTYPE_F32, (long) m->enc_tokens * 3 * m->enc_patch * m->enc_patch,
										"model.enc_patches")->data;
	const int32_t *want = golden_named(&golden, PGF_DTYPE_I32, n, "model.enc_codes")->data;
	int32_t    *codes = malloc(sizeof(int32_t) * n);
	PgfArena	a = test_arena(pgf_unifork_image_codes_bytes(m));

	if (tap_ok(m->has_encoder && m->enc_tokens == 16 && m->image_side == 16, "the file's image encoder binds"))
	{
		pgf_unifork_image_codes(m, patches, codes, &a);
		tap_ok(memcmp(codes, want, sizeof(int32_t) * n) == 0,
			   "the image encoder and the quantiser give PyTorch's %d codes", n);
		tap_ok(a.used == 0, "and give the arena back");
	}
	test_arena_free(&a);
	free(codes);
}

static void
test_broken(void)
{
	static const char *cases[][2] = {
		{"codebook", "uf.rq.codebook"},
		{"depth", "uf.depth.pos_emb_d"},
		{"levels", "uf.vq.decoder.up.2"},
	};

	for (int i = 0; i < 3; i++)
	{
		char		path[256],
					err[512] = "";
		Loaded		l;
		PgfStatus	st;

		snprintf(path, sizeof(path), GOLDEN_DIR "unifork_broken_%s.pgf", cases[i][0]);
		st = load(path, &l, err, sizeof(err));
		tap_ok(st == PGF_ERR_CONFIG && strstr(err, cases[i][1]) != NULL,
			   "a %s the tensors do not have is rejected naming %s: %s", cases[i][0], cases[i][1], err);
		unload(&l);
	}
}

int
main(void)
{
	Loaded		l;
	char		err[512] = "";

	golden_load(&golden, GOLDEN_DIR "unifork.pgf", false, "test/gen/golden_unifork.py");
	if (!tap_ok(load(GOLDEN_DIR "unifork_tiny.pgf", &l, err, sizeof(err)) == PGF_OK,
				"the random tiny UniFork binds as architecture unifork %s", err))
		tap_bail("cannot go on without the model");
	tap_ok(l.m->shared_layers == 2 && l.m->fork.n_layers == 2 && l.m->gen.stack.n_layers == 4 &&
		   l.m->und.stack.n_layers == 4,
		   "4 layers: 2 shared, 2 of the understanding branch, 2 of the generation fork");
	test_generation(l.m);
	test_image_codes(l.m);
	unload(&l);
	test_broken();
	golden_unload(&golden);
	return tap_done_testing();
}
