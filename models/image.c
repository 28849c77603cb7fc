/*
 * image.c: the vision-language models' image codec (see image.h): PNG
 * decoding through libpng, JPEG through libjpeg-turbo, each behind its own
 * setjmp so that a library error comes back as a status; SOLO's resize
 * rule; a line-by-line equivalent of PIL's bilinear resampler; float32
 * normalisation and channel-major patchify.
 */
#include "models/image.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "kernels/runtime.h"

/* More scans than any real progressive JPEG has (libjpeg-turbo's advice). */
#define JPEG_MAX_SCANS 500

/* Output rows between two interrupt checks in the resampling loops. */
#define ROWS_PER_INTERRUPT_CHECK 32

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

const char *
pgf_image_status_name(PgfImageStatus status)
{
	switch (status)
	{
		case PGF_IMAGE_OK:
			return "ok";
		case PGF_IMAGE_ERR_FORMAT:
			return "format";
		case PGF_IMAGE_ERR_CORRUPT:
			return "corrupt";
		case PGF_IMAGE_ERR_UNSUPPORTED:
			return "unsupported";
		case PGF_IMAGE_ERR_EMPTY:
			return "empty";
		case PGF_IMAGE_ERR_TOO_LARGE:
			return "too_large";
		case PGF_IMAGE_ERR_NOMEM:
			return "nomem";
		case PGF_IMAGE_ERR_ARGUMENT:
			return "argument";
	}
	return "unknown";
}

/* Writes a message into err[errlen] and gives status back (kernels/runtime.h). */
#define set_error(err, errlen, status, ...) (pgf_error((err), (errlen), __VA_ARGS__), (status))

/* ---- allocation ---------------------------------------------------------- */

static void *
image_alloc(const PgfImageAllocator *a, size_t size)
{
	if (size == 0)
		size = 1;
	if (a && a->alloc)
		return a->alloc(a->context, size);
	return malloc(size);
}

static void
image_free(const PgfImageAllocator *a, void *ptr)
{
	if (!ptr)
		return;
	if (a && a->alloc)
	{
		if (a->free)
			a->free(a->context, ptr);
	}
	else
		free(ptr);
}

void
pgf_image_release(PgfImage *img, const PgfImageAllocator *alloc)
{
	if (!img)
		return;
	image_free(alloc, img->pixels);
	memset(img, 0, sizeof(*img));
}

/* ---- format sniffing and limits ------------------------------------------ */

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

PgfImageFormat
pgf_image_sniff(const void *bytes, size_t size)
{
	const uint8_t *b = bytes;

	if (!b)
		return PGF_IMAGE_UNKNOWN;
	if (size >= 8 && memcmp(b, png_signature, 8) == 0)
		return PGF_IMAGE_PNG;
	if (size >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return PGF_IMAGE_JPEG;
	return PGF_IMAGE_UNKNOWN;
}

/* A hint for the "not a PNG or JPEG" message. */
static const char *
other_format_name(const uint8_t *b, size_t size)
{
	if (size >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
		return "GIF";
	if (size >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
		return "WebP";
	if (size >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0))
		return "TIFF";
	if (size >= 2 && b[0] == 'B' && b[1] == 'M')
		return "BMP";
	if (size >= 12 && memcmp(b + 4, "ftyp", 4) == 0)
		return "HEIF/AVIF or another ISO media file";
	if (size >= 4 && memcmp(b, "\x89PNG", 4) == 0)
		return "a damaged PNG signature";
	if (size >= 2 && b[0] == 0xff && b[1] == 0xd8)
		return "a damaged JPEG start";
	return NULL;
}

static PgfImageStatus
not_an_image(const void *bytes, size_t size, char *err, size_t errlen)
{
	const char *other = bytes ? other_format_name(bytes, size) : NULL;

	if (size == 0)
		return set_error(err, errlen, PGF_IMAGE_ERR_FORMAT,
						 "not a PNG or JPEG image (no bytes)");
	if (other)
		return set_error(err, errlen, PGF_IMAGE_ERR_FORMAT,
						 "not a PNG or JPEG image (it looks like %s)", other);
	return set_error(err, errlen, PGF_IMAGE_ERR_FORMAT, "not a PNG or JPEG image");
}

static PgfImageStatus
check_size(uint64_t width, uint64_t height, uint64_t max_pixels, char *err, size_t errlen)
{
	uint64_t	pixels = width * height;	/* both < 2^32: no overflow */

	if (width == 0 || height == 0)
		return set_error(err, errlen, PGF_IMAGE_ERR_EMPTY,
						 "the image has zero width or height (%llu x %llu)",
						 (unsigned long long) width, (unsigned long long) height);
	if (pixels > max_pixels || pixels > SIZE_MAX / 8)
		return set_error(err, errlen, PGF_IMAGE_ERR_TOO_LARGE,
						 "the image is %llu x %llu = %llu pixels, above the limit of %llu pixels",
						 (unsigned long long) width, (unsigned long long) height,
						 (unsigned long long) pixels, (unsigned long long) max_pixels);
	return PGF_IMAGE_OK;
}

/* ---- PNG ----------------------------------------------------------------- */

static uint32_t
read_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

/*
 * The size from the IHDR chunk, read by hand so that the pixel limit is
 * checked before libpng sees the file.  libpng checks the rest (the CRC, the
 * bit depth and colour type) later.
 */
static PgfImageStatus
png_header_size(const uint8_t *b, size_t size, int *width, int *height,
				char *err, size_t errlen)
{
	uint32_t	w,
				h;

	if (size < 8 + 8 + 13)
		return set_error(err, errlen, PGF_IMAGE_ERR_CORRUPT,
						 "invalid PNG image: the file is truncated inside its header (%zu bytes)",
						 size);
	if (read_be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0)
		return set_error(err, errlen, PGF_IMAGE_ERR_CORRUPT,
						 "invalid PNG image: the first chunk is not a valid IHDR");
	w = read_be32(b + 16);
	h = read_be32(b + 20);
	if (w == 0 || h == 0)
		return check_size(w, h, UINT64_MAX, err, errlen);
	if (w > PNG_UINT_31_MAX || h > PNG_UINT_31_MAX)
		return set_error(err, errlen, PGF_IMAGE_ERR_CORRUPT,
						 "invalid PNG image: the header declares %u x %u pixels, above 2^31 - 1",
						 w, h);
	*width = (int) w;
	*height = (int) h;
	return PGF_IMAGE_OK;
}

typedef struct PngReader
{
	const uint8_t *bytes;
	size_t		size;
	size_t		pos;
	const PgfImageAllocator *alloc;
	char	   *err;
	size_t		errlen;
	PgfImageStatus status;		/* set by whoever raises an error */
	png_structp png;
	png_infop	info;
	int			width;
	int			height;
	uint8_t    *pixels;			/* width * height * 3, from alloc */
	png_bytep  *rows;			/* height row pointers, from alloc */
} PngReader;

static void
png_error_to_status(png_structp png, png_const_charp message)
{
	PngReader  *r = png_get_error_ptr(png);

	if (r->status == PGF_IMAGE_OK)
		r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
							  "invalid PNG image: %s", message);
	png_longjmp(png, 1);
}

static void
png_warning_ignored(png_structp png, png_const_charp message)
{
	/* PIL ignores ancillary problems too; nothing is printed. */
}

static void
png_read_from_memory(png_structp png, png_bytep data, size_t length)
{
	PngReader  *r = png_get_io_ptr(png);

	if (length > r->size - r->pos)
	{
		r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
							  "invalid PNG image: the file is truncated (%zu bytes)", r->size);
		png_error(png, "truncated");
	}
	memcpy(data, r->bytes + r->pos, length);
	r->pos += length;
}

/* Raises a non-libpng error from inside the protected region. */
static void
png_fail(PngReader *r, PgfImageStatus status, const char *message)
{
	r->status = set_error(r->err, r->errlen, status, "%s", message);
	png_error(r->png, message);
}

/* Everything libpng does; runs under png_protected's setjmp. */
static __attribute__((noinline)) void
png_decode_body(PngReader *r)
{
	png_uint_32 w,
				h;
	int			bit_depth,
				color_type,
				interlace;
	size_t		row_bytes;

	png_set_read_fn(r->png, r, png_read_from_memory);
	/* The caller's pixel limit replaces libpng's per-side limits. */
	png_set_user_limits(r->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
	png_set_benign_errors(r->png, 1);
	png_read_info(r->png, r->info);
	png_get_IHDR(r->png, r->info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);
	if ((int) w != r->width || (int) h != r->height)
		png_fail(r, PGF_IMAGE_ERR_CORRUPT, "invalid PNG image: inconsistent header");

	/* To 8-bit RGB: palette and grey expanded, 16-bit to the high byte. */
	if (color_type == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(r->png);
	if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8)
		png_set_expand_gray_1_2_4_to_8(r->png);
	if (bit_depth == 16)
		png_set_strip_16(r->png);
	/* Alpha (and tRNS) dropped, as PIL's convert("RGB"). */
	png_set_strip_alpha(r->png);
	if ((color_type & PNG_COLOR_MASK_COLOR) == 0)
		png_set_gray_to_rgb(r->png);
	png_set_interlace_handling(r->png);
	png_read_update_info(r->png, r->info);

	row_bytes = png_get_rowbytes(r->png, r->info);
	if (png_get_channels(r->png, r->info) != 3 || png_get_bit_depth(r->png, r->info) != 8 ||
		row_bytes != (size_t) r->width * 3)
		png_fail(r, PGF_IMAGE_ERR_UNSUPPORTED,
				 "PNG image: this colour type and bit depth do not convert to 8-bit RGB");

	r->pixels = image_alloc(r->alloc, row_bytes * r->height);
	r->rows = image_alloc(r->alloc, sizeof(png_bytep) * r->height);
	if (!r->pixels || !r->rows)
		png_fail(r, PGF_IMAGE_ERR_NOMEM, "out of memory for the decoded PNG image");
	for (int y = 0; y < r->height; y++)
		r->rows[y] = r->pixels + (size_t) y * row_bytes;
	png_read_image(r->png, r->rows);
	/* The chunks after the image data (IEND) are not needed, as in PIL. */
}

static int
png_protected(PngReader *r)
{
	if (setjmp(png_jmpbuf(r->png)))
		return 0;
	png_decode_body(r);
	return 1;
}

static PgfImageStatus
png_decode(const uint8_t *bytes, size_t size, uint64_t max_pixels,
		   const PgfImageAllocator *alloc, PgfImage *out, char *err, size_t errlen)
{
	PngReader	r;
	PgfImageStatus status;
	int			ok;

	memset(&r, 0, sizeof(r));
	status = png_header_size(bytes, size, &r.width, &r.height, err, errlen);
	if (status == PGF_IMAGE_OK)
		status = check_size(r.width, r.height, max_pixels, err, errlen);
	if (status != PGF_IMAGE_OK)
		return status;

	r.bytes = bytes;
	r.size = size;
	r.alloc = alloc;
	r.err = err;
	r.errlen = errlen;
	r.status = PGF_IMAGE_OK;
	r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_error_to_status,
								   png_warning_ignored);
	if (r.png)
		r.info = png_create_info_struct(r.png);
	if (!r.png || !r.info)
	{
		png_destroy_read_struct(r.png ? &r.png : NULL, NULL, NULL);
		return set_error(err, errlen, PGF_IMAGE_ERR_NOMEM, "out of memory starting libpng");
	}
	ok = png_protected(&r);
	png_destroy_read_struct(&r.png, &r.info, NULL);
	image_free(alloc, r.rows);
	if (!ok)
	{
		image_free(alloc, r.pixels);
		if (r.status == PGF_IMAGE_OK)
			r.status = set_error(err, errlen, PGF_IMAGE_ERR_CORRUPT, "invalid PNG image");
		return r.status;
	}
	out->width = r.width;
	out->height = r.height;
	out->channels = 3;
	out->pixels = r.pixels;
	return PGF_IMAGE_OK;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct JpegReader JpegReader;

typedef struct JpegErrorManager
{
	struct jpeg_error_mgr pub;	/* first: libjpeg sees only this */
	JpegReader *reader;
} JpegErrorManager;

struct JpegReader
{
	struct jpeg_decompress_struct cinfo;
	JpegErrorManager jerr;
	struct jpeg_progress_mgr progress;
	jmp_buf		jump;
	const uint8_t *bytes;
	size_t		size;
	uint64_t	max_pixels;
	int			header_only;
	const PgfImageAllocator *alloc;
	char	   *err;
	size_t		errlen;
	PgfImageStatus status;
	int			width;
	int			height;
	uint8_t    *pixels;			/* width * height * 3, from alloc */
	uint8_t    *cmyk_row;		/* width * 4, from alloc, CMYK files only */
};

static void
jpeg_fail(JpegReader *r)
{
	longjmp(r->jump, 1);
}

static void
jpeg_error_to_status(j_common_ptr cinfo)
{
	JpegReader *r = ((JpegErrorManager *) cinfo->err)->reader;
	char		message[JMSG_LENGTH_MAX];
	PgfImageStatus status = PGF_IMAGE_ERR_CORRUPT;

	if (r->status == PGF_IMAGE_OK)
	{
		switch (cinfo->err->msg_code)
		{
			case JERR_EMPTY_IMAGE:
				r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_EMPTY,
									  "the image has zero width or height");
				jpeg_fail(r);
				break;
			case JERR_IMAGE_TOO_BIG:
				status = PGF_IMAGE_ERR_TOO_LARGE;
				break;
			case JERR_BAD_PRECISION:
			case JERR_ARITH_NOTIMPL:
			case JERR_NOT_COMPILED:
			case JERR_CONVERSION_NOTIMPL:
				status = PGF_IMAGE_ERR_UNSUPPORTED;
				break;
			default:
				break;
		}
		(*cinfo->err->format_message) (cinfo, message);
		r->status = set_error(r->err, r->errlen, status, "%s JPEG image: %s",
							  status == PGF_IMAGE_ERR_CORRUPT ? "invalid" : "unsupported",
							  message);
	}
	jpeg_fail(r);
}

/*
 * Warnings: libjpeg pads a truncated file with an EOI marker and warns;
 * that is an error here, as in PIL.  Other warnings (corrupt entropy data
 * that libjpeg recovers from) are ignored, as PIL does.  Nothing is printed.
 */
static void
jpeg_message(j_common_ptr cinfo, int msg_level)
{
	JpegReader *r = ((JpegErrorManager *) cinfo->err)->reader;

	if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
	{
		if (r->status == PGF_IMAGE_OK)
			r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
								  "invalid JPEG image: the file is truncated (%zu bytes)",
								  r->size);
		jpeg_fail(r);
	}
	if (msg_level < 0)
		cinfo->err->num_warnings++;
}

static void
jpeg_output_ignored(j_common_ptr cinfo)
{
}

static void
jpeg_scan_limit(j_common_ptr cinfo)
{
	JpegReader *r = ((JpegErrorManager *) cinfo->err)->reader;

	if (r->cinfo.input_scan_number > JPEG_MAX_SCANS)
	{
		r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
							  "invalid JPEG image: more than %d scans", JPEG_MAX_SCANS);
		jpeg_fail(r);
	}
}

/* PIL's CMYK to RGB for Adobe-convention (inverted) samples. */
static void
cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int width)
{
	for (int x = 0; x < width; x++, in += 4, out += 3)
	{
		int			nk = in[3];	/* 255 - K, K = 255 - stored */

		for (int c = 0; c < 3; c++)
		{
			int			ink = 255 - in[c];
			int			t = ink * nk + 128;
			int			v = nk - (((t >> 8) + t) >> 8);

			out[c] = (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
		}
	}
}

/* Everything libjpeg does; runs under jpeg_protected's setjmp. */
static __attribute__((noinline)) void
jpeg_decode_body(JpegReader *r)
{
	j_decompress_ptr cinfo = &r->cinfo;
	PgfImageStatus status;
	int			cmyk = 0;

	jpeg_create_decompress(cinfo);
	jpeg_mem_src(cinfo, r->bytes, (unsigned long) r->size);
	r->progress.progress_monitor = jpeg_scan_limit;
	cinfo->progress = &r->progress;
	if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK)
	{
		r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
							  "invalid JPEG image: it holds tables but no image");
		jpeg_fail(r);
	}
	r->width = (int) cinfo->image_width;
	r->height = (int) cinfo->image_height;
	status = check_size(cinfo->image_width, cinfo->image_height, r->max_pixels,
						r->err, r->errlen);
	if (status != PGF_IMAGE_OK)
	{
		r->status = status;
		jpeg_fail(r);
	}
	if (r->header_only)
		return;

	switch (cinfo->jpeg_color_space)
	{
		case JCS_GRAYSCALE:
		case JCS_YCbCr:
		case JCS_RGB:
			cinfo->out_color_space = JCS_RGB;
			break;
		case JCS_CMYK:
		case JCS_YCCK:
			cinfo->out_color_space = JCS_CMYK;
			cmyk = 1;
			break;
		default:
			r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_UNSUPPORTED,
								  "unsupported JPEG image: %d colour components of no known colour space",
								  cinfo->num_components);
			jpeg_fail(r);
	}
	jpeg_start_decompress(cinfo);
	if ((int) cinfo->output_width != r->width || (int) cinfo->output_height != r->height ||
		cinfo->output_components != (cmyk ? 4 : 3))
	{
		r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
							  "invalid JPEG image: unexpected output layout");
		jpeg_fail(r);
	}
	r->pixels = image_alloc(r->alloc, (size_t) r->width * r->height * 3);
	if (cmyk)
		r->cmyk_row = image_alloc(r->alloc, (size_t) r->width * 4);
	if (!r->pixels || (cmyk && !r->cmyk_row))
	{
		r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_NOMEM,
							  "out of memory for the decoded JPEG image");
		jpeg_fail(r);
	}
	while (cinfo->output_scanline < cinfo->output_height)
	{
		uint8_t    *row = r->pixels + (size_t) cinfo->output_scanline * r->width * 3;
		JSAMPROW	target = cmyk ? r->cmyk_row : row;

		if (jpeg_read_scanlines(cinfo, &target, 1) != 1)
		{
			r->status = set_error(r->err, r->errlen, PGF_IMAGE_ERR_CORRUPT,
								  "invalid JPEG image: no scanline decoded");
			jpeg_fail(r);
		}
		if (cmyk)
			cmyk_row_to_rgb(r->cmyk_row, row, r->width);
	}
	/* Reads up to EOI: a file cut anywhere before it is an error. */
	jpeg_finish_decompress(cinfo);
}

static int
jpeg_protected(JpegReader *r)
{
	if (setjmp(r->jump))
		return 0;
	jpeg_decode_body(r);
	return 1;
}

static PgfImageStatus
jpeg_run(const uint8_t *bytes, size_t size, uint64_t max_pixels, int header_only,
		 const PgfImageAllocator *alloc, PgfImage *out, char *err, size_t errlen)
{
	JpegReader *r;
	PgfImageStatus status;
	int			ok;

	/* The reader holds a jmp_buf and libjpeg's state: keep it off the stack. */
	r = calloc(1, sizeof(JpegReader));
	if (!r)
		return set_error(err, errlen, PGF_IMAGE_ERR_NOMEM, "out of memory starting libjpeg");
	r->bytes = bytes;
	r->size = size;
	r->max_pixels = max_pixels;
	r->header_only = header_only;
	r->alloc = alloc;
	r->err = err;
	r->errlen = errlen;
	r->status = PGF_IMAGE_OK;
	r->cinfo.err = jpeg_std_error(&r->jerr.pub);
	r->jerr.pub.error_exit = jpeg_error_to_status;
	r->jerr.pub.emit_message = jpeg_message;
	r->jerr.pub.output_message = jpeg_output_ignored;
	r->jerr.reader = r;

	ok = jpeg_protected(r);
	jpeg_destroy_decompress(&r->cinfo);
	image_free(alloc, r->cmyk_row);
	if (!ok)
	{
		image_free(alloc, r->pixels);
		status = r->status;
		if (status == PGF_IMAGE_OK)
			status = set_error(err, errlen, PGF_IMAGE_ERR_CORRUPT, "invalid JPEG image");
		free(r);
		return status;
	}
	out->width = r->width;
	out->height = r->height;
	out->channels = 3;
	out->pixels = r->pixels;
	free(r);
	return PGF_IMAGE_OK;
}

/* ---- decoding API -------------------------------------------------------- */

PgfImageStatus
pgf_image_read_header(const void *bytes, size_t size, PgfImageFormat *format,
					  int *width, int *height, char *err, size_t errlen)
{
	PgfImageFormat fmt = pgf_image_sniff(bytes, size);
	PgfImageStatus status;
	PgfImage	img;

	*format = fmt;
	*width = *height = 0;
	if (fmt == PGF_IMAGE_PNG)
		return png_header_size(bytes, size, width, height, err, errlen);
	if (fmt != PGF_IMAGE_JPEG)
		return not_an_image(bytes, size, err, errlen);
	memset(&img, 0, sizeof(img));
	status = jpeg_run(bytes, size, UINT64_MAX, 1, NULL, &img, err, errlen);
	if (status == PGF_IMAGE_OK)
	{
		*width = img.width;
		*height = img.height;
	}
	return status;
}

/* PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, in place. */
static void
rgb_to_grey(PgfImage *img)
{
	size_t		n = (size_t) img->width * img->height;
	uint8_t    *p = img->pixels;

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t) ((p[3 * i] * 19595 + p[3 * i + 1] * 38470 + p[3 * i + 2] * 7471 +
						   0x8000) >> 16);
	img->channels = 1;
}

PgfImageStatus
pgf_image_decode(const void *bytes, size_t size, int channels, uint64_t max_pixels,
				 const PgfImageAllocator *alloc, PgfImage *out, char *err, size_t errlen)
{
	PgfImageFormat fmt;
	PgfImageStatus status;

	memset(out, 0, sizeof(*out));
	if (channels != 1 && channels != 3)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "channels must be 1 or 3, not %d", channels);
	fmt = pgf_image_sniff(bytes, size);
	if (fmt == PGF_IMAGE_PNG)
		status = png_decode(bytes, size, max_pixels, alloc, out, err, errlen);
	else if (fmt == PGF_IMAGE_JPEG)
		status = jpeg_run(bytes, size, max_pixels, 0, alloc, out, err, errlen);
	else
		return not_an_image(bytes, size, err, errlen);
	if (status != PGF_IMAGE_OK)
	{
		memset(out, 0, sizeof(*out));
		return status;
	}
	if (channels == 1)
		rgb_to_grey(out);
	return PGF_IMAGE_OK;
}

/* ---- SOLO's resize rule -------------------------------------------------- */

PgfImageStatus
pgf_image_target_size(int width, int height, int patch, int max_side,
					  int *out_width, int *out_height)
{
	int64_t		lng,
				shrt,
				new_long,
				new_short;

	*out_width = *out_height = 0;
	if (width <= 0 || height <= 0)
		return PGF_IMAGE_ERR_EMPTY;
	if (patch <= 0 || max_side < patch || max_side % patch != 0)
		return PGF_IMAGE_ERR_ARGUMENT;
	lng = width > height ? width : height;
	shrt = width > height ? height : width;
	new_long = (lng + patch - 1) / patch * patch;
	if (new_long > max_side)
		new_long = max_side;
	new_short = new_long * shrt / lng;	/* floor: both positive */
	new_short = (new_short + patch - 1) / patch * patch;
	if (new_short < patch)
		new_short = patch;
	*out_width = (int) (width >= height ? new_long : new_short);
	*out_height = (int) (width >= height ? new_short : new_long);
	return PGF_IMAGE_OK;
}

/* ---- PIL's bilinear resampler -------------------------------------------- */

/* Pillow's Resample.c: 8 bits of result, 2 for overflow and sign. */
#define PRECISION_BITS (32 - 8 - 2)

typedef struct ResampleAxis
{
	int			ksize;			/* coefficients stored per output sample */
	int		   *bounds;			/* per output: first input, input count */
	int32_t    *coeffs;			/* per output: ksize fixed-point weights */
} ResampleAxis;

static double
bilinear_filter(double x)
{
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return 1.0 - x;
	return 0.0;
}

static uint8_t
clip8(int32_t v)
{
	v >>= PRECISION_BITS;
	return (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
}

/*
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear
 * filter over box (0, in_size).  The two volatile temporaries keep every
 * product rounded to double before it is used, as in Pillow's build: a
 * fused multiply-add (-march=native, fp-contract) would move xmin / xmax
 * or a weight by one ulp in rare cases.
 */
static PgfImageStatus
resample_axis_init(ResampleAxis *axis, int in_size, int out_size,
				   const PgfImageAllocator *alloc)
{
	double		scale,
				filterscale,
				support,
				ss;
	double	   *weights;
	int			ksize;

	memset(axis, 0, sizeof(*axis));
	/* Pillow passes the box as C floats. */
	scale = (double) ((float) in_size - 0.0f) / out_size;
	filterscale = scale < 1.0 ? 1.0 : scale;
	support = 1.0 * filterscale;
	if (ceil(support) > (INT_MAX / 2 - 1) / (double) sizeof(double))
		return PGF_IMAGE_ERR_TOO_LARGE;
	ksize = (int) ceil(support) * 2 + 1;
	if ((size_t) out_size > SIZE_MAX / sizeof(int32_t) / (size_t) ksize)
		return PGF_IMAGE_ERR_TOO_LARGE;
	axis->ksize = ksize;
	axis->bounds = image_alloc(alloc, sizeof(int) * 2 * (size_t) out_size);
	axis->coeffs = image_alloc(alloc, sizeof(int32_t) * (size_t) ksize * out_size);
	weights = image_alloc(alloc, sizeof(double) * (size_t) ksize);
	if (!axis->bounds || !axis->coeffs || !weights)
	{
		image_free(alloc, weights);
		return PGF_IMAGE_ERR_NOMEM;
	}
	ss = 1.0 / filterscale;
	for (int xx = 0; xx < out_size; xx++)
	{
		volatile double center_rounded = (xx + 0.5) * scale;
		double		center = center_rounded;
		double		ww = 0.0;
		int			xmin = (int) (center - support + 0.5);
		int			xmax = (int) (center + support + 0.5);
		int32_t    *k = axis->coeffs + (size_t) xx * ksize;
		int			x;

		if (xmin < 0)
			xmin = 0;
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		for (x = 0; x < xmax; x++)
		{
			volatile double arg = (x + xmin - center + 0.5) * ss;
			double		w = bilinear_filter(arg);

			weights[x] = w;
			ww += w;
		}
		for (x = 0; x < xmax; x++)
		{
			double		w = ww != 0.0 ? weights[x] / ww : weights[x];

			/* normalize_coeffs_8bpc: round half away from zero */
			if (w < 0)
				k[x] = (int32_t) (-0.5 + w * (1 << PRECISION_BITS));
			else
				k[x] = (int32_t) (0.5 + w * (1 << PRECISION_BITS));
		}
		for (; x < ksize; x++)
			k[x] = 0;
		axis->bounds[2 * xx] = xmin;
		axis->bounds[2 * xx + 1] = xmax;
	}
	image_free(alloc, weights);
	return PGF_IMAGE_OK;
}

static void
resample_axis_free(ResampleAxis *axis, const PgfImageAllocator *alloc)
{
	image_free(alloc, axis->bounds);
	image_free(alloc, axis->coeffs);
	memset(axis, 0, sizeof(*axis));
}

/* Rows [first, first + out->height) of in, resampled along x into out. */
static void
resample_horizontal(const PgfImage *in, int first, const ResampleAxis *axis, PgfImage *out)
{
	int			ch = in->channels;
	size_t		in_stride = (size_t) in->width * ch;
	size_t		out_stride = (size_t) out->width * ch;

	for (int yy = 0; yy < out->height; yy++)
	{
		const uint8_t *src = in->pixels + (size_t) (yy + first) * in_stride;
		uint8_t    *dst = out->pixels + (size_t) yy * out_stride;

		if (yy % ROWS_PER_INTERRUPT_CHECK == 0)
			pgf_check_interrupts();
		for (int xx = 0; xx < out->width; xx++)
		{
			int			xmin = axis->bounds[2 * xx];
			int			count = axis->bounds[2 * xx + 1];
			const int32_t *k = axis->coeffs + (size_t) xx * axis->ksize;
			const uint8_t *s = src + (size_t) xmin * ch;

			if (ch == 3)
			{
				int32_t		s0 = 1 << (PRECISION_BITS - 1),
							s1 = s0,
							s2 = s0;

				for (int x = 0; x < count; x++)
				{
					s0 += s[3 * x] * k[x];
					s1 += s[3 * x + 1] * k[x];
					s2 += s[3 * x + 2] * k[x];
				}
				dst[3 * xx] = clip8(s0);
				dst[3 * xx + 1] = clip8(s1);
				dst[3 * xx + 2] = clip8(s2);
			}
			else
			{
				int32_t		s0 = 1 << (PRECISION_BITS - 1);

				for (int x = 0; x < count; x++)
					s0 += s[x] * k[x];
				dst[xx] = clip8(s0);
			}
		}
	}
}

/*
 * Resampled along y.  Integer sums do not depend on their order, so rows
 * are accumulated one input row at a time (acc: out->width * channels).
 */
static void
resample_vertical(const PgfImage *in, const ResampleAxis *axis, PgfImage *out, int32_t *acc)
{
	size_t		stride = (size_t) in->width * in->channels;

	for (int yy = 0; yy < out->height; yy++)
	{
		int			ymin = axis->bounds[2 * yy];
		int			count = axis->bounds[2 * yy + 1];
		const int32_t *k = axis->coeffs + (size_t) yy * axis->ksize;
		uint8_t    *dst = out->pixels + (size_t) yy * stride;

		if (yy % ROWS_PER_INTERRUPT_CHECK == 0)
			pgf_check_interrupts();
		for (size_t i = 0; i < stride; i++)
			acc[i] = 1 << (PRECISION_BITS - 1);
		for (int y = 0; y < count; y++)
		{
			const uint8_t *src = in->pixels + (size_t) (ymin + y) * stride;
			int32_t		w = k[y];

			for (size_t i = 0; i < stride; i++)
				acc[i] += src[i] * w;
		}
		for (size_t i = 0; i < stride; i++)
			dst[i] = clip8(acc[i]);
	}
}

PgfImageStatus
pgf_image_resize(const PgfImage *in, int out_width, int out_height,
				 const PgfImageAllocator *alloc, PgfImage *out, char *err, size_t errlen)
{
	ResampleAxis horiz,
				vert;
	PgfImage	temp,
				result;
	const PgfImage *source = in;
	int32_t    *acc = NULL;
	PgfImageStatus status;
	int			need_horizontal,
				need_vertical;
	int			first = 0,
				last;
	size_t		out_bytes;

	memset(out, 0, sizeof(*out));
	memset(&temp, 0, sizeof(temp));
	memset(&result, 0, sizeof(result));
	memset(&horiz, 0, sizeof(horiz));
	memset(&vert, 0, sizeof(vert));
	if (!in || !in->pixels || in->width <= 0 || in->height <= 0 ||
		(in->channels != 1 && in->channels != 3))
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT, "resize: no valid input image");
	if (out_width <= 0 || out_height <= 0)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "resize: target size %d x %d is not positive", out_width, out_height);
	out_bytes = (size_t) out_width * out_height * in->channels;
	if ((uint64_t) out_width * out_height > SIZE_MAX / 8)
		return set_error(err, errlen, PGF_IMAGE_ERR_TOO_LARGE,
						 "resize: target size %d x %d is too large", out_width, out_height);

	result.width = out_width;
	result.height = out_height;
	result.channels = in->channels;
	result.pixels = image_alloc(alloc, out_bytes);
	if (!result.pixels)
		goto nomem;
	need_horizontal = out_width != in->width;
	need_vertical = out_height != in->height;
	if (!need_horizontal && !need_vertical)
	{
		memcpy(result.pixels, in->pixels, out_bytes);
		*out = result;
		return PGF_IMAGE_OK;
	}

	status = resample_axis_init(&vert, in->height, out_height, alloc);
	if (status != PGF_IMAGE_OK)
		goto fail;
	/* Only the source rows the vertical pass reads go through the first. */
	first = vert.bounds[0];
	last = vert.bounds[2 * out_height - 2] + vert.bounds[2 * out_height - 1];
	if (need_horizontal)
	{
		status = resample_axis_init(&horiz, in->width, out_width, alloc);
		if (status != PGF_IMAGE_OK)
			goto fail;
		if (!need_vertical)
		{
			resample_horizontal(in, 0, &horiz, &result);
			goto done;
		}
		for (int i = 0; i < out_height; i++)
			vert.bounds[2 * i] -= first;
		temp.width = out_width;
		temp.height = last - first;
		temp.channels = in->channels;
		temp.pixels = image_alloc(alloc, (size_t) temp.width * temp.height * temp.channels);
		if (!temp.pixels)
			goto nomem;
		resample_horizontal(in, first, &horiz, &temp);
		source = &temp;
	}
	acc = image_alloc(alloc, sizeof(int32_t) * (size_t) out_width * in->channels);
	if (!acc)
		goto nomem;
	resample_vertical(source, &vert, &result, acc);

done:
	image_free(alloc, acc);
	image_free(alloc, temp.pixels);
	resample_axis_free(&horiz, alloc);
	resample_axis_free(&vert, alloc);
	*out = result;
	return PGF_IMAGE_OK;

nomem:
	status = PGF_IMAGE_ERR_NOMEM;
fail:
	image_free(alloc, acc);
	image_free(alloc, temp.pixels);
	image_free(alloc, result.pixels);
	resample_axis_free(&horiz, alloc);
	resample_axis_free(&vert, alloc);
	if (status == PGF_IMAGE_ERR_NOMEM)
		return set_error(err, errlen, status, "out of memory resizing %d x %d to %d x %d",
						 in->width, in->height, out_width, out_height);
	return set_error(err, errlen, status, "resize: %d x %d to %d x %d is too large",
					 in->width, in->height, out_width, out_height);
}

/* ---- normalisation and patchify ------------------------------------------ */

size_t
pgf_image_patch_floats(int width, int height, int channels, int patch)
{
	if (width <= 0 || height <= 0 || channels <= 0 || patch <= 0)
		return 0;
	return (size_t) (width / patch) * (size_t) (height / patch) *
		(size_t) channels * patch * patch;
}

void
pgf_image_patchify(const PgfImage *img, int patch, const float *mean, const float *std,
				   float *out)
{
	int			ch = img->channels;
	int			cols = img->width / patch;
	size_t		patch_dim = (size_t) ch * patch * patch;
	float		table[3][256];

	/* torchvision: ToTensor (float32 v / 255), then (x - mean) / std. */
	for (int c = 0; c < ch; c++)
		for (int v = 0; v < 256; v++)
			table[c][v] = ((float) v / 255.0f - mean[c]) / std[c];

	for (int y = 0; y < img->height; y++)
	{
		const uint8_t *src = img->pixels + (size_t) y * img->width * ch;
		int			r = y / patch;
		int			py = y % patch;

		if (y % ROWS_PER_INTERRUPT_CHECK == 0)
			pgf_check_interrupts();
		for (int col = 0; col < cols; col++)
		{
			float	   *dst = out + ((size_t) r * cols + col) * patch_dim + (size_t) py * patch;
			const uint8_t *s = src + (size_t) col * patch * ch;

			for (int c = 0; c < ch; c++)
			{
				float	   *d = dst + (size_t) c * patch * patch;
				const float *t = table[c];

				for (int px = 0; px < patch; px++)
					d[px] = t[s[px * ch + c]];
			}
		}
	}
}

/* ---- settings ------------------------------------------------------------ */

void
pgf_image_preprocess_init(PgfImagePreprocess *pp, int patch_size, int max_side)
{
	memset(pp, 0, sizeof(*pp));
	pp->patch_size = patch_size;
	pp->max_side = max_side;
	pp->channels = 3;
	memcpy(pp->mean, imagenet_mean, sizeof(pp->mean));
	memcpy(pp->std, imagenet_std, sizeof(pp->std));
	pp->max_pixels = PGF_IMAGE_DEFAULT_MAX_PIXELS;
}

PgfImageStatus
pgf_image_preprocess_check(const PgfImagePreprocess *pp, char *err, size_t errlen)
{
	if (pp->patch_size < 1 || pp->patch_size > 4096)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "image patch_size %d is out of range (1 to 4096)", pp->patch_size);
	if (pp->max_side < pp->patch_size || pp->max_side > 65536 ||
		pp->max_side % pp->patch_size != 0)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "image max_side %d must be a multiple of patch_size %d, at most 65536",
						 pp->max_side, pp->patch_size);
	if (pp->channels != 1 && pp->channels != 3)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "image channels must be 1 or 3, not %d", pp->channels);
	for (int c = 0; c < pp->channels; c++)
	{
		if (!isfinite(pp->mean[c]))
			return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
							 "image mean[%d] is not a finite number", c);
		if (!isfinite(pp->std[c]) || !(pp->std[c] > 0))
			return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
							 "image std[%d] = %g must be positive and finite", c,
							 (double) pp->std[c]);
	}
	if (pp->max_pixels < 1)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "the image pixel limit must be at least 1");
	return PGF_IMAGE_OK;
}

static PgfImageStatus
copy_channel_values(const char *what, const float *values, size_t n, int channels,
					float *dst, char *err, size_t errlen)
{
	if (n == 1)
	{
		for (int c = 0; c < 3; c++)
			dst[c] = values[0];
		return PGF_IMAGE_OK;
	}
	if (n == (size_t) channels)
	{
		for (int c = 0; c < channels; c++)
			dst[c] = values[c];
		return PGF_IMAGE_OK;
	}
	return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
					 "ImagePreprocess.%s has %zu values; give 1 or %d", what, n, channels);
}

PgfImageStatus
pgf_image_preprocess_from_config(const Pgformer__ImagePreprocess *config, uint64_t max_pixels,
								 PgfImagePreprocess *pp, char *err, size_t errlen)
{
	PgfImageStatus status;

	if (!config)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "the model file has no ImagePreprocess settings");
	if (config->patch_size > 4096 || config->max_side > 65536)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "ImagePreprocess patch_size %u / max_side %u out of range",
						 config->patch_size, config->max_side);
	pgf_image_preprocess_init(pp, (int) config->patch_size, (int) config->max_side);
	pp->channels = config->grey ? 1 : 3;
	pp->max_pixels = max_pixels;
	if (config->n_mean == 0 && config->n_std == 0)
	{
		if (pp->channels != 3)
			return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
							 "ImagePreprocess: a grey model must give its mean and std");
	}
	else
	{
		status = copy_channel_values("mean", config->mean, config->n_mean, pp->channels,
									 pp->mean, err, errlen);
		if (status == PGF_IMAGE_OK)
			status = copy_channel_values("std", config->std, config->n_std, pp->channels,
										 pp->std, err, errlen);
		if (status != PGF_IMAGE_OK)
			return status;
	}
	return pgf_image_preprocess_check(pp, err, errlen);
}

/* ---- the pipeline -------------------------------------------------------- */

PgfImageStatus
pgf_image_plan(const void *bytes, size_t size, const PgfImagePreprocess *pp,
			   PgfImagePlan *plan, char *err, size_t errlen)
{
	PgfImageStatus status;
	int			p = pp->patch_size;

	memset(plan, 0, sizeof(*plan));
	status = pgf_image_preprocess_check(pp, err, errlen);
	if (status != PGF_IMAGE_OK)
		return status;
	status = pgf_image_read_header(bytes, size, &plan->format, &plan->width, &plan->height,
								   err, errlen);
	if (status == PGF_IMAGE_OK)
		status = check_size(plan->width, plan->height, pp->max_pixels, err, errlen);
	if (status != PGF_IMAGE_OK)
		return status;
	status = pgf_image_target_size(plan->width, plan->height, p, pp->max_side,
								   &plan->out_width, &plan->out_height);
	if (status != PGF_IMAGE_OK)
		return set_error(err, errlen, status, "no target size for a %d x %d image",
						 plan->width, plan->height);
	plan->rows = plan->out_height / p;
	plan->cols = plan->out_width / p;
	plan->patch_dim = pp->channels * p * p;
	plan->n_floats = pgf_image_patch_floats(plan->out_width, plan->out_height,
											pp->channels, p);
	return PGF_IMAGE_OK;
}

PgfImageStatus
pgf_image_to_patches(const void *bytes, size_t size, const PgfImagePreprocess *pp,
					 const PgfImageAllocator *alloc, float *out, size_t out_floats,
					 PgfImagePlan *plan_out, char *err, size_t errlen)
{
	PgfImagePlan plan;
	PgfImage	decoded,
				resized;
	const PgfImage *final = &decoded;
	PgfImageStatus status;

	memset(&resized, 0, sizeof(resized));
	status = pgf_image_plan(bytes, size, pp, &plan, err, errlen);
	if (plan_out)
		*plan_out = plan;
	if (status != PGF_IMAGE_OK)
		return status;
	if (!out || out_floats < plan.n_floats)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT,
						 "the patch buffer holds %zu floats; this image needs %zu",
						 out ? out_floats : 0, plan.n_floats);
	status = pgf_image_decode(bytes, size, pp->channels, pp->max_pixels, alloc, &decoded,
							  err, errlen);
	if (status != PGF_IMAGE_OK)
		return status;
	if (decoded.width != plan.width || decoded.height != plan.height)
	{
		pgf_image_release(&decoded, alloc);
		return set_error(err, errlen, PGF_IMAGE_ERR_CORRUPT,
						 "the image decodes to another size than its header declares");
	}
	if (plan.out_width != decoded.width || plan.out_height != decoded.height)
	{
		status = pgf_image_resize(&decoded, plan.out_width, plan.out_height, alloc, &resized,
								  err, errlen);
		pgf_image_release(&decoded, alloc);
		if (status != PGF_IMAGE_OK)
			return status;
		final = &resized;
	}
	pgf_image_patchify(final, pp->patch_size, pp->mean, pp->std, out);
	pgf_image_release(&decoded, alloc);
	pgf_image_release(&resized, alloc);
	return PGF_IMAGE_OK;
}
