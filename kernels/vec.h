/*
 * vec.h: small vector helpers shared by the kernel files (internal).
 *
 * Reductions keep several independent partial sums so that the compiler
 * can vectorise them without -ffast-math; half-precision and bfloat16
 * conversions are exact.  Not part of the kernel API (kernels.h).
 */
#ifndef PGF_VEC_H
#define PGF_VEC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Partial sums per reduction: four 256-bit or two 512-bit registers. */
#define PGF_VEC_LANES 32

static inline float
pgf_bits_float(uint32_t bits)
{
	float		f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

static inline uint32_t
pgf_float_bits(float f)
{
	uint32_t	bits;

	memcpy(&bits, &f, sizeof(bits));
	return bits;
}

/* Sum of the partial sums, pairwise (vectorises; no scalar chain). */
static inline float
pgf_lanes_sum(float *acc)
{
	for (int w = PGF_VEC_LANES / 2; w >= 1; w /= 2)
		for (int j = 0; j < w; j++)
			acc[j] += acc[j + w];
	return acc[0];
}

/* sum a[i] * b[i], i < n */
static inline float
pgf_vdot(const float *restrict a, const float *restrict b, size_t n)
{
	float		acc[PGF_VEC_LANES] = {0};
	float		s = 0;
	size_t		i = 0;

	for (; i + PGF_VEC_LANES <= n; i += PGF_VEC_LANES)
		for (int j = 0; j < PGF_VEC_LANES; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		s += a[i] * b[i];
	return s + pgf_lanes_sum(acc);
}

/* sum a[i], i < n */
static inline float
pgf_vsum(const float *restrict a, size_t n)
{
	float		acc[PGF_VEC_LANES] = {0};
	float		s = 0;
	size_t		i = 0;

	for (; i + PGF_VEC_LANES <= n; i += PGF_VEC_LANES)
		for (int j = 0; j < PGF_VEC_LANES; j++)
			acc[j] += a[i + j];
	for (; i < n; i++)
		s += a[i];
	return s + pgf_lanes_sum(acc);
}

/* sum (a[i] - c)^2, i < n */
static inline float
pgf_vsumsq_centered(const float *restrict a, float c, size_t n)
{
	float		acc[PGF_VEC_LANES] = {0};
	float		s = 0;
	size_t		i = 0;

	for (; i + PGF_VEC_LANES <= n; i += PGF_VEC_LANES)
		for (int j = 0; j < PGF_VEC_LANES; j++)
		{
			float		t = a[i + j] - c;

			acc[j] += t * t;
		}
	for (; i < n; i++)
		s += (a[i] - c) * (a[i] - c);
	return s + pgf_lanes_sum(acc);
}

/* max a[i], i < n (n >= 1); NaN entries are ignored unless all are NaN */
static inline float
pgf_vmax(const float *restrict a, size_t n)
{
	float		acc[PGF_VEC_LANES];
	float		m = -INFINITY;
	size_t		i = 0;

	for (int j = 0; j < PGF_VEC_LANES; j++)
		acc[j] = -INFINITY;
	for (; i + PGF_VEC_LANES <= n; i += PGF_VEC_LANES)
		for (int j = 0; j < PGF_VEC_LANES; j++)
			acc[j] = a[i + j] > acc[j] ? a[i + j] : acc[j];
	for (; i < n; i++)
		m = a[i] > m ? a[i] : m;
	for (int j = 0; j < PGF_VEC_LANES; j++)
		m = acc[j] > m ? acc[j] : m;
	return m;
}

/* y[i] += a * x[i], i < n */
static inline void
pgf_vaxpy(float *restrict y, float a, const float *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

/*
 * IEEE half -> float, exact for every input (subnormals, infinities, NaN).
 * The exponent is rebased by one multiplication by 2^112, which also
 * normalises half subnormals.
 */
static inline float
pgf_f16_to_f32(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	em = h & 0x7fff;
	uint32_t	bits = pgf_float_bits(pgf_bits_float(em << 13) * 0x1p112f);

	if (em >= 0x7c00)
		bits = 0x7f800000 | (em << 13);
	return pgf_bits_float(bits | sign);
}

/* bfloat16 -> float: the high half of the float's bits. */
static inline float
pgf_bf16_to_f32(uint16_t h)
{
	return pgf_bits_float((uint32_t) h << 16);
}

/*
 * e^x for float, vectorisable (no libm call): Cody-Waite reduction
 * x = k ln2 + r, |r| <= ln2/2, and the degree-7 Taylor polynomial for e^r; within
 * 2 ulp of expf.  Below about -103.97 returns 0, above 88.72 returns +inf,
 * NaN stays NaN.
 */
static inline float
pgf_expf(float x)
{
	const float ln2_hi = 0.693145751953125f;
	const float ln2_lo = 1.428606765330187045e-06f;
	/* NaN takes the 89 branch, so the conversion to int below is defined */
	float		xc = x < 89.0f ? (x > -104.0f ? x : -104.0f) : 89.0f;
	float		k = rintf(xc * 1.44269504088896341f);
	float		r = (xc - k * ln2_hi) - k * ln2_lo;
	float		p;
	int32_t		ki = (int32_t) k;
	int32_t		k1 = ki / 2;
	int32_t		k2 = ki - k1;
	float		result;

	p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	/* 2^k in two factors so that neither overflows nor underflows early */
	result = p * pgf_bits_float((uint32_t) (k1 + 127) << 23) *
		pgf_bits_float((uint32_t) (k2 + 127) << 23);
	return x != x ? x : result;
}

#endif							/* PGF_VEC_H */
