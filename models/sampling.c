/*
 * sampling.c: greedy, temperature, top-k and top-p token choice with a
 * seeded xoshiro256** generator (see sampling.h).
 */
#include "models/sampling.h"

#include <math.h>

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void
pgf_rng_seed(PgfRng *rng, uint64_t seed)
{
	uint64_t	x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
pgf_rng_next(PgfRng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
pgf_rng_uniform(PgfRng *rng)
{
	return (double) (pgf_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

void
pgf_suppress_ranges(float *logits, int n, const PgfTokenRange *ranges, int n_ranges)
{
	for (int r = 0; r < n_ranges; r++)
	{
		int			lo = ranges[r].lo < 0 ? 0 : ranges[r].lo;
		int			hi = ranges[r].hi > n ? n : ranges[r].hi;

		for (int i = lo; i < hi; i++)
			logits[i] = -INFINITY;
	}
}

bool
pgf_is_stop_token(int32_t token, const int32_t *stop, int n_stop)
{
	for (int i = 0; i < n_stop; i++)
		if (stop[i] == token)
			return true;
	return false;
}

int
pgf_argmax(const float *logits, int n)
{
	int			best = -1;

	for (int i = 0; i < n; i++)
		if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
			best = i;
	if (best >= 0 && logits[best] == -INFINITY)
		return -1;
	return best;
}

size_t
pgf_sample_scratch_bytes(int n)
{
	return pgf_arena_round((size_t) n * sizeof(int32_t)) +
		pgf_arena_round((size_t) n * sizeof(float));
}

/*
 * The weight of a logit against the largest one, max (finite), at inverse
 * temperature inv: exp((logit - max) * inv), computed in double so that no
 * temperature overflows it.  -inf and NaN logits weigh nothing (also when
 * inv is 0, where (-inf) * 0 would be NaN).
 */
static inline double
weight(float logit, float max, double inv)
{
	if (isnan(logit) || logit == -INFINITY)
		return 0;
	return exp(((double) logit - (double) max) * inv);
}

/*
 * True when the tokens tied at the top (weight 1 each, top of them) hold
 * all but a negligible part of the mass total: no draw could tell the
 * distribution from greedy's, so greedy's choice (the lowest id) is taken,
 * which is also what the temperature's limit at 0 means.
 */
static inline bool
only_the_top(double total, double top)
{
	return total - top <= top * 0x1p-53;
}

/* Draws from the whole distribution. */
static int
sample_all(const float *logits, int n, int best, double inv, PgfRng *rng)
{
	float		max = logits[best];
	double		z = 0,
				top = 0,
				u,
				c = 0;
	int			last = best;

	for (int i = 0; i < n; i++)
	{
		double		w = weight(logits[i], max, inv);

		z += w;
		if (logits[i] == max)
			top += 1;
	}
	if (only_the_top(z, top))
		return best;
	u = pgf_rng_uniform(rng) * z;
	for (int i = 0; i < n; i++)
	{
		double		w = weight(logits[i], max, inv);

		if (w > 0)
			last = i;
		c += w;
		if (u < c)
			return i;
	}
	return last;				/* rounding at the very end */
}

int
pgf_sample_token(const PgfSampling *cfg, PgfRng *rng, const float *logits, int n,
				 PgfArena *scratch)
{
	int			best;
	float		max;
	double		inv;
	bool		use_k = cfg->top_k > 0 && cfg->top_k < n;
	bool		use_p = cfg->top_p > 0 && cfg->top_p < 1;
	size_t		mark;
	int32_t    *idx;
	float	   *score;
	int			k,
				m,
				keep = 0;
	double		z = 0,
				kept = 0,
				top = 0,
				u,
				c = 0;

	if (n <= 0)
		return -1;
	best = pgf_argmax(logits, n);
	/* greedy: no temperature (NaN too), one candidate, or a certain token */
	if (best < 0 || !(cfg->temperature > 0) || cfg->top_k == 1 ||
		logits[best] == INFINITY)
		return best;
	max = logits[best];
	inv = 1.0 / (double) cfg->temperature;	/* finite: at most 2^149 */
	if (!use_k && !use_p)
		return sample_all(logits, n, best, inv, rng);

	mark = pgf_arena_mark(scratch);
	idx = pgf_arena_alloc(scratch, (size_t) n * sizeof(int32_t));
	score = pgf_arena_floats(scratch, (size_t) n);
	if (!use_k)
		for (int i = 0; i < n; i++)
			z += weight(logits[i], max, inv);
	k = use_k ? cfg->top_k : (n < 64 ? n : 64);
	/* candidates by the logits themselves: the order no scaling can blur */
	for (;;)
	{
		m = pgf_topk(logits, n, k, NULL, idx, score);
		if (use_k)
		{
			z = 0;
			for (int j = 0; j < m; j++)
				z += weight(score[j], max, inv);
		}
		if (!use_p)
		{
			keep = m;
			kept = z;
			break;
		}
		/* keep a token while the mass before it is below top_p */
		keep = 0;
		kept = 0;
		for (int j = 0; j < m && (keep == 0 || kept < cfg->top_p * z); j++)
		{
			kept += weight(score[j], max, inv);
			keep++;
		}
		if (use_k || keep < m || m >= n || kept >= cfg->top_p * z)
			break;
		k = k > n / 4 ? n : k * 4;	/* the nucleus reaches past the candidates */
	}
	/* idx[0] is best: ties come by ascending id */
	for (int j = 0; j < keep && score[j] == max; j++)
		top += 1;
	if (keep <= 1 || only_the_top(kept, top))
	{
		pgf_arena_reset(scratch, mark);
		return best;
	}
	u = pgf_rng_uniform(rng) * kept;
	best = idx[0];
	for (int j = 0; j < keep; j++)
	{
		double		w = weight(score[j], max, inv);

		c += w;
		if (w > 0)
			best = idx[j];
		if (u < c)
		{
			best = idx[j];
			break;
		}
	}
	pgf_arena_reset(scratch, mark);
	return best;
}
