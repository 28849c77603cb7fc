/*
 * image_codec.c: PNG and JPEG into pixels (see image.h): PNG through
 * libpng, JPEG through libjpeg-turbo, each behind its own setjmp so that a
 * library error comes back as a status; format sniffing and the size
 * limit, checked from the header before any pixel is decoded.
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

#include "models/image_internal.h"

/* More scans than any real progressive JPEG has (libjpeg-turbo's advice). */
#define JPEG_MAX_SCANS 500

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

PgfImageStatus
pgf_image_check_size(uint64_t width, uint64_t height, uint64_t max_pixels, char *err, size_t errlen)
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
		return pgf_image_check_size(w, h, UINT64_MAX, err, errlen);
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
		status = pgf_image_check_size(r.width, r.height, max_pixels, err, errlen);
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

/* ---- PNG encoding ------------------------------------------------------------ */

typedef struct PngWriter
{
	const PgfImageAllocator *alloc;
	char	   *err;
	size_t		errlen;
	PgfImageStatus status;
	png_structp png;
	png_infop	info;
	const PgfImage *img;
	uint8_t    *out;			/* from alloc, grown by doubling */
	size_t		len;
	size_t		cap;
	png_bytep  *rows;			/* from alloc */
} PngWriter;

static void
png_write_error(png_structp png, png_const_charp message)
{
	PngWriter  *w = png_get_error_ptr(png);

	if (w->status == PGF_IMAGE_OK)
		w->status = set_error(w->err, w->errlen, PGF_IMAGE_ERR_ARGUMENT, "cannot write the PNG image: %s", message);
	png_longjmp(png, 1);
}

static void
png_write_to_memory(png_structp png, png_bytep data, size_t length)
{
	PngWriter  *w = png_get_io_ptr(png);

	if (length > w->cap - w->len)
	{
		size_t		cap = w->cap ? w->cap : 4096;
		uint8_t    *grown;

		while (length > cap - w->len)
			cap *= 2;
		grown = image_alloc(w->alloc, cap);
		if (!grown)
		{
			w->status = set_error(w->err, w->errlen, PGF_IMAGE_ERR_NOMEM, "out of memory for the PNG image");
			png_error(png, "out of memory");
		}
		if (w->len)
			memcpy(grown, w->out, w->len);
		image_free(w->alloc, w->out);
		w->out = grown;
		w->cap = cap;
	}
	memcpy(w->out + w->len, data, length);
	w->len += length;
}

static void
png_flush_nothing(png_structp png)
{
}

static __attribute__((noinline)) void
png_encode_body(PngWriter *w)
{
	const PgfImage *img = w->img;
	size_t		row_bytes = (size_t) img->width * img->channels;

	png_set_write_fn(w->png, w, png_write_to_memory, png_flush_nothing);
	png_set_IHDR(w->png, w->info, img->width, img->height, 8,
				 img->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
				 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	w->rows = image_alloc(w->alloc, sizeof(png_bytep) * img->height);
	if (!w->rows)
	{
		w->status = set_error(w->err, w->errlen, PGF_IMAGE_ERR_NOMEM, "out of memory for the PNG image");
		png_error(w->png, "out of memory");
	}
	for (int y = 0; y < img->height; y++)
		w->rows[y] = img->pixels + (size_t) y * row_bytes;
	png_set_rows(w->png, w->info, w->rows);
	png_write_png(w->png, w->info, PNG_TRANSFORM_IDENTITY, NULL);
}

static int
png_encode_protected(PngWriter *w)
{
	if (setjmp(png_jmpbuf(w->png)))
		return 0;
	png_encode_body(w);
	return 1;
}

PgfImageStatus
pgf_png_encode(const PgfImage *img, const PgfImageAllocator *alloc, uint8_t **out, size_t *out_len,
			   char *err, size_t errlen)
{
	PngWriter	w;
	int			ok;

	*out = NULL;
	*out_len = 0;
	if (img->width < 1 || img->height < 1 || (img->channels != 3 && img->channels != 1) || !img->pixels)
		return set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT, "cannot write a %d x %d image of %d channels as PNG",
						 img->width, img->height, img->channels);
	memset(&w, 0, sizeof(w));
	w.alloc = alloc;
	w.err = err;
	w.errlen = errlen;
	w.img = img;
	w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w, png_write_error, png_warning_ignored);
	if (w.png)
		w.info = png_create_info_struct(w.png);
	if (!w.png || !w.info)
	{
		png_destroy_write_struct(w.png ? &w.png : NULL, NULL);
		return set_error(err, errlen, PGF_IMAGE_ERR_NOMEM, "out of memory starting libpng");
	}
	ok = png_encode_protected(&w);
	png_destroy_write_struct(&w.png, &w.info);
	image_free(alloc, w.rows);
	if (!ok)
	{
		image_free(alloc, w.out);
		return w.status != PGF_IMAGE_OK ? w.status :
			set_error(err, errlen, PGF_IMAGE_ERR_ARGUMENT, "cannot write the PNG image");
	}
	*out = w.out;
	*out_len = w.len;
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
	status = pgf_image_check_size(cinfo->image_width, cinfo->image_height, r->max_pixels,
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
