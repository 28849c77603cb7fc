/*
 * test_tokenizer.c: models/tokenizer.c against reference token ids.
 *
 * The byte-level BPE of test/unit/golden/solo_b.pgf (learnt from the GPL-3
 * text by test/gen/golden_solo.py) encodes tricky strings and license
 * paragraphs with each pre-tokenizer (GPT-2, SmolLM2, Llama-3, Qwen2),
 * with special tokens recognised and not; the ids must equal the plain-
 * Python reference (which test/gen/golden_solo.py checks against PyPI `tokenizers`
 * when installed).  With the SmolLM2 files of `make unit-smollm2`, the real
 * SmolLM2 tokenizer is checked against `tokenizers` too.  Also: decoding
 * round trips, lossy UTF-8, the byte tokenizer, and files with bad tables.
 */
#include "test/unit/solo_golden.h"

static const char *pretok_names[] = {"gpt2", "smollm2", "llama3", "qwen2"};

/* Encodes text[len] with a fresh arena of exactly the advertised size. */
static int
encode(const PgfTokenizer *tok, const char *text, size_t len, bool specials, int32_t *out,
	   bool *arena_ok)
{
	PgfArena	a;
	int			n;

	arena_new(&a, pgf_tokenizer_encode_scratch_bytes(len));
	n = pgf_tokenizer_encode(tok, text, len, specials, out, &a);
	if (arena_ok)
		*arena_ok &= a.high_water <= a.size;
	arena_free(&a);
	return n;
}

static char *
decode(const PgfTokenizer *tok, const int32_t *ids, int n, bool skip, size_t *len)
{
	PgfArena	a;
	char	   *out = malloc(pgf_tokenizer_decode_bound(tok, n));

	arena_new(&a, (size_t) n * tok->max_token_bytes + 256);
	*len = pgf_tokenizer_decode(tok, ids, n, skip, out, &a);
	arena_free(&a);
	return out;
}

/* Every reference text, with ids from golden prefix `prefix`. */
static void
check_reference_ids(const PgfTokenizer *base, const char *prefix, int count,
					const char *text_fmt, const char *what)
{
	for (int k = 0; k < 4; k++)
	{
		PgfTokenizer tok = *base;
		bool		all = true,
					arena_ok = true;
		int			total = 0;

		if (strcmp(prefix, "tok") == 0)
			tok.pretok = (PgfPretokenizer) k;
		else if (k != (int) base->pretok)
			continue;
		for (int i = 0; i < count; i++)
		{
			char		name[64];
			int			len;
			const int32_t *bytes;
			char	   *text;
			int32_t    *ids;

			snprintf(name, sizeof(name), text_fmt, i);
			len = REF_LEN("%s", name);
			bytes = REF_I32("%s", name);
			text = malloc(len + 1);
			ids = malloc(sizeof(int32_t) * (len + 1));
			for (int j = 0; j < len; j++)
				text[j] = (char) bytes[j];
			for (int s = 0; s < 2; s++)
			{
				int			n = encode(&tok, text, len, s == 0, ids, &arena_ok);
				const char *tag = s == 0 ? "s" : "p";

				if (!ids_equal(ids, n, REF_I32("%s.%s.%d.%s", prefix, pretok_names[k], i, tag),
							   REF_LEN("%s.%s.%d.%s", prefix, pretok_names[k], i, tag)))
				{
					tap_diag("%s: text %d (specials %s) differs", pretok_names[k], i,
							 s == 0 ? "on" : "off");
					all = false;
				}
				total += n;
			}
			free(text);
			free(ids);
		}
		tap_ok(all, "%s %s: ids equal the reference on %d texts, specials on and off (%d ids)",
			   what, pretok_names[k], count, total);
		tap_ok(arena_ok, "%s %s: the advertised scratch suffices", what, pretok_names[k]);
	}
}

static void
check_round_trip(const PgfTokenizer *tok, int count)
{
	bool		all = true;

	for (int i = 0; i < count; i++)
	{
		int			len = REF_LEN("tok.text.%d", i);
		const int32_t *bytes = REF_I32("tok.text.%d", i);
		char	   *text = malloc(len + 1);
		int32_t    *ids = malloc(sizeof(int32_t) * (len + 1));
		size_t		dl;
		char	   *back;
		int			n;

		for (int j = 0; j < len; j++)
			text[j] = (char) bytes[j];
		n = encode(tok, text, len, true, ids, NULL);
		back = decode(tok, ids, n, false, &dl);
		if (dl != (size_t) len || memcmp(back, text, len) != 0)
		{
			tap_diag("text %d does not round-trip", i);
			all = false;
		}
		free(back);
		free(text);
		free(ids);
	}
	tap_ok(all, "BPE: decode(encode(text)) == text for every reference text");
}

static void
check_bytes_tokenizer(const PgfTokenizer *tok)
{
	const char *text = "<s>h\xc3\xa9llo</s>";
	int32_t		ids[32];
	int			n = encode(tok, text, strlen(text), true, ids, NULL);
	int32_t		want[] = {256, 'h', 0xc3, 0xa9, 'l', 'l', 'o', 257};
	size_t		len;
	char	   *s;
	int32_t		bad[] = {'f', 0xFF, 0xE2, 0x82, 'A', 0x00, 0xF0, 0x9F, 0x98, 0x80};

	tap_ok(ids_equal(ids, n, want, 8), "bytes: special texts become their ids");
	n = encode(tok, text, strlen(text), false, ids, NULL);
	tap_ok(n == (int) strlen(text) && ids[0] == '<', "bytes: without specials every byte is a token");
	n = encode(tok, text, strlen(text), true, ids, NULL);
	s = decode(tok, ids, n, true, &len);
	tap_ok(strcmp(s, "h\xc3\xa9llo") == 0, "bytes: decoding skips special tokens");
	free(s);
	s = decode(tok, ids, n, false, &len);
	tap_ok(strcmp(s, text) == 0 && len == strlen(text), "bytes: or keeps them");
	free(s);
	s = decode(tok, bad, 10, true, &len);
	tap_ok(strcmp(s, "f\xef\xbf\xbd\xef\xbf\xbd" "A\xef\xbf\xbd\xf0\x9f\x98\x80") == 0,
		   "lossy UTF-8: a bad byte, a cut sequence and NUL become U+FFFD; valid text stays");
	free(s);
	tap_ok(pgf_tokenizer_is_special(tok, 257) && !pgf_tokenizer_is_special(tok, 'a'),
		   "is_special knows the special ids");
}

static void
check_pieces(void)
{
	const char *t = "Hello  world's 42\n\n x";
	const char *want_gpt2[] = {"Hello", " ", " world", "'s", " 42", "\n\n", " x"};
	const char *want_llama3[] = {"Hello", " ", " world", "'s", " ", "42", "\n\n", " x"};
	bool		ok = true;
	size_t		pos = 0;
	int			k = 0;

	for (; pos < strlen(t) && k < 7; k++)
	{
		size_t		end = pgf_pretokenize_next(PGF_PRETOK_GPT2, t, strlen(t), pos);

		ok &= end - pos == strlen(want_gpt2[k]) && memcmp(t + pos, want_gpt2[k], end - pos) == 0;
		pos = end;
	}
	tap_ok(ok && k == 7 && pos == strlen(t), "GPT-2 pieces of a sample sentence");
	ok = true;
	pos = 0;
	for (k = 0; pos < strlen(t) && k < 8; k++)
	{
		size_t		end = pgf_pretokenize_next(PGF_PRETOK_LLAMA3, t, strlen(t), pos);

		ok &= end - pos == strlen(want_llama3[k]) && memcmp(t + pos, want_llama3[k], end - pos) == 0;
		pos = end;
	}
	tap_ok(ok && k == 8 && pos == strlen(t), "Llama-3 pieces of a sample sentence");
}

static void
check_invalid_input(const PgfTokenizer *tok)
{
	const char	text[] = "ok \xff\xfe bad \xe2\x82 cut";
	int32_t		ids[64];
	int			n = encode(tok, text, sizeof(text) - 1, true, ids, NULL);
	size_t		len;
	char	   *s = decode(tok, ids, n, true, &len);

	tap_ok(n > 0 && strcmp(s, "ok \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd cut") == 0,
		   "BPE: invalid UTF-8 input encodes and decodes lossily (%d ids)", n);
	free(s);
}

/* A megabyte-long piece (one letter run): merges in O(n log n), round trip. */
static void
check_long_piece(const PgfTokenizer *tok)
{
	size_t		len = 1 << 20;
	char	   *text = malloc(len);
	int32_t    *ids = malloc(sizeof(int32_t) * len);
	int			n;
	size_t		dl;
	char	   *back;

	for (size_t i = 0; i < len; i++)
		text[i] = "the"[i % 3];
	n = encode(tok, text, len, false, ids, NULL);
	back = decode(tok, ids, n, false, &dl);
	tap_ok(n > 0 && n < (int) len && dl == len && memcmp(back, text, len) == 0,
		   "a 1 MB single piece encodes (%d ids) and decodes back", n);
	free(back);
	free(text);
	free(ids);
}

/* A copy of solo_b.pgf with one tensor entry changed; binding must fail. */
static void
check_bad_table(const char *tensor, int index, int32_t value, const char *expect)
{
	LoadedFile	lf;
	uint8_t    *copy;
	PgfModel	file;
	const PgfTensor *t;
	PgfSoloModel *m = calloc(1, sizeof(PgfSoloModel));
	char		err[512] = "";
	PgfStatus	st;

	load_file(&lf, SOLO_GOLDEN_DIR "solo_b.pgf", false);
	copy = aligned_alloc(64, (lf.size + 63) / 64 * 64);
	memcpy(copy, lf.bytes, lf.size);
	t = pgf_find(&lf.file, tensor);
	((int32_t *) (copy + ((const uint8_t *) t->data - (const uint8_t *) lf.bytes)))[index] = value;
	if (pgf_open(&file, copy, lf.size, 0, NULL, err, sizeof(err)) != PGF_OK)
		tap_bail("cannot reopen the copy: %s", err);
	st = pgf_model_bind(&file, m, err, sizeof(err));
	tap_ok(st == PGF_ERR_CONFIG && strstr(err, expect) != NULL,
		   "a bad %s[%d] is refused at bind (%s)", tensor, index, err);
	pgf_close(&file);
	free(copy);
	free(m);
	unload_file(&lf);
}

/* The real SmolLM2 tokenizer, when `make unit-smollm2` has made its files. */
static void
check_smollm2(void)
{
	LoadedFile	model_file,
				ref_file,
				saved = solo_ref;
	PgfSoloModel *m;

	if (!load_file(&ref_file, SOLO_GOLDEN_DIR "smollm2/tok_ref.pgf", true))
	{
		tap_skip("SmolLM2 tokenizer: no test/unit/golden/smollm2 (make unit-smollm2)");
		tap_skip("SmolLM2 tokenizer scratch: no test/unit/golden/smollm2 (make unit-smollm2)");
		return;
	}
	m = calloc(1, sizeof(PgfSoloModel));
	load_solo(&model_file, m, SOLO_GOLDEN_DIR "smollm2/smollm2_q8.pgf");
	solo_ref = ref_file;
	check_reference_ids(&m->tok, "smollm2", REF_I32("tok.count")[0], "tok.text.%d",
						"SmolLM2 (tokenizers)");
	solo_ref = saved;
	unload_file(&ref_file);
	unload_file(&model_file);
	free(m);
}

int
main(void)
{
	LoadedFile	fa,
				fb;
	PgfSoloModel *ma = calloc(1, sizeof(PgfSoloModel));
	PgfSoloModel *mb = calloc(1, sizeof(PgfSoloModel));
	int			count;

	open_solo_ref();
	load_solo(&fa, ma, SOLO_GOLDEN_DIR "solo_a.pgf");
	load_solo(&fb, mb, SOLO_GOLDEN_DIR "solo_b.pgf");
	count = REF_I32("tok.count")[0];

	check_reference_ids(&mb->tok, "tok", count, "tok.text.%d", "BPE");
	check_round_trip(&mb->tok, count);
	check_bytes_tokenizer(&ma->tok);
	check_pieces();
	check_invalid_input(&mb->tok);
	check_long_piece(&mb->tok);
	check_bad_table("tok.vocab_order", 0, 5, "not sorted");
	check_bad_table("tok.merges", 4, 1 << 20, "outside the vocabulary");
	check_bad_table("tok.merge_order", 0, -3, "is not a merge");
	check_smollm2();

	unload_file(&fa);
	unload_file(&fb);
	unload_file(&solo_ref);
	free(ma);
	free(mb);
	return tap_done_testing();
}
