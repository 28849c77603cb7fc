/*
 * recommend.c: the SQL surface of the FinTRec sequence recommender.
 *
 *   recommend(user_id, k, model, exclude_seen, at,      top k for one user,
 *             rerank, candidates, context)             optionally re-ranked
 *                                                        by a Hiformer ranker
 *   recommend_from(model, item_ids, ts, k, exclude_seen) for an ad-hoc sequence
 *   recommend_batch(user_ids, k, model, exclude_seen, at) many users, one
 *                                                        packed pass
 *   pgformer_rerank(model, target [, k [, user column]]) trigger: rewrites a
 *                                                        user's rows in target
 *
 * A fintrec model reads a user's events through its 'events' binding: a
 * query taking the user id as $1 and returning (item id, time [, event
 * type [, channel]]) rows, newest first.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "utils/hsearch.h"
#include "utils/tuplestore.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/namespace.h"
#include "utils/array.h"
#include "utils/regproc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "extension/binding.h"
#include "extension/cache.h"
#include "extension/common.h"
#include "extension/recommend.h"
#include "extension/progress.h"
#include "extension/rank.h"
#include "extension/rerank_worker.h"
#include "models/fintrec.h"

#define BATCH_USERS 128
#define EVENTS_COLUMNS "(item_id integer, ts timestamptz, timestamp, date or unix seconds [, event_type integer [, channel integer]])"

/* ---- the 'events' role ------------------------------------------------------ */

static void
check_event_columns(PgfMapped *m, const char *role, TupleDesc desc)
{
	int			n = desc->natts;

	if (n < 2 || n > 4)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the events query returns %d column%s, it must return %s",
						n, n == 1 ? "" : "s", EVENTS_COLUMNS)));
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);
		bool		ok = (i == 1) ? pgformer_is_time_type(a->atttypid) :
			pgformer_is_integer_type(a->atttypid);
		static const char *const what[] = {"an item id (integer)",
			"a time (timestamptz, timestamp, date or unix seconds)",
		"an event type (integer)", "a channel (integer)"};

		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d (\"%s\") of the events query is %s, it must be %s",
							i + 1, NameStr(a->attname), pgformer_type_name(a->atttypid),
							what[i]),
					 errdetail("The events query must return %s.", EVENTS_COLUMNS)));
	}
}

static const Oid events_params[2] = {INT8OID, TIMESTAMPTZOID};

static const PgfBindingRole events_role = {
	"fintrec", "events", 2, events_params, "$1: the user id, $2: the as-of time",
	check_event_columns
};

void
pgformer_recommend_init(void)
{
	pgformer_register_binding_role(&events_role);
}

/* ---- a user's events ----------------------------------------------------- */

typedef struct Events
{
	int			n;
	int			capacity;
	int64	   *items;
	int64	   *times;
	int32	   *types;			/* NULL when the query has no such column */
	int32	   *channels;
} Events;

static void
events_reserve(Events *ev, int n, bool types, bool channels)
{
	if (n <= ev->capacity)
		return;
	ev->capacity = Max(n, ev->capacity * 2);
	if (ev->items == NULL)
	{
		ev->items = palloc(sizeof(int64) * ev->capacity);
		ev->times = palloc(sizeof(int64) * ev->capacity);
		ev->types = types ? palloc(sizeof(int32) * ev->capacity) : NULL;
		ev->channels = channels ? palloc(sizeof(int32) * ev->capacity) : NULL;
	}
	else
	{
		ev->items = repalloc(ev->items, sizeof(int64) * ev->capacity);
		ev->times = repalloc(ev->times, sizeof(int64) * ev->capacity);
		if (ev->types)
			ev->types = repalloc(ev->types, sizeof(int32) * ev->capacity);
		if (ev->channels)
			ev->channels = repalloc(ev->channels, sizeof(int32) * ev->capacity);
	}
}

static int32
small_int(Datum value, Oid type, const char *what, int64 user)
{
	int64		v = pgformer_datum_int64(value, type);

	if (v < 0 || v > INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the events query returned %s %lld for user %lld", what,
						(long long) v, (long long) user)));
	return (int32) v;
}

/* Swaps events i and j. */
static void
events_swap(Events *ev, int i, int j)
{
	int64		t;
	int32		s;

	t = ev->items[i], ev->items[i] = ev->items[j], ev->items[j] = t;
	t = ev->times[i], ev->times[i] = ev->times[j], ev->times[j] = t;
	if (ev->types)
		s = ev->types[i], ev->types[i] = ev->types[j], ev->types[j] = s;
	if (ev->channels)
		s = ev->channels[i], ev->channels[i] = ev->channels[j], ev->channels[j] = s;
}

/*
 * The model reads events newest first.  A query that returns them oldest
 * first is reversed; any other order is sorted by time (insertion sort,
 * stable: events of one instant keep the query's order).
 */
static void
events_newest_first(Events *ev)
{
	bool		descending = true,
				ascending = true;

	for (int i = 1; i < ev->n; i++)
	{
		descending &= ev->times[i] <= ev->times[i - 1];
		ascending &= ev->times[i] >= ev->times[i - 1];
	}
	if (descending)
		return;
	if (ascending)
	{
		for (int i = 0, j = ev->n - 1; i < j; i++, j--)
			events_swap(ev, i, j);
		return;
	}
	for (int i = 1; i < ev->n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		for (int j = i; j > 0 && ev->times[j] > ev->times[j - 1]; j--)
			events_swap(ev, j, j - 1);
	}
}

/*
 * Runs the events binding for user as of `at` into ev (in the current
 * context).  The query gets the time as $2 and may use it; events after
 * it are dropped here in any case, so that an answer as of a time never
 * depends on what happened later.
 */
static void
fetch_events(PgfBoundQuery *q, int64 user, TimestampTz at, Events *ev)
{
	TupleDesc	desc = q->desc;
	Datum		params[2] = {Int64GetDatum(user), TimestampTzGetDatum(at)};
	bool		has_types = desc->natts >= 3;
	bool		has_channels = desc->natts >= 4;
	Oid			time_type = TupleDescAttr(desc, 1)->atttypid;
	SPITupleTable *table;

	memset(ev, 0, sizeof(*ev));
	if (SPI_execute_plan(q->plan, params, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: the events query did not run as a SELECT");
	table = SPI_tuptable;
	events_reserve(ev, Max((int) SPI_processed, 1), has_types, has_channels);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tuple = table->vals[r];
		bool		isnull;
		Datum		item = SPI_getbinval(tuple, table->tupdesc, 1, &isnull);
		Datum		value;
		int			i = ev->n;

		if (isnull)
			continue;			/* an event without an item tells nothing */
		ev->items[i] = pgformer_datum_int64(item, TupleDescAttr(desc, 0)->atttypid);
		value = SPI_getbinval(tuple, table->tupdesc, 2, &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the events query returned an event without a time for user %lld",
							(long long) user)));
		if (pgformer_datum_after(value, time_type, at))
			continue;			/* after the as-of time */
		ev->times[i] = pgformer_datum_unix_seconds(value, time_type);
		if (has_types)
		{
			value = SPI_getbinval(tuple, table->tupdesc, 3, &isnull);
			ev->types[i] = isnull ? 0 :
				small_int(value, TupleDescAttr(desc, 2)->atttypid, "event type", user);
		}
		if (has_channels)
		{
			value = SPI_getbinval(tuple, table->tupdesc, 4, &isnull);
			ev->channels[i] = isnull ? 0 :
				small_int(value, TupleDescAttr(desc, 3)->atttypid, "channel", user);
		}
		ev->n++;
	}
	SPI_freetuptable(table);
	events_newest_first(ev);
}

static void
to_request(const Events *ev, int64 now, PgfFintrecEvents *req)
{
	memset(req, 0, sizeof(*req));
	req->n = ev->n;
	req->item_ids = ev->items;
	req->timestamps = ev->times;
	req->event_types = ev->types;
	req->channels = ev->channels;
	req->newest_first = true;
	req->placement = 0;
	req->now = now;
}

/* ---- arguments --------------------------------------------------------------- */

static char *
model_argument(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

static bool
bool_argument(FunctionCallInfo fcinfo, int argno, bool if_null)
{
	return PG_ARGISNULL(argno) ? if_null : PG_GETARG_BOOL(argno);
}

/* The request time: `at`, or the transaction's now(). */
static TimestampTz
time_argument(FunctionCallInfo fcinfo, int argno)
{
	TimestampTz at = PG_ARGISNULL(argno) ? GetCurrentTransactionStartTimestamp() :
		PG_GETARG_TIMESTAMPTZ(argno);

	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must be a finite time")));
	return at;
}

static void
report_request_error(const char *err)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", err)));
}

/* ---- one user ---------------------------------------------------------------- */

typedef struct Ranked
{
	int			n;
	int64	   *ids;
	float	   *scores;
} Ranked;

/* Top k for one request; k is clamped to the catalogue. */
static void
rank_one(PgfMapped *m, const PgfFintrecEvents *req, int k, bool exclude_seen, Ranked *out)
{
	const PgfFintrecModel *model = m->bound;
	PgfArena   *arena;
	char		err[256];
	int			n_unknown = 0;

	k = Min(k, pgf_fintrec_rows(model));
	out->ids = palloc(sizeof(int64) * k);
	out->scores = palloc(sizeof(float) * k);
	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_fintrec_arena_bytes(model, req->n, 1));
	out->n = pgf_fintrec_recommend(model, req, k, exclude_seen, out->ids, out->scores,
							   &n_unknown, arena, err, sizeof(err));
	pgformer_arena_release(arena);
	if (out->n < 0)
		report_request_error(err);
	pgformer_note_unknown(m, n_unknown);
}

static void
emit_ranked(ReturnSetInfo *rsinfo, const Ranked *r, bool with_user, bool user_null, int64 user)
{
	for (int i = 0; i < r->n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		int			c = 0;

		if (with_user)
		{
			nulls[c] = user_null;
			values[c++] = Int64GetDatum(user);
		}
		values[c++] = Int64GetDatum(r->ids[i]);
		values[c++] = Float4GetDatum(r->scores[i]);
		values[c++] = Int32GetDatum(i + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

typedef struct RerankedItem
{
	int64		id;
	float		score;
	int			retrieved;		/* rank in the retrieval, for ties */
} RerankedItem;

static int
compare_reranked(const void *a, const void *b)
{
	const RerankedItem *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->retrieved - y->retrieved;
}

/*
 * Two-stage serving: the retrieved candidates are scored by a Hiformer
 * ranker and the best k of them kept, with the ranker's probability as the
 * score.
 */
static void
rerank_ranked(const char *reranker, bool user_null, int64 user, TimestampTz at, Jsonb *context,
			  int k, Ranked *ranked)
{
	TimestampTz start = GetCurrentTimestamp();
	PgfMapped  *ranker = pgformer_acquire(reranker, "hiformer");
	float	   *scores = palloc(sizeof(float) * Max(ranked->n, 1));
	RerankedItem *items = palloc(sizeof(RerankedItem) * Max(ranked->n, 1));

	pgformer_rank_candidates(ranker, user_null, user, at, context, NULL,
							 ranked->ids, ranked->n, scores);
	for (int i = 0; i < ranked->n; i++)
		items[i] = (RerankedItem) {ranked->ids[i], scores[i], i};
	qsort(items, ranked->n, sizeof(RerankedItem), compare_reranked);
	ranked->n = Min(ranked->n, k);
	for (int i = 0; i < ranked->n; i++)
	{
		ranked->ids[i] = items[i].id;
		ranked->scores[i] = items[i].score;
	}
	pgformer_release(ranker, pgformer_elapsed_us(start));
}

PG_FUNCTION_INFO_V1(pgformer_recommend);
Datum
pgformer_recommend(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz start = GetCurrentTimestamp();
	bool		user_null = PG_ARGISNULL(0);
	int64		user = user_null ? 0 : PG_GETARG_INT64(0);
	int			k = pgformer_positive_arg(fcinfo, 1, "k");
	bool		exclude_seen = bool_argument(fcinfo, 3, true);
	TimestampTz at = time_argument(fcinfo, 4);
	char	   *reranker = model_argument(fcinfo, 5);
	int			candidates = PG_ARGISNULL(6) ? 200 : PG_GETARG_INT32(6);
	PgfMapped  *m;
	Events		ev;
	PgfFintrecEvents req;
	Ranked		ranked;
	MemoryContext caller = CurrentMemoryContext;

	if (reranker && candidates <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("candidates must be positive, %d was given", candidates)));
	InitMaterializedSRF(fcinfo, 0);
	m = pgformer_acquire(model_argument(fcinfo, 2), "fintrec");
	SPI_connect();
	/* the events live in SPI's memory until SPI_finish, the ranking in ours */
	memset(&ev, 0, sizeof(ev));
	if (!user_null)				/* a null user has no events: cold start */
	{
		PgfBoundQuery *events = pgformer_binding_open(m, "events", true);

		fetch_events(events, user, at, &ev);
		pgformer_binding_close(events);
	}
	to_request(&ev, (int64) timestamptz_to_time_t(at), &req);
	MemoryContextSwitchTo(caller);
	rank_one(m, &req, reranker ? Max(k, candidates) : k, exclude_seen, &ranked);
	SPI_finish();
	pgformer_release(m, pgformer_elapsed_us(start));
	if (reranker)
		rerank_ranked(reranker, user_null, user, at,
					  PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7), k, &ranked);
	emit_ranked(rsinfo, &ranked, false, false, 0);
	return (Datum) 0;
}

/* A bigint[] or timestamptz[] argument (both 8-byte types) as Datums; NULLs refused. */
static Datum *
array_argument(FunctionCallInfo fcinfo, int argno, Oid type, const char *what, int *n)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(argno);
	Datum	   *values;
	bool	   *nulls;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(array, type, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &values, &nulls, n);
	for (int i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s[%d] is null", what, i + 1)));
	return values;
}

PG_FUNCTION_INFO_V1(pgformer_recommend_from);
Datum
pgformer_recommend_from(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz start = GetCurrentTimestamp();
	int			k = pgformer_positive_arg(fcinfo, 3, "k");
	bool		exclude_seen = bool_argument(fcinfo, 4, true);
	int64		now = (int64) timestamptz_to_time_t(GetCurrentTransactionStartTimestamp());
	Events		ev;
	PgfFintrecEvents req;
	Ranked		ranked;
	PgfMapped  *m;

	InitMaterializedSRF(fcinfo, 0);
	memset(&ev, 0, sizeof(ev));
	if (!PG_ARGISNULL(1))
	{
		int			n_times = 0;
		Datum	   *items = array_argument(fcinfo, 1, INT8OID, "item_ids", &ev.n);
		Datum	   *times = PG_ARGISNULL(2) ? NULL :
			array_argument(fcinfo, 2, TIMESTAMPTZOID, "ts", &n_times);

		if (times && n_times != ev.n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("item_ids has %d elements but ts has %d", ev.n, n_times)));
		events_reserve(&ev, Max(ev.n, 1), false, false);
		for (int i = 0; i < ev.n; i++)
		{
			ev.items[i] = DatumGetInt64(items[i]);
			/* without times, the sequence is in order and happens now */
			ev.times[i] = times ? (int64) timestamptz_to_time_t(DatumGetTimestampTz(times[i])) : now;
		}
		/* arrays are oldest first; events_newest_first reorders by time */
		if (times == NULL)
			for (int i = 0, j = ev.n - 1; i < j; i++, j--)
				events_swap(&ev, i, j);
		else
		{
			int64		latest = now;

			for (int i = 0; i < ev.n; i++)
				latest = Max(latest, ev.times[i]);
			now = latest;
		}
		events_newest_first(&ev);
	}
	m = pgformer_acquire(model_argument(fcinfo, 0), "fintrec");
	to_request(&ev, now, &req);
	rank_one(m, &req, k, exclude_seen, &ranked);
	emit_ranked(rsinfo, &ranked, false, false, 0);
	pgformer_release(m, pgformer_elapsed_us(start));
	return (Datum) 0;
}

/* ---- many users --------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(pgformer_recommend_batch);
Datum
pgformer_recommend_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz start = GetCurrentTimestamp();
	int			k = pgformer_positive_arg(fcinfo, 1, "k");
	bool		exclude_seen = bool_argument(fcinfo, 3, true);
	TimestampTz at = time_argument(fcinfo, 4);
	int64		now = (int64) timestamptz_to_time_t(at);
	ArrayType  *users_array;
	Datum	   *users;
	bool	   *user_nulls;
	int			n_users;
	PgfMapped  *m;
	const PgfFintrecModel *model;
	MemoryContext chunk_context;
	MemoryContext caller = CurrentMemoryContext;
	PgfBoundQuery *events;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	users_array = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(users_array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("user_ids must be a one-dimensional array")));
	deconstruct_array(users_array, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &users, &user_nulls, &n_users);
	m = pgformer_acquire(model_argument(fcinfo, 2), "fintrec");
	model = m->bound;
	k = Min(k, pgf_fintrec_rows(model));
	chunk_context = AllocSetContextCreate(caller, "pgformer batch", ALLOCSET_DEFAULT_SIZES);

	SPI_connect();
	events = pgformer_binding_open(m, "events", true);
	pgformer_progress_start("recommend_batch", m->name, n_users);
	for (int first = 0; first < n_users; first += BATCH_USERS)
	{
		int			count = Min(BATCH_USERS, n_users - first);
		MemoryContext spi = MemoryContextSwitchTo(chunk_context);
		Events	   *user_events = palloc0(sizeof(Events) * count);
		PgfFintrecEvents *reqs = palloc0(sizeof(PgfFintrecEvents) * count);
		int64	   *ids = palloc(sizeof(int64) * (size_t) count * k);
		float	   *scores = palloc(sizeof(float) * (size_t) count * k);
		int		   *counts = palloc(sizeof(int) * count);
		int		   *unknown = palloc0(sizeof(int) * count);
		int			longest = 0;
		int64		unknown_total = 0;
		PgfArena   *arena;
		char		err[256];

		for (int u = 0; u < count; u++)
		{
			if (!user_nulls[first + u])
				fetch_events(events, DatumGetInt64(users[first + u]), at, &user_events[u]);
			to_request(&user_events[u], now, &reqs[u]);
			longest = Max(longest, user_events[u].n);
			CHECK_FOR_INTERRUPTS();
		}
		pgformer_prepare_kernels();
		arena = pgformer_arena_acquire(pgf_fintrec_arena_bytes(model, longest, count));
		if (pgf_fintrec_recommend_batch(model, reqs, count, k, exclude_seen, ids, scores,
									counts, unknown, arena, err, sizeof(err)) != 0)
			report_request_error(err);
		pgformer_arena_release(arena);
		for (int u = 0; u < count; u++)
		{
			Ranked		r = {counts[u], ids + (size_t) u * k, scores + (size_t) u * k};

			emit_ranked(rsinfo, &r, true, user_nulls[first + u],
						DatumGetInt64(users[first + u]));
			unknown_total += unknown[u];
		}
		pgformer_note_unknown(m, unknown_total);
		pgformer_progress_update(first + count);
		MemoryContextSwitchTo(spi);
		MemoryContextReset(chunk_context);
	}
	pgformer_progress_end();
	pgformer_binding_close(events);
	SPI_finish();
	pgformer_release(m, pgformer_elapsed_us(start));
	return (Datum) 0;
}

/* ---- the trigger --------------------------------------------------------------- */

/*
 * AFTER INSERT OR UPDATE ... EXECUTE FUNCTION
 *   pgformer_rerank(model, target_table [, k [, user_column]])
 * replaces the rows of the event's users in target_table (columns user_id,
 * item_id, score, rank) with a fresh top k, in the same transaction.
 *
 * FOR EACH ROW re-ranks the row's user.  FOR EACH STATEMENT, with
 * REFERENCING NEW TABLE AS ..., reads the transition table, takes each
 * user once and re-ranks them all in one packed recommend_batch pass: a
 * 2,000-row INSERT costs about one batch over its users, not 2,000 calls.
 */
typedef struct RerankTrigger
{
	const char *model;
	const char *target;			/* quoted, qualified as given */
	int			k;
	const char *user_column;
} RerankTrigger;

static void
rerank_arguments(TriggerData *trigger, RerankTrigger *t)
{
	char	  **args;
	RangeVar   *rv;

	if (!TRIGGER_FIRED_AFTER(trigger->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigger->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(trigger->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pgformer_rerank must be an AFTER INSERT or UPDATE trigger")));
	if (trigger->tg_trigger->tgnargs < 2 || trigger->tg_trigger->tgnargs > 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pgformer_rerank takes (model, target_table [, k [, user_column]]), %d arguments were given",
						trigger->tg_trigger->tgnargs)));
	args = trigger->tg_trigger->tgargs;
	t->model = args[0];
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(args[1]));
	t->target = quote_qualified_identifier(rv->schemaname, rv->relname);
	t->k = 10;
	if (trigger->tg_trigger->tgnargs >= 3)
	{
		t->k = pg_strtoint32(args[2]);
		if (t->k <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("k must be positive, %d was given", t->k)));
	}
	t->user_column = trigger->tg_trigger->tgnargs == 4 ? args[3] : "user_id";
}

/* The attribute number of the user column, checked to hold integers. */
static int
user_attribute(TriggerData *trigger, const RerankTrigger *t, Oid *type)
{
	TupleDesc	desc = RelationGetDescr(trigger->tg_relation);
	int			column = SPI_fnumber(desc, t->user_column);

	if (column <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no column \"%s\" holding the user id",
						RelationGetRelationName(trigger->tg_relation), t->user_column),
				 errhint("Name the column as the fourth trigger argument.")));
	*type = SPI_gettypeid(desc, column);
	if (!pgformer_is_integer_type(*type))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" is %s; the user id must be an integer",
						t->user_column, pgformer_type_name(*type))));
	return column;
}

void
pgformer_rerank_rewrite(const char *model, const char *target, int k, Datum *users, int n)
{
	Oid			types[3] = {INT8ARRAYOID, INT4OID, TEXTOID};
	Datum		values[3];

	values[0] = PointerGetDatum(construct_array_builtin(users, n, INT8OID));
	values[1] = Int32GetDatum(k);
	values[2] = CStringGetTextDatum(model);
	if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE user_id OPERATOR(pg_catalog.=) ANY ($1)",
									   target),
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "pgformer_rerank: could not delete the old rows of %s", target);
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (user_id, item_id, score, rank) "
									   "SELECT user_id, item_id, score, rank "
									   "FROM %s.recommend_batch($1, $2, $3)",
									   target, pgformer_schema_quoted()),
							  3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pgformer_rerank: could not insert into %s", target);
}

/* The distinct users of the statement's transition table. */
static Datum *
transition_users(TriggerData *trigger, int column, Oid type, int *n)
{
	Tuplestorestate *rows = trigger->tg_newtable;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(trigger->tg_relation),
													&TTSOpsMinimalTuple);
	HASHCTL		ctl;
	HTAB	   *seen;
	int			capacity = 64;
	Datum	   *users = palloc(sizeof(Datum) * capacity);
	int64		count = 0;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(int64);
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("pgformer rerank users", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	*n = 0;
	tuplestore_rescan(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		bool		isnull;
		Datum		value = slot_getattr(slot, column, &isnull);
		int64		user;
		bool		found;

		if ((++count & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		if (isnull)
			continue;			/* no user, nothing to re-rank */
		user = pgformer_datum_int64(value, type);
		hash_search(seen, &user, HASH_ENTER, &found);
		if (found)
			continue;
		if (*n == capacity)
		{
			capacity *= 2;
			users = repalloc_huge(users, sizeof(Datum) * capacity);
		}
		users[(*n)++] = Int64GetDatum(user);
	}
	ExecDropSingleTupleTableSlot(slot);
	hash_destroy(seen);
	return users;
}

/*
 * The users a firing of pgformer_rerank or pgformer_rerank_async is about
 * (none: NULL), with the trigger's arguments.
 */
static Datum *
trigger_users(FunctionCallInfo fcinfo, const char *function, RerankTrigger *t, int *n)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;
	Oid			type;
	int			column;
	Datum	   *users;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be called as a trigger", function)));
	rerank_arguments(trigger, t);
	column = user_attribute(trigger, t, &type);
	if (TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
	{
		HeapTuple	row = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event) ?
			trigger->tg_newtuple : trigger->tg_trigtuple;
		bool		isnull;
		Datum		user = SPI_getbinval(row, RelationGetDescr(trigger->tg_relation), column, &isnull);

		*n = 0;
		if (isnull)
			return NULL;		/* no user, nothing to re-rank */
		users = palloc(sizeof(Datum));
		users[0] = Int64GetDatum(pgformer_datum_int64(user, type));
		*n = 1;
		return users;
	}
	if (trigger->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("a FOR EACH STATEMENT %s trigger needs the new rows", function),
				 errhint("Add REFERENCING NEW TABLE AS new_rows to CREATE TRIGGER.")));
	users = transition_users(trigger, column, type, n);
	return *n > 0 ? users : NULL;
}

PG_FUNCTION_INFO_V1(pgformer_rerank);
Datum
pgformer_rerank(PG_FUNCTION_ARGS)
{
	RerankTrigger t;
	int			n;
	Datum	   *users = trigger_users(fcinfo, "pgformer_rerank", &t, &n);

	if (users == NULL)
		return PointerGetDatum(NULL);
	SPI_connect();
	pgformer_rerank_rewrite(t.model, t.target, t.k, users, n);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * pgformer_rerank_async(model, target_table [, k [, user_column]]): the
 * same, later.  The users go into the queue table in this transaction (a
 * rollback queues nothing; after commit a crash loses nothing); the
 * workers re-rank them after commit, as the role that queued them.  The
 * target table is resolved now, with the caller's search_path.
 */
PG_FUNCTION_INFO_V1(pgformer_rerank_async);
Datum
pgformer_rerank_async(PG_FUNCTION_ARGS)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;
	RerankTrigger t;
	int			n;
	Datum	   *users = trigger_users(fcinfo, "pgformer_rerank_async", &t, &n);
	Oid			target;
	Oid			types[5] = {TEXTOID, OIDOID, INT4OID, OIDOID, INT8ARRAYOID};
	Datum		values[5];

	if (users == NULL)
		return PointerGetDatum(NULL);
	target = RangeVarGetRelid(makeRangeVarFromNameList(
								  stringToQualifiedNameList(trigger->tg_trigger->tgargs[1])),
							  NoLock, false);
	values[0] = CStringGetTextDatum(t.model);
	values[1] = ObjectIdGetDatum(target);
	values[2] = Int32GetDatum(t.k);
	values[3] = ObjectIdGetDatum(GetUserId());	/* the caller: the workers act as it */
	values[4] = PointerGetDatum(construct_array_builtin(users, n, INT8OID));
	(void) pgformer_owner_execute(psprintf("INSERT INTO %s.pgformer_rerank_pending "
										   "(model, target, k, role, user_id) "
										   "SELECT $1, $2, $3, $4, u FROM pg_catalog.unnest($5) u",
										   pgformer_schema_quoted()),
								  5, types, values, SPI_OK_INSERT, "queue the users to re-rank");
	pgformer_rerank_note_queued();
	return PointerGetDatum(NULL);
}
