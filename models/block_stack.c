/*
 * block_stack.c: binding and running the block_stack architecture.
 */
#include "models/block_stack.h"

#include <stdio.h>
#include <string.h>

PgfStatus
pgf_block_stack_bind(const PgfModel *file, void *model, char *err, size_t errlen)
{
	PgfBlockStackModel *m = model;
	const Pgformer__BlockStackConfig *cfg = file->header->block_stack;
	PgfBinder	b;
	int			d;

	pgf_binder_init(&b, file, err, errlen);
	pgf_stack_bind(&b, cfg->blocks, "bs", &m->stack);
	if (b.status != PGF_OK)
		return b.status;
	d = m->stack.spec.d_model;
	if (cfg->vocab_size == 0 || cfg->vocab_size > (1u << 24))
	{
		pgf_bind_fail(&b, "block_stack: vocab_size %u is out of range (1 to %u)",
					  cfg->vocab_size, 1u << 24);
		return b.status;
	}
	m->vocab_size = (int) cfg->vocab_size;
	m->causal = cfg->causal;
	m->tok_emb = pgf_bind_matrix(&b, "bs.emb.tok", m->vocab_size, d, false);
	m->max_positions = 0;
	if (m->stack.max_positions > 0 && m->stack.spec.rope_theta == 0)
	{
		int64_t		shape[2] = {m->stack.max_positions, d};

		m->max_positions = m->stack.max_positions;
		m->pos_emb = pgf_bind_f32(&b, "bs.emb.pos", 2, shape, false);
	}
	return b.status;
}

size_t
pgf_block_stack_arena_bytes(const PgfBlockStackModel *m, int n)
{
	return pgf_arena_round((size_t) n * m->stack.spec.d_model * sizeof(float)) +
		pgf_stack_scratch_bytes(&m->stack, n, n);
}

int
pgf_block_stack_encode(const PgfBlockStackModel *m, const int32_t *tokens, int n,
					   float *out, PgfArena *arena, char *err, size_t errlen)
{
	int			d = m->stack.spec.d_model;
	size_t		mark = pgf_arena_mark(arena);
	float	   *x;
	int			offsets[2] = {0, n};
	PgfAttnMask mask;

	if (n <= 0 || (m->max_positions > 0 && n > m->max_positions))
	{
		snprintf(err, errlen, "%d tokens given, the model takes 1 to %d", n,
				 m->max_positions > 0 ? m->max_positions : n);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= m->vocab_size)
		{
			snprintf(err, errlen, "token %d at position %d is outside the vocabulary [0, %d)",
					 tokens[i], i, m->vocab_size);
			return -1;
		}
	x = pgf_arena_floats(arena, (size_t) n * d);
	pgf_embedding_gather(x, &m->tok_emb, tokens, n);
	if (m->pos_emb)
		pgf_add(x, m->pos_emb, (size_t) n * d);
	memset(&mask, 0, sizeof(mask));
	mask.kind = m->causal ? PGF_MASK_CAUSAL : PGF_MASK_BIDIRECTIONAL;
	pgf_stack_forward(&m->stack, x, 1, offsets, &mask, NULL, arena);
	memcpy(out, x + (size_t) (n - 1) * d, sizeof(float) * d);
	pgf_arena_reset(arena, mark);
	return 0;
}
