/*
 * pgformer.c: the module's entry point, and nothing else: _PG_init
 * defines the settings, connects the kernels to the backend, sets up every
 * file's callbacks, and (when preloaded) requests and sets up pgformer's
 * shared memory: the registry, the progress slots and the re-rank workers'
 * state.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "extension/binding.h"
#include "extension/cache.h"
#include "extension/common.h"
#include "extension/progress.h"
#include "extension/rank.h"
#include "extension/recommend.h"
#include "extension/registry.h"
#include "extension/rerank_worker.h"
#include "extension/vlm.h"
#include "kernels/runtime.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * At transaction end no call is running: every arena is free, no binding
 * query is held, no call reports progress (an error may have skipped the
 * calls' own releases).
 */
static void
transaction_ended(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pgformer_arenas_reset();
			pgformer_bindings_reset();
			pgformer_progress_reset();
			break;
		default:
			break;
	}
}

/*
 * A subtransaction that aborted (an exception block caught a model call's
 * error) ended the calls that started in it: their arenas are free and
 * they report no progress.
 */
static void
subtransaction_ended(SubXactEvent event, SubTransactionId subxact,
					 SubTransactionId parent, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	pgformer_arenas_subxact_abort(subxact);
	pgformer_progress_subxact_abort(subxact);
}

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* All of pgformer's shared memory, requested at once. */
static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(add_size(pgformer_registry_shmem_size(),
											 pgformer_progress_shmem_size()),
									pgformer_rerank_shmem_size()));
	RequestNamedLWLockTranche("pgformer", 1);
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	/* at server start (or after a crash) nothing is mapped: start afresh */
	if (pgformer_registry_shmem_init() && !IsUnderPostmaster)
		pgformer_cache_clear_folder();
	pgformer_progress_shmem_init();
	pgformer_rerank_shmem_init();
	LWLockRelease(AddinShmemInitLock);
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

	pgformer_install_kernel_hooks();

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
	RegisterXactCallback(transaction_ended, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = shmem_startup;
	}
	pgformer_rerank_worker_init();
	pgformer_cache_init();
	pgformer_recommend_init();
	pgformer_rank_init();
}
