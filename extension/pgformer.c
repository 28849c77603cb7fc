/*
 * pgformer.c: module entry point: GUCs, hooks that connect the kernels to
 * the backend (interrupts, internal errors, BLAS threads), and the reusable
 * per-backend arenas.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "extension/pgformer.h"
#include "extension/progress.h"
#include "extension/registry.h"
#include "extension/rerank.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

int			pgformer_threads = 1;
int			pgformer_cache_size_mb = 4096;
int			pgformer_max_models = 64;
char	   *pgformer_default_model = NULL;

/* Kernels call this between chunks of long work. */
static void
interrupt_hook(void)
{
	CHECK_FOR_INTERRUPTS();
}

static void
fatal_hook(const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("pgformer internal error: %s", message)));
	pg_unreachable();
}

void
pgformer_prepare_kernels(void)
{
	pgf_set_threads(pgformer_threads);
}

char *
pgformer_text_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

int
pgformer_positive_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int			value;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	value = PG_GETARG_INT32(argno);
	if (value <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive, %d was given", what, value)));
	return value;
}

int64
pgformer_elapsed_us(TimestampTz start)
{
	return (int64) (GetCurrentTimestamp() - start);
}

/* ---- arenas ----------------------------------------------------------------- */

#define PGF_MAX_NESTED_ARENAS 4

typedef struct BackendArena
{
	PgfArena	arena;
	char	   *raw;			/* what MemoryContextAlloc returned */
	size_t		capacity;
	bool		in_use;
	SubTransactionId subxact;	/* where it was acquired */
} BackendArena;

static BackendArena arenas[PGF_MAX_NESTED_ARENAS];

PgfArena *
pgformer_arena_acquire(size_t bytes)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
	{
		BackendArena *a = &arenas[i];

		if (a->in_use)
			continue;
		if (a->capacity < bytes)
		{
			size_t		capacity = Max(bytes, a->capacity * 2);

			if (a->raw)
				pfree(a->raw);
			a->raw = NULL;
			a->capacity = 0;
			if (capacity + PGF_ARENA_ALIGN > MaxAllocHugeSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("a model call needs %zu bytes of working memory, more than one allocation can hold",
								bytes)));
			a->raw = MemoryContextAllocHuge(TopMemoryContext,
											capacity + PGF_ARENA_ALIGN);
			a->capacity = capacity;
		}
		pgf_arena_init(&a->arena,
					   (void *) TYPEALIGN(PGF_ARENA_ALIGN, a->raw), a->capacity);
		a->in_use = true;
		a->subxact = GetCurrentSubTransactionId();
		return &a->arena;
	}
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("pgformer: model calls nested more than %d deep", PGF_MAX_NESTED_ARENAS)));
	return NULL;
}

void
pgformer_arena_release(PgfArena *arena)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
		if (&arenas[i].arena == arena)
			arenas[i].in_use = false;
}

/* At transaction end every arena is free again (an error may skip release). */
void
pgformer_arenas_reset(void)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
		arenas[i].in_use = false;
}

/*
 * A subtransaction that aborts (an exception block catching a model call's
 * error) frees the arenas its calls held: no call of it is still running.
 */
static void
subtransaction_ended(SubXactEvent event, SubTransactionId subxact,
					 SubTransactionId parent, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
		if (arenas[i].in_use && arenas[i].subxact == subxact)
			arenas[i].in_use = false;
}

/* ---- module load -------------------------------------------------------------- */

void
_PG_init(void)
{
	DefineCustomIntVariable("pgformer.threads",
							"BLAS threads a backend uses for model calls.",
							"Each backend sets its own; with many concurrent backends keep it at 1.",
							&pgformer_threads,
							1, 1, 64,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pgformer.cache_size",
							"Disk space the materialised model cache may use.",
							"Least recently used versions that no backend has mapped are removed first.",
							&pgformer_cache_size_mb,
							4096, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MB,
							NULL, NULL, NULL);
	/* a server-start setting can only be defined while preloading */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("pgformer.max_models",
								"Model versions the shared registry tracks at once.",
								"Needs shared_preload_libraries = 'pgformer'.",
								&pgformer_max_models,
								64, 4, 65536,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
	DefineCustomStringVariable("pgformer.default_model",
							   "Model used when a call names none.",
							   NULL,
							   &pgformer_default_model,
							   NULL,
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("pgformer.max_image_pixels",
							"Largest image (width x height) a model call decodes.",
							"Checked from the image header, before any pixel is decoded.",
							&pgformer_max_image_pixels,
							pgformer_max_image_pixels, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("pgformer");

	pgf_interrupt_hook = interrupt_hook;
	pgf_fatal_hook = fatal_hook;

	/*
	 * OpenBLAS starts its worker threads when it is loaded.  In the
	 * postmaster they would sit beside PostgreSQL's signal handling, so the
	 * server should start with OPENBLAS_NUM_THREADS=1; say so when it did
	 * not, and keep every backend at one thread until pgformer.threads
	 * asks for more (created then with signals blocked).
	 */
	if (pgf_get_threads() > 1)
	{
		if (process_shared_preload_libraries_in_progress)
			ereport(WARNING,
					(errmsg("OpenBLAS started %d threads in the postmaster", pgf_get_threads()),
					 errhint("Start the server with OPENBLAS_NUM_THREADS=1; pgformer.threads sets the threads of each backend.")));
		pgf_set_threads(1);
	}

	RegisterSubXactCallback(subtransaction_ended, NULL);
	pgformer_registry_init();
	pgformer_rerank_worker_init();
	pgformer_cache_init();
	pgformer_recommend_init();
	pgformer_rank_init();
}
