/*
 * test_image.c: the image codec (models/image_codec.c, image_resize.c, image.c) against PIL and torch.
 *
 * Goldens come from test/gen/golden_image.py (test/unit/golden/image/, made by
 * `make unit`): PNG variants and JPEG variants decoded by PIL, PIL's
 * bilinear resizes, torch's normalise + unfold patches, SOLO's resize rule.
 * The broken-file corpus is test/fixtures/images/broken/ with its EXPECT
 * list.  On top: every truncation of small seeds, random byte corruption,
 * allocation failure at every allocation, the pixel limit checked before any
 * allocation, and a counting allocator that proves nothing leaks.
 *
 * Tolerances: PNG decode exact; JPEG decode within 1 (the same libjpeg as
 * PIL: exact in practice); resize within 1 and mean 0.1 (PIL-exact in
 * practice); patches within 1e-6 (float32-exact in practice).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kernels/runtime.h"
#include "models/image.h"
#include "proto/pgf.h"
#include "test/unit/tap.h"

#define GOLDEN "test/unit/golden/image"
#define BROKEN "test/fixtures/images/broken"
#define MAX_LINES 2048

/* ---- a counting allocator that can fail on demand ------------------------ */

typedef struct Counter
{
	long		allocs;
	long		frees;
	long		live;
	long		fail_at;		/* fail the allocation with this index; -1: none */
} Counter;

static void *
counted_alloc(void *context, size_t size)
{
	Counter    *c = context;
	long		index = c->allocs++;

	if (index == c->fail_at)
		return NULL;
	c->live++;
	return malloc(size);
}

static void
counted_free(void *context, void *ptr)
{
	Counter    *c = context;

	c->frees++;
	c->live--;
	free(ptr);
}

static PgfImageAllocator
counting(Counter *c, long fail_at)
{
	PgfImageAllocator a = {counted_alloc, counted_free, c};

	memset(c, 0, sizeof(*c));
	c->fail_at = fail_at;
	return a;
}

/* ---- files --------------------------------------------------------------- */

static uint8_t *
read_golden(const char *rel, size_t *size)
{
	char		path[512];

	snprintf(path, sizeof(path), GOLDEN "/%s", rel);
	return pgf_read_file(path, size);
}

static char *lines[MAX_LINES];
static int	n_lines;

static int
load_lines(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		buf[1024];

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f) && n_lines < MAX_LINES)
	{
		buf[strcspn(buf, "\n")] = 0;
		if (buf[0] == '#' || buf[0] == 0)
			continue;
		lines[n_lines++] = strdup(buf);
	}
	fclose(f);
	return 0;
}

/* ---- comparisons --------------------------------------------------------- */

static void
diff_bytes(const uint8_t *a, const uint8_t *b, size_t n, int *max_diff, double *mean_diff)
{
	long		total = 0;

	*max_diff = 0;
	for (size_t i = 0; i < n; i++)
	{
		int			d = abs((int) a[i] - (int) b[i]);

		total += d;
		if (d > *max_diff)
			*max_diff = d;
	}
	*mean_diff = n ? (double) total / n : 0;
}

/* ---- golden cases -------------------------------------------------------- */

static int	worst_decode_png,
			worst_decode_jpeg,
			worst_resize;
static double worst_resize_mean,
			worst_patches;

static void
check_decode(const char *line)
{
	char		name[128],
				input[256],
				expect[256];
	int			w,
				h,
				tol,
				max_diff = -1;
	double		mean_diff = 0;
	size_t		size,
				expect_size;
	uint8_t    *bytes,
			   *ref;
	PgfImage	img;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);
	char		err[256] = "";
	PgfImageStatus st = PGF_IMAGE_ERR_ARGUMENT;
	int			ok = 0;

	if (sscanf(line, "decode %127s %255s %255s %d %d %d", name, input, expect, &w, &h, &tol) != 6)
	{
		tap_ok(0, "bad manifest line: %s", line);
		return;
	}
	bytes = read_golden(input, &size);
	ref = read_golden(expect, &expect_size);
	if (bytes && ref && expect_size == (size_t) w * h * 3)
	{
		st = pgf_image_decode(bytes, size, 3, PGF_IMAGE_DEFAULT_MAX_PIXELS, &alloc, &img,
							  err, sizeof(err));
		if (st == PGF_IMAGE_OK && img.width == w && img.height == h && img.channels == 3)
		{
			diff_bytes(img.pixels, ref, expect_size, &max_diff, &mean_diff);
			ok = max_diff <= tol;
		}
		pgf_image_release(&img, &alloc);
	}
	ok = ok && c.live == 0;
	if (strstr(input, ".jpg"))
		worst_decode_jpeg = max_diff > worst_decode_jpeg ? max_diff : worst_decode_jpeg;
	else
		worst_decode_png = max_diff > worst_decode_png ? max_diff : worst_decode_png;
	tap_ok(ok, "decode %s %dx%d vs PIL: max diff %d (tolerance %d) %s%s", name, w, h,
		   max_diff, tol, st == PGF_IMAGE_OK ? "" : pgf_image_status_name(st),
		   st == PGF_IMAGE_OK ? "" : err);
	free(bytes);
	free(ref);
}

static void
check_resize(const char *line)
{
	char		name[128],
				input[256],
				expect[256];
	int			w,
				h,
				ch,
				ow,
				oh,
				max_diff = -1;
	double		mean_diff = 0;
	size_t		size,
				expect_size;
	uint8_t    *raw,
			   *ref;
	PgfImage	in,
				out;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);
	char		err[256] = "";
	int			ok = 0;

	if (sscanf(line, "resize %127s %255s %d %d %d %d %d %255s", name, input, &w, &h, &ch,
			   &ow, &oh, expect) != 8)
	{
		tap_ok(0, "bad manifest line: %s", line);
		return;
	}
	raw = read_golden(input, &size);
	ref = read_golden(expect, &expect_size);
	if (raw && ref && size == (size_t) w * h * ch && expect_size == (size_t) ow * oh * ch)
	{
		in.width = w;
		in.height = h;
		in.channels = ch;
		in.pixels = raw;
		if (pgf_image_resize(&in, ow, oh, &alloc, &out, err, sizeof(err)) == PGF_IMAGE_OK)
		{
			diff_bytes(out.pixels, ref, expect_size, &max_diff, &mean_diff);
			ok = max_diff <= 1 && mean_diff <= 0.1;
		}
		pgf_image_release(&out, &alloc);
	}
	ok = ok && c.live == 0;
	if (max_diff > worst_resize)
		worst_resize = max_diff;
	if (mean_diff > worst_resize_mean)
		worst_resize_mean = mean_diff;
	tap_ok(ok, "resize %s %dx%dx%d -> %dx%d vs PIL: max diff %d, mean %.4f (tolerance 1, 0.1) %s",
		   name, w, h, ch, ow, oh, max_diff, mean_diff, err);
	free(raw);
	free(ref);
}

static void
check_patches(const char *line)
{
	char		name[128],
				input[256],
				expect[256],
				err[256] = "";
	int			p,
				max_side,
				ch,
				rows,
				cols;
	PgfImagePreprocess pp;
	PgfImagePlan plan;
	size_t		size,
				expect_size;
	uint8_t    *bytes;
	float	   *ref,
			   *out = NULL;
	double		diff = INFINITY;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);
	PgfImageStatus st = PGF_IMAGE_ERR_ARGUMENT;
	int			ok = 0;

	pgf_image_preprocess_init(&pp, 1, 1);
	if (sscanf(line, "patches %127s %255s %d %d %d %f %f %f %f %f %f %d %d %255s", name, input,
			   &p, &max_side, &ch, &pp.mean[0], &pp.mean[1], &pp.mean[2], &pp.std[0],
			   &pp.std[1], &pp.std[2], &rows, &cols, expect) != 14)
	{
		tap_ok(0, "bad manifest line: %s", line);
		return;
	}
	pp.patch_size = p;
	pp.max_side = max_side;
	pp.channels = ch;
	bytes = read_golden(input, &size);
	ref = (float *) read_golden(expect, &expect_size);
	if (bytes && ref &&
		pgf_image_plan(bytes, size, &pp, &plan, err, sizeof(err)) == PGF_IMAGE_OK &&
		plan.rows == rows && plan.cols == cols && plan.n_floats * sizeof(float) == expect_size)
	{
		out = malloc(plan.n_floats * sizeof(float));
		st = pgf_image_to_patches(bytes, size, &pp, &alloc, out, plan.n_floats, &plan,
								  err, sizeof(err));
		if (st == PGF_IMAGE_OK)
		{
			diff = tap_max_abs_diff(out, ref, plan.n_floats);
			ok = diff <= 1e-6;
		}
	}
	ok = ok && c.live == 0;
	if (diff > worst_patches)
		worst_patches = diff;
	tap_ok(ok, "patches %s: %d x %d patches of %d vs torch: max abs diff %.3g (tolerance 1e-6) %s",
		   name, rows, cols, ch * p * p, diff, err);
	free(bytes);
	free(ref);
	free(out);
}

static void
check_targets(void)
{
	int			n = 0,
				bad = 0;

	for (int i = 0; i < n_lines; i++)
	{
		int			w,
					h,
					p,
					m,
					ow,
					oh,
					gw,
					gh;

		if (sscanf(lines[i], "target %d %d %d %d %d %d", &w, &h, &p, &m, &ow, &oh) != 6)
			continue;
		n++;
		if (pgf_image_target_size(w, h, p, m, &gw, &gh) != PGF_IMAGE_OK || gw != ow || gh != oh)
		{
			if (bad++ < 5)
				tap_diag("target %dx%d P=%d max=%d: got %dx%d, want %dx%d", w, h, p, m, gw, gh,
						 ow, oh);
		}
	}
	tap_ok(n > 0 && bad == 0, "SOLO resize rule on %d sizes matches the Python formula", n);
}

static void
check_headers(void)
{
	int			n = 0,
				bad = 0;

	for (int i = 0; i < n_lines; i++)
	{
		char		name[128],
					input[256],
					expect[256],
					err[256];
		int			w,
					h,
					tol,
					gw,
					gh;
		size_t		size;
		uint8_t    *bytes;
		PgfImageFormat fmt;

		if (sscanf(lines[i], "decode %127s %255s %255s %d %d %d", name, input, expect, &w, &h,
				   &tol) != 6)
			continue;
		n++;
		bytes = read_golden(input, &size);
		if (!bytes ||
			pgf_image_read_header(bytes, size, &fmt, &gw, &gh, err, sizeof(err)) != PGF_IMAGE_OK ||
			gw != w || gh != h ||
			fmt != (strstr(input, ".jpg") ? PGF_IMAGE_JPEG : PGF_IMAGE_PNG))
			bad++;
		free(bytes);
	}
	tap_ok(n > 0 && bad == 0, "read_header gives format and size of %d files", n);
}

/* ---- the broken-file corpus ---------------------------------------------- */

static int
status_from_name(const char *name)
{
	for (int s = PGF_IMAGE_OK; s <= PGF_IMAGE_ERR_ARGUMENT; s++)
		if (strcmp(pgf_image_status_name((PgfImageStatus) s), name) == 0)
			return s;
	return -1;
}

static void
check_broken(const char *line)
{
	char		file[128],
				status_name[32],
				path[512],
				err[512] = "";
	const char *message;
	int			consumed = 0,
				want;
	size_t		size;
	uint8_t    *bytes;
	PgfImage	img;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);
	PgfImageStatus st;
	int			ok;

	if (sscanf(line, "%127s %31s %n", file, status_name, &consumed) < 2 || consumed == 0)
	{
		tap_ok(0, "bad EXPECT line: %s", line);
		return;
	}
	message = line + consumed;
	snprintf(path, sizeof(path), BROKEN "/%s", file);
	bytes = pgf_read_file(path, &size);
	if (!bytes)
	{
		tap_ok(0, "broken corpus: %s is missing", file);
		return;
	}
	st = pgf_image_decode(bytes, size, 3, PGF_IMAGE_DEFAULT_MAX_PIXELS, &alloc, &img,
						  err, sizeof(err));
	if (st == PGF_IMAGE_OK)
		ok = img.width >= 1 && img.height >= 1 && img.pixels != NULL;
	else
		ok = img.pixels == NULL && img.width == 0 && err[0] != 0;
	pgf_image_release(&img, &alloc);
	ok = ok && c.live == 0;
	if (strcmp(status_name, "any") != 0)
	{
		want = status_from_name(status_name);
		ok = ok && (int) st == want;
		if (strcmp(message, "-") != 0)
			ok = ok && strstr(err, message) != NULL;
	}
	tap_ok(ok, "broken corpus %s: %s \"%s\"", file, pgf_image_status_name(st),
		   st == PGF_IMAGE_OK ? "decoded" : err);
	free(bytes);
}

/* ---- robustness ---------------------------------------------------------- */

/* Every prefix of a valid file is an error (PNG: up to the IEND chunk). */
static void
check_truncations(const char *file, int png)
{
	char		path[512],
				err[256];
	size_t		size;
	uint8_t    *bytes;
	int			bad = 0,
				errors = 0,
				successes = 0;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);

	snprintf(path, sizeof(path), BROKEN "/%s", file);
	bytes = pgf_read_file(path, &size);
	if (!bytes)
	{
		tap_ok(0, "truncations of %s: file missing", file);
		return;
	}
	for (size_t cut = 0; cut < size; cut++)
	{
		/* An exact-size copy, so that a read past the end is caught. */
		uint8_t    *prefix = malloc(cut ? cut : 1);
		PgfImage	img;
		PgfImageStatus st;

		memcpy(prefix, bytes, cut);
		st = pgf_image_decode(prefix, cut, 3, PGF_IMAGE_DEFAULT_MAX_PIXELS, &alloc, &img,
							  err, sizeof(err));
		if (st == PGF_IMAGE_OK)
			successes++;
		else
			errors++;
		if (st == PGF_IMAGE_OK && (png ? cut < size - 12 : 1))
		{
			if (bad++ < 3)
				tap_diag("%s cut at %zu of %zu decoded", file, cut, size);
		}
		pgf_image_release(&img, &alloc);
		free(prefix);
	}
	tap_ok(bad == 0 && c.live == 0,
		   "every truncation of %s (%zu bytes): %d errors, %d decodes%s, %ld allocations left",
		   file, size, errors, successes, png ? " (cut inside IEND only)" : "", c.live);
	free(bytes);
}

/* Recomputes every chunk CRC so that corrupt data reaches zlib and libpng. */
static void
fix_png_crcs(uint8_t *b, size_t size)
{
	size_t		pos = 8;

	while (pos + 12 <= size)
	{
		uint32_t	len = ((uint32_t) b[pos] << 24) | (b[pos + 1] << 16) | (b[pos + 2] << 8) |
			b[pos + 3];
		uLong		crc;

		if (len > size - pos - 12)
			break;
		crc = crc32(0L, b + pos + 4, len + 4);
		b[pos + 8 + len] = (uint8_t) (crc >> 24);
		b[pos + 9 + len] = (uint8_t) (crc >> 16);
		b[pos + 10 + len] = (uint8_t) (crc >> 8);
		b[pos + 11 + len] = (uint8_t) crc;
		pos += 12 + len;
	}
}

/*
 * Random byte changes (PNG: with the chunk CRCs made right again, so that
 * the damage reaches the decompressor): any status, never a crash or a leak.
 */
static void
check_corruption(const char *file, int rounds, int fix_crcs)
{
	char		path[512],
				err[256];
	size_t		size;
	uint8_t    *bytes,
			   *copy;
	uint32_t	seed = 12345;
	int			errors = 0,
				successes = 0,
				bad = 0;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);

	snprintf(path, sizeof(path), BROKEN "/%s", file);
	bytes = pgf_read_file(path, &size);
	if (!bytes)
	{
		tap_ok(0, "corruption of %s: file missing", file);
		return;
	}
	copy = malloc(size);
	for (int r = 0; r < rounds; r++)
	{
		PgfImage	img;
		int			changes;

		memcpy(copy, bytes, size);
		seed = seed * 1103515245u + 12345u;
		changes = 1 + (seed >> 16) % 4;
		for (int k = 0; k < changes; k++)
		{
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % size] ^= (uint8_t) (1 + (seed >> 24) % 255);
		}
		if (fix_crcs)
			fix_png_crcs(copy, size);
		if (pgf_image_decode(copy, size, 3, 1u << 24, &alloc, &img, err, sizeof(err)) ==
			PGF_IMAGE_OK)
		{
			successes++;
			if (img.width < 1 || img.height < 1 || !img.pixels)
				bad++;
		}
		else
		{
			errors++;
			if (err[0] == 0)
				bad++;
		}
		pgf_image_release(&img, &alloc);
	}
	tap_ok(bad == 0 && c.live == 0,
		   "%d random corruptions of %s%s: %d errors, %d decodes, no crash, %ld allocations left",
		   rounds, file, fix_crcs ? " (CRCs fixed)" : "", errors, successes, c.live);
	free(copy);
	free(bytes);
}

/* The allocation with each index fails in turn: NOMEM, nothing leaked. */
static void
check_alloc_failures(const char *file, int pipeline)
{
	char		path[512],
				err[256];
	size_t		size;
	uint8_t    *bytes;
	int			bad = 0;
	long		k;
	Counter		c;
	PgfImagePreprocess pp;
	float	   *out = malloc(sizeof(float) * 3 * 64 * 64);

	pgf_image_preprocess_init(&pp, 16, 64);
	snprintf(path, sizeof(path), BROKEN "/%s", file);
	bytes = pgf_read_file(path, &size);
	for (k = 0; bytes && k < 100; k++)
	{
		PgfImageAllocator alloc = counting(&c, k);
		PgfImage	img;
		PgfImageStatus st;

		if (pipeline)
			st = pgf_image_to_patches(bytes, size, &pp, &alloc, out, 3 * 64 * 64, NULL,
									  err, sizeof(err));
		else
		{
			st = pgf_image_decode(bytes, size, 3, PGF_IMAGE_DEFAULT_MAX_PIXELS, &alloc, &img,
								  err, sizeof(err));
			pgf_image_release(&img, &alloc);
		}
		if (c.live != 0 || (c.allocs > k && st != PGF_IMAGE_ERR_NOMEM))
			bad++;
		if (c.allocs <= k)		/* no allocation failed: the run succeeded */
		{
			if (st != PGF_IMAGE_OK)
				bad++;
			break;
		}
	}
	tap_ok(bytes && bad == 0 && k < 100,
		   "%s of %s with allocation 0..%ld failing: out of memory each time, nothing leaked",
		   pipeline ? "preprocessing" : "decoding", file, k - 1);
	free(bytes);
	free(out);
}

static void
check_limit_before_allocation(const char *file, PgfImageStatus want)
{
	char		path[512],
				err[256] = "";
	size_t		size;
	uint8_t    *bytes;
	Counter		c;
	PgfImageAllocator alloc = counting(&c, -1);
	PgfImage	img;
	PgfImageStatus st = PGF_IMAGE_OK;

	snprintf(path, sizeof(path), BROKEN "/%s", file);
	bytes = pgf_read_file(path, &size);
	if (bytes)
		st = pgf_image_decode(bytes, size, 3, PGF_IMAGE_DEFAULT_MAX_PIXELS, &alloc, &img,
							  err, sizeof(err));
	tap_ok(bytes && st == want && c.allocs == 0,
		   "%s rejected before any allocation (%ld allocations): %s", file, c.allocs, err);
	free(bytes);
}

/* ---- API-level checks ---------------------------------------------------- */

static void
check_target_examples(void)
{
	struct
	{
		int			w,
					h,
					p,
					m,
					ow,
					oh;
	}			cases[] = {
		{640, 427, 32, 1024, 640, 448},
		{451, 300, 32, 1024, 480, 320},
		{300, 451, 32, 1024, 320, 480},
		{1, 1, 32, 1024, 32, 32},
		{1, 5000, 32, 1024, 32, 1024},	/* floor(1024 / 5000) = 0: at least P */
		{4000, 3000, 32, 1024, 1024, 768},
		{1024, 1024, 32, 1024, 1024, 1024},
		{2000, 2000, 32, 1024, 1024, 1024},
		{33, 1, 32, 1024, 64, 32},
	};
	int			bad = 0,
				w,
				h;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (pgf_image_target_size(cases[i].w, cases[i].h, cases[i].p, cases[i].m, &w, &h) !=
			PGF_IMAGE_OK || w != cases[i].ow || h != cases[i].oh)
		{
			tap_diag("%dx%d -> %dx%d, want %dx%d", cases[i].w, cases[i].h, w, h, cases[i].ow,
					 cases[i].oh);
			bad++;
		}
	tap_ok(bad == 0, "SOLO resize rule on worked examples (1x1 -> 32x32, 1x5000 -> 32x1024)");
	tap_ok(pgf_image_target_size(10, 10, 0, 1024, &w, &h) == PGF_IMAGE_ERR_ARGUMENT &&
		   pgf_image_target_size(10, 10, 32, 1000, &w, &h) == PGF_IMAGE_ERR_ARGUMENT &&
		   pgf_image_target_size(0, 10, 32, 1024, &w, &h) == PGF_IMAGE_ERR_EMPTY,
		   "resize rule rejects patch 0, max_side not a multiple of P, and 0-sized images");
}

static void
check_sniff(void)
{
	static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0};
	char		err[256];
	PgfImage	img;

	tap_ok(pgf_image_sniff(png, 8) == PGF_IMAGE_PNG && pgf_image_sniff(png, 7) == 0 &&
		   pgf_image_sniff(jpg, 3) == PGF_IMAGE_JPEG && pgf_image_sniff(jpg, 2) == 0 &&
		   pgf_image_sniff("GIF89a", 6) == 0 && pgf_image_sniff(NULL, 0) == 0,
		   "format sniffing from magic bytes");
	tap_ok(pgf_image_decode("abc", 3, 3, 100, NULL, &img, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_FORMAT && strcmp(err, "not a PNG or JPEG image") == 0 &&
		   img.pixels == NULL,
		   "non-image bytes: \"%s\"", err);
	tap_ok(pgf_image_decode(png, 8, 3, 100, NULL, &img, NULL, 0) == PGF_IMAGE_ERR_CORRUPT &&
		   pgf_image_decode(jpg, 4, 3, 100, NULL, &img, NULL, 0) == PGF_IMAGE_ERR_CORRUPT &&
		   pgf_image_decode(png, 8, 2, 100, NULL, &img, err, 1) == PGF_IMAGE_ERR_ARGUMENT,
		   "errors with no message buffer (or a 1-byte one) are safe");
}

static void
check_settings(void)
{
	Pgformer__ImagePreprocess msg = PGFORMER__IMAGE_PREPROCESS__INIT;
	PgfImagePreprocess pp;
	char		err[256] = "";
	float		one[1] = {0.5f},
				two[2] = {0.5f, 0.5f},
				zero[1] = {0.0f};
	int			ok;

	msg.patch_size = 32;
	msg.max_side = 1024;
	ok = pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) == PGF_IMAGE_OK &&
		pp.channels == 3 && pp.mean[0] == 0.485f && pp.std[2] == 0.225f && pp.max_pixels == 1000;
	tap_ok(ok, "ImagePreprocess without mean/std: ImageNet values %s", err);

	msg.grey = 1;
	tap_ok(pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_ARGUMENT, "grey without mean/std is refused: %s", err);
	msg.n_mean = msg.n_std = 1;
	msg.mean = one;
	msg.std = one;
	err[0] = 0;
	tap_ok(pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) ==
		   PGF_IMAGE_OK && pp.channels == 1 && pp.mean[0] == 0.5f,
		   "grey with one mean and std %s", err);
	msg.grey = 0;
	msg.n_mean = 2;
	msg.mean = two;
	tap_ok(pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_ARGUMENT, "two means for three channels: %s", err);
	msg.n_mean = 1;
	msg.mean = one;
	msg.std = zero;
	tap_ok(pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_ARGUMENT, "std 0: %s", err);
	msg.std = one;
	msg.max_side = 1000;
	tap_ok(pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_ARGUMENT, "max_side not a multiple of patch_size: %s", err);
	msg.max_side = 1024;
	msg.patch_size = 0;
	tap_ok(pgf_image_preprocess_from_config(&msg, 1000, &pp, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_ARGUMENT, "patch_size 0: %s", err);
}

static void
check_plan_and_buffer(void)
{
	char		path[512],
				err[256] = "";
	size_t		size;
	uint8_t    *bytes;
	PgfImagePreprocess pp;
	PgfImagePlan plan;
	float		small[16];
	int			ok;

	snprintf(path, sizeof(path), GOLDEN "/in/photo_rocket.jpg");
	bytes = pgf_read_file(path, &size);
	pgf_image_preprocess_init(&pp, 32, 1024);
	ok = bytes && pgf_image_plan(bytes, size, &pp, &plan, err, sizeof(err)) == PGF_IMAGE_OK &&
		plan.format == PGF_IMAGE_JPEG && plan.width == 640 && plan.height == 427 &&
		plan.out_width == 640 && plan.out_height == 448 && plan.rows == 14 && plan.cols == 20 &&
		plan.patch_dim == 3072 && plan.n_floats == (size_t) 14 * 20 * 3072;
	tap_ok(ok, "plan of rocket.jpg: 640x427 -> 640x448, 14 x 20 patches of 3072 %s", err);
	tap_ok(bytes && pgf_image_to_patches(bytes, size, &pp, NULL, small, 16, NULL, err,
										 sizeof(err)) == PGF_IMAGE_ERR_ARGUMENT,
		   "a patch buffer too small is refused: %s", err);
	pp.max_pixels = 640 * 427 - 1;
	tap_ok(bytes && pgf_image_plan(bytes, size, &pp, &plan, err, sizeof(err)) ==
		   PGF_IMAGE_ERR_TOO_LARGE, "one pixel over the limit: %s", err);
	free(bytes);
}

static int	interrupt_calls;

static void
count_interrupts(void)
{
	interrupt_calls++;
}

static void
check_interrupts_and_grey(void)
{
	char		path[512],
				err[256] = "";
	size_t		size;
	uint8_t    *bytes;
	PgfImage	rgb,
				grey,
				big;
	int			ok = 0;

	snprintf(path, sizeof(path), GOLDEN "/in/photo_chelsea.png");
	bytes = pgf_read_file(path, &size);
	if (bytes &&
		pgf_image_decode(bytes, size, 3, PGF_IMAGE_DEFAULT_MAX_PIXELS, NULL, &rgb, err,
						 sizeof(err)) == PGF_IMAGE_OK &&
		pgf_image_decode(bytes, size, 1, PGF_IMAGE_DEFAULT_MAX_PIXELS, NULL, &grey, err,
						 sizeof(err)) == PGF_IMAGE_OK)
	{
		ok = grey.channels == 1 && grey.width == rgb.width;
		for (int i = 0; ok && i < rgb.width * rgb.height; i++)
		{
			const uint8_t *p = rgb.pixels + 3 * i;

			ok = grey.pixels[i] == ((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
		}
		pgf_interrupt_hook = count_interrupts;
		if (pgf_image_resize(&rgb, 960, 640, NULL, &big, err, sizeof(err)) == PGF_IMAGE_OK)
			pgf_image_release(&big, NULL);
		pgf_interrupt_hook = NULL;
		pgf_image_release(&rgb, NULL);
		pgf_image_release(&grey, NULL);
	}
	tap_ok(ok, "grey decode is PIL's convert(\"L\") of the RGB decode");
	tap_ok(interrupt_calls >= 640 / 32, "resizing checks for interrupts (%d calls)",
		   interrupt_calls);
	free(bytes);
}

int
main(void)
{
	int			n_broken;
	char	   *golden[MAX_LINES];
	int			n_golden;

	if (load_lines(GOLDEN "/manifest.txt") != 0)
	{
		tap_ok(0, "golden data missing: run `make unit` (test/gen/golden_image.py)");
		return tap_done_testing();
	}
	n_golden = n_lines;
	memcpy(golden, lines, sizeof(char *) * n_golden);
	if (load_lines(BROKEN "/EXPECT") != 0)
	{
		tap_ok(0, "broken-file corpus missing: " BROKEN "/EXPECT");
		return tap_done_testing();
	}
	n_broken = n_lines - n_golden;
	n_lines = n_golden;

	for (int i = 0; i < n_golden; i++)
	{
		if (strncmp(golden[i], "decode ", 7) == 0)
			check_decode(golden[i]);
		else if (strncmp(golden[i], "resize ", 7) == 0)
			check_resize(golden[i]);
		else if (strncmp(golden[i], "patches ", 8) == 0)
			check_patches(golden[i]);
	}
	check_targets();
	check_headers();
	for (int i = n_golden; i < n_golden + n_broken; i++)
		check_broken(lines[i]);

	/* 20 fixed checks */
	check_sniff();				/* 3 */
	check_target_examples();	/* 2 */
	check_settings();			/* 7 */
	check_plan_and_buffer();	/* 3 */
	check_interrupts_and_grey();	/* 2 */
	check_limit_before_allocation("png_100000x100000.png", PGF_IMAGE_ERR_TOO_LARGE);
	check_limit_before_allocation("jpeg_65500x65500.jpg", PGF_IMAGE_ERR_TOO_LARGE);
	check_limit_before_allocation("png_zero_by_zero.png", PGF_IMAGE_ERR_EMPTY);
	/* 4 truncation sweeps */
	check_truncations("seed_rgb.png", 1);
	check_truncations("seed_interlaced_palette.png", 1);
	check_truncations("seed_baseline.jpg", 0);
	check_truncations("seed_progressive.jpg", 0);
	/* 6 corruption runs */
	check_corruption("seed_rgb.png", 2000, 0);
	check_corruption("seed_rgb.png", 2000, 1);
	check_corruption("seed_interlaced_palette.png", 2000, 1);
	check_corruption("jpeg_cmyk.jpg", 2000, 0);
	check_corruption("seed_baseline.jpg", 2000, 0);
	check_corruption("seed_progressive.jpg", 2000, 0);
	/* 4 allocation-failure runs */
	check_alloc_failures("seed_interlaced_palette.png", 0);
	check_alloc_failures("seed_progressive.jpg", 0);
	check_alloc_failures("jpeg_cmyk.jpg", 0);
	check_alloc_failures("seed_baseline.jpg", 1);

	tap_diag("worst: PNG decode %d, JPEG decode %d, resize %d (mean %.4f), patches %.3g",
			 worst_decode_png, worst_decode_jpeg, worst_resize, worst_resize_mean,
			 worst_patches);
	return tap_done_testing();
}
