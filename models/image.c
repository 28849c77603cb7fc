/*
 * image.c: from image bytes to a model's input (see image.h): float32
 * normalisation and channel-major patchify, the preprocessing settings a
 * model file records, and the pipeline that runs decode (image_codec.c),
 * resize (image_resize.c) and patchify within one size plan.
 */
#include "models/image.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/image_internal.h"

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

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
		status = pgf_image_check_size(plan->width, plan->height, pp->max_pixels, err, errlen);
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
