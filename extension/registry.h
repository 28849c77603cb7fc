/*
 * registry.h: the shared-memory registry of model versions, present when
 * pgformer is in shared_preload_libraries.
 *
 * It records which versions are mapped by how many backends (pins), calls
 * and time per version, and makes sure only one backend materialises a
 * version while the others wait on a condition variable.  Without the
 * preload every function here degrades to a no-op and callers work alone.
 */
#ifndef PGFORMER_REGISTRY_H
#define PGFORMER_REGISTRY_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/*
 * Shared memory (requested and set up by pgformer.c): its size, and
 * setting it up; true when it was created now (server start or a restart
 * after a crash) rather than found.
 */
extern Size pgformer_registry_shmem_size(void);
extern bool pgformer_registry_shmem_init(void);

/* True when the registry exists (the library was preloaded). */
extern bool pgformer_registry_available(void);

/* What a caller wants the registry to do for one version. */
typedef struct PgfRegistryKey
{
	Oid			dboid;
	int64		model_id;
	const char *cache_key;		/* unique to the stored version */
	const char *name;
	int32		version;
	int64		bytes;
} PgfRegistryKey;

/*
 * Pins the version for this backend.  If the cache file is not ready
 * (file_ready returns false), exactly one backend runs materialise while
 * the others sleep until it is done; an error in materialise wakes them and
 * lets the next one try.  Returns the slot to pass to detach and
 * note_call, or -1 without the registry (then the caller has already run
 * materialise itself if needed).
 */
extern int	pgformer_registry_attach(const PgfRegistryKey *key,
									 bool (*file_ready) (void *arg),
									 void (*materialise) (void *arg), void *arg);

/* Unpins (the backend unmapped it). */
extern void pgformer_registry_detach(int slot);

/* Counts one call. */
extern void pgformer_registry_note_call(int slot, int64 elapsed_us);

/* Counts inputs a call replaced because the model did not know them. */
extern void pgformer_registry_note_unknown(int slot, int64 count);

/*
 * How many backends have this version mapped now (a materialisation in
 * progress counts as one) and when it was last used; 0 and 0 without the
 * registry or when it is unknown.
 */
extern void pgformer_registry_usage(Oid dboid, int64 model_id, const char *cache_key,
									int *pins, TimestampTz *last_used);

/* Forgets a version whose cache file was removed (if no backend pins it). */
extern void pgformer_registry_forget(Oid dboid, int64 model_id, const char *cache_key);

/* A copy of one entry, for the pgformer_cache view. */
typedef struct PgfRegistryRow
{
	Oid			dboid;
	int64		model_id;
	char		cache_key[33];
	char		name[NAMEDATALEN];
	int32		version;
	int64		bytes;
	int32		pins;
	int64		calls;
	int64		total_us;
	TimestampTz last_used;
	int64		unknown_inputs;
	bool		ready;
} PgfRegistryRow;

/* Every live entry (palloc'd rows). */
extern List *pgformer_registry_rows(void);

#endif							/* PGFORMER_REGISTRY_H */
