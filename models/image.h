/*
 * image.h: the image codec of the vision-language models: PNG and JPEG
 * decoding from memory, SOLO's resize rule, PIL-exact bilinear resampling,
 * normalisation and channel-major patchify.
 *
 * The pipeline reproduces what SOLO's Python preprocessing does with PIL
 * and torchvision (docs/solo.md, "Images"):
 *   Image.open(bytes).convert("RGB")
 *   -> torchvision Resize((H', W')) = PIL resize, bilinear with antialias
 *   -> ToTensor (v / 255) -> Normalize(mean, std)
 *   -> unfold into P x P patches, each flattened channel-major.
 *
 * Decisions (where PIL offers several behaviours or none):
 *   - Alpha is dropped, never composited: PIL's convert("RGB") of LA, RGBA
 *     and palette-with-transparency images keeps the stored colours.
 *   - 16-bit PNG samples keep their high byte (libpng's png_set_strip_16).
 *     This equals PIL for 16-bit RGB, RGBA and grey+alpha.  For 16-bit grey
 *     PIL 9 clips the 16-bit value to 255 (a near-white image); we keep the
 *     high byte instead, which is what the picture shows.
 *   - CMYK and YCCK JPEGs are converted as PIL does: Adobe (inverted)
 *     sample convention, then R = K' - K'(255 - C')/255 per channel with
 *     PIL's integer rounding (K', C' as stored).
 *   - A truncated file is an error (as in PIL), including a JPEG that
 *     lacks its final EOI marker.  A PNG whose image data is complete but
 *     that lacks the chunks after it (IEND) decodes, as in PIL.
 *   - EXIF orientation and gamma / colour profiles are ignored (as in PIL's
 *     Image.open, which SOLO uses).
 *
 * Memory: every buffer this file allocates itself (pixels, rows, resampling
 * coefficients) comes from the caller's PgfImageAllocator; NULL means
 * malloc / free.  alloc must return NULL on failure and must never longjmp
 * (in a backend: palloc_extended with MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM),
 * because libpng and libjpeg state is live while pixels are allocated.
 * libpng and libjpeg keep their own small working state on malloc; it is
 * always released before a function returns, on success and on error.
 * Errors inside the libraries (longjmp / error_exit) are contained here and
 * come back as a status and a message; nothing is printed.
 *
 * Interrupts: pgf_check_interrupts() runs between row blocks of the
 * resampling and patchify loops, never while libpng or libjpeg state is
 * live.  A host whose interrupt hook longjmps must use an allocator whose
 * memory is reclaimed on error (palloc), since buffers then stay allocated.
 * Decoding itself is bounded by the pixel limit and is not interruptible.
 */
#ifndef PGF_IMAGE_H
#define PGF_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/model.pb-c.h"

/* PIL's decompression-bomb threshold (Image.MAX_IMAGE_PIXELS). */
#define PGF_IMAGE_DEFAULT_MAX_PIXELS 89478485u

typedef enum PgfImageStatus
{
	PGF_IMAGE_OK = 0,
	PGF_IMAGE_ERR_FORMAT,		/* not a PNG or JPEG image */
	PGF_IMAGE_ERR_CORRUPT,		/* truncated or invalid PNG / JPEG data */
	PGF_IMAGE_ERR_UNSUPPORTED,	/* valid, but a kind this codec does not read */
	PGF_IMAGE_ERR_EMPTY,		/* zero width or height */
	PGF_IMAGE_ERR_TOO_LARGE,	/* width * height above the caller's limit */
	PGF_IMAGE_ERR_NOMEM,		/* the allocator returned NULL */
	PGF_IMAGE_ERR_ARGUMENT		/* bad settings or buffer from the caller */
} PgfImageStatus;

typedef enum PgfImageFormat
{
	PGF_IMAGE_UNKNOWN = 0,
	PGF_IMAGE_PNG,
	PGF_IMAGE_JPEG
} PgfImageFormat;

typedef struct PgfImageAllocator
{
	void	   *(*alloc) (void *context, size_t size);	/* NULL on failure */
	void		(*free) (void *context, void *ptr);
	void	   *context;
} PgfImageAllocator;

/* 8-bit pixels, rows top to bottom, channels interleaved, no row padding. */
typedef struct PgfImage
{
	int			width;
	int			height;
	int			channels;		/* 3: RGB; 1: grey (PIL's "L") */
	uint8_t    *pixels;			/* width * height * channels bytes */
} PgfImage;

/* Everything the preprocessing needs; see pgf_image_preprocess_init. */
typedef struct PgfImagePreprocess
{
	int			patch_size;		/* P, the patch side in pixels (SOLO: 32) */
	int			max_side;		/* longest side after resizing; a multiple
								 * of P (SOLO: 1024) */
	int			channels;		/* 3 (RGB) or 1 (grey) */
	float		mean[3];		/* per channel, on [0, 1] values */
	float		std[3];
	uint64_t	max_pixels;		/* decoded width * height limit (>= 1) */
} PgfImagePreprocess;

/* What an image becomes, known from its header alone. */
typedef struct PgfImagePlan
{
	PgfImageFormat format;
	int			width;			/* as stored in the file */
	int			height;
	int			out_width;		/* after SOLO's resize rule */
	int			out_height;
	int			rows;			/* nH = out_height / P */
	int			cols;			/* nW = out_width / P */
	int			patch_dim;		/* channels * P * P */
	size_t		n_floats;		/* rows * cols * patch_dim */
} PgfImagePlan;

const char *pgf_image_status_name(PgfImageStatus status);

/* The format from the first bytes (PNG signature, JPEG SOI + marker). */
PgfImageFormat pgf_image_sniff(const void *bytes, size_t size);

/*
 * Reads only the header: the format and the stored size.  Allocates nothing
 * beyond libjpeg's small header state.  Zero-sized images are
 * PGF_IMAGE_ERR_EMPTY.
 */
PgfImageStatus pgf_image_read_header(const void *bytes, size_t size,
									 PgfImageFormat *format, int *width, int *height,
									 char *err, size_t errlen);

/*
 * Encodes img (8-bit RGB or grey) as a PNG with libpng (default
 * compression, no ancillary chunks: the same pixels give the same bytes on
 * the same libpng).  *out, allocated with alloc, holds *out_len bytes;
 * on error *out is NULL and nothing stays allocated.
 */
PgfImageStatus pgf_png_encode(const PgfImage *img, const PgfImageAllocator *alloc, uint8_t **out,
							  size_t *out_len, char *err, size_t errlen);

/*
 * Decodes a PNG or JPEG held in memory into 8-bit RGB (channels = 3) or
 * grey (channels = 1, PIL's convert("L") of the RGB image).  Images whose
 * width * height exceeds max_pixels are rejected from the header, before
 * any pixel memory is allocated.  On success out->pixels is allocated with
 * alloc (release it with pgf_image_release); on error *out is zeroed and
 * nothing stays allocated.
 */
PgfImageStatus pgf_image_decode(const void *bytes, size_t size, int channels,
								uint64_t max_pixels, const PgfImageAllocator *alloc,
								PgfImage *out, char *err, size_t errlen);

/* Frees img->pixels with alloc and zeroes *img; a zeroed image is a no-op. */
void		pgf_image_release(PgfImage *img, const PgfImageAllocator *alloc);

/*
 * SOLO's resize rule (docs/solo.md, "Images") for a W x H image, patch P and
 * longest side max_side (a multiple of P):
 *   new_long  = min(ceil(long / P) * P, max_side)
 *   new_short = ceil(floor(new_long * short / long) / P) * P, at least P
 * where long = max(W, H) and short = min(W, H); a square stays square.
 */
PgfImageStatus pgf_image_target_size(int width, int height, int patch, int max_side,
									 int *out_width, int *out_height);

/*
 * Resizes like PIL's Image.resize(size, Image.BILINEAR), which is what
 * torchvision's Resize does to a PIL image: a triangle filter whose support
 * grows with the downscale factor (antialias), separable, horizontal pass
 * first over the rows the vertical pass reads, 22-bit fixed-point
 * coefficients and rounding to uint8 between the passes.  The result is
 * bit-identical to PIL's.  out->pixels comes from alloc.
 */
PgfImageStatus pgf_image_resize(const PgfImage *in, int out_width, int out_height,
								const PgfImageAllocator *alloc, PgfImage *out,
								char *err, size_t errlen);

/* Floats pgf_image_patchify writes for a width x height image. */
size_t		pgf_image_patch_floats(int width, int height, int channels, int patch);

/*
 * Normalises (v / 255 - mean[c]) / std[c] in float32, as torchvision's
 * ToTensor + Normalize, and writes patches row-major: patch (r, c) is row
 * r * nW + c of out [nH * nW, channels * P * P], its element
 * ch * P * P + y * P + x.  width and height must be multiples of patch.
 */
void		pgf_image_patchify(const PgfImage *img, int patch, const float *mean,
							   const float *std, float *out);

/* SOLO's defaults: RGB, ImageNet mean / std, PGF_IMAGE_DEFAULT_MAX_PIXELS. */
void		pgf_image_preprocess_init(PgfImagePreprocess *pp, int patch_size, int max_side);

/*
 * Settings from a model's ImagePreprocess message, validated: patch_size
 * >= 1, max_side a positive multiple of it, mean and std given once per
 * channel or once for all (or left out for ImageNet's values on RGB), std
 * positive and finite.
 */
PgfImageStatus pgf_image_preprocess_from_config(const Pgformer__ImagePreprocess *config,
												uint64_t max_pixels, PgfImagePreprocess *pp,
												char *err, size_t errlen);

/* Checks settings (as pgf_image_preprocess_from_config does). */
PgfImageStatus pgf_image_preprocess_check(const PgfImagePreprocess *pp, char *err,
										  size_t errlen);

/*
 * From the header only: the size the image will have and the number of
 * floats pgf_image_to_patches writes.  Checks the pixel limit.
 */
PgfImageStatus pgf_image_plan(const void *bytes, size_t size, const PgfImagePreprocess *pp,
							  PgfImagePlan *plan, char *err, size_t errlen);

/*
 * The whole preprocessing: decode, resize, normalise, patchify into out,
 * which holds out_floats floats (at least plan->n_floats from
 * pgf_image_plan).  plan (may be NULL) receives the layout.  Intermediate
 * images come from alloc and are freed before returning.
 */
PgfImageStatus pgf_image_to_patches(const void *bytes, size_t size,
									const PgfImagePreprocess *pp,
									const PgfImageAllocator *alloc,
									float *out, size_t out_floats, PgfImagePlan *plan,
									char *err, size_t errlen);

#endif							/* PGF_IMAGE_H */
