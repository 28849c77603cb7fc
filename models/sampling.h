/*
 * sampling.h: choosing the next token from a row of logits.
 *
 * Greedy (temperature <= 0) takes the largest logit (the lowest id on
 * ties).  Otherwise, in Hugging Face's order: divide by the temperature,
 * keep the top_k largest (0: all), keep the smallest prefix of those, by
 * descending probability, whose mass reaches top_p (>= 1: all), and draw
 * from what is left with a seeded xoshiro256** generator, so a seed gives
 * the same tokens on every run and machine.  Suppressed id ranges are set
 * to -inf before any of this.  No allocation: scratch from the caller's
 * arena.
 *
 * Any settings are safe: the softmax is taken in double against the
 * largest logit, so no temperature overflows it.  The choice is greedy's
 * whenever sampling could not differ from it: a temperature that is NaN or
 * so small that only the top logit keeps any weight, top_k = 1, a top_p
 * that keeps one token, or a +inf logit (the lowest such id).  Negative
 * top_k and NaN top_p mean no cut.
 */
#ifndef PGF_SAMPLING_H
#define PGF_SAMPLING_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"

typedef struct PgfSampling
{
	float		temperature;	/* <= 0 or NaN: greedy */
	int			top_k;			/* <= 0 or >= n: no top-k cut */
	float		top_p;			/* <= 0, >= 1 or NaN: no nucleus cut */
	uint64_t	seed;
} PgfSampling;

typedef struct PgfRng
{
	uint64_t	s[4];
} PgfRng;

void		pgf_rng_seed(PgfRng *rng, uint64_t seed);
uint64_t	pgf_rng_next(PgfRng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double		pgf_rng_uniform(PgfRng *rng);

/* A half-open range of token ids [lo, hi). */
typedef struct PgfTokenRange
{
	int32_t		lo;
	int32_t		hi;
} PgfTokenRange;

/* logits[i] = -inf for every i of every range (clipped to [0, n)). */
void		pgf_suppress_ranges(float *logits, int n, const PgfTokenRange *ranges,
								int n_ranges);

/* True if token is one of stop[n_stop]. */
bool		pgf_is_stop_token(int32_t token, const int32_t *stop, int n_stop);

/* Index of the largest logit (lowest id on ties); -1 if every one is NaN or -inf. */
int			pgf_argmax(const float *logits, int n);

/* Scratch bytes pgf_sample_token needs for n logits. */
size_t		pgf_sample_scratch_bytes(int n);

/*
 * The next token from logits[n] (left unchanged): an id in [0, n) whose
 * logit is neither NaN nor -inf, or -1 only if every logit is one of those.
 */
int			pgf_sample_token(const PgfSampling *cfg, PgfRng *rng, const float *logits,
							 int n, PgfArena *scratch);

#endif							/* PGF_SAMPLING_H */
