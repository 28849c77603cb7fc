/*
 * golden.h: the one reader of the unit tests' reference files: .pgf files
 * (the model-file format, tools/pgf.py writes them from PyTorch) opened
 * fully verified, and their tensors looked up by name with the dtype and
 * size the test expects.  A missing or malformed reference stops the test
 * binary ("Bail out!") with the generator that makes it.  Also the tests'
 * exactly sized arenas.
 */
#ifndef PGF_TEST_GOLDEN_H
#define PGF_TEST_GOLDEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/arena.h"
#include "proto/pgf.h"
#include "test/unit/tap.h"

typedef struct GoldenFile
{
	void	   *bytes;
	size_t		size;
	PgfModel	file;
	char		path[256];
} GoldenFile;

/*
 * Opens path into g.  A missing file gives false when optional, else
 * bails out naming made_by (the generator, e.g. "test/gen/golden_solo.py").
 */
static inline bool
golden_load(GoldenFile *g, const char *path, bool optional, const char *made_by)
{
	char		err[512];

	memset(g, 0, sizeof(*g));
	snprintf(g->path, sizeof(g->path), "%.255s", path);
	g->bytes = pgf_read_file(path, &g->size);
	if (!g->bytes)
	{
		if (optional)
			return false;
		tap_bail("%s is missing: run `make unit` (it runs %s)", path, made_by);
	}
	if (pgf_open(&g->file, g->bytes, g->size, PGF_VERIFY_DATA, NULL, err, sizeof(err)) != PGF_OK)
		tap_bail("%s: %s", path, err);
	return true;
}

static inline void
golden_unload(GoldenFile *g)
{
	if (g->bytes)
	{
		pgf_close(&g->file);
		free(g->bytes);
	}
	memset(g, 0, sizeof(*g));
}

/*
 * Tensor name of g; with want_dtype >= 0 it must have that dtype, with
 * numel >= 0 that many values.  Bails out otherwise.
 */
static inline const PgfTensor *
golden_named(const GoldenFile *g, int want_dtype, long numel, const char *name)
{
	const PgfTensor *t = pgf_find(&g->file, name);

	if (!t)
		tap_bail("tensor %s is not in %s: regenerate it", name, g->path);
	if ((want_dtype >= 0 && (int) t->dtype != want_dtype) || (numel >= 0 && t->numel != numel))
		tap_bail("tensor %s of %s: dtype %d with %lld values, expected dtype %d with %ld",
				 name, g->path, (int) t->dtype, (long long) t->numel, want_dtype, numel);
	return t;
}

/* The same, the name given as printf format and arguments. */
static inline const PgfTensor *
golden_vtensor(const GoldenFile *g, int want_dtype, long numel, const char *fmt, va_list args)
{
	char		name[256];

	vsnprintf(name, sizeof(name), fmt, args);
	return golden_named(g, want_dtype, numel, name);
}

/* Whether the tensor named by fmt is present. */
static inline bool
golden_vhas(const GoldenFile *g, const char *fmt, va_list args)
{
	char		name[256];

	vsnprintf(name, sizeof(name), fmt, args);
	return pgf_find(&g->file, name) != NULL;
}

/* An arena of exactly `bytes` bytes on the heap (tests only). */
static inline PgfArena
test_arena(size_t bytes)
{
	PgfArena	a;
	void	   *base = aligned_alloc(PGF_ARENA_ALIGN, pgf_arena_round(bytes ? bytes : 1));

	if (!base)
		tap_bail("out of memory for a %zu byte arena", bytes);
	pgf_arena_init(&a, base, bytes);
	return a;
}

static inline void
test_arena_free(PgfArena *a)
{
	free(a->base);
	a->base = NULL;
}

#endif							/* PGF_TEST_GOLDEN_H */
