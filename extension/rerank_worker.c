/*
 * rerank_worker.c: the background workers that drain the re-rank queue
 * (see rerank_worker.h).
 *
 * pgformer.rerank_workers workers (started when pgformer is preloaded)
 * connect to the database pgformer.rerank_database.  Each loops: in one
 * transaction it takes up to a batch of queued rows (FOR UPDATE SKIP
 * LOCKED, so several workers share the work), groups them by model,
 * target, k and role, and re-ranks each group's distinct users in one
 * packed pass, as the role that queued them, each group in a
 * subtransaction: a group that fails (its model was dropped, its table is
 * gone) is a WARNING in the server log and its rows are gone, never a
 * stuck queue.  With nothing to do it sleeps on its latch; a commit that
 * queued users sets it, and a second passes at most before a look anyway.
 * SIGTERM stops a worker; the postmaster restarts one that died.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "extension/recommend.h"
#include "extension/rerank_worker.h"

#define BATCH_ROWS 10000
#define IDLE_MS 1000
#define MAX_WORKERS 64

int			pgformer_rerank_workers = 1;
char	   *pgformer_rerank_database = NULL;

/* The latches of running workers (pgprocno + 1; 0: none). */
typedef struct WorkerSlots
{
	pg_atomic_uint32 procno[MAX_WORKERS];
} WorkerSlots;

static WorkerSlots *workers = NULL;
static bool queued_in_transaction = false;

void		pgformer_rerank_worker_main(Datum arg);

/* ---- waking the workers ------------------------------------------------------ */

static void
wake_workers(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		queued_in_transaction = false;
	if ((event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT) ||
		!queued_in_transaction)
		return;
	queued_in_transaction = false;
	for (int i = 0; workers != NULL && i < MAX_WORKERS; i++)
	{
		uint32		procno = pg_atomic_read_u32(&workers->procno[i]);

		if (procno > 0)
			SetLatch(&ProcGlobal->allProcs[procno - 1].procLatch);
	}
}

void
pgformer_rerank_note_queued(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(wake_workers, NULL);
		registered = true;
	}
	queued_in_transaction = true;
}

/* ---- start-up ------------------------------------------------------------------ */

Size
pgformer_rerank_shmem_size(void)
{
	return sizeof(WorkerSlots);
}

void
pgformer_rerank_shmem_init(void)
{
	bool		found;

	workers = ShmemInitStruct("pgformer re-rank workers", sizeof(WorkerSlots), &found);
	if (!found)
		for (int i = 0; i < MAX_WORKERS; i++)
			pg_atomic_init_u32(&workers->procno[i], 0);
}

void
pgformer_rerank_worker_init(void)
{
	DefineCustomStringVariable("pgformer.rerank_database",
							   "Database whose re-rank queue the background workers drain.",
							   NULL,
							   &pgformer_rerank_database,
							   "postgres",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("pgformer.rerank_workers",
							"Background workers that drain the re-rank queue.",
							"Needs shared_preload_libraries = 'pgformer'; 0 turns them off.",
							&pgformer_rerank_workers,
							1, 0, MAX_WORKERS,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	for (int i = 0; i < pgformer_rerank_workers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgformer");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgformer_rerank_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pgformer re-rank worker %d", i + 1);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pgformer re-rank worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

/* ---- the worker ------------------------------------------------------------------ */

typedef struct QueuedGroup
{
	char	   *model;
	Oid			target;
	int			k;
	Oid			role;
	Datum	   *users;
	int			n;
} QueuedGroup;

/* One group's users re-ranked as its role, in a subtransaction. */
static void
rerank_group(const QueuedGroup *g)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			saved_user;
	int			saved_context;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		char	   *name = get_rel_name(g->target);
		char	   *schema = name ? get_namespace_name(get_rel_namespace(g->target)) : NULL;

		if (name == NULL || schema == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the target table (oid %u) no longer exists", g->target)));
		SetUserIdAndSecContext(g->role, saved_context | SECURITY_LOCAL_USERID_CHANGE);
		pgformer_rerank_rewrite(g->model, quote_qualified_identifier(schema, name), g->k,
								g->users, g->n);
		SetUserIdAndSecContext(saved_user, saved_context);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *error;

		SetUserIdAndSecContext(saved_user, saved_context);
		MemoryContextSwitchTo(caller);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		ereport(WARNING,
				(errmsg("pgformer could not re-rank %d queued users with model \"%s\": %s",
						g->n, g->model, error->message),
				 errdetail("Their queue entries were removed.")));
		FreeErrorData(error);
	}
	PG_END_TRY();
}

/* Takes one batch off the queue and re-ranks it; false when it was empty. */
static bool
drain_once(void)
{
	bool		worked = false;
	List	   *groups = NIL;
	ListCell   *lc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pgformer: draining the re-rank queue");
	if (OidIsValid(pgformer_model_table_oid()))
	{
		const char *schema = pgformer_schema_quoted();
		char	   *query = psprintf(
			"WITH taken AS (DELETE FROM %s.pgformer_rerank_pending WHERE id OPERATOR(pg_catalog.=) ANY ("
			"  ARRAY(SELECT id FROM %s.pgformer_rerank_pending"
			"  ORDER BY id LIMIT %d FOR UPDATE SKIP LOCKED))"
			"  RETURNING model, target, k, role, user_id) "
			"SELECT model, target, k, role, pg_catalog.array_agg(DISTINCT user_id) "
			"FROM taken GROUP BY model, target, k, role",
			schema, schema, BATCH_ROWS);

		if (SPI_execute(query, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "pgformer: could not read the re-rank queue");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			QueuedGroup	   *g = palloc0(sizeof(QueuedGroup));
			bool		isnull;

			g->model = SPI_getvalue(tuple, desc, 1);
			g->target = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
			g->k = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
			g->role = DatumGetObjectId(SPI_getbinval(tuple, desc, 4, &isnull));
			deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 5, &isnull)),
							  INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
							  &g->users, NULL, &g->n);
			groups = lappend(groups, g);
		}
		worked = groups != NIL;
		foreach(lc, groups)
			rerank_group(lfirst(lc));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return worked;
}

static void
forget_slot(int code, Datum arg)
{
	pg_atomic_write_u32(&workers->procno[DatumGetInt32(arg)], 0);
}

void
pgformer_rerank_worker_main(Datum arg)
{
	int			slot = DatumGetInt32(arg);
	char	   *database;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	database = pstrdup(pgformer_rerank_database);
	BackgroundWorkerInitializeConnection(database, NULL, 0);
	pg_atomic_write_u32(&workers->procno[slot], (uint32) MyProc->pgprocno + 1);
	before_shmem_exit(forget_slot, arg);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* another database: exit, and the postmaster starts us there */
			if (strcmp(database, pgformer_rerank_database) != 0)
				proc_exit(1);
		}
		if (drain_once())
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 IDLE_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
