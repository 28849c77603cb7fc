/*
 * common.c: the bottom of the extension (see common.h): the settings'
 * values, the kernels' hooks, argument helpers and the reusable
 * per-backend arenas.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "extension/common.h"
#include "kernels/runtime.h"

int			pgformer_threads = 1;
int			pgformer_cache_size_mb = 4096;
int			pgformer_max_models = 64;
char	   *pgformer_default_model = NULL;

/* Kernels call this between chunks of long work. */
static void
interrupt_hook(void)
{
	CHECK_FOR_INTERRUPTS();
}

static void
fatal_hook(const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("pgformer internal error: %s", message)));
	pg_unreachable();
}

void
pgformer_install_kernel_hooks(void)
{
	pgf_interrupt_hook = interrupt_hook;
	pgf_fatal_hook = fatal_hook;
}

void
pgformer_prepare_kernels(void)
{
	pgf_set_threads(pgformer_threads);
}

char *
pgformer_text_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

int
pgformer_positive_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int			value;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	value = PG_GETARG_INT32(argno);
	if (value <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive, %d was given", what, value)));
	return value;
}

int64
pgformer_elapsed_us(TimestampTz start)
{
	return (int64) (GetCurrentTimestamp() - start);
}

/* ---- arenas ----------------------------------------------------------------- */

#define PGF_MAX_NESTED_ARENAS 4

typedef struct BackendArena
{
	PgfArena	arena;
	char	   *raw;			/* what MemoryContextAlloc returned */
	size_t		capacity;
	bool		in_use;
	SubTransactionId subxact;	/* where it was acquired */
} BackendArena;

static BackendArena arenas[PGF_MAX_NESTED_ARENAS];

PgfArena *
pgformer_arena_acquire(size_t bytes)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
	{
		BackendArena *a = &arenas[i];

		if (a->in_use)
			continue;
		if (a->capacity < bytes)
		{
			size_t		capacity = Max(bytes, a->capacity * 2);

			if (a->raw)
				pfree(a->raw);
			a->raw = NULL;
			a->capacity = 0;
			if (capacity + PGF_ARENA_ALIGN > MaxAllocHugeSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("a model call needs %zu bytes of working memory, more than one allocation can hold",
								bytes)));
			a->raw = MemoryContextAllocHuge(TopMemoryContext,
											capacity + PGF_ARENA_ALIGN);
			a->capacity = capacity;
		}
		pgf_arena_init(&a->arena,
					   (void *) TYPEALIGN(PGF_ARENA_ALIGN, a->raw), a->capacity);
		a->in_use = true;
		a->subxact = GetCurrentSubTransactionId();
		return &a->arena;
	}
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("pgformer: model calls nested more than %d deep", PGF_MAX_NESTED_ARENAS)));
	return NULL;
}

void
pgformer_arena_release(PgfArena *arena)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
		if (&arenas[i].arena == arena)
			arenas[i].in_use = false;
}

/* At transaction end every arena is free again (an error may skip release). */
void
pgformer_arenas_reset(void)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
		arenas[i].in_use = false;
}

/*
 * A subtransaction that aborted (an exception block catching a model
 * call's error) frees the arenas its calls held: no call of it is still
 * running.
 */
void
pgformer_arenas_subxact_abort(SubTransactionId subxact)
{
	for (int i = 0; i < PGF_MAX_NESTED_ARENAS; i++)
		if (arenas[i].in_use && arenas[i].subxact >= subxact)
			arenas[i].in_use = false;
}

