/*
 * pgformer.h: what the extension's files share: GUCs, the mapped-model
 * handle every SQL function works with, error reporting for model-file
 * problems, and the per-backend arena.
 */
#ifndef PGFORMER_H
#define PGFORMER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "models/arch.h"
#include "proto/pgf.h"

/* ---- GUCs (pgformer.c) ---------------------------------------------------- */

extern int	pgformer_threads;
extern int	pgformer_cache_size_mb;
extern int	pgformer_max_models;
extern char *pgformer_default_model;
extern int	pgformer_max_image_pixels;

/* ---- the mapped model ----------------------------------------------------- */

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

/* ---- model files -------------------------------------------------------- */

/* Reports a pgf_open / bind failure as an ERROR with a fitting SQLSTATE. */
extern void pgformer_report_file_error(PgfStatus status, const char *message)
			pg_attribute_noreturn();

/* protobuf-c allocations through palloc in the current memory context. */
extern ProtobufCAllocator pgformer_palloc_allocator;

/* ---- the catalog (store.c) ---------------------------------------------- */

/* The schema holding the extension's tables (quoted, ready for SQL). */
extern const char *pgformer_schema_quoted(void);

/* OID of table pgformer_model, or InvalidOid when the extension is absent. */
extern Oid	pgformer_model_table_oid(void);

/*
 * Runs the caller's catalog work as the extension's owner, with search_path
 * pinned to pg_catalog (statements still qualify every name).
 */
typedef struct PgfOwnerContext
{
	Oid			saved_userid;	/* the caller */
	int			saved_sec_context;
	int			guc_nest_level;
} PgfOwnerContext;
extern void pgformer_become_owner(PgfOwnerContext *ctx);
extern void pgformer_restore_user(PgfOwnerContext *ctx);

/*
 * Runs one statement that returns no rows (query: its names qualified) as
 * the extension's owner; errors with "could not <what>" unless SPI answers
 * `expected`.  Returns the rows it processed.
 */
extern uint64 pgformer_owner_execute(const char *query, int nargs, Oid *types, Datum *values,
									 int expected, const char *what);

/* Sets up the mapping cache (transaction and relcache callbacks). */
extern void pgformer_cache_init(void);

/* binding.c: transaction end: no call holds a binding query any more. */
extern void pgformer_bindings_reset(void);

/* Each architecture's SQL module registers its binding roles. */
extern void pgformer_recommend_init(void);
extern void pgformer_rank_init(void);

/* ---- per-backend working memory ----------------------------------------- */

/*
 * An arena of at least `bytes`, reused across calls (grown when needed)
 * so that the hot path does not allocate or fault in fresh pages.  Nested
 * acquisitions get separate arenas.  Release it when the call is done.
 */
extern PgfArena *pgformer_arena_acquire(size_t bytes);
extern void pgformer_arena_release(PgfArena *arena);

/* Marks every arena free again (transaction end). */
extern void pgformer_arenas_reset(void);

/* Applies pgformer.threads to BLAS before a model call. */
extern void pgformer_prepare_kernels(void);

/* Text argument argno as a C string; an error naming it when it is null. */
extern char *pgformer_text_arg(FunctionCallInfo fcinfo, int argno, const char *what);

/* Integer argument argno; an error naming it when it is null or not positive. */
extern int	pgformer_positive_arg(FunctionCallInfo fcinfo, int argno, const char *what);

/* Microseconds since `start` (GetCurrentTimestamp based). */
extern int64 pgformer_elapsed_us(TimestampTz start);

#endif							/* PGFORMER_H */
