/*
 * test_block_stack.c: the block_stack model in plain C against the PyTorch
 * reference (build/fixtures/expected.csv, from test/gen/make_test_fixtures.py),
 * with the arena sized by pgf_block_stack_arena_bytes, plus the errors
 * encode reports.  The same numbers are checked through SQL in
 * test/sql/03_encode.sql.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "models/block_stack.h"
#include "proto/pgf.h"
#include "test/unit/tap.h"

#define FIXTURES "build/fixtures"
#define MAX_VALUES 4096

typedef struct Loaded
{
	uint8_t    *bytes;
	PgfModel	file;
	PgfBlockStackModel model;
} Loaded;

static int
load(const char *name, Loaded *out)
{
	char		path[256];
	char		err[512] = "cannot read the file";
	size_t		n;

	snprintf(path, sizeof(path), FIXTURES "/%s.pgf", name);
	out->bytes = pgf_read_file(path, &n);
	if (!out->bytes || pgf_open(&out->file, out->bytes, n, PGF_VERIFY_DATA, NULL, err, sizeof(err)) != PGF_OK ||
		pgf_model_bind(&out->file, &out->model, err, sizeof(err)) != PGF_OK)
	{
		fprintf(stderr, "%s: %s\n", name, err);
		return -1;
	}
	return 0;
}

/* Parses "{1,2,3}" into values (floats); returns the count. */
static int
parse_array(const char *text, float *values, int max)
{
	int			n = 0;
	const char *p = text;

	while (*p && *p != '{')
		p++;
	if (*p == '{')
		p++;
	while (*p && *p != '}' && n < max)
	{
		char	   *end;

		values[n++] = strtof(p, &end);
		p = end;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return n;
}

static void *
aligned_arena_memory(size_t bytes)
{
	void	   *p = NULL;

	if (posix_memalign(&p, PGF_ARENA_ALIGN, bytes ? bytes : 64) != 0)
		return NULL;
	return p;
}

int
main(void)
{
	FILE	   *f = fopen(FIXTURES "/expected.csv", "r");
	char	   *line = NULL;
	size_t		cap = 0;
	int			count = 0;
	static float hidden[MAX_VALUES],
				expect[MAX_VALUES],
				tokens_f[MAX_VALUES];
	static int32_t tokens[MAX_VALUES];

	if (!tap_ok(f != NULL, "expected.csv exists"))
		return tap_done_testing();
	if (getline(&line, &cap, f) < 0)	/* header */
		return tap_done_testing();
	while (getline(&line, &cap, f) > 0)
	{
		char	   *comma = strchr(line, ',');
		char	   *tokens_text,
				   *hidden_text;
		const char *model_name;
		char		base[64];
		Loaded		loaded;
		int			n,
					d;
		size_t		bytes;
		void	   *memory;
		PgfArena	arena;
		char		err[256];
		int			rc;

		if (!comma)
			continue;
		*comma = '\0';
		model_name = line;
		tokens_text = comma + 1;
		hidden_text = strstr(tokens_text + 1, "\"{");
		n = parse_array(tokens_text, tokens_f, MAX_VALUES);
		d = parse_array(hidden_text, expect, MAX_VALUES);
		for (int i = 0; i < n; i++)
			tokens[i] = (int32_t) tokens_f[i];
		snprintf(base, sizeof(base), "%s", model_name);
		if (load(base, &loaded) != 0)
		{
			tap_ok(0, "%s loads", base);
			continue;
		}
		bytes = pgf_block_stack_arena_bytes(&loaded.model, n);
		memory = aligned_arena_memory(bytes);
		pgf_arena_init(&arena, memory, bytes);
		rc = pgf_block_stack_encode(&loaded.model, tokens, n, hidden, &arena, err, sizeof(err));
		tap_ok(rc == 0 && d == loaded.model.stack.spec.d_model &&
			   tap_max_abs_diff(hidden, expect, d) <= 1e-4,
			   "%s, %d tokens: equals PyTorch (max abs diff %.3g, arena high water %zu of %zu)",
			   base, n, rc == 0 ? tap_max_abs_diff(hidden, expect, d) : -1.0,
			   arena.high_water, bytes);
		count++;
		if (strcmp(base, "bs_tiny") == 0 && count == 1)
		{
			int32_t		bad = 100;

			rc = pgf_block_stack_encode(&loaded.model, &bad, 1, hidden, &arena, err, sizeof(err));
			tap_ok(rc == -1 && strstr(err, "outside the vocabulary") != NULL,
				   "an out-of-vocabulary token is reported: %s", err);
			rc = pgf_block_stack_encode(&loaded.model, tokens, 65, hidden, &arena, err, sizeof(err));
			tap_ok(rc == -1 && strstr(err, "65 tokens given") != NULL,
				   "a too long sequence is reported: %s", err);
		}
		free(memory);
		pgf_close(&loaded.file);
		free(loaded.bytes);
	}
	free(line);
	fclose(f);
	tap_ok(count >= 35, "%d reference sequences checked", count);
	return tap_done_testing();
}
