/*
 * rank.c: the SQL surface of the Hiformer ranker.
 *
 *   rank_items(model, user_id, item_ids, context, task)  re-ranks candidates
 *   score(model, features jsonb [, task])                 one ready-made row
 *   score_batch(model, features jsonb[] [, task])         many rows, one call
 *
 * A hiformer model reads its features through three bindings whose column
 * names are the model's feature names:
 *   user_features     $1 = user id (bigint), one row
 *   item_features     $1 = candidate ids (bigint[]), one row per known item,
 *                     first column item_id
 *   context_features  $1 the as-of time (it may ignore it), one row (or the context jsonb of a call)
 * Missing rows and NULL values take the model's defaults; NaN is missing;
 * categories outside a vocabulary take the unknown row; all of them are
 * counted in pgformer_cache.unknown_inputs.  recommend() uses
 * pgformer_rank_candidates for its two-stage form.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "extension/binding.h"
#include "extension/cache.h"
#include "extension/common.h"
#include "extension/progress.h"
#include "extension/rank.h"
#include "models/hiformer.h"

static const char *const group_names[PGF_HIF_N_GROUPS] = {"user", "context", "item"};

/* ---- bindings ---------------------------------------------------------------- */

static bool
is_number_type(Oid type)
{
	return pgformer_is_integer_type(type) || type == FLOAT4OID || type == FLOAT8OID ||
		type == NUMERICOID || type == BOOLOID;
}

static bool
is_code_list_type(Oid type)
{
	return type == INT2ARRAYOID || type == INT4ARRAYOID || type == INT8ARRAYOID;
}

/* The names of group g's features, for messages. */
static char *
feature_list(const PgfHiformerModel *hm, PgfHiformerGroup g)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < hm->n_group[g]; i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "",
						 pgf_hiformer_group_feature(hm, g, i)->name);
	return s.data;
}

/* Checks that desc's columns (from first_feature on) are group g's features. */
static void
check_feature_columns(PgfMapped *m, TupleDesc desc, PgfHiformerGroup g, int first_feature,
					  const char *role)
{
	const PgfHiformerModel *hm = m->bound;
	bool	   *seen = palloc0(sizeof(bool) * Max(hm->n_group[g], 1));
	StringInfoData missing;

	for (int c = first_feature; c < desc->natts; c++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, c);
		const PgfHiformerFeature *f = pgf_hiformer_find_feature(hm, NameStr(a->attname));
		bool		ok;

		if (f == NULL || f->group != g)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of the %s query is not a %s feature of model \"%s\"",
							NameStr(a->attname), role, group_names[g], m->name),
					 errdetail("Its %s features are: %s.", group_names[g], feature_list(hm, g))));
		if (seen[f->slot])
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("the %s query returns feature \"%s\" twice", role, f->name)));
		seen[f->slot] = true;
		if (f->kind == PGF_HIF_DENSE)
			ok = is_number_type(a->atttypid);
		else if (f->kind == PGF_HIF_MULTI_HOT)
			ok = is_code_list_type(a->atttypid) || pgformer_is_integer_type(a->atttypid);
		else
			ok = pgformer_is_integer_type(a->atttypid);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of the %s query is %s, but feature \"%s\" is %s",
							NameStr(a->attname), role, pgformer_type_name(a->atttypid), f->name,
							f->kind == PGF_HIF_DENSE ? "dense (a number)" :
							f->kind == PGF_HIF_MULTI_HOT ? "multi-hot (an integer array)" :
							"categorical (an integer code)")));
	}
	initStringInfo(&missing);
	for (int i = 0; i < hm->n_group[g]; i++)
		if (!seen[i])
			appendStringInfo(&missing, "%s%s", missing.len ? ", " : "",
							 pgf_hiformer_group_feature(hm, g, i)->name);
	if (missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the %s query of model \"%s\" lacks the %s feature column%s %s",
						role, m->name, group_names[g], strchr(missing.data, ',') ? "s" : "",
						missing.data)));
}

static void
check_user_columns(PgfMapped *m, const char *role, TupleDesc desc)
{
	check_feature_columns(m, desc, PGF_HIF_USER, 0, role);
}

static void
check_context_columns(PgfMapped *m, const char *role, TupleDesc desc)
{
	check_feature_columns(m, desc, PGF_HIF_CONTEXT, 0, role);
}

static void
check_item_columns(PgfMapped *m, const char *role, TupleDesc desc)
{
	Form_pg_attribute first = desc->natts > 0 ? TupleDescAttr(desc, 0) : NULL;

	if (first == NULL || strcmp(NameStr(first->attname), "item_id") != 0 ||
		!pgformer_is_integer_type(first->atttypid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the first column of the item_features query must be item_id (an integer)"),
				 errdetail("It says which candidate each row describes; the other columns are item features.")));
	check_feature_columns(m, desc, PGF_HIF_ITEM, 1, role);
}

/* Every feature query gets the as-of time of the call as its last parameter. */
static const Oid user_params[2] = {INT8OID, TIMESTAMPTZOID};
static const Oid item_params[2] = {INT8ARRAYOID, TIMESTAMPTZOID};
static const Oid context_params[1] = {TIMESTAMPTZOID};

static const PgfBindingRole user_role = {
	"hiformer", "user_features", 2, user_params, "$1: the user id, $2: the as-of time",
	check_user_columns
};
static const PgfBindingRole item_role = {
	"hiformer", "item_features", 2, item_params,
	"$1: the candidate item ids, $2: the as-of time", check_item_columns
};
static const PgfBindingRole context_role = {
	"hiformer", "context_features", 1, context_params, "$1: the as-of time",
	check_context_columns
};

void
pgformer_rank_init(void)
{
	pgformer_register_binding_role(&user_role);
	pgformer_register_binding_role(&item_role);
	pgformer_register_binding_role(&context_role);
}

/* ---- values from rows ---------------------------------------------------------- */

static double
datum_number(Datum d, Oid type)
{
	switch (type)
	{
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		case BOOLOID:
			return DatumGetBool(d) ? 1.0 : 0.0;
	}
	return (double) pgformer_datum_int64(d, type);
}

/* A feature value of a column (NULL already handled). */
static void
datum_value(Datum d, Oid type, PgfHiformerValue *v)
{
	memset(v, 0, sizeof(*v));
	if (is_code_list_type(type))
	{
		ArrayType  *a = DatumGetArrayTypeP(d);
		Oid			elem = ARR_ELEMTYPE(a);
		int16		len;
		bool		byval;
		char		align;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int64	   *codes;
		int			kept = 0;

		get_typlenbyvalalign(elem, &len, &byval, &align);
		deconstruct_array(a, elem, len, byval, align, &elems, &nulls, &n);
		codes = palloc(sizeof(int64) * Max(n, 1));
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				codes[kept++] = pgformer_datum_int64(elems[i], elem);
		v->kind = PGF_HIF_VALUE_CODES;
		v->n_codes = kept;
		v->codes = (const int64_t *) codes;
	}
	else if (pgformer_is_integer_type(type))
	{
		v->kind = PGF_HIF_VALUE_CODE;
		v->code = pgformer_datum_int64(d, type);
	}
	else
	{
		v->kind = PGF_HIF_VALUE_NUMBER;
		v->number = datum_number(d, type);
	}
}

/* Group g's values of one result row into values (slot order). */
static void
row_values(const PgfHiformerModel *hm, PgfHiformerGroup g, HeapTuple tuple, TupleDesc desc,
		   int first_feature, PgfHiformerValue *values)
{
	for (int i = 0; i < hm->n_group[g]; i++)
		values[i].kind = PGF_HIF_VALUE_MISSING;
	for (int c = first_feature; c < desc->natts; c++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, c);
		const PgfHiformerFeature *f = pgf_hiformer_find_feature(hm, NameStr(a->attname));
		bool		isnull;
		Datum		d = SPI_getbinval(tuple, desc, c + 1, &isnull);

		if (f == NULL || f->group != g || isnull)
			continue;
		datum_value(d, a->atttypid, &values[f->slot]);
	}
}

/* ---- values from jsonb ------------------------------------------------------- */

static double
jsonb_number(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/*
 * Fills the values of the groups whose bit is in groups from a jsonb
 * object (feature name -> number, code array or null).  Unknown keys and
 * values of the wrong JSON type are errors naming the key.
 */
static void
jsonb_values(const PgfHiformerModel *hm, Jsonb *json, unsigned groups,
			 PgfHiformerValue *by_group[PGF_HIF_N_GROUPS], const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	const PgfHiformerFeature *f = NULL;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(json))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object of feature name -> value", what)));
	for (int g = 0; g < PGF_HIF_N_GROUPS; g++)
		if (groups & (1u << g))
			for (int i = 0; i < hm->n_group[g]; i++)
				by_group[g][i].kind = PGF_HIF_VALUE_MISSING;

	it = JsonbIteratorInit(&json->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		PgfHiformerValue *out;

		if (token == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			f = pgf_hiformer_find_feature(hm, key);
			if (f == NULL || !(groups & (1u << f->group)))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("%s has key \"%s\", which is not a %sfeature of this model",
								what, key, groups == (1u << PGF_HIF_CONTEXT) ? "context " : ""),
						 groups == (1u << PGF_HIF_CONTEXT) ?
						 errdetail("Its context features are: %s.", feature_list(hm, PGF_HIF_CONTEXT)) : 0));
			continue;
		}
		if (token != WJB_VALUE || f == NULL)
			continue;
		out = &by_group[f->group][f->slot];
		memset(out, 0, sizeof(*out));
		switch (v.type)
		{
			case jbvNull:
				out->kind = PGF_HIF_VALUE_MISSING;
				break;
			case jbvNumeric:
				out->kind = PGF_HIF_VALUE_NUMBER;
				out->number = jsonb_number(&v);
				break;
			case jbvBool:
				out->kind = PGF_HIF_VALUE_NUMBER;
				out->number = v.val.boolean ? 1.0 : 0.0;
				break;
			case jbvBinary:
				{
					/* an array of codes */
					JsonbIterator *inner = JsonbIteratorInit(v.val.binary.data);
					JsonbValue	e;
					int64	   *codes = palloc(sizeof(int64) * (JsonContainerSize(v.val.binary.data) + 1));
					int			n = 0;

					if (!JsonContainerIsArray(v.val.binary.data) || f->kind != PGF_HIF_MULTI_HOT)
						ereport(ERROR,
								(errcode(ERRCODE_DATATYPE_MISMATCH),
								 errmsg("%s key \"%s\" must be %s", what, key,
										f->kind == PGF_HIF_DENSE ? "a number" : "an integer code")));
					while ((token = JsonbIteratorNext(&inner, &e, true)) != WJB_DONE)
					{
						double		x;

						if (token != WJB_ELEM)
							continue;
						x = e.type == jbvNumeric ? jsonb_number(&e) : NAN;
						if (x != floor(x))
							ereport(ERROR,
									(errcode(ERRCODE_DATATYPE_MISMATCH),
									 errmsg("%s key \"%s\" must be an array of integer codes", what, key)));
						codes[n++] = (int64) x;
					}
					out->kind = PGF_HIF_VALUE_CODES;
					out->n_codes = n;
					out->codes = (const int64_t *) codes;
					break;
				}
			default:
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("%s key \"%s\" must be %s, not a string", what, key,
								f->kind == PGF_HIF_DENSE ? "a number" :
								f->kind == PGF_HIF_MULTI_HOT ? "an array of integer codes" :
								"an integer code")));
		}
	}
}

/* ---- scoring ------------------------------------------------------------------ */

static int
task_index(const PgfHiformerModel *hm, const char *task)
{
	int			k;

	if (task == NULL)
		return 0;
	k = pgf_hiformer_find_task(hm, task);
	if (k < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the model has no task \"%s\"", task)));
	return k;
}

/* Runs the model; probabilities of task for each candidate into scores. */
static void
run_scoring(PgfMapped *m, PgfHiformerRequest *req, int task, float *scores)
{
	const PgfHiformerModel *hm = m->bound;
	PgfArena   *arena;
	float	   *probs;
	char		err[256];

	if (req->n_candidates == 0)
		return;
	probs = palloc(sizeof(float) * (size_t) req->n_candidates * hm->n_tasks);
	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_hiformer_arena_bytes(hm, Min(req->n_candidates, PGF_HIF_CHUNK)));
	if (pgf_hiformer_score(hm, req, probs, arena, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err)));
	pgformer_arena_release(arena);
	for (int i = 0; i < req->n_candidates; i++)
		scores[i] = probs[(size_t) i * hm->n_tasks + task];
	pgformer_note_unknown(m, req->counts.missing_rows + req->counts.missing_values +
						  req->counts.nan_values + req->counts.oov_codes);
}

/* The user's feature row, or NULL (no such row, or no user). */
static PgfHiformerValue *
user_values(PgfMapped *m, bool user_null, int64 user, TimestampTz at)
{
	const PgfHiformerModel *hm = m->bound;
	PgfHiformerValue *values = NULL;
	PgfBoundQuery *q;
	Datum		params[2] = {Int64GetDatum(user), TimestampTzGetDatum(at)};
	MemoryContext caller = CurrentMemoryContext;

	if (hm->n_group[PGF_HIF_USER] == 0 || user_null)
		return NULL;
	q = pgformer_binding_open(m, "user_features", true);
	if (SPI_execute_plan(q->plan, params, NULL, true, 2) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: the user_features query did not run as a SELECT");
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("the user_features query of model \"%s\" returned more than one row for user %lld",
						m->name, (long long) user)));
	if (SPI_processed == 1)
	{
		values = MemoryContextAlloc(caller, sizeof(PgfHiformerValue) * hm->n_group[PGF_HIF_USER]);
		row_values(hm, PGF_HIF_USER, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 0, values);
	}
	pgformer_binding_close(q);
	return values;
}

/* The context row: from json when given, else the binding, else NULL. */
static PgfHiformerValue *
context_values(PgfMapped *m, Jsonb *json, TimestampTz at)
{
	const PgfHiformerModel *hm = m->bound;
	PgfHiformerValue *values;
	PgfHiformerValue *by_group[PGF_HIF_N_GROUPS] = {NULL, NULL, NULL};
	PgfBoundQuery *q;
	Datum		param = TimestampTzGetDatum(at);

	if (hm->n_group[PGF_HIF_CONTEXT] == 0)
	{
		if (json && JB_ROOT_COUNT(json) > 0)
			jsonb_values(hm, json, 1u << PGF_HIF_CONTEXT, by_group, "context");
		return NULL;
	}
	values = palloc(sizeof(PgfHiformerValue) * hm->n_group[PGF_HIF_CONTEXT]);
	if (json)
	{
		by_group[PGF_HIF_CONTEXT] = values;
		jsonb_values(hm, json, 1u << PGF_HIF_CONTEXT, by_group, "context");
		return values;
	}
	q = pgformer_binding_open(m, "context_features", false);
	if (q == NULL)
		return NULL;
	if (SPI_execute_plan(q->plan, &param, NULL, true, 2) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: the context_features query did not run as a SELECT");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("the context_features query of model \"%s\" returned %llu rows; it must return one",
						m->name, (unsigned long long) SPI_processed)));
	row_values(hm, PGF_HIF_CONTEXT, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 0, values);
	pgformer_binding_close(q);
	return values;
}

typedef struct CandidateSlot
{
	int64		item_id;		/* hash key */
	int			index;
} CandidateSlot;

void
pgformer_rank_candidates(PgfMapped *m, bool user_null, int64 user, TimestampTz at,
						 Jsonb *context, const char *task, const int64 *ids, int n,
						 float *scores)
{
	const PgfHiformerModel *hm = m->bound;
	int			n_item = hm->n_group[PGF_HIF_ITEM];
	PgfHiformerRequest req;
	PgfHiformerValue *items = NULL;
	bool	   *found = NULL;
	int			k = task_index(hm, task);
	MemoryContext caller = CurrentMemoryContext;

	memset(&req, 0, sizeof(req));
	SPI_connect();
	MemoryContextSwitchTo(caller);
	req.user = user_values(m, user_null, user, at);
	req.context = context_values(m, context, at);
	if (n_item > 0 && n > 0)
	{
		HASHCTL		ctl;
		HTAB	   *index;
		Datum	   *elems = palloc(sizeof(Datum) * n);
		Datum		params[2];
		PgfBoundQuery *q = pgformer_binding_open(m, "item_features", true);
		SPITupleTable *table;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(CandidateSlot);
		ctl.hcxt = caller;
		index = hash_create("pgformer candidates", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		for (int i = 0; i < n; i++)
		{
			bool		dup;
			CandidateSlot *slot = hash_search(index, &ids[i], HASH_ENTER, &dup);

			if (!dup)
				slot->index = i;
			elems[i] = Int64GetDatum(ids[i]);
		}
		params[0] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		params[1] = TimestampTzGetDatum(at);
		items = palloc(sizeof(PgfHiformerValue) * (size_t) n * n_item);
		found = palloc0(sizeof(bool) * n);
		for (size_t i = 0; i < (size_t) n * n_item; i++)
			items[i].kind = PGF_HIF_VALUE_MISSING;
		if (SPI_execute_plan(q->plan, params, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "pgformer: the item_features query did not run as a SELECT");
		MemoryContextSwitchTo(caller);
		table = SPI_tuptable;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		id = SPI_getbinval(table->vals[r], table->tupdesc, 1, &isnull);
			int64		item;
			CandidateSlot *slot;

			if (isnull)
				continue;
			item = pgformer_datum_int64(id, TupleDescAttr(table->tupdesc, 0)->atttypid);
			slot = hash_search(index, &item, HASH_FIND, NULL);
			if (slot == NULL || found[slot->index])
				continue;		/* not a candidate, or a second row for it */
			row_values(hm, PGF_HIF_ITEM, table->vals[r], table->tupdesc, 1,
					   &items[(size_t) slot->index * n_item]);
			found[slot->index] = true;
			if ((r & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		pgformer_binding_close(q);
		/* repeated candidates share the first one's row */
		for (int i = 0; i < n; i++)
		{
			CandidateSlot *slot = hash_search(index, &ids[i], HASH_FIND, NULL);

			if (slot->index != i && found[slot->index])
			{
				memcpy(&items[(size_t) i * n_item], &items[(size_t) slot->index * n_item],
					   sizeof(PgfHiformerValue) * n_item);
				found[i] = true;
			}
		}
	}
	req.n_candidates = n;
	req.items = items;
	req.item_found = found;
	run_scoring(m, &req, k, scores);
	SPI_finish();
}

/* ---- SQL functions -------------------------------------------------------------- */

typedef struct Scored
{
	int64		id;
	float		score;
	int			order;
} Scored;

static int
compare_scored(const void *a, const void *b)
{
	const Scored *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->order - y->order;
}

PG_FUNCTION_INFO_V1(pgformer_rank_items);
Datum
pgformer_rank_items(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz start = GetCurrentTimestamp();
	char	   *model;
	bool		user_null = PG_ARGISNULL(1);
	int64		user = user_null ? 0 : PG_GETARG_INT64(1);
	Jsonb	   *context = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	char	   *task = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	ArrayType  *array;
	Datum	   *elems;
	bool	   *nulls;
	int			n_elems;
	int64	   *ids;
	int			n = 0;
	float	   *scores;
	Scored	   *ranked;
	PgfMapped  *m;

	InitMaterializedSRF(fcinfo, 0);
	model = pgformer_text_arg(fcinfo, 0, "model name");
	if (PG_ARGISNULL(2))
		return (Datum) 0;
	array = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("item_ids must be a one-dimensional array")));
	deconstruct_array(array, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n_elems);
	ids = palloc(sizeof(int64) * Max(n_elems, 1));
	for (int i = 0; i < n_elems; i++)
		if (!nulls[i])
			ids[n++] = DatumGetInt64(elems[i]);
	m = pgformer_acquire(model, "hiformer");
	scores = palloc(sizeof(float) * Max(n, 1));
	pgformer_rank_candidates(m, user_null, user, GetCurrentTransactionStartTimestamp(),
							 context, task, ids, n, scores);

	ranked = palloc(sizeof(Scored) * Max(n, 1));
	for (int i = 0; i < n; i++)
		ranked[i] = (Scored) {ids[i], scores[i], i};
	qsort(ranked, n, sizeof(Scored), compare_scored);
	for (int i = 0; i < n; i++)
	{
		Datum		values[3] = {Int64GetDatum(ranked[i].id), Float4GetDatum(ranked[i].score),
		Int32GetDatum(i + 1)};
		bool		row_nulls[3] = {false, false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, row_nulls);
	}
	pgformer_release(m, pgformer_elapsed_us(start));
	return (Datum) 0;
}

/* One ready-made row (all groups in one object) scored as a request. */
static float
score_object(PgfMapped *m, Jsonb *json, int k)
{
	const PgfHiformerModel *hm = m->bound;
	PgfHiformerValue *by_group[PGF_HIF_N_GROUPS];
	PgfHiformerRequest req;
	bool		found = true;
	float		score = 0;

	for (int g = 0; g < PGF_HIF_N_GROUPS; g++)
		by_group[g] = palloc(sizeof(PgfHiformerValue) * Max(hm->n_group[g], 1));
	jsonb_values(hm, json, (1u << PGF_HIF_N_GROUPS) - 1, by_group, "features");
	memset(&req, 0, sizeof(req));
	req.user = by_group[PGF_HIF_USER];
	req.context = by_group[PGF_HIF_CONTEXT];
	req.items = by_group[PGF_HIF_ITEM];
	req.item_found = &found;
	req.n_candidates = 1;
	run_scoring(m, &req, k, &score);
	for (int g = 0; g < PGF_HIF_N_GROUPS; g++)
		pfree(by_group[g]);
	return score;
}

/* The model argument (never null) and the optional task. */
static char *
score_arguments(FunctionCallInfo fcinfo, char **task)
{
	*task = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	return pgformer_text_arg(fcinfo, 0, "model name");
}

PG_FUNCTION_INFO_V1(pgformer_score);
Datum
pgformer_score(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *task;
	char	   *model = score_arguments(fcinfo, &task);
	PgfMapped  *m;
	float		score;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	m = pgformer_acquire(model, "hiformer");
	score = score_object(m, PG_GETARG_JSONB_P(1), task_index(m->bound, task));

	pgformer_release(m, pgformer_elapsed_us(start));
	PG_RETURN_FLOAT4(score);
}

PG_FUNCTION_INFO_V1(pgformer_score_many);
Datum
pgformer_score_many(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *task;
	char	   *model = score_arguments(fcinfo, &task);
	Datum	   *rows;
	bool	   *nulls;
	int			n;
	Datum	   *out;
	bool	   *out_nulls;
	PgfMapped  *m;
	int			k;
	MemoryContext row_context;
	int			dims[1];
	int			lbs[1] = {1};

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	m = pgformer_acquire(model, "hiformer");
	k = task_index(m->bound, task);
	row_context = AllocSetContextCreate(CurrentMemoryContext, "pgformer score row",
										ALLOCSET_DEFAULT_SIZES);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), JSONBOID, -1, false, TYPALIGN_INT,
					  &rows, &nulls, &n);
	out = palloc(sizeof(Datum) * Max(n, 1));
	out_nulls = palloc(sizeof(bool) * Max(n, 1));
	pgformer_progress_start("score_batch", m->name, n);
	for (int i = 0; i < n; i++)
	{
		MemoryContext old;

		if ((i & 255) == 0)
			pgformer_progress_update(i);
		out_nulls[i] = nulls[i];
		if (nulls[i])
			continue;
		old = MemoryContextSwitchTo(row_context);
		out[i] = Float4GetDatum(score_object(m, DatumGetJsonbP(rows[i]), k));
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_context);
		CHECK_FOR_INTERRUPTS();
	}
	pgformer_progress_end();
	dims[0] = n;
	pgformer_release(m, pgformer_elapsed_us(start));
	PG_RETURN_ARRAYTYPE_P(construct_md_array(out, out_nulls, n > 0 ? 1 : 0, dims, lbs,
											 FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}
