/*
 * activation.c: pointwise activations of feed-forward layers (GELU in its
 * erf and tanh forms, ReLU, SiLU, the SwiGLU product), in place.
 *
 * exp comes from pgf_expf (vec.h), which the compiler vectorises; erf uses
 * the Abramowitz-Stegun 7.1.26 form that PyTorch's vectorised CPU GELU
 * uses too (absolute error below 1.5e-7).
 */
#include "kernels/kernels.h"
#include "kernels/vec.h"

/*
 * 1 + erf(z), |error| < 1.5e-7, branch-free.  For z < 0 the result is the
 * approximation's erfc(-z) = poly(t) e^(-z^2) itself, without cancellation.
 */
static inline float
one_plus_erf(float z)
{
	const float p = 0.3275911f;
	const float a1 = 0.254829592f,
				a2 = -0.284496736f,
				a3 = 1.421413741f,
				a4 = -1.453152027f,
				a5 = 1.061405429f;
	float		az = fabsf(z);
	float		t = 1.0f / (1.0f + p * az);
	float		poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t;
	float		q = poly * pgf_expf(-az * az);

	return z >= 0.0f ? 2.0f - q : q;
}

/* x[n] = 0.5 x (1 + erf(x / sqrt 2)) */
void
pgf_gelu_erf(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		float		v = x[i];

		x[i] = 0.5f * v * one_plus_erf(v * 0.70710678118654752f);
	}
}

/* x[n] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void
pgf_gelu_tanh(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		float		v = x[i];
		float		u = 0.7978845608028654f * (v + 0.044715f * v * v * v);

		/* 1 + tanh(u) = 2 / (1 + e^(-2u)) */
		x[i] = v / (1.0f + pgf_expf(-2.0f * u));
	}
}

/* x[n] = max(x, 0) */
void
pgf_relu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* x[n] = x / (1 + e^-x) */
void
pgf_silu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + pgf_expf(-x[i]));
}

/* gate[n] = silu(gate) * up[n] */
void
pgf_swiglu(float *gate, const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gate[i] = gate[i] / (1.0f + pgf_expf(-gate[i])) * up[i];
}
