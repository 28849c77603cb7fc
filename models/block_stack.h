/*
 * block_stack.h: the smallest runnable architecture: token embeddings,
 * optional learned positions, a stack of transformer blocks and a final
 * norm.  It exercises the kernels end to end through SQL
 * (pgformer_encode) and is what the foundation tests and the attach
 * benchmark load.
 *
 * Tensors: bs.emb.tok [vocab, d]; bs.emb.pos [max_positions, d] when the
 * blocks have max_positions > 0 and no rotary embedding; blocks "bs".
 */
#ifndef PGF_BLOCK_STACK_H
#define PGF_BLOCK_STACK_H

#include "models/transformer.h"

typedef struct PgfBlockStackModel
{
	PgfStack	stack;
	PgfMatrix	tok_emb;
	const float *pos_emb;		/* [max_positions, d] or NULL */
	int			vocab_size;
	int			max_positions;	/* 0: unbounded (rotary or no positions) */
	bool		causal;
} PgfBlockStackModel;

PgfStatus	pgf_block_stack_bind(const PgfModel *file, void *model, char *err, size_t errlen);

/* Arena bytes pgf_block_stack_encode needs for n tokens. */
size_t		pgf_block_stack_arena_bytes(const PgfBlockStackModel *m, int n);

/*
 * Encodes tokens[n] (each in [0, vocab)) and writes the final hidden state
 * of the last token to out[d].  Returns 0, or -1 with a message if a token
 * or the length is out of range.
 */
int			pgf_block_stack_encode(const PgfBlockStackModel *m, const int32_t *tokens,
								   int n, float *out, PgfArena *arena,
								   char *err, size_t errlen);

#endif							/* PGF_BLOCK_STACK_H */
