/*
 * rank.h: scoring candidates with a Hiformer ranker, shared by
 * rank_items() and the two-stage form of recommend().
 */
#ifndef PGFORMER_RANK_H
#define PGFORMER_RANK_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "extension/cache.h"

/*
 * scores[i] = the ranker's probability (of task, NULL: the first task) for
 * candidate ids[i] of the user as of `at`, reading features through the
 * model's bindings (context: the jsonb when not NULL).
 */
extern void pgformer_rank_candidates(PgfMapped *m, bool user_null, int64 user,
									 TimestampTz at, Jsonb *context, const char *task,
									 const int64 *ids, int n, float *scores);

/* Registers the binding roles of Hiformer rankers (_PG_init). */
extern void pgformer_rank_init(void);

#endif							/* PGFORMER_RANK_H */
