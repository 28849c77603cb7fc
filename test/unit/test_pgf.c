/*
 * test_pgf.c: the .pgf reader and writer.
 *
 *  - C writer -> C reader round trip, and C writer -> Python reader
 *    (tools/pgf.py, through test/python/read_pgf.py);
 *  - files written by the Python writer (build/fixtures, made by
 *    tools/make_test_fixtures.py) open, bind and hold the expected tensors;
 *  - every file of the broken corpus (build/fixtures/broken.csv) is rejected
 *    with a message matching the pattern the corpus records;
 *  - truncating a good file at every length never crashes and never opens.
 */
#include <regex.h>
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
	rc = system("/usr/bin/python3 test/python/read_pgf.py " FIXTURES "/c_written.pgf");
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

int
main(void)
{
	tap_plan(9 + 8 + 35 + 2);
	test_round_trip();
	test_python_files();
	test_broken_corpus();
	test_every_truncation();
	return tap_done();
}
