/*
 * norm.c: row normalisations: LayerNorm, RMSNorm and the row softmax.
 */
#include "kernels/kernels.h"
#include "kernels/vec.h"

/*
 * out[n, d] = gamma * (x - mean) / sqrt(var + eps) + beta, per row of
 * x[n, d] (biased variance, as torch.nn.LayerNorm).  gamma NULL means 1,
 * beta NULL means 0; out may equal x.
 */
void
pgf_layernorm(float *out, const float *x, int n, int d,
			  const float *gamma, const float *beta, float eps)
{
	for (int r = 0; r < n; r++)
	{
		const float *xr = x + (size_t) r * d;
		float	   *yr = out + (size_t) r * d;
		float		mean = pgf_vsum(xr, d) / d;
		float		var = pgf_vsumsq_centered(xr, mean, d) / d;
		float		inv = 1.0f / sqrtf(var + eps);

		if (gamma && beta)
			for (int j = 0; j < d; j++)
				yr[j] = (xr[j] - mean) * inv * gamma[j] + beta[j];
		else if (gamma)
			for (int j = 0; j < d; j++)
				yr[j] = (xr[j] - mean) * inv * gamma[j];
		else
			for (int j = 0; j < d; j++)
				yr[j] = (xr[j] - mean) * inv + (beta ? beta[j] : 0.0f);
	}
}

/*
 * out[n, d] = w * x / sqrt(mean(x^2) + eps), per row of x[n, d]; w NULL
 * means 1; out may equal x.
 */
void
pgf_rmsnorm(float *out, const float *x, int n, int d, const float *w, float eps)
{
	for (int r = 0; r < n; r++)
	{
		const float *xr = x + (size_t) r * d;
		float	   *yr = out + (size_t) r * d;
		float		inv = 1.0f / sqrtf(pgf_vsumsq_centered(xr, 0.0f, d) / d + eps);

		if (w)
			for (int j = 0; j < d; j++)
				yr[j] = w[j] * (xr[j] * inv);
		else
			for (int j = 0; j < d; j++)
				yr[j] = xr[j] * inv;
	}
}

/*
 * x[n, d]: softmax of each row in place, max-subtracted.  A row whose
 * entries are all -INFINITY (nothing visible) becomes all zeros; NaN
 * propagates.
 */
void
pgf_softmax_rows(float *x, int n, int d)
{
	if (d <= 0)
		return;
	for (int r = 0; r < n; r++)
	{
		float	   *xr = x + (size_t) r * d;
		float		m = pgf_vmax(xr, d);
		float		sum;

		if (m == -INFINITY)
		{
			bool		has_nan = false;

			for (int j = 0; j < d; j++)
				has_nan |= isnan(xr[j]);
			for (int j = 0; j < d; j++)
				xr[j] = has_nan ? NAN : 0.0f;
			continue;
		}
		for (int j = 0; j < d; j++)
			xr[j] = pgf_expf(xr[j] - m);
		sum = pgf_vsum(xr, d);
		pgf_scale(xr, 1.0f / sum, d);
	}
}
