/*
 * rope.c: rotary position embedding, rotate-half (GPT-NeoX / Hugging Face)
 * form.  Frequencies and angles are computed in float32 the way Hugging
 * Face's LlamaRotaryEmbedding does, so positions far into a context rotate
 * exactly as the model saw them in training.
 */
#include "kernels/kernels.h"

#include <math.h>

/* Frequencies handled per pass; bounds the stack arrays. */
#define PGF_ROPE_CHUNK 64

/*
 * x [n, row_stride], each row holding n_heads heads of head_dim values
 * from column 0; row i is at position positions[i] (or pos0 + i).
 *   inv_freq[j] = 1 / theta^(2j / head_dim), j < head_dim / 2
 *   x'[j]       = x[j] cos(p inv_freq[j]) - x[j + h/2] sin(p inv_freq[j])
 *   x'[j + h/2] = x[j + h/2] cos(p inv_freq[j]) + x[j] sin(p inv_freq[j])
 */
void
pgf_rope(float *x, int n, int n_heads, int head_dim, int row_stride,
		 const int32_t *positions, int pos0, float theta)
{
	int			half = head_dim / 2;
	float		inv_freq[PGF_ROPE_CHUNK];
	float		cos_a[PGF_ROPE_CHUNK];
	float		sin_a[PGF_ROPE_CHUNK];

	if (head_dim % 2 != 0)
		pgf_fatal("rotary embedding needs an even head_dim, got %d", head_dim);
	for (int j0 = 0; j0 < half; j0 += PGF_ROPE_CHUNK)
	{
		int			nj = half - j0 < PGF_ROPE_CHUNK ? half - j0 : PGF_ROPE_CHUNK;

		for (int j = 0; j < nj; j++)
			inv_freq[j] = 1.0f / powf(theta, (float) (2 * (j0 + j)) / (float) head_dim);
		for (int i = 0; i < n; i++)
		{
			float		p = (float) (positions ? positions[i] : pos0 + i);
			float	   *row = x + (size_t) i * row_stride;

			for (int j = 0; j < nj; j++)
			{
				float		angle = p * inv_freq[j];

				cos_a[j] = cosf(angle);
				sin_a[j] = sinf(angle);
			}
			for (int h = 0; h < n_heads; h++)
			{
				float	   *lo = row + (size_t) h * head_dim + j0;
				float	   *hi = lo + half;

				for (int j = 0; j < nj; j++)
				{
					float		a = lo[j],
								b = hi[j];

					lo[j] = a * cos_a[j] - b * sin_a[j];
					hi[j] = b * cos_a[j] + a * sin_a[j];
				}
			}
		}
	}
}
