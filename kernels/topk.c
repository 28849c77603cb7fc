/*
 * topk.c: the k best scores of a vector with a size-k min-heap.
 */
#include "kernels/kernels.h"

#include <math.h>

/* Scores tested at once against the heap's root (a power of two). */
#define PGF_TOPK_BLOCK 16

/* Whether (sa, ia) ranks before (sb, ib): higher score, then lower index. */
static inline bool
ranks_before(float sa, int32_t ia, float sb, int32_t ib)
{
	return sa > sb || (sa == sb && ia < ib);
}

/*
 * Restores the heap below position i: the root holds the entry that ranks
 * last, so a new candidate only has to beat the root.
 */
static void
sift_down(int32_t *idx, float *score, int size, int i)
{
	for (;;)
	{
		int			worst = i;
		int			l = 2 * i + 1,
					r = 2 * i + 2;

		if (l < size && ranks_before(score[worst], idx[worst], score[l], idx[l]))
			worst = l;
		if (r < size && ranks_before(score[worst], idx[worst], score[r], idx[r]))
			worst = r;
		if (worst == i)
			return;
		{
			int32_t		ti = idx[i];
			float		ts = score[i];

			idx[i] = idx[worst];
			score[i] = score[worst];
			idx[worst] = ti;
			score[worst] = ts;
		}
		i = worst;
	}
}

static void
sift_up(int32_t *idx, float *score, int i)
{
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!ranks_before(score[parent], idx[parent], score[i], idx[i]))
			return;
		{
			int32_t		ti = idx[i];
			float		ts = score[i];

			idx[i] = idx[parent];
			score[i] = score[parent];
			idx[parent] = ti;
			score[parent] = ts;
		}
		i = parent;
	}
}

/*
 * scores[n]: the k largest, skipping i where skip[i] != 0 (skip may be
 * NULL) and NaN scores.  idx_out[k], score_out[k] receive them by
 * descending score, ties by ascending index; returns how many (<= k).
 * O(n log k) time, no memory beyond the outputs (they hold the heap).
 */
int
pgf_topk(const float *scores, int n, int k, const uint8_t *skip,
		 int32_t *idx_out, float *score_out)
{
	int			size = 0;

	if (k > n)
		k = n;
	if (k <= 0)
		return 0;
	for (int i = 0; i < n; i++)
	{
		float		s;

		/*
		 * Once the heap is full most scores lose to its root: test blocks
		 * of them at once (a branch-free loop the compiler vectorises) and
		 * skip the blocks where none wins.
		 */
		if (size == k && (i & (PGF_TOPK_BLOCK - 1)) == 0 && i + PGF_TOPK_BLOCK <= n)
		{
			float		threshold = score_out[0];
			int			wins = 0;

			for (int j = 0; j < PGF_TOPK_BLOCK; j++)
				wins |= (scores[i + j] > threshold) & (skip == NULL || skip[i + j] == 0);
			if (!wins)
			{
				i += PGF_TOPK_BLOCK - 1;
				continue;
			}
		}
		s = scores[i];
		if ((skip && skip[i]) || isnan(s))
			continue;
		if (size < k)
		{
			idx_out[size] = i;
			score_out[size] = s;
			sift_up(idx_out, score_out, size);
			size++;
		}
		else if (s > score_out[0])
		{
			/* equal scores never replace: the heap's entry has the lower index */
			idx_out[0] = i;
			score_out[0] = s;
			sift_down(idx_out, score_out, size, 0);
		}
	}
	/* heap sort: move the last-ranked entry to the end, repeatedly */
	for (int end = size - 1; end > 0; end--)
	{
		int32_t		ti = idx_out[0];
		float		ts = score_out[0];

		idx_out[0] = idx_out[end];
		score_out[0] = score_out[end];
		idx_out[end] = ti;
		score_out[end] = ts;
		sift_down(idx_out, score_out, end, 0);
	}
	return size;
}
