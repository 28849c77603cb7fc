/*
 * arena.h: a caller-owned bump allocator for activations and scratch.
 *
 * Models size an arena from their config once, the caller allocates it
 * (palloc in the extension, malloc in tests), and the hot path only bumps a
 * pointer.  Every block is 64-byte aligned.  pgf_arena_mark / reset free
 * everything allocated after a mark in O(1).
 */
#ifndef PGF_ARENA_H
#define PGF_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define PGF_ARENA_ALIGN 64

typedef struct PgfArena
{
	char	   *base;
	size_t		size;
	size_t		used;
	size_t		high_water;		/* most bytes ever in use, for sizing */
} PgfArena;

/* Rounds n up to the arena alignment: what one allocation of n bytes costs. */
static inline size_t
pgf_arena_round(size_t n)
{
	return (n + PGF_ARENA_ALIGN - 1) & ~(size_t) (PGF_ARENA_ALIGN - 1);
}

/* base must be PGF_ARENA_ALIGN aligned. */
void		pgf_arena_init(PgfArena *a, void *base, size_t size);

/*
 * n bytes, 64-byte aligned, uninitialised.  Running out is a sizing bug in
 * the caller: it calls pgf_fatal() (runtime.h), which does not return.
 */
void	   *pgf_arena_alloc(PgfArena *a, size_t n);

/* As pgf_arena_alloc, for n floats. */
static inline float *
pgf_arena_floats(PgfArena *a, size_t n)
{
	return (float *) pgf_arena_alloc(a, n * sizeof(float));
}

static inline size_t
pgf_arena_mark(const PgfArena *a)
{
	return a->used;
}

static inline void
pgf_arena_reset(PgfArena *a, size_t mark)
{
	a->used = mark;
}

#endif							/* PGF_ARENA_H */
