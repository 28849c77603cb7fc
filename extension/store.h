/*
 * store.h: reading the durable model store (catalog tables) and the
 * cache-file housekeeping the store's functions trigger.
 */
#ifndef PGFORMER_STORE_H
#define PGFORMER_STORE_H

#include "postgres.h"

#include "nodes/pg_list.h"

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

/*
 * cache.c: when the current transaction commits, removes the cache file of
 * a dropped version (mapped copies stay valid until unmapped).
 */
extern void pgformer_cache_forget_at_commit(const PgfCatalogEntry *e);

/* cache.c: the cache file path of a version. */
extern void pgformer_cache_path(char *path, const PgfCatalogEntry *e);

#endif							/* PGFORMER_STORE_H */
