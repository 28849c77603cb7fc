/*
 * tokenizer.c: byte-level BPE and byte tokenizers (see tokenizer.h): the
 * pre-tokenizer patterns of GPT-2, SmolLM2, Llama-3 and Qwen2 written out
 * as plain C matchers, rank-ordered merges over the in-file tables, and
 * lossy UTF-8 decoding.
 */
#include "models/tokenizer.h"

#include <limits.h>
#include <string.h>

#include "models/tokenizer_unicode.h"
#include "proto/utf8.h"

#define NO_CP PGF_UTF8_INVALID_CP	/* an invalid UTF-8 byte: "other" class */

/* ---- UTF-8 and character classes --------------------------------------- */

/* Code point at s[i] and its byte length (an invalid byte counts as one). */
static size_t
cp_at(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
	int			l;

	if (i >= n)
	{
		*cp = NO_CP;
		return 0;
	}
	l = pgf_utf8_seq(s, n, i, cp);
	return l > 0 ? (size_t) l : 1;
}

static bool
in_ranges(uint32_t cp, const uint32_t (*r)[2], int n)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (cp < r[mid][0])
			hi = mid - 1;
		else if (cp > r[mid][1])
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

#define N_RANGES(r) ((int) (sizeof(r) / sizeof((r)[0])))

static bool
is_letter(uint32_t cp)
{
	if (cp < 0x80)
		return (cp | 32) - 'a' < 26;
	if (cp == NO_CP)
		return false;
	return in_ranges(cp, pgf_unicode_letter_ranges, N_RANGES(pgf_unicode_letter_ranges));
}

static bool
is_number(uint32_t cp)
{
	if (cp < 0x80)
		return cp - '0' < 10;
	if (cp == NO_CP)
		return false;
	return in_ranges(cp, pgf_unicode_number_ranges, N_RANGES(pgf_unicode_number_ranges));
}

/* The Unicode White_Space property (what \s matches). */
static bool
is_space(uint32_t cp)
{
	if (cp < 0x80)
		return cp == ' ' || (cp >= 9 && cp <= 13);
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
		cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static bool
is_other(uint32_t cp)
{
	return !is_space(cp) && !is_letter(cp) && !is_number(cp);
}

static bool
is_crlf(uint32_t cp)
{
	return cp == '\r' || cp == '\n';
}

/* ---- pre-tokenizer ------------------------------------------------------ */

/* End of the run of code points of one class starting at i. */
static size_t
run_of(const unsigned char *s, size_t n, size_t i, bool (*cls) (uint32_t))
{
	uint32_t	cp;

	while (i < n)
	{
		size_t		l = cp_at(s, n, i, &cp);

		if (!cls(cp))
			break;
		i += l;
	}
	return i;
}

/* 's|'t|'re|'ve|'m|'ll|'d at s[i] == '\'': its length, or 0. */
static size_t
contraction(const unsigned char *s, size_t n, size_t i, bool fold)
{
	unsigned char a = i + 1 < n ? s[i + 1] : 0,
				b = i + 2 < n ? s[i + 2] : 0;

	if (fold)
	{
		if (a >= 'A' && a <= 'Z')
			a |= 32;
		if (b >= 'A' && b <= 'Z')
			b |= 32;
	}
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

/* \s+(?!\S)|\s+ at a whitespace code point s[i]. */
static size_t
whitespace_end(const unsigned char *s, size_t n, size_t i)
{
	size_t		k = i,
				last = i;
	int			count = 0;
	uint32_t	cp;

	while (k < n)
	{
		size_t		l = cp_at(s, n, k, &cp);

		if (!is_space(cp))
			break;
		last = k;
		k += l;
		count++;
	}
	if (k >= n || count < 2)
		return k;
	return last;				/* leave the last space to the next piece */
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t
match_gpt2(const unsigned char *s, size_t n, size_t i)
{
	uint32_t	c0,
				c1;
	size_t		j = i + cp_at(s, n, i, &c0);
	size_t		k;

	if (c0 == '\'' && (k = contraction(s, n, i, false)) != 0)
		return i + k;
	cp_at(s, n, j, &c1);
	if (c0 == ' ' && j < n)
	{
		if (is_letter(c1))
			return run_of(s, n, j, is_letter);
		if (is_number(c1))
			return run_of(s, n, j, is_number);
		if (is_other(c1))
			return run_of(s, n, j, is_other);
	}
	if (is_letter(c0))
		return run_of(s, n, i, is_letter);
	if (is_number(c0))
		return run_of(s, n, i, is_number);
	if (is_other(c0))
		return run_of(s, n, i, is_other);
	return whitespace_end(s, n, i);
}

/*
 * Llama-3 / Qwen2:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static size_t
match_llama3(const unsigned char *s, size_t n, size_t i, int max_digits)
{
	uint32_t	c0,
				c1,
				cp;
	size_t		j = i + cp_at(s, n, i, &c0);
	size_t		k;

	if (c0 == '\'' && (k = contraction(s, n, i, true)) != 0)
		return i + k;
	cp_at(s, n, j, &c1);
	if (!is_crlf(c0) && !is_letter(c0) && !is_number(c0) && j < n && is_letter(c1))
		return run_of(s, n, j, is_letter);
	if (is_letter(c0))
		return run_of(s, n, i, is_letter);
	if (is_number(c0))
	{
		k = i;
		for (int d = 0; d < max_digits && k < n; d++)
		{
			size_t		l = cp_at(s, n, k, &cp);

			if (!is_number(cp))
				break;
			k += l;
		}
		return k;
	}
	if (c0 == ' ' && j < n && is_other(c1))
		return run_of(s, n, run_of(s, n, j, is_other), is_crlf);
	if (is_other(c0))
		return run_of(s, n, run_of(s, n, i, is_other), is_crlf);
	/* \s*[\r\n]+: up to the last line break inside this whitespace run */
	{
		size_t		end = 0;

		k = i;
		while (k < n)
		{
			size_t		l = cp_at(s, n, k, &cp);

			if (!is_space(cp))
				break;
			if (is_crlf(cp))
				end = k + 1;
			k += l;
		}
		if (end > 0)
			return end;
	}
	return whitespace_end(s, n, i);
}

size_t
pgf_pretokenize_next(PgfPretokenizer kind, const char *text, size_t len, size_t start)
{
	const unsigned char *s = (const unsigned char *) text;
	uint32_t	cp;

	if (start >= len)
		return len;
	switch (kind)
	{
		case PGF_PRETOK_SMOLLM2:
			{
				/* every number alone; GPT-2 within the text between numbers */
				size_t		l = cp_at(s, len, start, &cp),
							seg = start;

				if (is_number(cp))
					return start + l;
				while (seg < len)
				{
					size_t		sl = cp_at(s, len, seg, &cp);

					if (is_number(cp))
						break;
					seg += sl;
				}
				return match_gpt2(s, seg, start);
			}
		case PGF_PRETOK_LLAMA3:
			return match_llama3(s, len, start, 3);
		case PGF_PRETOK_QWEN2:
			return match_llama3(s, len, start, 1);
		case PGF_PRETOK_GPT2:
		default:
			return match_gpt2(s, len, start);
	}
}

/* ---- the GPT-2 byte alphabet --------------------------------------------- */

/* Bytes with a printable character of their own map to themselves. */
static bool
byte_is_printable(int b)
{
	return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The code point that stands for byte b. */
static uint32_t
byte_to_cp(int b)
{
	int			n;

	if (byte_is_printable(b))
		return (uint32_t) b;
	/* the others, in byte order, become 256, 257, ... */
	if (b <= 0x20)
		n = b;
	else if (b >= 0x7F && b <= 0xA0)
		n = 33 + (b - 0x7F);
	else
		n = 67;					/* 0xAD */
	return 256 + (uint32_t) n;
}

/* The byte a code point stands for, or -1. */
static int
cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return byte_is_printable((int) cp) ? (int) cp : -1;
	if (cp < 256 + 33)
		return (int) cp - 256;
	if (cp < 256 + 67)
		return 0x7F + (int) cp - 256 - 33;
	if (cp == 256 + 67)
		return 0xAD;
	return -1;
}

static int
put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/* ---- table lookups ----------------------------------------------------- */

static int
compare_token(const char *token, const char *key, size_t key_len)
{
	size_t		tl = strlen(token);
	int			c = memcmp(token, key, tl < key_len ? tl : key_len);

	if (c != 0)
		return c;
	return tl < key_len ? -1 : (tl > key_len ? 1 : 0);
}

/* The id of the token spelt key[key_len] (byte-level alphabet), or -1. */
static int32_t
vocab_lookup(const PgfTokenizer *t, const char *key, size_t key_len)
{
	int			lo = 0,
				hi = t->n_vocab - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int32_t		id = t->vocab_order[mid];
		int			c = compare_token(t->vocab[id], key, key_len);

		if (c == 0)
			return id;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Rank of merging (a, b) (INT32_MAX: none); *merged gets the result id. */
static int32_t
merge_lookup(const PgfTokenizer *t, int32_t a, int32_t b, int32_t *merged)
{
	int			lo = 0,
				hi = t->n_merges - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int32_t		r = t->merge_order[mid];
		int32_t		ra = t->merges[3 * (size_t) r],
					rb = t->merges[3 * (size_t) r + 1];

		if (ra == a && rb == b)
		{
			*merged = t->merges[3 * (size_t) r + 2];
			return r;
		}
		if (ra < a || (ra == a && rb < b))
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return INT32_MAX;
}

/* ---- bind -------------------------------------------------------------- */

void
pgf_tokenizer_bind(PgfBinder *b, PgfTokenizer *tok, int model_vocab)
{
	const Pgformer__Tokenizer *h = b->model->header->tokenizer;

	memset(tok, 0, sizeof(*tok));
	tok->model_vocab = model_vocab;
	if (b->status != PGF_OK)
		return;
	if (h == NULL)
	{
		pgf_bind_fail(b, "the model file has no tokenizer");
		return;
	}
	tok->n_special = (int) h->n_special;
	tok->special = h->special;
	tok->max_token_bytes = 1;
	for (int i = 0; i < tok->n_special; i++)
	{
		size_t		l = strlen(h->special[i]->text);

		if (h->special[i]->id >= (uint32_t) model_vocab || l == 0)
		{
			pgf_bind_fail(b, "tokenizer: special token %d (\"%s\", id %u) is empty or outside the vocabulary of %d",
						  i, h->special[i]->text, h->special[i]->id, model_vocab);
			return;
		}
		if ((int) l > tok->max_token_bytes)
			tok->max_token_bytes = (int) l;
	}
	tok->ignore_merges = h->ignore_merges;
	if (h->kind == PGFORMER__TOKENIZER__KIND__BYTES)
	{
		tok->kind = PGF_TOKENIZER_BYTES;
		tok->byte_offset = (int) h->byte_offset;
		if (h->byte_offset > (uint32_t) model_vocab || model_vocab - (int) h->byte_offset < 256)
			pgf_bind_fail(b, "tokenizer: byte ids %u..%u fall outside the vocabulary of %d",
						  h->byte_offset, h->byte_offset + 255, model_vocab);
		return;
	}
	if (h->kind != PGFORMER__TOKENIZER__KIND__BYTE_BPE)
	{
		pgf_bind_fail(b, "tokenizer: unknown kind %d", (int) h->kind);
		return;
	}
	tok->kind = PGF_TOKENIZER_BPE;
	if (strcmp(h->pretokenizer, "gpt2") == 0 || h->pretokenizer[0] == '\0')
		tok->pretok = PGF_PRETOK_GPT2;
	else if (strcmp(h->pretokenizer, "smollm2") == 0)
		tok->pretok = PGF_PRETOK_SMOLLM2;
	else if (strcmp(h->pretokenizer, "llama3") == 0)
		tok->pretok = PGF_PRETOK_LLAMA3;
	else if (strcmp(h->pretokenizer, "qwen2") == 0)
		tok->pretok = PGF_PRETOK_QWEN2;
	else
	{
		pgf_bind_fail(b, "tokenizer: unknown pre-tokenizer \"%s\" (known: gpt2, smollm2, llama3, qwen2)",
					  h->pretokenizer);
		return;
	}
	if (h->n_vocab == 0 || h->n_vocab > (size_t) model_vocab)
	{
		pgf_bind_fail(b, "tokenizer: %zu vocabulary entries for a model of %d ids",
					  h->n_vocab, model_vocab);
		return;
	}
	tok->n_vocab = (int) h->n_vocab;
	tok->vocab = h->vocab;

	{
		int64_t		vshape[1] = {tok->n_vocab};
		const PgfTensor *order = pgf_bind_tensor(b, "tok.vocab_order", 1, vshape,
												 1u << PGF_DTYPE_I32, false);
		const PgfTensor *merges = pgf_find(b->model, "tok.merges");
		int64_t		mshape[2] = {merges ? merges->shape[0] : 0, 3};
		int64_t		oshape[1] = {mshape[0]};
		const PgfTensor *morder;

		if (merges == NULL)
		{
			pgf_bind_fail(b, "tokenizer: tensor tok.merges is missing");
			return;
		}
		merges = pgf_bind_tensor(b, "tok.merges", 2, mshape, 1u << PGF_DTYPE_I32, false);
		morder = pgf_bind_tensor(b, "tok.merge_order", 1, oshape, 1u << PGF_DTYPE_I32, false);
		if (b->status != PGF_OK)
			return;
		if (mshape[0] > INT32_MAX / 3)
		{
			pgf_bind_fail(b, "tokenizer: too many merges");
			return;
		}
		tok->vocab_order = order->data;
		tok->merges = merges->data;
		tok->n_merges = (int) mshape[0];
		tok->merge_order = morder->data;
	}

	/* ranges and order of the tables, so lookups can trust them */
	for (int i = 0; i < tok->n_vocab; i++)
	{
		int32_t		id = tok->vocab_order[i];
		size_t		l;

		if (id < 0 || id >= tok->n_vocab)
		{
			pgf_bind_fail(b, "tokenizer: tok.vocab_order[%d] = %d is not a vocabulary id", i, id);
			return;
		}
		l = strlen(tok->vocab[id]);
		if (i > 0)
		{
			const char *prev = tok->vocab[tok->vocab_order[i - 1]];

			if (compare_token(prev, tok->vocab[id], l) > 0)
			{
				pgf_bind_fail(b, "tokenizer: tok.vocab_order is not sorted at %d", i);
				return;
			}
		}
		if ((int) l > tok->max_token_bytes)
			tok->max_token_bytes = (int) l;
	}
	for (int r = 0; r < tok->n_merges; r++)
	{
		for (int c = 0; c < 3; c++)
		{
			int32_t		id = tok->merges[3 * (size_t) r + c];

			if (id < 0 || id >= tok->n_vocab)
			{
				pgf_bind_fail(b, "tokenizer: merge %d names id %d, outside the vocabulary", r, id);
				return;
			}
		}
		{
			int32_t		o = tok->merge_order[r];

			if (o < 0 || o >= tok->n_merges)
			{
				pgf_bind_fail(b, "tokenizer: tok.merge_order[%d] = %d is not a merge", r, o);
				return;
			}
			if (r > 0)
			{
				int32_t		p = tok->merge_order[r - 1];
				int32_t		pa = tok->merges[3 * (size_t) p],
							pb = tok->merges[3 * (size_t) p + 1],
							oa = tok->merges[3 * (size_t) o],
							ob = tok->merges[3 * (size_t) o + 1];

				if (pa > oa || (pa == oa && pb > ob))
				{
					pgf_bind_fail(b, "tokenizer: tok.merge_order is not sorted at %d", r);
					return;
				}
			}
		}
	}
	for (int byte = 0; byte < 256; byte++)
	{
		char		key[4];
		int			l = put_utf8(key, byte_to_cp(byte));

		tok->byte_ids[byte] = vocab_lookup(tok, key, (size_t) l);
	}
}

/* ---- encode ------------------------------------------------------------ */

typedef struct MergeCandidate
{
	int32_t		rank;
	int32_t		pos;
} MergeCandidate;

size_t
pgf_tokenizer_encode_scratch_bytes(size_t len)
{
	/* per piece: symbols, links, a heap of candidate merges, the piece in
	 * the byte alphabet */
	return 3 * pgf_arena_round((len + 1) * sizeof(int32_t)) +
		pgf_arena_round(3 * (len + 1) * sizeof(MergeCandidate)) +
		pgf_arena_round(2 * len + 1);
}

/* Min-heap of candidate merges ordered by (rank, position), as Hugging
 * Face's BPE orders them. */
static bool
candidate_before(MergeCandidate a, MergeCandidate b)
{
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void
heap_push(MergeCandidate *heap, int *n, MergeCandidate c)
{
	int			i = (*n)++;

	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!candidate_before(c, heap[parent]))
			break;
		heap[i] = heap[parent];
		i = parent;
	}
	heap[i] = c;
}

static MergeCandidate
heap_pop(MergeCandidate *heap, int *n)
{
	MergeCandidate top = heap[0],
				last = heap[--(*n)];
	int			i = 0;

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= *n)
			break;
		if (child + 1 < *n && candidate_before(heap[child + 1], heap[child]))
			child++;
		if (!candidate_before(heap[child], last))
			break;
		heap[i] = heap[child];
		i = child;
	}
	if (*n > 0)
		heap[i] = last;
	return top;
}

/*
 * BPE over one pre-tokenized piece; returns the ids written.  Symbols form
 * a linked list; the merge of lowest (rank, position) is applied until
 * none is left, stale heap entries being skipped: O(n log n).
 */
static int
bpe_piece(const PgfTokenizer *t, const unsigned char *p, size_t len, int32_t *out,
		  PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	int32_t    *sym,
			   *prev,
			   *next;
	MergeCandidate *heap;
	int			n = 0,
				n_heap = 0,
				steps = 0,
				k = 0;
	int32_t		merged;

	if (t->ignore_merges)
	{
		char	   *key = pgf_arena_alloc(scratch, 2 * len + 1);
		size_t		kl = 0;
		int32_t		id;

		for (size_t i = 0; i < len; i++)
			kl += (size_t) put_utf8(key + kl, byte_to_cp(p[i]));
		id = vocab_lookup(t, key, kl);
		pgf_arena_reset(scratch, mark);
		if (id >= 0)
		{
			out[0] = id;
			return 1;
		}
	}
	sym = pgf_arena_alloc(scratch, (len + 1) * sizeof(int32_t));
	prev = pgf_arena_alloc(scratch, (len + 1) * sizeof(int32_t));
	next = pgf_arena_alloc(scratch, (len + 1) * sizeof(int32_t));
	heap = pgf_arena_alloc(scratch, 3 * (len + 1) * sizeof(MergeCandidate));
	for (size_t i = 0; i < len; i++)
		if (t->byte_ids[p[i]] >= 0)
			sym[n++] = t->byte_ids[p[i]];
	for (int i = 0; i < n; i++)
	{
		prev[i] = i - 1;
		next[i] = i + 1 < n ? i + 1 : -1;
	}
	for (int i = 0; i + 1 < n; i++)
	{
		int32_t		r = merge_lookup(t, sym[i], sym[i + 1], &merged);

		if (r != INT32_MAX)
			heap_push(heap, &n_heap, (MergeCandidate) {r, i});
	}
	while (n_heap > 0)
	{
		MergeCandidate c = heap_pop(heap, &n_heap);
		int			i = c.pos,
					j;
		const int32_t *m = t->merges + 3 * (size_t) c.rank;

		if (sym[i] < 0 || (j = next[i]) < 0 || m[0] != sym[i] || m[1] != sym[j])
			continue;			/* a stale candidate */
		sym[i] = m[2];
		sym[j] = -1;
		next[i] = next[j];
		if (next[j] >= 0)
			prev[next[j]] = i;
		if (prev[i] >= 0)
		{
			int32_t		r = merge_lookup(t, sym[prev[i]], sym[i], &merged);

			if (r != INT32_MAX)
				heap_push(heap, &n_heap, (MergeCandidate) {r, prev[i]});
		}
		if (next[i] >= 0)
		{
			int32_t		r = merge_lookup(t, sym[i], sym[next[i]], &merged);

			if (r != INT32_MAX)
				heap_push(heap, &n_heap, (MergeCandidate) {r, i});
		}
		if (++steps % 4096 == 0)
			pgf_check_interrupts();
	}
	for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i])
		out[k++] = sym[i];
	pgf_arena_reset(scratch, mark);
	return k;
}

/* Plain text (no special tokens) into ids. */
static int
encode_plain(const PgfTokenizer *t, const unsigned char *s, size_t len, int32_t *out,
			 PgfArena *scratch)
{
	int			n = 0,
				pieces = 0;
	size_t		pos = 0;

	if (t->kind == PGF_TOKENIZER_BYTES)
	{
		for (size_t i = 0; i < len; i++)
			out[n++] = (int32_t) s[i] + t->byte_offset;
		return n;
	}
	while (pos < len)
	{
		size_t		end = pgf_pretokenize_next(t->pretok, (const char *) s, len, pos);

		if (end <= pos)			/* cannot happen; never loop forever */
			end = pos + 1;
		n += bpe_piece(t, s + pos, end - pos, out + n, scratch);
		pos = end;
		if (++pieces % 256 == 0)
			pgf_check_interrupts();
	}
	return n;
}

/* The longest special token whose text starts at s[i], or -1. */
static int
special_at(const PgfTokenizer *t, const unsigned char *s, size_t len, size_t i, size_t *tlen)
{
	int			best = -1;
	size_t		best_len = 0;

	for (int k = 0; k < t->n_special; k++)
	{
		const char *text = t->special[k]->text;
		size_t		l;

		if ((unsigned char) text[0] != s[i])
			continue;
		l = strlen(text);
		if (l <= len - i && l > best_len && memcmp(text, s + i, l) == 0)
		{
			best = k;
			best_len = l;
		}
	}
	*tlen = best_len;
	return best;
}

int
pgf_tokenizer_encode(const PgfTokenizer *tok, const char *text, size_t len,
					 bool specials, int32_t *out, PgfArena *scratch)
{
	const unsigned char *s = (const unsigned char *) text;
	int			n = 0;
	size_t		start = 0;

	if (!specials || tok->n_special == 0)
		return encode_plain(tok, s, len, out, scratch);
	for (size_t i = 0; i < len;)
	{
		size_t		tl;
		int			k = special_at(tok, s, len, i, &tl);

		if (k < 0)
		{
			i++;
			continue;
		}
		n += encode_plain(tok, s + start, i - start, out + n, scratch);
		out[n++] = (int32_t) tok->special[k]->id;
		i += tl;
		start = i;
	}
	n += encode_plain(tok, s + start, len - start, out + n, scratch);
	return n;
}

/* ---- decode ------------------------------------------------------------ */

bool
pgf_tokenizer_is_special(const PgfTokenizer *tok, int32_t id)
{
	for (int k = 0; k < tok->n_special; k++)
		if ((int32_t) tok->special[k]->id == id)
			return true;
	return false;
}

size_t
pgf_tokenizer_decode_bound(const PgfTokenizer *tok, int n)
{
	return (size_t) (n > 0 ? n : 0) * (size_t) tok->max_token_bytes * 3 + 1;
}

/* Raw bytes of one token appended at out; returns the count. */
static size_t
token_raw(const PgfTokenizer *t, int32_t id, bool skip_special, unsigned char *out)
{
	size_t		n = 0;

	for (int k = 0; k < t->n_special; k++)
		if ((int32_t) t->special[k]->id == id)
		{
			size_t		l;

			if (skip_special)
				return 0;
			l = strlen(t->special[k]->text);
			memcpy(out, t->special[k]->text, l);
			return l;
		}
	if (t->kind == PGF_TOKENIZER_BYTES)
	{
		if (id >= t->byte_offset && id - t->byte_offset < 256)
			out[n++] = (unsigned char) (id - t->byte_offset);
		return n;
	}
	if (id < 0 || id >= t->n_vocab)
		return 0;
	{
		const unsigned char *s = (const unsigned char *) t->vocab[id];
		size_t		len = strlen(t->vocab[id]);

		for (size_t i = 0; i < len;)
		{
			uint32_t	cp;
			size_t		l = cp_at(s, len, i, &cp);
			int			byte = cp == NO_CP ? -1 : cp_to_byte(cp);

			if (byte >= 0)
				out[n++] = (unsigned char) byte;
			else
			{
				memcpy(out + n, s + i, l);
				n += l;
			}
			i += l;
		}
	}
	return n;
}

size_t
pgf_tokenizer_decode(const PgfTokenizer *tok, const int32_t *ids, int n,
					 bool skip_special, char *out, PgfArena *scratch)
{
	size_t		mark = pgf_arena_mark(scratch);
	unsigned char *raw = pgf_arena_alloc(scratch, (size_t) (n > 0 ? n : 0) *
										 tok->max_token_bytes + 1);
	size_t		rn = 0,
				o = 0;

	for (int i = 0; i < n; i++)
		rn += token_raw(tok, ids[i], skip_special, raw + rn);
	for (size_t i = 0; i < rn;)
	{
		uint32_t	cp;
		int			l = pgf_utf8_seq(raw, rn, i, &cp);

		if (l > 0 && cp != 0)
		{
			memcpy(out + o, raw + i, (size_t) l);
			o += (size_t) l;
			i += (size_t) l;
		}
		else
		{
			o += (size_t) put_utf8(out + o, 0xFFFD);
			i += (size_t) (l < 0 ? -l : 1);
		}
	}
	out[o] = '\0';
	pgf_arena_reset(scratch, mark);
	return o;
}
