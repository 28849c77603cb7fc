/*
 * bind.c: tensor lookup with shape checks (see bind.h).
 */
#include "models/bind.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/runtime.h"

void
pgf_binder_init(PgfBinder *b, const PgfModel *m, char *err, size_t errlen)
{
	b->model = m;
	b->status = PGF_OK;
	b->err = err;
	b->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
}

void
pgf_bind_fail(PgfBinder *b, const char *fmt,...)
{
	va_list		args;

	if (b->status != PGF_OK)
		return;
	b->status = PGF_ERR_CONFIG;
	va_start(args, fmt);
	pgf_verror(b->err, b->errlen, fmt, args);
	va_end(args);
}

static void
format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
	size_t		used = 0;

	used += snprintf(buf + used, len - used, "[");
	for (int i = 0; i < ndim && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
						 (long long) shape[i]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

const PgfTensor *
pgf_bind_tensor(PgfBinder *b, const char *name, int ndim, const int64_t *shape,
				unsigned dtype_mask, bool optional)
{
	const PgfTensor *t;
	bool		same;

	if (b->status != PGF_OK)
		return NULL;
	t = pgf_find(b->model, name);
	if (t == NULL)
	{
		if (!optional)
			pgf_bind_fail(b, "tensor \"%s\" is missing", name);
		return NULL;
	}
	same = (t->ndim == ndim);
	for (int i = 0; same && i < ndim; i++)
		same = (t->shape[i] == shape[i]);
	if (!same)
	{
		char		want[128],
					have[128];

		format_shape(want, sizeof(want), ndim, shape);
		format_shape(have, sizeof(have), t->ndim, t->shape);
		pgf_bind_fail(b, "tensor \"%s\" has shape %s but the config implies %s",
					  name, have, want);
		return NULL;
	}
	if ((dtype_mask & (1u << t->dtype)) == 0)
	{
		pgf_bind_fail(b, "tensor \"%s\" has dtype %s, which this model cannot use there",
					  name, pgf_dtype_name(t->dtype));
		return NULL;
	}
	return t;
}

const float *
pgf_bind_vector(PgfBinder *b, const char *name, int64_t n, bool optional)
{
	return pgf_bind_f32(b, name, 1, &n, optional);
}

const float *
pgf_bind_f32(PgfBinder *b, const char *name, int ndim, const int64_t *shape,
			 bool optional)
{
	const PgfTensor *t = pgf_bind_tensor(b, name, ndim, shape,
										 1u << PGF_DTYPE_F32, optional);

	return t ? (const float *) t->data : NULL;
}

PgfMatrix
pgf_bind_matrix(PgfBinder *b, const char *name, int64_t rows, int64_t cols,
				bool optional)
{
	int64_t		shape[2] = {rows, cols};
	const PgfTensor *t = pgf_bind_tensor(b, name, 2, shape, PGF_FLOAT_DTYPES,
										 optional);
	PgfMatrix	empty;

	if (t)
		return pgf_tensor_matrix(t);
	memset(&empty, 0, sizeof(empty));
	return empty;
}

const char *
pgf_name(char *buf, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	vsnprintf(buf, PGF_NAME_MAX, fmt, args);
	va_end(args);
	return buf;
}
