/*
 * bind.h: looking up a model's tensors by name with the shapes its config
 * implies.
 *
 * Binding and checking are one step: an architecture's bind function asks
 * for every tensor it will read with the exact shape it expects, and the
 * first missing tensor, wrong shape or unusable dtype becomes the error
 * (PGF_ERR_CONFIG) that rejects the file.  Later requests after an error
 * return empty views, so bind functions need no error handling of their
 * own until the end.
 */
#ifndef PGF_BIND_H
#define PGF_BIND_H

#include "proto/pgf.h"

typedef struct PgfBinder
{
	const PgfModel *model;
	PgfStatus	status;
	char	   *err;
	size_t		errlen;
} PgfBinder;

void		pgf_binder_init(PgfBinder *b, const PgfModel *m, char *err, size_t errlen);

/* Records the first error (later ones are dropped). */
void		pgf_bind_fail(PgfBinder *b, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/*
 * A tensor of exactly this shape whose dtype is in dtype_mask (a bit per
 * PgfDType: 1u << dtype).  optional: a missing tensor returns NULL with no
 * error; a present one must still match.
 */
const PgfTensor *pgf_bind_tensor(PgfBinder *b, const char *name, int ndim,
								 const int64_t *shape, unsigned dtype_mask,
								 bool optional);

/* f32 vector [n]; NULL (and no error) if optional and absent. */
const float *pgf_bind_vector(PgfBinder *b, const char *name, int64_t n, bool optional);

/* Weight matrix [rows, cols] in any float dtype (f32, f16, bf16, q8). */
PgfMatrix	pgf_bind_matrix(PgfBinder *b, const char *name, int64_t rows, int64_t cols,
							bool optional);

/* f32 tensor of any rank with this shape. */
const float *pgf_bind_f32(PgfBinder *b, const char *name, int ndim,
						  const int64_t *shape, bool optional);

#define PGF_FLOAT_DTYPES ((1u << PGF_DTYPE_F32) | (1u << PGF_DTYPE_F16) | \
						  (1u << PGF_DTYPE_BF16) | (1u << PGF_DTYPE_Q8))

/* snprintf into a fixed name buffer; names are at most 255 bytes. */
#define PGF_NAME_MAX 256
const char *pgf_name(char *buf, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

#endif							/* PGF_BIND_H */
