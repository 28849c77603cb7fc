/*
 * store.h: the durable model store (catalog tables): reading, storing and
 * deleting versions, model owners, and running catalog work as the
 * extension's owner.
 */
#ifndef PGFORMER_STORE_H
#define PGFORMER_STORE_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "proto/pgf.h"

/* One row of pgformer_model. */
typedef struct PgfCatalogEntry
{
	int64		id;
	char		name[NAMEDATALEN];
	int32		version;
	char		architecture[NAMEDATALEN];
	int64		bytes;
	uint32		crc;			/* of the data section, as the file records it */
	char		cache_key[33];	/* random, unique to this stored version */
	uint8		sha256[32];		/* of every byte of the file */
	char		owner[NAMEDATALEN];
} PgfCatalogEntry;

/* The newest version of name (version 0) or that version; false if none. */
extern bool pgformer_catalog_lookup(const char *name, int32 version, PgfCatalogEntry *out);

/* Every version of name (NULL: of every model), ordered by name, version. */
extern List *pgformer_catalog_entries(const char *name);

/*
 * Errors unless the caller may manage model name (its owner, a member of
 * the owner or a superuser); 42704 when the model does not exist.
 */
extern void pgformer_require_model_owner(const char *name);

/* Streams the stored file of model_id, chunk by chunk, into sink. */
extern void pgformer_catalog_read_chunks(int64 model_id,
										 void (*sink) (const char *bytes, size_t n, void *arg),
										 void *arg);

/* The SHA-256 of bytes[size] (32 bytes into digest); can be cancelled. */
extern void pgformer_sha256(const uint8 *bytes, size_t size, uint8 *digest);

/* The name of a model: 1 to 63 bytes of valid text (42602 otherwise). */
extern void pgformer_check_model_name(const char *name);

/*
 * Validates bytes as a model file this build can serve and stores it as
 * version `wanted` of name, or as the next version when wanted is 0;
 * returns the version.  A wanted version already holding these bytes (the
 * same SHA-256) is returned as it is; one holding other bytes is 23505.
 */
extern int32 pgformer_store_model(const char *name, const uint8 *bytes, size_t size,
								  const char *source, int32 wanted);

/*
 * Deletes a version of name (every version, and the name's bindings, when
 * all_versions) as its owner may; returns the deleted entries (id, crc,
 * cache_key), or errors (42704) when there was none.
 */
extern List *pgformer_catalog_drop(const char *name, int32 version, bool all_versions);

/* Reports a pgf_open / bind failure as an ERROR with a fitting SQLSTATE. */
extern void pgformer_report_file_error(PgfStatus status, const char *message)
			pg_attribute_noreturn();

/* protobuf-c allocations through palloc in the current memory context. */
extern ProtobufCAllocator pgformer_palloc_allocator;

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

#endif							/* PGFORMER_STORE_H */
