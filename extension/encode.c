/*
 * encode.c: pgformer_encode(model, tokens): runs a block_stack model over a
 * token sequence and returns the last token's final hidden state.  The
 * smallest end-to-end path from SQL through the mapped weights and the
 * kernels, used by the foundation tests.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "models/block_stack.h"

PG_FUNCTION_INFO_V1(pgformer_encode);
Datum
pgformer_encode(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ArrayType  *tokens_array = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	int32	   *tokens;
	PgfMapped  *m;
	const PgfBlockStackModel *model;
	PgfArena   *arena;
	float	   *out;
	Datum	   *result;
	char		err[256];
	int			rc;
	int			d;
	TimestampTz start = GetCurrentTimestamp();

	if (ARR_NDIM(tokens_array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tokens must be a one-dimensional array")));
	deconstruct_array_builtin(tokens_array, INT4OID, &elems, &elem_nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tokens must not be empty")));
	tokens = palloc(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
	{
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("token %d is null", i + 1)));
		tokens[i] = DatumGetInt32(elems[i]);
	}

	m = pgformer_acquire(name, "block_stack");
	model = m->bound;
	d = model->stack.spec.d_model;
	out = palloc(sizeof(float) * d);
	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_block_stack_arena_bytes(model, n));
	rc = pgf_block_stack_encode(model, tokens, n, out, arena, err, sizeof(err));
	pgformer_arena_release(arena);
	pgformer_release(m, pgformer_elapsed_us(start));
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err)));
	result = palloc(sizeof(Datum) * d);
	for (int i = 0; i < d; i++)
		result[i] = Float4GetDatum(out[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array_builtin(result, d, FLOAT4OID));
}
