/*
 * binding.c: pgformer_bind / pgformer_unbind, the per-backend cache of
 * prepared binding queries, and conversions of their result values (see
 * binding.h).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/plancache.h"
#include "utils/timestamp.h"

#include "extension/binding.h"
#include "extension/store.h"

#define MAX_ROLES 16
#define ROLE_LEN 32

static const PgfBindingRole *roles[MAX_ROLES];
static int	n_roles = 0;

void
pgformer_register_binding_role(const PgfBindingRole *role)
{
	if (n_roles < MAX_ROLES)
		roles[n_roles++] = role;
}

static const PgfBindingRole *
find_role(const char *architecture, const char *role)
{
	for (int i = 0; i < n_roles; i++)
		if (strcmp(roles[i]->architecture, architecture) == 0 &&
			strcmp(roles[i]->role, role) == 0)
			return roles[i];
	return NULL;
}

/* "'events'" or "'user_features', 'item_features'" or "none" */
static char *
roles_of(const char *architecture)
{
	StringInfoData names;

	initStringInfo(&names);
	for (int i = 0; i < n_roles; i++)
		if (strcmp(roles[i]->architecture, architecture) == 0)
			appendStringInfo(&names, "%s'%s'", names.len ? ", " : "", roles[i]->role);
	if (names.len == 0)
		appendStringInfoString(&names, "none");
	return names.data;
}

/* ---- checking a query ------------------------------------------------------ */

typedef struct CheckContext
{
	const char *model;
	const PgfBindingRole *spec;
} CheckContext;

static void
binding_error_context(void *arg)
{
	CheckContext *c = arg;

	errcontext("binding query for role \"%s\" of model \"%s\" (parameters %s)",
			   c->spec->role, c->model, c->spec->param_doc);
}

/*
 * Prepares query with $1 of the role's type inside the current SPI
 * connection and checks its result columns.  Returns the unsaved plan.
 */
static SPIPlanPtr
prepare_checked(PgfMapped *m, const PgfBindingRole *spec, const char *query,
				TupleDesc *desc)
{
	ErrorContextCallback callback;
	CheckContext context = {m->name, spec};
	SPIPlanPtr	plan;
	List	   *sources;
	CachedPlanSource *source;

	callback.callback = binding_error_context;
	callback.arg = &context;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	plan = SPI_prepare(query, spec->n_params, (Oid *) spec->param_types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the binding query: %s",
			 SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a binding query must be exactly one statement")));
	source = linitial(sources);
	if (source->resultDesc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a binding query must return rows")));
	spec->check_columns(m, spec->role, source->resultDesc);
	*desc = source->resultDesc;

	error_context_stack = callback.previous;
	return plan;
}

PG_FUNCTION_INFO_V1(pgformer_bind);
Datum
pgformer_bind(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *role = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(2));
	PgfMapped  *m;
	const PgfBindingRole *spec;
	TupleDesc	desc;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	Oid			table_oid;

	/* a bound query runs inside every caller's calls: only the owner binds */
	pgformer_require_model_owner(model);
	m = pgformer_acquire(model, NULL);
	spec = find_role(m->arch->name, role);
	if (spec == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a %s model has no input role \"%s\"", m->arch->name, role),
				 errhint("Roles of %s models: %s.", m->arch->name, roles_of(m->arch->name))));

	SPI_connect();
	(void) prepare_checked(m, spec, query, &desc);
	SPI_finish();

	values[0] = CStringGetTextDatum(m->name);
	values[1] = CStringGetTextDatum(role);
	values[2] = CStringGetTextDatum(query);
	(void) pgformer_owner_execute(psprintf("INSERT INTO %s.pgformer_binding (model, role, query) "
										   "VALUES ($1, $2, $3) ON CONFLICT (model, role) "
										   "DO UPDATE SET query = excluded.query, bound_at = pg_catalog.now()",
										   pgformer_schema_quoted()),
								  3, types, values, SPI_OK_INSERT, "record the binding");
	table_oid = pgformer_model_table_oid();
	pgformer_release(m, -1);

	/* every backend prepares the new query at its next call */
	CacheInvalidateRelcacheByRelid(table_oid);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(pgformer_unbind);
Datum
pgformer_unbind(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *role = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(model), CStringGetTextDatum(role)};
	uint64		removed;
	Oid			table_oid;

	pgformer_require_model_owner(model);
	removed = pgformer_owner_execute(psprintf("DELETE FROM %s.pgformer_binding "
											  "WHERE model OPERATOR(pg_catalog.=) $1 "
											  "AND role OPERATOR(pg_catalog.=) $2",
											  pgformer_schema_quoted()),
									 2, types, values, SPI_OK_DELETE, "remove the binding");
	table_oid = pgformer_model_table_oid();
	if (removed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no binding for role \"%s\"", model, role)));
	CacheInvalidateRelcacheByRelid(table_oid);
	PG_RETURN_VOID();
}

/* ---- the per-backend plan cache ------------------------------------------- */

/*
 * Each (model name, role) keeps its prepared query until the catalog
 * changes.  A call pins the query it runs: a binding query may itself call
 * a model (re-entry) or take in a catalog change, and a query replaced
 * meanwhile is only freed once the last call running it closes it (or the
 * transaction ends, when no call can hold one).
 */
typedef struct PlanKey
{
	char		model[NAMEDATALEN];
	char		role[ROLE_LEN];
} PlanKey;

typedef struct PlanEntry
{
	PlanKey		key;
	uint64		generation;
	PgfBoundQuery *query;		/* NULL: not bound */
} PlanEntry;

static HTAB *plans = NULL;
static List *retired = NIL;		/* replaced queries still pinned by a call */

static void
free_query(PgfBoundQuery *q)
{
	SPI_freeplan(q->plan);
	FreeTupleDesc(q->desc);
	pfree(q);
}

/* Takes a query out of its entry: freed now, or by the last call holding it. */
static void
retire(PgfBoundQuery *q)
{
	MemoryContext old;

	if (q->pins == 0)
	{
		free_query(q);
		return;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	retired = lappend(retired, q);
	MemoryContextSwitchTo(old);
}

void
pgformer_bindings_reset(void)
{
	HASH_SEQ_STATUS status;
	PlanEntry  *entry;
	ListCell   *lc;

	foreach(lc, retired)
		free_query(lfirst(lc));
	list_free(retired);
	retired = NIL;
	if (plans == NULL)
		return;
	hash_seq_init(&status, plans);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->query)
			entry->query->pins = 0;
}

/* The bound query text, or NULL. */
static char *
read_query(const char *model, const char *role)
{
	PgfOwnerContext owner;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(model), CStringGetTextDatum(role)};
	char	   *query = NULL;
	MemoryContext caller = CurrentMemoryContext;

	pgformer_become_owner(&owner);
	SPI_connect();
	if (SPI_execute_with_args(psprintf("SELECT query FROM %s.pgformer_binding "
									   "WHERE model OPERATOR(pg_catalog.=) $1 "
									   "AND role OPERATOR(pg_catalog.=) $2",
									   pgformer_schema_quoted()),
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: could not read the bindings");
	if (SPI_processed == 1)
	{
		char	   *text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		query = MemoryContextStrdup(caller, text);
	}
	SPI_finish();
	pgformer_restore_user(&owner);
	return query;
}

static PlanEntry *
plan_entry(PgfMapped *m, const char *role)
{
	PlanKey		key;
	PlanEntry  *entry;
	bool		found;
	uint64		generation = pgformer_catalog_generation();

	if (plans == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(PlanKey);
		ctl.entrysize = sizeof(PlanEntry);
		plans = hash_create("pgformer bindings", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.model, m->name, NAMEDATALEN);
	strlcpy(key.role, role, ROLE_LEN);
	entry = hash_search(plans, &key, HASH_ENTER, &found);
	if (!found)
	{
		entry->generation = 0;
		entry->query = NULL;
	}
	if (entry->generation != generation)
	{
		char	   *text = read_query(m->name, role);
		PgfBoundQuery *q = NULL;

		if (entry->query)
			retire(entry->query);
		entry->query = NULL;
		entry->generation = 0;
		if (text)
		{
			const PgfBindingRole *spec = find_role(m->arch->name, role);
			TupleDesc	desc;
			SPIPlanPtr	plan;
			MemoryContext old;

			if (spec == NULL)
				elog(ERROR, "pgformer: role \"%s\" is not registered", role);
			plan = prepare_checked(m, spec, text, &desc);
			old = MemoryContextSwitchTo(TopMemoryContext);
			q = palloc0(sizeof(PgfBoundQuery));
			q->desc = CreateTupleDescCopy(desc);
			MemoryContextSwitchTo(old);
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "pgformer: could not keep the binding query");
			q->plan = plan;
		}
		entry->query = q;
		entry->generation = generation;
	}
	return entry;
}

PgfBoundQuery *
pgformer_binding_open(PgfMapped *m, const char *role, bool required)
{
	PgfBoundQuery *q = plan_entry(m, role)->query;

	if (q == NULL)
	{
		if (!required)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no binding for role \"%s\"", m->name, role),
				 errhint("Bind it with pgformer_bind('%s', '%s', query).", m->name, role)));
	}
	q->pins++;
	return q;
}

void
pgformer_binding_close(PgfBoundQuery *q)
{
	ListCell   *lc;

	if (q->pins > 0)
		q->pins--;
	if (q->pins > 0)
		return;
	foreach(lc, retired)
	{
		if (lfirst(lc) == q)
		{
			retired = foreach_delete_current(retired, lc);
			free_query(q);
			return;
		}
	}
}

/* ---- values ---------------------------------------------------------------- */

bool
pgformer_is_integer_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID;
}

bool
pgformer_is_time_type(Oid type)
{
	return type == TIMESTAMPTZOID || type == TIMESTAMPOID || type == DATEOID ||
		pgformer_is_integer_type(type) || type == FLOAT8OID || type == FLOAT4OID ||
		type == NUMERICOID;
}

int64
pgformer_datum_int64(Datum value, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(value);
		case INT4OID:
			return DatumGetInt32(value);
		case INT8OID:
			return DatumGetInt64(value);
	}
	elog(ERROR, "pgformer: type %u is not an integer type", type);
	return 0;
}

int64
pgformer_datum_unix_seconds(Datum value, Oid type)
{
	switch (type)
	{
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			/* timestamp without time zone is read as UTC */
			return (int64) timestamptz_to_time_t(DatumGetTimestampTz(value));
		case DATEOID:
			return (int64) (DatumGetDateADT(value) + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)) *
				SECS_PER_DAY;
		case FLOAT8OID:
			return (int64) DatumGetFloat8(value);
		case FLOAT4OID:
			return (int64) DatumGetFloat4(value);
		case NUMERICOID:
			return DatumGetInt64(DirectFunctionCall1(numeric_int8, value));
	}
	return pgformer_datum_int64(value, type);
}

bool
pgformer_datum_after(Datum value, Oid type, TimestampTz at)
{
	double		at_seconds = (double) at / USECS_PER_SEC +
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	switch (type)
	{
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			/* timestamp without time zone is read as UTC, as above */
			return DatumGetTimestampTz(value) > at;
		case DATEOID:
			/* midnight UTC, as above */
			return (double) DatumGetDateADT(value) * USECS_PER_DAY > (double) at;
		case FLOAT8OID:
			return DatumGetFloat8(value) > at_seconds;
		case FLOAT4OID:
			return DatumGetFloat4(value) > at_seconds;
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, value)) > at_seconds;
	}
	return (double) pgformer_datum_int64(value, type) > at_seconds;
}

const char *
pgformer_type_name(Oid type)
{
	return format_type_be(type);
}
