/*
 * conv.c: the image kernels of a convolutional pixel decoder: 2-D
 * convolution (3x3 with zero padding 1, and 1x1, stride 1), GroupNorm,
 * nearest-neighbour x2 upsampling and single-head spatial self-attention.
 *
 * Feature maps are position-major, [H * W, C] (row y * W + x holds the C
 * channels of pixel (y, x)), so that a 1x1 convolution is a linear layer
 * and spatial attention is ordinary attention over H * W tokens.  A 3x3
 * convolution gathers, for a band of output rows, each pixel's 3x3
 * neighbourhood into one row (im2col, nine contiguous copies of C values)
 * and multiplies the band by the weight in one pgf_linear call, so every
 * weight dtype works.  Its weight is [C_out, 3 * 3 * C_in] in (ky, kx,
 * c_in) order, PyTorch's [C_out, C_in, 3, 3] permuted by the exporter.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/vec.h"

/* Floats of im2col rows per band: a band stays near 4 MB whatever the image. */
#define CONV_BAND_FLOATS (1 << 20)

/* Output rows of a band of a 3x3 convolution over width w, c_in channels. */
static int
conv_band_rows(int h, int w, int c_in)
{
	size_t		row = (size_t) w * 9 * c_in;
	int			rows = (int) (CONV_BAND_FLOATS / (row ? row : 1));

	return rows < 1 ? 1 : rows > h ? h : rows;
}

size_t
pgf_conv2d_scratch_bytes(int h, int w, int c_in, int kernel, const PgfMatrix *weight)
{
	int			band = kernel == 3 ? conv_band_rows(h, w, c_in) : h;
	int			n = band * w;
	size_t		bytes = pgf_arena_round(pgf_linear_scratch_bytes(weight, n));

	if (kernel == 3)
		bytes += pgf_arena_round(sizeof(float) * (size_t) n * 9 * c_in);
	return bytes;
}

/*
 * out[h * w, c_out] = conv(x[h * w, c_in]) + bias, kernel 1 or 3 (zero
 * padding 1 for 3), stride 1; weight [c_out, kernel^2 * c_in].
 */
void
pgf_conv2d(float *out, const float *x, int h, int w, int c_in, int kernel,
		   const PgfMatrix *weight, const float *bias, PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	int			band,
				c_out = weight->rows;
	float	   *cols;

	if (weight->cols != kernel * kernel * c_in || (kernel != 1 && kernel != 3))
		pgf_fatal("conv2d: a %d x %d kernel over %d channels with a [%d, %d] weight",
				  kernel, kernel, c_in, weight->rows, weight->cols);
	if (kernel == 1)
	{
		pgf_linear(out, x, h * w, weight, bias, scratch);
		return;
	}
	band = conv_band_rows(h, w, c_in);
	cols = pgf_arena_floats(scratch, (size_t) band * w * 9 * c_in);
	for (int y0 = 0; y0 < h; y0 += band)
	{
		int			rows = h - y0 < band ? h - y0 : band;

		for (int y = y0; y < y0 + rows; y++)
			for (int xx = 0; xx < w; xx++)
			{
				float	   *row = cols + ((size_t) (y - y0) * w + xx) * 9 * c_in;

				for (int ky = 0; ky < 3; ky++)
					for (int kx = 0; kx < 3; kx++)
					{
						int			sy = y + ky - 1,
									sx = xx + kx - 1;
						float	   *dst = row + (ky * 3 + kx) * c_in;

						if (sy < 0 || sy >= h || sx < 0 || sx >= w)
							memset(dst, 0, sizeof(float) * c_in);
						else
							memcpy(dst, x + ((size_t) sy * w + sx) * c_in, sizeof(float) * c_in);
					}
			}
		pgf_linear(out + (size_t) y0 * w * c_out, cols, rows * w, weight, bias, scratch);
		pgf_check_interrupts();
	}
	pgf_arena_reset(scratch, mark);
}

/*
 * out[n, c] = GroupNorm(x[n, c]) over n positions: channels split into
 * `groups` runs of c / groups; each run is normalised by its mean and
 * (biased) variance over all n positions, then scaled by gamma[c] and
 * shifted by beta[c] (torch.nn.GroupNorm).  Statistics in double; out may
 * equal x.
 */
void
pgf_groupnorm(float *out, const float *x, int n, int c, int groups,
			  const float *gamma, const float *beta, float eps)
{
	int			per = c / groups;

	if (groups < 1 || c % groups != 0)
		pgf_fatal("groupnorm: %d channels in %d groups", c, groups);
	for (int g = 0; g < groups; g++)
	{
		double		sum = 0,
					sumsq = 0,
					mean,
					var;
		float		inv,
					fmean;

		for (int p = 0; p < n; p++)
		{
			const float *v = x + (size_t) p * c + g * per;

			for (int j = 0; j < per; j++)
				sum += v[j];
		}
		mean = sum / ((double) n * per);
		for (int p = 0; p < n; p++)
		{
			const float *v = x + (size_t) p * c + g * per;

			for (int j = 0; j < per; j++)
				sumsq += (v[j] - mean) * (v[j] - mean);
		}
		var = sumsq / ((double) n * per);
		inv = (float) (1.0 / sqrt(var + eps));
		fmean = (float) mean;
		for (int p = 0; p < n; p++)
		{
			const float *v = x + (size_t) p * c + g * per;
			float	   *o = out + (size_t) p * c + g * per;

			for (int j = 0; j < per; j++)
				o[j] = (v[j] - fmean) * inv * (gamma ? gamma[g * per + j] : 1.0f) +
					(beta ? beta[g * per + j] : 0.0f);
		}
	}
}

/* out[(2h) * (2w), c] = x[h * w, c] with every pixel repeated 2 x 2. */
void
pgf_upsample_nearest2(float *out, const float *x, int h, int w, int c)
{
	size_t		bytes = sizeof(float) * c;

	for (int y = 0; y < 2 * h; y++)
		for (int xx = 0; xx < 2 * w; xx++)
			memcpy(out + ((size_t) y * 2 * w + xx) * c, x + ((size_t) (y / 2) * w + xx / 2) * c, bytes);
}

size_t
pgf_spatial_attention_scratch_bytes(int n, int c, const PgfSpatialAttention *a)
{
	size_t		linear = pgf_linear_scratch_bytes(&a->wq, n);

	return 4 * pgf_arena_round(sizeof(float) * (size_t) n * c) +
		pgf_arena_round(linear) + pgf_arena_round(pgf_attention_scratch_bytes(n, n));
}

/*
 * x[n, c] += proj(attention(q, k, v)) with q, k, v = 1x1 convolutions of
 * GroupNorm(x): one head of width c over all n positions, scores scaled
 * by 1 / sqrt(c), every position seeing every other (the attention block
 * of taming-transformers decoders).
 */
void
pgf_spatial_attention(float *x, int n, int c, const PgfSpatialAttention *a, PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	size_t		size = (size_t) n * c;
	float	   *h = pgf_arena_floats(scratch, size),
			   *q = pgf_arena_floats(scratch, size),
			   *k = pgf_arena_floats(scratch, size),
			   *v = pgf_arena_floats(scratch, size);
	PgfAttnMask mask = {.kind = PGF_MASK_BIDIRECTIONAL};

	pgf_groupnorm(h, x, n, c, a->groups, a->norm_gamma, a->norm_beta, a->norm_eps);
	pgf_linear(q, h, n, &a->wq, a->bq, scratch);
	pgf_linear(k, h, n, &a->wk, a->bk, scratch);
	pgf_linear(v, h, n, &a->wv, a->bv, scratch);
	pgf_attention(h, c, q, c, k, v, c, n, n, 1, 1, c, 1.0f / sqrtf((float) c), &mask, scratch);
	pgf_linear_acc(x, h, n, &a->wo, a->bo, scratch);
	pgf_arena_reset(scratch, mark);
}
