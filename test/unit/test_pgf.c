/*
 * test_pgf.c: the .pgf reader and writer.
 *
 *  - C writer -> C reader round trip, and C writer -> Python reader
 *    (tools/pgf.py, through test/python/read_pgf.py);
 *  - files written by the Python writer (build/fixtures, made by
 *    test/gen/make_test_fixtures.py) open, bind and hold the expected tensors;
 *  - every file of the broken corpus (build/fixtures/broken.csv) is rejected
 *    with a message matching the pattern the corpus records;
 *  - truncating a good file at every length never crashes and never opens;
 *  - header strings that are not valid UTF-8, or hold a NUL byte, are
 *    rejected wherever they are (nested, repeated, map keys and values),
 *    with the field named; valid multi-byte text opens.
 */
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "models/block_stack.h"
#include "proto/pgf.h"
#include "test/unit/tap.h"

#define FIXTURES "build/fixtures"

/* Opens and binds; status of the first failing step. */
static PgfStatus
open_and_bind(const uint8_t *bytes, size_t size, char *err, size_t errlen)
{
	PgfModel	m;
	PgfStatus	s = pgf_open(&m, bytes, size, PGF_VERIFY_DATA, NULL, err, errlen);

	if (s != PGF_OK)
		return s;
	s = pgf_model_bind(&m, NULL, err, errlen);
	pgf_close(&m);
	return s;
}

static void
test_round_trip(void)
{
	PgfWriter	w;
	float		a[6] = {1, 2, 3, 4, 5, 6};
	int64_t		ids[3] = {10, 20, 30};
	int64_t		shape_a[2] = {2, 3};
	int64_t		shape_ids[1] = {3};
	uint8_t    *blob;
	size_t		len;
	PgfModel	m;
	char		err[256];
	const PgfTensor *t;
	FILE	   *f;
	int			rc;

	pgf_writer_init(&w);
	w.header.architecture = "golden";
	w.header.name = "round trip";
	tap_ok(pgf_writer_add(&w, "a", PGF_DTYPE_F32, shape_a, 2, a) == 0 &&
		   pgf_writer_add(&w, "ids", PGF_DTYPE_I64, shape_ids, 1, ids) == 0,
		   "writer takes f32 and i64 tensors");
	rc = pgf_writer_finish(&w, &blob, &len);
	tap_ok(rc == 0 && len > PGF_PREAMBLE_LEN, "writer produces a file (%zu bytes)", len);
	tap_ok(pgf_open(&m, blob, len, PGF_VERIFY_DATA, NULL, err, sizeof(err)) == PGF_OK,
		   "reader opens what the writer wrote %s", err);
	t = pgf_find(&m, "a");
	tap_ok(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
		   ((uintptr_t) ((const uint8_t *) t->data - m.data) % 64) == 0 &&
		   memcmp(t->data, a, sizeof(a)) == 0,
		   "tensor a comes back with its shape, alignment and values");
	t = pgf_find(&m, "ids");
	tap_ok(t && t->dtype == PGF_DTYPE_I64 && ((const int64_t *) t->data)[2] == 30,
		   "tensor ids comes back as i64");
	tap_ok(pgf_find(&m, "nope") == NULL, "a missing name is not found");
	tap_ok(m.n_params == 6, "parameter count covers float tensors only (%llu)",
		   (unsigned long long) m.n_params);
	tap_ok(pgf_model_bind(&m, NULL, err, sizeof(err)) == PGF_ERR_CONFIG &&
		   strstr(err, "unknown architecture \"golden\"") != NULL,
		   "binding an unknown architecture names it: %s", err);
	pgf_close(&m);

	f = fopen(FIXTURES "/c_written.pgf", "wb");
	rc = f != NULL && fwrite(blob, 1, len, f) == len;
	if (f)
		fclose(f);
	tap_ok(rc, "wrote " FIXTURES "/c_written.pgf");
	rc = system("PYTHONPATH=. \"${PYTHON:-$(tools/python.sh)}\" test/python/read_pgf.py " FIXTURES "/c_written.pgf");
	tap_ok(rc == 0, "the Python reader reads the C writer's file");
	free(blob);
	pgf_writer_free(&w);
}

static void
test_python_files(void)
{
	const char *names[] = {"bs_tiny", "bs_llama", "bs_post", "bs_shared", "bs_silu",
	"bs_bf16", "bs_f16", "bs_big"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
	{
		char		path[256];
		char		err[512] = "";
		size_t		size = 0;
		uint8_t    *bytes;
		PgfStatus	s;

		snprintf(path, sizeof(path), FIXTURES "/%s.pgf", names[i]);
		bytes = pgf_read_file(path, &size);
		s = bytes ? open_and_bind(bytes, size, err, sizeof(err)) : PGF_ERR_IO;
		tap_ok(s == PGF_OK, "Python-written %s opens and binds %s", names[i], err);
		free(bytes);
	}
}

/* "a,b,c" with the pattern possibly holding commas: split on the first two. */
static int
split_csv_line(char *line, char **file, char **state, char **pattern)
{
	char	   *c1 = strchr(line, ',');
	char	   *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
	size_t		n;

	if (!c2)
		return -1;
	*c1 = *c2 = '\0';
	*file = line;
	*state = c1 + 1;
	*pattern = c2 + 1;
	n = strlen(*pattern);
	while (n > 0 && ((*pattern)[n - 1] == '\n' || (*pattern)[n - 1] == '\r'))
		(*pattern)[--n] = '\0';
	if (n >= 2 && (*pattern)[0] == '"' && (*pattern)[n - 1] == '"')
	{
		/* csv quoting: strip the quotes and undouble "" */
		char	   *src = *pattern + 1,
				   *dst = *pattern;

		(*pattern)[n - 1] = '\0';
		while (*src)
		{
			if (src[0] == '"' && src[1] == '"')
				src++;
			*dst++ = *src++;
		}
		*dst = '\0';
	}
	return 0;
}

static void
test_broken_corpus(void)
{
	FILE	   *list = fopen(FIXTURES "/broken.csv", "r");
	char		line[1024];
	int			count = 0;

	if (!tap_ok(list != NULL, "broken corpus manifest exists"))
		return;
	if (fgets(line, sizeof(line), list) == NULL)	/* header */
		line[0] = '\0';
	while (fgets(line, sizeof(line), list))
	{
		char	   *file,
				   *state,
				   *pattern;
		char		path[512];
		char		err[512] = "";
		size_t		size = 0;
		uint8_t    *bytes;
		PgfStatus	s;
		regex_t		re;
		int			matched;

		if (split_csv_line(line, &file, &state, &pattern) != 0)
			continue;
		snprintf(path, sizeof(path), FIXTURES "/broken/%s", file);
		bytes = pgf_read_file(path, &size);
		s = open_and_bind(bytes ? bytes : (const uint8_t *) "", size, err, sizeof(err));
		matched = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0 &&
			regexec(&re, err, 0, NULL, 0) == 0;
		regfree(&re);
		tap_ok(s != PGF_OK && matched, "%s is rejected (%s): %s", file,
			   pgf_status_name(s), err);
		free(bytes);
		count++;
	}
	fclose(list);
	tap_ok(count >= 25, "the corpus has %d broken files", count);
}

static void
test_every_truncation(void)
{
	size_t		size = 0;
	uint8_t    *bytes = pgf_read_file(FIXTURES "/bs_tiny.pgf", &size);
	int			opened = 0;

	if (!tap_ok(bytes != NULL, "bs_tiny.pgf is readable"))
		return;
	for (size_t n = 0; n < size; n++)
	{
		char		err[256];
		uint8_t    *copy = malloc(n ? n : 1);
		PgfModel	m;

		memcpy(copy, bytes, n);
		/* a fresh allocation of exactly n bytes lets ASan catch overreads */
		if (pgf_open(&m, copy, n, 0, NULL, err, sizeof(err)) == PGF_OK)
		{
			opened++;
			pgf_close(&m);
		}
		free(copy);
	}
	tap_ok(opened == 0, "no truncation of a %zu-byte file opens (%d did)", size, opened);
	free(bytes);
}

/* ---- header strings ------------------------------------------------------ */

/*
 * The parts of a small "golden" file whose strings the UTF-8 tests vary;
 * NULL keeps a valid default.  task selects a Hiformer config, otherwise a
 * SOLO one holds caption.
 */
typedef struct TextFile
{
	const char *architecture;
	const char *name;
	const char *tensor;			/* tensors[1].name */
	const char *meta_key;		/* metadata entry 1 (entry 0 is "dataset") */
	const char *meta_value;
	const char *vocab;			/* tokenizer.vocab[2] */
	const char *special;		/* tokenizer.special[0].text */
	const char *category;		/* features[1].categories[0] */
	const char *task;			/* hiformer.task_names[1] */
	const char *caption;		/* solo.caption_template */
} TextFile;

#define OR(a, b) ((a) ? (a) : (b))

/* The whole file in malloc'd memory (*len bytes). */
static uint8_t *
text_file(const TextFile *tf, size_t *len)
{
	PgfWriter	w;
	float		v[2] = {1, 2};
	int64_t		shape[1] = {2};
	Pgformer__ModelHeader__MetadataEntry e0 = PGFORMER__MODEL_HEADER__METADATA_ENTRY__INIT,
				e1 = PGFORMER__MODEL_HEADER__METADATA_ENTRY__INIT;
	Pgformer__ModelHeader__MetadataEntry *meta[2] = {&e0, &e1};
	Pgformer__Tokenizer tok = PGFORMER__TOKENIZER__INIT;
	Pgformer__Tokenizer__Special sp = PGFORMER__TOKENIZER__SPECIAL__INIT;
	Pgformer__Tokenizer__Special *sps[1] = {&sp};
	char	   *vocab[3] = {"a", "b", (char *) OR(tf->vocab, "c")};
	Pgformer__FeatureSpec f0 = PGFORMER__FEATURE_SPEC__INIT,
				f1 = PGFORMER__FEATURE_SPEC__INIT;
	Pgformer__FeatureSpec *features[2] = {&f0, &f1};
	char	   *categories[2] = {(char *) OR(tf->category, "x"), "y"};
	Pgformer__HiformerConfig hi = PGFORMER__HIFORMER_CONFIG__INIT;
	char	   *tasks[2] = {"like", (char *) OR(tf->task, "share")};
	Pgformer__DecoderLMConfig solo = PGFORMER__DECODER_LMCONFIG__INIT;
	uint8_t    *blob = NULL;

	pgf_writer_init(&w);
	w.header.architecture = (char *) OR(tf->architecture, "golden");
	w.header.name = (char *) OR(tf->name, "text");
	e0.key = "dataset";
	e0.value = "movielens";
	e1.key = (char *) OR(tf->meta_key, "note");
	e1.value = (char *) OR(tf->meta_value, "ok");
	w.header.n_metadata = 2;
	w.header.metadata = meta;
	sp.text = (char *) OR(tf->special, "<s>");
	tok.n_vocab = 3;
	tok.vocab = vocab;
	tok.n_special = 1;
	tok.special = sps;
	w.header.tokenizer = &tok;
	f0.name = "user_id";
	f1.name = "genre";
	f1.n_categories = 2;
	f1.categories = categories;
	w.header.n_features = 2;
	w.header.features = features;
	if (tf->task)
	{
		hi.n_task_names = 2;
		hi.task_names = tasks;
		w.header.config_case = PGFORMER__MODEL_HEADER__CONFIG_HIFORMER;
		w.header.hiformer = &hi;
	}
	else
	{
		solo.caption_template = (char *) OR(tf->caption, "{image}");
		w.header.config_case = PGFORMER__MODEL_HEADER__CONFIG_SOLO;
		w.header.solo = &solo;
	}
	if (pgf_writer_add(&w, "a", PGF_DTYPE_F32, shape, 1, v) != 0 ||
		pgf_writer_add(&w, OR(tf->tensor, "b"), PGF_DTYPE_F32, shape, 1, v) != 0 ||
		pgf_writer_finish(&w, &blob, len) != 0)
		tap_bail("cannot write a test file");
	pgf_writer_free(&w);
	return blob;
}

/* Replaces the first occurrence of mark (strlen(mark) bytes) with bytes. */
static void
patch(uint8_t *blob, size_t len, const char *mark, const char *bytes)
{
	size_t		n = strlen(mark);

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(blob + i, mark, n) == 0)
		{
			memcpy(blob + i, bytes, n);
			return;
		}
	tap_bail("marker \"%s\" is not in the file", mark);
}

static bool
ascii_only(const char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s >= 0x80)
			return false;
	return true;
}

/*
 * The file tf (with mark patched to bytes, same length, when mark is
 * given) is rejected as a header error whose ASCII-only message holds want.
 */
static void
expect_text_error(const TextFile *tf, const char *mark, const char *bytes,
				  const char *want, const char *what)
{
	size_t		len = 0;
	uint8_t    *blob = text_file(tf, &len);
	PgfModel	m;
	char		err[512] = "";
	PgfStatus	s;

	if (mark)
		patch(blob, len, mark, bytes);
	s = pgf_open(&m, blob, len, PGF_VERIFY_DATA, NULL, err, sizeof(err));
	if (s == PGF_OK)
		pgf_close(&m);
	tap_ok(s == PGF_ERR_HEADER && strstr(err, want) != NULL && ascii_only(err),
		   "%s is rejected (%s): %s", what, pgf_status_name(s), err);
	free(blob);
}

/* The header of blob with extra wire bytes appended, as a new file. */
static uint8_t *
append_to_header(const uint8_t *blob, size_t len, const uint8_t *extra, size_t n,
				 size_t *out_len)
{
	uint32_t	hlen;
	size_t		doff,
				new_doff;
	uint8_t    *out;

	if (pgf_read_preamble(blob, len, &hlen, NULL, 0) != PGF_OK)
		tap_bail("cannot read a test file's preamble");
	doff = pgf_data_offset(hlen);
	new_doff = pgf_data_offset(hlen + (uint32_t) n);
	*out_len = new_doff + (len - doff);
	out = calloc(1, *out_len);
	if (out == NULL)
		tap_bail("out of memory");
	memcpy(out, blob, PGF_PREAMBLE_LEN + hlen);
	memcpy(out + PGF_PREAMBLE_LEN + hlen, extra, n);
	hlen += (uint32_t) n;
	out[12] = hlen & 0xff;
	out[13] = (hlen >> 8) & 0xff;
	out[14] = (hlen >> 16) & 0xff;
	out[15] = (hlen >> 24) & 0xff;
	memcpy(out + new_doff, blob + doff, len - doff);
	return out;
}

static void
test_header_text(void)
{
	const TextFile plain = {0};
	char		long_name[64];
	size_t		len = 0;
	uint8_t    *blob;
	PgfModel	m;
	char		err[512] = "";
	PgfStatus	s;

	/* every kind of invalid sequence, in every kind of place */
	expect_text_error(&(TextFile) {.tensor = "w\xff"}, NULL, NULL,
					  "tensors[1].name is not valid UTF-8 (byte 0xff at offset 1, after \"w\")",
					  "a tensor name with byte 0xff");
	expect_text_error(&(TextFile) {.meta_key = "k\xc3"}, NULL, NULL,
					  "metadata key (entry 1) is not valid UTF-8 (truncated sequence 0xc3 at offset 1, the end of the string)",
					  "a metadata key cut inside a sequence");
	expect_text_error(&(TextFile) {.meta_value = "\xfe!"}, NULL, NULL,
					  "metadata[\"note\"] value is not valid UTF-8 (byte 0xfe at offset 0)",
					  "a metadata value with byte 0xfe");
	expect_text_error(&(TextFile) {.vocab = "\xc0\xaf"}, NULL, NULL,
					  "tokenizer.vocab[2] is not valid UTF-8 (byte 0xc0 at offset 0)",
					  "a two-byte overlong '/' in the tokenizer vocabulary");
	expect_text_error(&(TextFile) {.category = "\xed\xa0\x80"}, NULL, NULL,
					  "features[1].categories[0] is not valid UTF-8 (bytes 0xed 0xa0 at offset 0)",
					  "a surrogate (U+D800) among a feature's categories");
	expect_text_error(&(TextFile) {.special = "<\xe0\x80\xaf>"}, NULL, NULL,
					  "tokenizer.special[0].text is not valid UTF-8 (bytes 0xe0 0x80 at offset 1, after \"<\")",
					  "a three-byte overlong in a special token");
	expect_text_error(&(TextFile) {.caption = "\xf0\x8f\xbf\xbf"}, NULL, NULL,
					  "solo.caption_template is not valid UTF-8 (bytes 0xf0 0x8f at offset 0)",
					  "a four-byte overlong in a SOLO template");
	expect_text_error(&(TextFile) {.task = "\xf4\x90\x80\x80"}, NULL, NULL,
					  "hiformer.task_names[1] is not valid UTF-8 (bytes 0xf4 0x90 at offset 0)",
					  "a code point above U+10FFFF in a task name");
	expect_text_error(&(TextFile) {.name = "ab\xe2\x82"}, NULL, NULL,
					  "name is not valid UTF-8 (truncated sequence 0xe2 0x82 at offset 2, the end of the string)",
					  "a model name that ends inside a sequence");
	expect_text_error(&(TextFile) {.architecture = "golden\x80"}, NULL, NULL,
					  "architecture is not valid UTF-8 (byte 0x80 at offset 6, after \"golden\")",
					  "a stray continuation byte in the architecture");
	expect_text_error(&(TextFile) {.tensor = "ab#\xff"}, "ab#", "ab\0",
					  "tensors[1].name contains a NUL byte (at offset 2)",
					  "a tensor name with a NUL byte (hiding an invalid byte)");
	expect_text_error(&(TextFile) {.meta_value = "v#v"}, "v#v", "v\0v",
					  "metadata[\"note\"] value contains a NUL byte (at offset 1)",
					  "a metadata value with a NUL byte");
	expect_text_error(&(TextFile) {.meta_key = "\xd0\xb7\xd0\xb0\"", .meta_value = "\xff"},
					  NULL, NULL,
					  "metadata[\"\\xd0\\xb7\\xd0\\xb0\\x22\"] value is not valid UTF-8 (byte 0xff at offset 0)",
					  "a bad value under a non-ASCII key (the key shown escaped)");
	memset(long_name, 'a', 40);
	memcpy(long_name + 40, "\xff", 2);
	expect_text_error(&(TextFile) {.tensor = long_name}, NULL, NULL,
					  "(byte 0xff at offset 40, after \"...aaaaaaaaaaaaaaaaaaaaaaaa\")",
					  "a long tensor name (only its last 24 bytes shown)");

	/* multi-byte UTF-8 everywhere opens */
	blob = text_file(&(TextFile) {.name = "модель-🚀", .tensor = "модель.вес",
		.meta_key = "заметка", .meta_value = "🚀 naïve 中文",
		.vocab = "é", .special = "<｜end｜>", .category = "日本", .caption = "{image} → 🖼"},
					 &len);
	s = pgf_open(&m, blob, len, PGF_VERIFY_DATA, NULL, err, sizeof(err));
	tap_ok(s == PGF_OK && pgf_find(&m, "модель.вес") != NULL &&
		   strcmp(m.header->metadata[1]->value, "🚀 naïve 中文") == 0 &&
		   strcmp(m.header->name, "модель-🚀") == 0,
		   "multi-byte names, metadata, vocabulary and templates open %s", err);
	if (s == PGF_OK)
		pgf_close(&m);
	free(blob);
	blob = text_file(&(TextFile) {.task = "👍"}, &len);
	s = pgf_open(&m, blob, len, PGF_VERIFY_DATA, NULL, err, sizeof(err));
	tap_ok(s == PGF_OK, "an emoji task name opens %s", err);
	if (s == PGF_OK)
		pgf_close(&m);
	free(blob);

	/* an unknown field is not text: whatever its bytes, it is skipped */
	{
		/* field 1000, length-delimited, 3 bytes */
		const uint8_t unknown[] = {0xc2, 0x3e, 0x03, 0xff, 0x00, 0xfe};
		uint8_t    *grown;
		size_t		grown_len;

		blob = text_file(&plain, &len);
		grown = append_to_header(blob, len, unknown, sizeof(unknown), &grown_len);
		s = pgf_open(&m, grown, grown_len, PGF_VERIFY_DATA, NULL, err, sizeof(err));
		tap_ok(s == PGF_OK && strcmp(m.header->architecture, "golden") == 0,
			   "an unknown field holding invalid UTF-8 is skipped %s", err);
		if (s == PGF_OK)
			pgf_close(&m);
		free(grown);
		free(blob);
	}
}

int
main(void)
{
	test_round_trip();
	test_python_files();
	test_broken_corpus();
	test_every_truncation();
	test_header_text();
	return tap_done_testing();
}
