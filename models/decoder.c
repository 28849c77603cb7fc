/*
 * decoder.c: binding and running the Llama-family decoder (see decoder.h):
 * chunked prefill and single-token steps over a key/value cache held in
 * the caller's arena.
 */
#include "models/decoder.h"

#include <stdio.h>
#include <string.h>

void
pgf_decoder_bind(PgfBinder *b, const Pgformer__TransformerConfig *blocks,
				 uint32_t vocab_size, bool tied, const char *prefix, PgfDecoder *dec)
{
	char		name[PGF_NAME_MAX];
	const PgfBlockSpec *spec = &dec->stack.spec;

	memset(dec, 0, sizeof(*dec));
	pgf_stack_bind(b, blocks, prefix, &dec->stack);
	if (b->status != PGF_OK)
		return;
	if (spec->norm != PGF_NORM_RMS || spec->placement != PGF_PRE_NORM ||
		spec->activation != PGF_ACT_SWIGLU || !spec->out_proj || !dec->stack.final_norm)
	{
		pgf_bind_fail(b, "decoder \"%s\": needs RMSNorm, pre-norm blocks, SwiGLU, an output projection and a final norm",
					  prefix);
		return;
	}
	if (vocab_size == 0 || vocab_size > (1u << 24))
	{
		pgf_bind_fail(b, "decoder \"%s\": vocab_size %u is out of range (1 to %u)",
					  prefix, vocab_size, 1u << 24);
		return;
	}
	dec->vocab_size = (int) vocab_size;
	dec->d_model = spec->d_model;
	dec->kv_dim = spec->n_kv_heads * spec->head_dim;
	dec->max_positions = dec->stack.max_positions;
	dec->tied = tied;
	dec->tok_emb = pgf_bind_matrix(b, pgf_name(name, "%s.emb.tok", prefix),
								   dec->vocab_size, dec->d_model, false);
	if (tied)
		dec->head = dec->tok_emb;
	else
		dec->head = pgf_bind_matrix(b, pgf_name(name, "%s.head.weight", prefix),
									dec->vocab_size, dec->d_model, false);
}

static size_t
state_scratch_bytes(const PgfDecoder *dec, int capacity, int chunk)
{
	size_t		a = pgf_stack_scratch_bytes(&dec->stack, chunk, capacity);
	size_t		l = pgf_linear_scratch_bytes(&dec->head, chunk);

	return (a > l ? a : l) + PGF_ARENA_ALIGN;
}

size_t
pgf_decoder_state_bytes(const PgfDecoder *dec, int capacity, int chunk)
{
	int			layers = dec->stack.n_layers;
	size_t		kv = pgf_arena_round((size_t) capacity * dec->kv_dim * sizeof(float));

	return pgf_arena_round(sizeof(PgfKVCache) * layers) +
		2 * kv * layers +
		pgf_arena_round(sizeof(float) * dec->vocab_size) +
		pgf_arena_round(sizeof(float) * dec->d_model) +
		pgf_arena_round(state_scratch_bytes(dec, capacity, chunk));
}

int
pgf_decoder_state_init(PgfDecoderState *s, const PgfDecoder *dec, int capacity,
					   int chunk, PgfArena *arena, char *err, size_t errlen)
{
	int			layers = dec->stack.n_layers;
	size_t		sb;

	memset(s, 0, sizeof(*s));
	if (capacity <= 0 || chunk <= 0)
	{
		snprintf(err, errlen, "a decoder state needs a positive capacity and chunk");
		return -1;
	}
	if (dec->max_positions > 0 && capacity > dec->max_positions)
	{
		snprintf(err, errlen, "%d positions requested, the model takes at most %d",
				 capacity, dec->max_positions);
		return -1;
	}
	s->dec = dec;
	s->capacity = capacity;
	s->chunk = chunk;
	s->caches = pgf_arena_alloc(arena, sizeof(PgfKVCache) * layers);
	for (int l = 0; l < layers; l++)
	{
		s->caches[l].k = pgf_arena_floats(arena, (size_t) capacity * dec->kv_dim);
		s->caches[l].v = pgf_arena_floats(arena, (size_t) capacity * dec->kv_dim);
		s->caches[l].capacity = capacity;
		s->caches[l].len = 0;
	}
	s->logits = pgf_arena_floats(arena, dec->vocab_size);
	s->step_x = pgf_arena_floats(arena, dec->d_model);
	sb = state_scratch_bytes(dec, capacity, chunk);
	pgf_arena_init(&s->scratch, pgf_arena_alloc(arena, sb), sb);
	return 0;
}

void
pgf_decoder_state_reset(PgfDecoderState *s)
{
	s->len = 0;
	for (int l = 0; l < s->dec->stack.n_layers; l++)
		s->caches[l].len = 0;
}

int
pgf_decoder_embed(const PgfDecoder *dec, const int32_t *ids, int n, float *x,
				  char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= dec->vocab_size)
		{
			snprintf(err, errlen, "token %d at position %d is outside the vocabulary [0, %d)",
					 ids[i], i, dec->vocab_size);
			return -1;
		}
	pgf_embedding_gather(x, &dec->tok_emb, ids, n);
	return 0;
}

void
pgf_decoder_logits(PgfDecoderState *s, const float *h, int n, float *logits)
{
	const PgfDecoder *dec = s->dec;

	for (int i = 0; i < n; i += s->chunk)
	{
		int			rows = n - i < s->chunk ? n - i : s->chunk;
		size_t		mark = pgf_arena_mark(&s->scratch);

		pgf_linear(logits + (size_t) i * dec->vocab_size, h + (size_t) i * dec->d_model,
				   rows, &dec->head, NULL, &s->scratch);
		pgf_arena_reset(&s->scratch, mark);
		pgf_check_interrupts();
	}
}

int
pgf_decoder_forward(PgfDecoderState *s, float *x, int n, bool want_logits,
					char *err, size_t errlen)
{
	const PgfDecoder *dec = s->dec;
	int			d = dec->d_model;

	if (n <= 0)
	{
		snprintf(err, errlen, "nothing to run");
		return -1;
	}
	if (n > s->capacity - s->len)
	{
		snprintf(err, errlen, "the sequence would reach %d positions, more than the %d this call allows",
				 s->len + n, s->capacity);
		return -1;
	}
	for (int i = 0; i < n; i += s->chunk)
	{
		int			rows = n - i < s->chunk ? n - i : s->chunk;
		int			offsets[2] = {0, rows};
		PgfAttnMask mask;
		size_t		mark = pgf_arena_mark(&s->scratch);

		memset(&mask, 0, sizeof(mask));
		mask.kind = PGF_MASK_CAUSAL;
		mask.q_pos0 = s->len;
		for (int l = 0; l < dec->stack.n_layers; l++)
			s->caches[l].len = s->len;
		pgf_stack_forward(&dec->stack, x + (size_t) i * d, 1, offsets, &mask,
						  s->caches, &s->scratch);
		pgf_arena_reset(&s->scratch, mark);
		s->len += rows;
		for (int l = 0; l < dec->stack.n_layers; l++)
			s->caches[l].len = s->len;
	}
	if (want_logits)
		pgf_decoder_logits(s, x + (size_t) (n - 1) * d, 1, s->logits);
	return 0;
}

int
pgf_decoder_step(PgfDecoderState *s, int32_t token, char *err, size_t errlen)
{
	if (pgf_decoder_embed(s->dec, &token, 1, s->step_x, err, errlen) != 0)
		return -1;
	return pgf_decoder_forward(s, s->step_x, 1, true, err, errlen);
}
