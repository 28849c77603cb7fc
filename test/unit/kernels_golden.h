/*
 * kernels_golden.h: shared helpers of the kernel unit tests: the PyTorch
 * reference file (test/unit/golden/kernels.pgf, written by
 * test/gen/golden_kernels.py), relative comparisons and test arenas.
 */
#ifndef PGF_KERNELS_GOLDEN_H
#define PGF_KERNELS_GOLDEN_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "proto/pgf.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define GOLDEN_PATH "test/unit/golden/kernels.pgf"

static GoldenFile golden;

/* Opens the reference file (fully verified) or bails out. */
static inline void
golden_open(void)
{
	golden_load(&golden, GOLDEN_PATH, false, "test/gen/golden_kernels.py");
}

static inline const PgfTensor *
golden_tensor(const char *fmt,...) __attribute__((format(printf, 1, 2)));
static inline const PgfTensor *
golden_tensor(const char *fmt,...)
{
	va_list		args;
	const PgfTensor *t;

	va_start(args, fmt);
	t = golden_vtensor(&golden, -1, -1, fmt, args);
	va_end(args);
	return t;
}

/* f32 tensor that must hold numel values (numel < 0: any). */
static inline const float *
golden_f32(long numel, const char *fmt,...) __attribute__((format(printf, 2, 3)));
static inline const float *
golden_f32(long numel, const char *fmt,...)
{
	va_list		args;
	const PgfTensor *t;

	va_start(args, fmt);
	t = golden_vtensor(&golden, PGF_DTYPE_F32, numel, fmt, args);
	va_end(args);
	return (const float *) t->data;
}

static inline const int32_t *
golden_i32(long numel, const char *fmt,...) __attribute__((format(printf, 2, 3)));
static inline const int32_t *
golden_i32(long numel, const char *fmt,...)
{
	va_list		args;
	const PgfTensor *t;

	va_start(args, fmt);
	t = golden_vtensor(&golden, PGF_DTYPE_I32, numel, fmt, args);
	va_end(args);
	return (const int32_t *) t->data;
}

static inline bool
golden_has(const char *fmt,...) __attribute__((format(printf, 1, 2)));
static inline bool
golden_has(const char *fmt,...)
{
	va_list		args;
	bool		has;

	va_start(args, fmt);
	has = golden_vhas(&golden, fmt, args);
	va_end(args);
	return has;
}

static inline int
check_rel(const float *got, const float *want, size_t n, double tol,
		  const char *fmt,...)
{
	char		what[256];
	va_list		args;
	double		e = tap_rel_error(got, want, n);

	va_start(args, fmt);
	vsnprintf(what, sizeof(what), fmt, args);
	va_end(args);
	return tap_ok(e <= tol, "%s (relative error %.2g, tolerance %.0e)", what, e, tol);
}

/* Deterministic pseudo-random floats in [-1, 1). */
static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

static inline float
test_rand(void)
{
	test_rng_state = test_rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float) ((test_rng_state >> 40) / (double) (1ull << 24)) * 2.0f - 1.0f;
}

static inline float *
test_rand_floats(size_t n, float scale)
{
	float	   *x = malloc(sizeof(float) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
		x[i] = test_rand() * scale;
	return x;
}

static inline float *
test_copy(const float *x, size_t n)
{
	float	   *y = malloc(sizeof(float) * (n ? n : 1));

	memcpy(y, x, sizeof(float) * n);
	return y;
}

#endif							/* PGF_KERNELS_GOLDEN_H */
