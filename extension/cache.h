/*
 * cache.h: the per-backend mapping cache: a model version's cache file
 * (materialised from the store under $PGDATA/pgformer) mapped read-only,
 * validated and bound, shared with other backends through the registry.
 */
#ifndef PGFORMER_CACHE_H
#define PGFORMER_CACHE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "models/arch.h"
#include "proto/pgf.h"
#include "extension/store.h"

/*
 * One model version as this backend sees it: the cache file mapped
 * read-only, its validated header and the architecture's bound struct.
 * Owned by cache.c; callers get one from pgformer_acquire() and give it back
 * with pgformer_release() (or let the transaction end release it).
 */
typedef struct PgfMapped
{
	int64		model_id;		/* pgformer_model.id */
	char		name[NAMEDATALEN];
	int32		version;
	uint32		crc;
	char		cache_key[33];	/* unique to the stored version */
	uint8		sha256[32];		/* of every byte of the file, as stored */
	char		path[MAXPGPATH];	/* the cache file */
	const uint8 *base;			/* the mapping */
	size_t		size;
	PgfModel	file;			/* validated header and tensor views */
	const PgfArch *arch;
	void	   *bound;			/* the architecture's model struct */
	MemoryContext context;		/* holds everything above */
	int			refcount;		/* calls in flight in this backend */
	bool		current;		/* still the newest version of its name */
	int			registry_slot;	/* shared registry entry, or -1 */
	int64		calls;			/* calls in this backend */
	int64		unknown_inputs; /* inputs replaced by unknown/default rows */
	TimestampTz last_used;
} PgfMapped;

/*
 * The newest version of model `name` (NULL: pgformer.default_model), mapped
 * and bound, with its refcount raised.  Errors: unknown model (42704),
 * architecture other than `arch` when arch is not NULL (42809).
 */
extern PgfMapped *pgformer_acquire(const char *name, const char *arch);

/* A specific version (used by inspect and verify). */
extern PgfMapped *pgformer_acquire_version(const char *name, int32 version);

/* Gives a model back; records one call of elapsed_us microseconds (< 0: no call). */
extern void pgformer_release(PgfMapped *m, int64 elapsed_us);

/*
 * Counts inputs a call could not use as given (ids the model never saw,
 * missing or out-of-vocabulary features), shown by pgformer_cache.
 */
extern void pgformer_note_unknown(PgfMapped *m, int64 count);

/*
 * pgformer_verify found the mapped copy damaged: its cache file goes, and
 * the next call makes a fresh one from the catalog.
 */
extern void pgformer_cache_mark_damaged(PgfMapped *m);

/* Server start (postmaster, preloaded): removes every file of the cache folder. */
extern void pgformer_cache_clear_folder(void);

/* Changes whenever the model store or the bindings may have changed. */
extern uint64 pgformer_catalog_generation(void);

/* Every mapping this backend holds (for inspection functions). */
extern List *pgformer_backend_mappings(void);

/*
 * When the current transaction commits, removes the cache file of a
 * dropped version (mapped copies stay valid until unmapped).
 */
extern void pgformer_cache_forget_at_commit(const PgfCatalogEntry *e);

/* The cache file path of a version. */
extern void pgformer_cache_path(char *path, const PgfCatalogEntry *e);

/* Sets up the mapping cache (transaction and relcache callbacks). */
extern void pgformer_cache_init(void);

#endif							/* PGFORMER_CACHE_H */
