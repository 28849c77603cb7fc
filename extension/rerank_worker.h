/*
 * rerank_worker.h: re-ranking later: pgformer_rerank_async queues the
 * users, and background workers (rerank_worker.c) drain the queue after
 * commit through pgformer_rerank_rewrite (recommend.h).
 */
#ifndef PGFORMER_RERANK_WORKER_H
#define PGFORMER_RERANK_WORKER_H

#include "postgres.h"

/* _PG_init: the settings, and the workers when preloading. */
extern void pgformer_rerank_worker_init(void);

/* registry.c's shared-memory hooks: the workers' latches. */
extern Size pgformer_rerank_shmem_size(void);
extern void pgformer_rerank_shmem_init(void);

/* This transaction queued users: wake the workers when it commits. */
extern void pgformer_rerank_note_queued(void);

#endif							/* PGFORMER_RERANK_WORKER_H */
