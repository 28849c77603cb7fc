/*
 * tap.h: a minimal Test Anything Protocol emitter for the C unit tests.
 *
 *   tap_ok(cond, "what");  tap_close(a, b, n, tol, "what");
 *   tap_skip("why");       a test that cannot run here, reported as skipped
 *   return tap_done_testing();
 * The plan ("1..N") comes last, from the tests that ran: nobody counts
 * them by hand.  The runner (test/run.sh) counts ok, not ok and skipped
 * lines; a binary that stops before its plan counts as failed.
 */
#ifndef PGF_TAP_H
#define PGF_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int	tap_run = 0;
static int	tap_failed = 0;

static inline int
tap_ok(int cond, const char *fmt,...)
{
	va_list		args;

	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* One test that cannot run here (a missing optional input, say): "ok # SKIP". */
static inline void
tap_skip(const char *fmt,...)
{
	va_list		args;

	tap_run++;
	printf("ok %d - # SKIP ", tap_run);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	printf("\n");
	fflush(stdout);
}

static inline void
tap_diag(const char *fmt,...)
{
	va_list		args;

	printf("# ");
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	printf("\n");
}

/* Largest |a - b| over n floats. */
static inline double
tap_max_abs_diff(const float *a, const float *b, size_t n)
{
	double		worst = 0;

	for (size_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - (double) b[i]);

		if (isnan(a[i]) != isnan(b[i]))
			return INFINITY;
		if (d > worst)
			worst = d;
	}
	return worst;
}

/* ok if max |a - b| <= tol; reports the difference either way. */
static inline int
tap_close(const float *a, const float *b, size_t n, double tol, const char *what)
{
	double		diff = tap_max_abs_diff(a, b, n);

	return tap_ok(diff <= tol, "%s (max abs diff %.3g, tolerance %.3g)", what, diff, tol);
}

/* Stops the test binary: the reference data it needs is missing or bad. */
static inline void
tap_bail(const char *fmt,...)
{
	va_list		args;

	printf("Bail out! ");
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	printf("\n");
	exit(1);
}

/*
 * max |got - want| / max |want| over n values: the error relative to the
 * tensor's scale (NaN where only one side is NaN counts as infinite).
 */
static inline double
tap_rel_error(const float *got, const float *want, size_t n)
{
	double		worst = 0,
				scale = 0;

	for (size_t i = 0; i < n; i++)
	{
		if (isnan(got[i]) != isnan(want[i]))
			return INFINITY;
		if (isnan(want[i]))
			continue;
		if (isinf(want[i]) || isinf(got[i]))
		{
			if (got[i] != want[i])
				return INFINITY;
			continue;
		}
		if (fabs(want[i]) > scale)
			scale = fabs(want[i]);
		if (fabs((double) got[i] - want[i]) > worst)
			worst = fabs((double) got[i] - want[i]);
	}
	return scale > 0 ? worst / scale : worst;
}

/* Wall-clock milliseconds, for the timings a test reports (never asserts). */
static inline double
tap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Prints the plan, the tests that ran; the exit status is 0 when all passed. */
static inline int
tap_done_testing(void)
{
	printf("1..%d\n", tap_run);
	fflush(stdout);
	return tap_failed == 0 && tap_run > 0 ? 0 : 1;
}

#endif							/* PGF_TAP_H */
