/*
 * tokenizer.h: text <-> token ids for the decoder models, from the
 * Tokenizer message of a .pgf file.
 *
 * Two kinds:
 *   - BYTES: one token per byte (id = byte + byte_offset), for tiny models.
 *   - BYTE_BPE: GPT-2 style byte-level BPE (GPT-2, SmolLM2, Llama-3,
 *     Qwen2).  Text is split by the family's pre-tokenizer pattern
 *     (implemented in plain C, no regex library), every piece's bytes are
 *     mapped to the GPT-2 byte alphabet and merged by rank.
 * Special tokens (Tokenizer.special: text and id) are recognised in text
 * only when the caller asks (templates), never in user text, and can
 * always be inserted by id.
 *
 * Nothing is copied or allocated at bind time: the vocabulary strings are
 * the decoded header's, and the lookup tables are I32 tensors in the data
 * section, searched in place (written by tools/models/tokenizer.py):
 *   tok.vocab_order  [V]     ids sorted by their token bytes
 *   tok.merges       [M, 3]  (left id, right id, merged id); rank = row
 *   tok.merge_order  [M]     ranks sorted by (left id, right id)
 * Bind checks their ranges and order, so a bad file is an error, never a
 * crash.  Encoding uses scratch from the caller's arena.
 */
#ifndef PGF_TOKENIZER_H
#define PGF_TOKENIZER_H

#include "models/bind.h"

typedef enum PgfTokenizerKind
{
	PGF_TOKENIZER_BYTES = 0,
	PGF_TOKENIZER_BPE = 1
} PgfTokenizerKind;

typedef enum PgfPretokenizer
{
	PGF_PRETOK_GPT2 = 0,		/* 's|'t|..| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
	PGF_PRETOK_SMOLLM2 = 1,		/* every \p{N} alone, then GPT-2 */
	PGF_PRETOK_LLAMA3 = 2,		/* (?i:'s|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|... */
	PGF_PRETOK_QWEN2 = 3		/* as Llama-3 with single digits */
} PgfPretokenizer;

typedef struct PgfTokenizer
{
	PgfTokenizerKind kind;
	PgfPretokenizer pretok;
	bool		ignore_merges;
	int			model_vocab;	/* ids the model accepts */
	int			byte_offset;	/* BYTES */
	/* BYTE_BPE */
	int			n_vocab;
	char	  **vocab;			/* header strings, byte-level alphabet */
	const int32_t *vocab_order;
	int			n_merges;
	const int32_t *merges;
	const int32_t *merge_order;
	int32_t		byte_ids[256];	/* id of each single-byte token, or -1 */
	/* special tokens */
	int			n_special;
	Pgformer__Tokenizer__Special **special;
	int			max_token_bytes;	/* longest decoded token */
} PgfTokenizer;

/*
 * Binds the file's tokenizer for a model with model_vocab token ids.
 * Errors (no tokenizer, bad tables, ids out of range) go to the binder.
 */
void		pgf_tokenizer_bind(PgfBinder *b, PgfTokenizer *tok, int model_vocab);

/* At most this many tokens come out of len bytes of text. */
static inline int
pgf_tokenizer_max_tokens(size_t len)
{
	return (int) len;
}

/* Arena bytes pgf_tokenizer_encode needs for len bytes of text. */
size_t		pgf_tokenizer_encode_scratch_bytes(size_t len);

/*
 * Encodes text[len] into out (room for pgf_tokenizer_max_tokens(len) ids)
 * and returns the number of ids.  With specials, the texts of special
 * tokens become their ids; otherwise they are plain text.
 */
int			pgf_tokenizer_encode(const PgfTokenizer *tok, const char *text, size_t len,
								 bool specials, int32_t *out, PgfArena *scratch);

/* True if id is one of the special tokens. */
bool		pgf_tokenizer_is_special(const PgfTokenizer *tok, int32_t id);

/* Bytes pgf_tokenizer_decode may write for n ids (with the final NUL). */
size_t		pgf_tokenizer_decode_bound(const PgfTokenizer *tok, int n);

/*
 * Decodes ids[n] to UTF-8 in out (pgf_tokenizer_decode_bound bytes),
 * NUL-terminated; returns the length.  Byte sequences that are not valid
 * UTF-8 become U+FFFD (as Hugging Face's lossy decoding); NUL bytes become
 * U+FFFD too, so the text is always a valid C and SQL string.  Special
 * tokens are left out when skip_special, ids outside the vocabulary always.
 * scratch holds the raw bytes meanwhile.
 */
size_t		pgf_tokenizer_decode(const PgfTokenizer *tok, const int32_t *ids, int n,
								 bool skip_special, char *out, PgfArena *scratch);

/*
 * The pre-tokenizer alone: the end (byte offset, > start) of the piece
 * that starts at start in text[len].  Exposed for tests.
 */
size_t		pgf_pretokenize_next(PgfPretokenizer kind, const char *text, size_t len,
								 size_t start);

#endif							/* PGF_TOKENIZER_H */
