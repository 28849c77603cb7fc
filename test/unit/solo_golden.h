/*
 * solo_golden.h: shared helpers of the decoder, SOLO and tokenizer unit
 * tests: loading model files and the PyTorch references that
 * test/gen/golden_solo.py writes into test/unit/golden/, and test arenas.
 */
#ifndef PGF_SOLO_GOLDEN_H
#define PGF_SOLO_GOLDEN_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "models/solo.h"
#include "proto/pgf.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define SOLO_GOLDEN_DIR "test/unit/golden/"

/* A model file or reference opened with golden.h (all of them verified). */
typedef GoldenFile LoadedFile;

/* Opens a .pgf file (bails out if missing or invalid unless optional). */
static inline bool
load_file(LoadedFile *lf, const char *path, bool optional)
{
	return golden_load(lf, path, optional, "test/gen/golden_solo.py");
}

static inline void
unload_file(LoadedFile *lf)
{
	golden_unload(lf);
}

/* Opens and binds a solo model file. */
static inline void
load_solo(LoadedFile *lf, PgfSoloModel *m, const char *path)
{
	char		err[512];

	load_file(lf, path, false);
	if (pgf_model_bind(&lf->file, m, err, sizeof(err)) != PGF_OK)
		tap_bail("%s: %s", path, err);
}

static LoadedFile solo_ref;

static inline void
open_solo_ref(void)
{
	load_file(&solo_ref, SOLO_GOLDEN_DIR "solo_ref.pgf", false);
}

static inline const PgfTensor *
ref_tensor(const char *fmt,...) __attribute__((format(printf, 1, 2)));
static inline const PgfTensor *
ref_tensor(const char *fmt,...)
{
	va_list		args;
	const PgfTensor *t;

	va_start(args, fmt);
	t = golden_vtensor(&solo_ref, -1, -1, fmt, args);
	va_end(args);
	return t;
}

/* f32 arrays as stored; int lists are stored [length, values...]. */
#define REF_F32(...) ((const float *) ref_tensor(__VA_ARGS__)->data)
#define REF_I32(...) ((const int32_t *) ref_tensor(__VA_ARGS__)->data + 1)
#define REF_LEN(...) (((const int32_t *) ref_tensor(__VA_ARGS__)->data)[0])

/* A malloc'd arena of size bytes. */
static inline void
arena_new(PgfArena *a, size_t size)
{
	void	   *base = aligned_alloc(PGF_ARENA_ALIGN, pgf_arena_round(size ? size : 64));

	if (!base)
		tap_bail("out of memory (%zu bytes)", size);
	pgf_arena_init(a, base, pgf_arena_round(size ? size : 64));
}

static inline void
arena_free(PgfArena *a)
{
	free(a->base);
	memset(a, 0, sizeof(*a));
}

/* True if two int arrays are equal; prints the first difference. */
static inline bool
ids_equal(const int32_t *a, int na, const int32_t *b, int nb)
{
	for (int i = 0; i < na && i < nb; i++)
		if (a[i] != b[i])
		{
			tap_diag("first difference at %d: %d vs %d (lengths %d, %d)", i, a[i], b[i], na, nb);
			return false;
		}
	if (na != nb)
		tap_diag("lengths differ: %d vs %d", na, nb);
	return na == nb;
}

#endif							/* PGF_SOLO_GOLDEN_H */
