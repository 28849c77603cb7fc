/*
 * progress.h: how far long calls are, for other sessions to see
 * (pgformer_progress).  One slot per backend in shared memory, present
 * when pgformer is preloaded; without it every function here does nothing.
 * Only the outermost long call of a backend reports.
 */
#ifndef PGFORMER_PROGRESS_H
#define PGFORMER_PROGRESS_H

#include "postgres.h"

/* registry.c's shared-memory hooks: the slots' size, and setting them up. */
extern Size pgformer_progress_shmem_size(void);
extern void pgformer_progress_shmem_init(void);

/* A long call starts: `total` units of work (users, rows) on model. */
extern void pgformer_progress_start(const char *function, const char *model, int64 total);

/* `done` units of the outermost call are finished. */
extern void pgformer_progress_update(int64 done);

/* The call ended (also at transaction end, for calls an error cut short). */
extern void pgformer_progress_end(void);

/*
 * A subtransaction aborted (an exception block caught a call's error): the
 * calls that started inside it are over.
 */
extern void pgformer_progress_subxact_abort(SubTransactionId subxact);
extern void pgformer_progress_reset(void);

#endif							/* PGFORMER_PROGRESS_H */
