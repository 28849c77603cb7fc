/*
 * arena.c: the bump allocator behind every model's activations.
 */
#include "kernels/arena.h"
#include "kernels/runtime.h"

void
pgf_arena_init(PgfArena *a, void *base, size_t size)
{
	if (((uintptr_t) base & (PGF_ARENA_ALIGN - 1)) != 0)
		pgf_fatal("arena base %p is not %d-byte aligned", base, PGF_ARENA_ALIGN);
	a->base = base;
	a->size = size;
	a->used = 0;
	a->high_water = 0;
}

void *
pgf_arena_alloc(PgfArena *a, size_t n)
{
	size_t		need = pgf_arena_round(n);
	void	   *p;

	if (need > a->size - a->used)
		pgf_fatal("arena exhausted: %zu bytes asked, %zu of %zu in use",
				  n, a->used, a->size);
	p = a->base + a->used;
	a->used += need;
	if (a->used > a->high_water)
		a->high_water = a->used;
	return p;
}
