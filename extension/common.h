/*
 * common.h: the bottom of the extension, used by every other file: the
 * settings (GUCs), per-backend working memory for model calls, the hooks
 * that connect the kernels to the backend, and argument helpers.
 */
#ifndef PGFORMER_COMMON_H
#define PGFORMER_COMMON_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "kernels/arena.h"

/* ---- settings (registered by _PG_init in pgformer.c) ---------------------- */

extern int	pgformer_threads;
extern int	pgformer_cache_size_mb;
extern int	pgformer_max_models;
extern char *pgformer_default_model;

/* ---- the kernels' hooks --------------------------------------------------- */

/* Points the kernels' interrupt and fatal-error hooks at the backend's. */
extern void pgformer_install_kernel_hooks(void);

/* ---- per-backend working memory ----------------------------------------- */

/*
 * An arena of at least `bytes`, reused across calls (grown when needed)
 * so that the hot path does not allocate or fault in fresh pages.  Nested
 * acquisitions get separate arenas.  Release it when the call is done.
 */
extern PgfArena *pgformer_arena_acquire(size_t bytes);
extern void pgformer_arena_release(PgfArena *arena);

/* Marks every arena free again (transaction end). */
extern void pgformer_arenas_reset(void);

/* A subtransaction aborted: frees the arenas of the calls it (or a child) held. */
extern void pgformer_arenas_subxact_abort(SubTransactionId subxact);

/* Applies pgformer.threads to BLAS before a model call. */
extern void pgformer_prepare_kernels(void);

/* Text argument argno as a C string; an error naming it when it is null. */
extern char *pgformer_text_arg(FunctionCallInfo fcinfo, int argno, const char *what);

/* Integer argument argno; an error naming it when it is null or not positive. */
extern int	pgformer_positive_arg(FunctionCallInfo fcinfo, int argno, const char *what);

/* Microseconds since `start` (GetCurrentTimestamp based). */
extern int64 pgformer_elapsed_us(TimestampTz start);

#endif							/* PGFORMER_COMMON_H */
