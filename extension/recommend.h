/*
 * recommend.h: the FinTRec / SASRec SQL functions (recommend.c), and
 * re-ranking users into a target table (the pgformer_rerank trigger now,
 * the re-rank workers later).
 */
#ifndef PGFORMER_RECOMMEND_H
#define PGFORMER_RECOMMEND_H

#include "postgres.h"

/*
 * Replaces the rows of users[n] in target (a quoted, qualified table with
 * columns user_id, item_id, score, rank) with a fresh top k of model, as
 * the current user.  Call inside an SPI connection.
 */
extern void pgformer_rerank_rewrite(const char *model, const char *target, int k,
									Datum *users, int n);


/* Registers the binding role of sequence recommenders (_PG_init). */
extern void pgformer_recommend_init(void);

#endif							/* PGFORMER_RECOMMEND_H */
