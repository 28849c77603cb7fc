/*
 * elementwise.c: vector arithmetic on activations (residual adds,
 * scaling, bias rows).
 */
#include "kernels/kernels.h"

/* x[n] += y[n] */
void
pgf_add(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

/* x[n] *= s */
void
pgf_scale(float *x, float s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
}

/* x[rows, d] += bias[d], per row */
void
pgf_add_bias(float *x, const float *bias, int rows, int d)
{
	for (int r = 0; r < rows; r++)
	{
		float	   *xr = x + (size_t) r * d;

		for (int j = 0; j < d; j++)
			xr[j] += bias[j];
	}
}
