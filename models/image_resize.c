/*
 * image_resize.c: SOLO's resize rule and a line-by-line equivalent of
 * PIL's bilinear resampler (see image.h), so that the C pipeline sees the
 * pixels the PyTorch reference sees.
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
