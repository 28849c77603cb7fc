/*
 * embedding.c: gathering rows of an embedding table (any weight dtype).
 */
#include "kernels/kernels.h"

#include <string.h>

/*
 * out[n, table->cols] = table[rows[i]] as f32 for i < n; a row index
 * outside [0, table->rows) gives a row of zeros.
 */
void
pgf_embedding_gather(float *out, const PgfMatrix *table, const int32_t *rows, int n)
{
	int			d = table->cols;

	for (int i = 0; i < n; i++)
	{
		float	   *o = out + (size_t) i * d;

		if (rows[i] < 0 || rows[i] >= table->rows)
			memset(o, 0, sizeof(float) * d);
		else
			pgf_matrix_row(o, table, rows[i]);
	}
}
