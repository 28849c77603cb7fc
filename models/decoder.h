/*
 * decoder.h: the Llama-family causal decoder (Llama, Mistral, Qwen2,
 * SmolLM2 settings): token embeddings, a stack of RMSNorm / rotary GQA /
 * SwiGLU blocks (models/transformer.h), a final RMSNorm and an output
 * projection that is either its own matrix or the token table (tied).
 *
 * Tensors (prefix P, e.g. "dec"):
 *   P.emb.tok [vocab, d]      any float dtype
 *   P.l<l>.*                  the blocks (transformer.h naming)
 *   P.lnf.gamma [d]           final norm (final_norm must be set)
 *   P.head.weight [vocab, d]  output projection unless tied
 *
 * A sequence is decoded through a PgfDecoderState that lives in the
 * caller's arena: the key/value cache of every layer (capacity positions),
 * a logits row and the scratch the kernels need.  pgf_decoder_forward runs
 * any number of embedded rows (prefill, in chunks of at most `chunk` rows)
 * and pgf_decoder_step one token; both append to the cache, so a prefill
 * followed by steps equals running the whole sequence at once.  No call
 * allocates.
 */
#ifndef PGF_DECODER_H
#define PGF_DECODER_H

#include "models/transformer.h"

typedef struct PgfDecoder
{
	PgfStack	stack;
	PgfMatrix	tok_emb;		/* [vocab, d] */
	PgfMatrix	head;			/* [vocab, d]; the token table when tied */
	bool		tied;
	int			vocab_size;
	int			d_model;
	int			kv_dim;			/* n_kv_heads * head_dim */
	int			max_positions;	/* 0: unbounded */
} PgfDecoder;

/*
 * Binds a decoder whose blocks are described by blocks (RMSNorm, pre-norm,
 * SwiGLU, an output projection and a final norm are required).
 */
void		pgf_decoder_bind(PgfBinder *b, const Pgformer__TransformerConfig *blocks,
							 uint32_t vocab_size, bool tied, const char *prefix,
							 PgfDecoder *dec);

typedef struct PgfDecoderState
{
	const PgfDecoder *dec;
	PgfKVCache *caches;			/* [n_layers] */
	int			capacity;		/* positions the caches hold */
	int			chunk;			/* most rows per forward pass */
	int			len;			/* positions filled */
	float	   *logits;			/* [vocab]: logits of the last row run */
	float	   *step_x;			/* [d]: the row of one decode step */
	PgfArena	scratch;		/* the rest of the state's arena block */
} PgfDecoderState;

/* Arena bytes for a state of capacity positions and prefill chunks of chunk rows. */
size_t		pgf_decoder_state_bytes(const PgfDecoder *dec, int capacity, int chunk);

/*
 * Carves a state out of arena (pgf_decoder_state_bytes of it).  Returns 0,
 * or -1 with a message when capacity exceeds the model's positions.
 */
int			pgf_decoder_state_init(PgfDecoderState *s, const PgfDecoder *dec,
								   int capacity, int chunk, PgfArena *arena,
								   char *err, size_t errlen);

/* Empties the caches (the state can decode a new sequence). */
void		pgf_decoder_state_reset(PgfDecoderState *s);

/*
 * Embeds ids[n] into x[n, d].  Returns 0, or -1 with a message if an id
 * is outside the vocabulary.
 */
int			pgf_decoder_embed(const PgfDecoder *dec, const int32_t *ids, int n, float *x,
							  char *err, size_t errlen);

/*
 * Runs the embedded rows x[n, d] at positions len .. len+n-1, appending
 * their keys and values; x is overwritten with the final-normed hidden
 * states.  With want_logits, s->logits gets the logits of the last row.
 * Returns 0, or -1 with a message when the cache would overflow.
 */
int			pgf_decoder_forward(PgfDecoderState *s, float *x, int n, bool want_logits,
								char *err, size_t errlen);

/* One token: embeds it, runs it and leaves its logits in s->logits. */
int			pgf_decoder_step(PgfDecoderState *s, int32_t token, char *err, size_t errlen);

/*
 * logits[n, vocab] = head(h[n, d]) for final-normed hidden states h, in
 * chunks of s->chunk rows (uses the state's scratch).
 */
void		pgf_decoder_logits(PgfDecoderState *s, const float *h, int n, float *logits);

#endif							/* PGF_DECODER_H */
