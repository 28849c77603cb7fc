/*
 * rerank.h: re-ranking users into a target table, now (the pgformer_rerank
 * trigger, recommend.c) or later (pgformer_rerank_async queues the users;
 * background workers, rerank_worker.c, drain the queue after commit).
 */
#ifndef PGFORMER_RERANK_H
#define PGFORMER_RERANK_H

#include "postgres.h"

/*
 * Replaces the rows of users[n] in target (a quoted, qualified table with
 * columns user_id, item_id, score, rank) with a fresh top k of model, as
 * the current user.  Call inside an SPI connection.
 */
extern void pgformer_rerank_rewrite(const char *model, const char *target, int k,
									Datum *users, int n);

/* _PG_init: the settings, and the workers when preloading. */
extern void pgformer_rerank_worker_init(void);

/* registry.c's shared-memory hooks: the workers' latches. */
extern Size pgformer_rerank_shmem_size(void);
extern void pgformer_rerank_shmem_init(void);

/* This transaction queued users: wake the workers when it commits. */
extern void pgformer_rerank_note_queued(void);

#endif							/* PGFORMER_RERANK_H */
