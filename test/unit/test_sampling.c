/*
 * test_sampling.c: the token sampler at the edges of its settings and of
 * its logits.  Whatever the temperature, top_k and top_p, it returns an id
 * in range whose logit is neither NaN nor -inf, leaves the logits as they
 * were, and is exactly greedy where sampling could not differ from greedy:
 * a temperature so small that only the top logit keeps weight (ties going
 * to the lowest id), top_k = 1, a top_p that keeps one token, +inf logits.
 * (The distribution itself is checked in test_solo.c.)
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/sampling.h"
#include "test/unit/tap.h"

#define N_VECTORS 200
#define MAX_N 50000

static PgfArena arena;

static void
arena_setup(void)
{
	size_t		size = pgf_arena_round(pgf_sample_scratch_bytes(MAX_N));
	void	   *base = aligned_alloc(PGF_ARENA_ALIGN, size);

	if (base == NULL)
		tap_bail("out of memory");
	pgf_arena_init(&arena, base, size);
}

/*
 * Random logits for vector v: n in [2, 300] (one vector in ten of
 * MAX_N), values in [-scale, scale], some copied onto the largest so that
 * the top is tied.
 */
static int
random_logits(int v, float *l, PgfRng *rng)
{
	int			n = v % 10 == 9 ? MAX_N : 2 + (int) (pgf_rng_uniform(rng) * 299);
	float		scale = v % 3 == 0 ? 1.0f : v % 3 == 1 ? 20.0f : 1e30f;
	int			best = 0;

	for (int i = 0; i < n; i++)
	{
		l[i] = (float) ((pgf_rng_uniform(rng) * 2 - 1) * scale);
		if (l[i] > l[best])
			best = i;
	}
	if (v % 2 == 0)
		for (int t = 0; t < 3; t++)
			l[(int) (pgf_rng_uniform(rng) * n)] = l[best];
	if (v % 5 == 0)
		l[(int) (pgf_rng_uniform(rng) * n)] = -INFINITY;
	return n;
}

/*
 * Over N_VECTORS random vectors and several seeds, how often settings s
 * choose other than greedy (or leave the range, or change the logits).
 */
static int
differs_from_greedy(PgfSampling s)
{
	static float l[MAX_N],
				copy[MAX_N];
	PgfRng		gen;
	int			wrong = 0;

	pgf_rng_seed(&gen, 42);
	for (int v = 0; v < N_VECTORS; v++)
	{
		int			n = random_logits(v, l, &gen);
		int			greedy = pgf_argmax(l, n);

		memcpy(copy, l, sizeof(float) * n);
		for (uint64_t seed = 0; seed < 4; seed++)
		{
			PgfRng		rng;
			int			t;

			pgf_rng_seed(&rng, seed);
			t = pgf_sample_token(&s, &rng, l, n, &arena);
			if (t != greedy || memcmp(copy, l, sizeof(float) * n) != 0)
				wrong++;
		}
	}
	return wrong;
}

static void
test_greedy_limits(void)
{
	const float tiny[] = {1e-30f, 1e-38f, FLT_TRUE_MIN};
	float		ties[5] = {1, 5, 5, 2, 5};
	PgfRng		rng;
	int			got = 0;

	for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++)
	{
		int			wrong = differs_from_greedy((PgfSampling) {tiny[i], 0, 1, 0});

		tap_ok(wrong == 0, "temperature %g is greedy on %d random vectors, ties included (%d differ)",
			   tiny[i], N_VECTORS, wrong);
	}
	tap_ok(differs_from_greedy((PgfSampling) {1e-30f, 40, 0.9f, 0}) == 0,
		   "temperature 1e-30 with top_k 40 and top_p 0.9 is greedy too");
	tap_ok(differs_from_greedy((PgfSampling) {1, 0, 1e-30f, 0}) == 0 &&
		   differs_from_greedy((PgfSampling) {1, 0, FLT_TRUE_MIN, 0}) == 0,
		   "a tiny top_p (1e-30, the smallest float) keeps only the top token: greedy");
	tap_ok(differs_from_greedy((PgfSampling) {1, 1, 1, 0}) == 0 &&
		   differs_from_greedy((PgfSampling) {100, 1, 0.5f, 0}) == 0,
		   "top_k 1 is greedy at any temperature");
	tap_ok(differs_from_greedy((PgfSampling) {NAN, 0, 1, 0}) == 0,
		   "a NaN temperature is greedy");

	pgf_rng_seed(&rng, 3);
	for (int d = 0; d < 1000; d++)
		got |= pgf_sample_token(&(PgfSampling) {1e-30f, 0, 1, 0}, &rng, ties, 5, &arena) != 1;
	tap_ok(!got, "temperature 1e-30 over tied top logits takes the lowest id, every time");
}

/* Draws with settings s from l[n]: how many drew each id; false if any left the range. */
static bool
draw(PgfSampling s, const float *l, int n, int draws, int *counts)
{
	PgfRng		rng;
	bool		in_range = true;

	memset(counts, 0, sizeof(int) * n);
	pgf_rng_seed(&rng, s.seed);
	for (int d = 0; d < draws; d++)
	{
		int			t = pgf_sample_token(&s, &rng, l, n, &arena);

		if (t < 0 || t >= n)
			in_range = false;
		else
			counts[t]++;
	}
	return in_range;
}

static void
test_hot_and_odd_logits(void)
{
	const float l[8] = {3, -INFINITY, 1, NAN, -2, 0.5f, -INFINITY, 7};
	const float hot[] = {1e30f, FLT_MAX, INFINITY};
	int			counts[8];

	for (size_t i = 0; i < sizeof(hot) / sizeof(hot[0]); i++)
	{
		bool		ok = draw((PgfSampling) {hot[i], 0, 1, 1}, l, 8, 20000, counts);
		int			least = 20000;

		for (int t = 0; t < 8; t++)
			if (t != 1 && t != 3 && t != 6 && counts[t] < least)
				least = counts[t];
		tap_ok(ok && counts[1] == 0 && counts[3] == 0 && counts[6] == 0 && least > 3000,
			   "temperature %g: uniform over the finite logits (fewest %d of 20000), never NaN or -inf",
			   hot[i], least);
	}

	{
		const float one[6] = {-INFINITY, -INFINITY, NAN, 2.5f, -INFINITY, NAN};
		const PgfSampling settings[] = {
			{0, 0, 1, 1}, {1, 0, 1, 1}, {1e-30f, 0, 1, 1}, {1e30f, 0, 1, 1},
			{INFINITY, 0, 1, 1}, {1, 3, 1, 1}, {1, 0, 0.5f, 1}, {2, 4, 0.9f, 1},
		};
		bool		all = true;

		for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
			all &= draw(settings[i], one, 6, 200, counts) && counts[3] == 200;
		tap_ok(all, "when every logit but one is -inf or NaN, every setting takes that one");
	}
	{
		const float inf[5] = {1, INFINITY, 3, INFINITY, -INFINITY};
		bool		all = true;

		all &= draw((PgfSampling) {1, 0, 1, 1}, inf, 5, 200, counts) && counts[1] == 200;
		all &= draw((PgfSampling) {1e30f, 2, 0.7f, 1}, inf, 5, 200, counts) && counts[1] == 200;
		all &= draw((PgfSampling) {0, 0, 1, 1}, inf, 5, 200, counts) && counts[1] == 200;
		tap_ok(all, "+inf logits are certain: the lowest such id, at any temperature");
	}
	{
		const float none[3] = {-INFINITY, NAN, -INFINITY};
		PgfRng		rng;

		pgf_rng_seed(&rng, 1);
		tap_ok(pgf_sample_token(&(PgfSampling) {1, 0, 1, 1}, &rng, none, 3, &arena) == -1 &&
			   pgf_sample_token(&(PgfSampling) {1, 2, 0.5f, 1}, &rng, none, 3, &arena) == -1 &&
			   pgf_sample_token(&(PgfSampling) {0, 0, 1, 1}, &rng, none, 3, &arena) == -1 &&
			   pgf_sample_token(&(PgfSampling) {1, 0, 1, 1}, &rng, none, 0, &arena) == -1,
			   "no usable logit (or none at all) gives -1");
	}
	{
		/* huge logits at an ordinary temperature: their gaps decide */
		const float big[4] = {-3e38f, 3e38f, 2.9e38f, FLT_MAX};

		tap_ok(draw((PgfSampling) {1, 0, 1, 1}, big, 4, 200, counts) && counts[3] == 200,
			   "logits near FLT_MAX at temperature 1 take the largest");
	}
}

static void
test_cuts(void)
{
	const float l[6] = {2, 1, 0.5f, 0, -1, -3};
	int			a[6],
				b[6];
	bool		same = true;
	const int	big_k[] = {6, 7, 1000, 100000, INT_MAX};

	draw((PgfSampling) {1, 0, 1, 9}, l, 6, 5000, a);
	for (size_t i = 0; i < sizeof(big_k) / sizeof(big_k[0]); i++)
	{
		same &= draw((PgfSampling) {1, big_k[i], 1, 9}, l, 6, 5000, b);
		same &= memcmp(a, b, sizeof(a)) == 0;
	}
	tap_ok(same, "top_k at or past the vocabulary (up to INT_MAX) is no cut: the same draws as top_k 0");
	same = draw((PgfSampling) {1, -5, 1, 9}, l, 6, 5000, b) && memcmp(a, b, sizeof(a)) == 0;
	same &= draw((PgfSampling) {1, 0, NAN, 9}, l, 6, 5000, b) && memcmp(a, b, sizeof(a)) == 0;
	same &= draw((PgfSampling) {1, 0, INFINITY, 9}, l, 6, 5000, b) && memcmp(a, b, sizeof(a)) == 0;
	tap_ok(same, "a negative top_k, a NaN or infinite top_p are no cut either");

	/* not greedy too early: a cold but ordinary temperature still samples */
	{
		const float two[2] = {0, 0.5f};
		int			c[2];

		draw((PgfSampling) {0.1f, 0, 1, 5}, two, 2, 20000, c);
		tap_ok(c[0] > 60 && c[0] < 250,
			   "temperature 0.1 still draws a token e^-5 times as likely (%d of 20000, ~134 expected)",
			   c[0]);
	}
	tap_ok(arena.high_water <= arena.size, "the sampler stays within its scratch");
}

int
main(void)
{
	arena_setup();
	test_greedy_limits();
	test_hot_and_odd_logits();
	test_cuts();
	free(arena.base);
	return tap_done_testing();
}
