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
	uint32		crc;
} PgfCatalogEntry;

/* The newest version of name (version 0) or that version; false if none. */
extern bool pgformer_catalog_lookup(const char *name, int32 version, PgfCatalogEntry *out);

/* Every version of name (NULL: of every model), ordered by name, version. */
extern List *pgformer_catalog_entries(const char *name);

/* Streams the stored file of model_id, chunk by chunk, into sink. */
extern void pgformer_catalog_read_chunks(int64 model_id,
										 void (*sink) (const char *bytes, size_t n, void *arg),
										 void *arg);

/* cache.c: removes a version's cache file (mapped copies stay valid). */
extern void pgformer_cache_remove_file(int64 model_id, uint32 crc);

/* cache.c: the cache file path of a version. */
extern void pgformer_cache_path(char *path, int64 model_id, uint32 crc);

#endif							/* PGFORMER_STORE_H */
