/*
 * store.c: the durable model store: catalog tables pgformer_model (one
 * row per version) and pgformer_model_chunk (the file's bytes in chunks,
 * so that no single value approaches the 1 GB limit): reading, storing and
 * deleting versions, and who owns a model.  The SQL functions that load
 * and drop models are in load.c.
 *
 * Catalog work runs as the extension's owner, so that callers need
 * EXECUTE on a function, never privileges on the tables.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "extension/common.h"
#include "extension/store.h"
#include "models/arch.h"

#define CHUNK_BYTES (8 * 1024 * 1024)
#define DIGEST_STEP (64 * 1024 * 1024)

/* ---- protobuf through palloc ------------------------------------------------ */

static void *
palloc_for_protobuf(void *data, size_t size)
{
	return MemoryContextAllocHuge(CurrentMemoryContext, Max(size, 1));
}

static void
pfree_for_protobuf(void *data, void *pointer)
{
	if (pointer)
		pfree(pointer);
}

ProtobufCAllocator pgformer_palloc_allocator = {
	palloc_for_protobuf, pfree_for_protobuf, NULL
};

void
pgformer_report_file_error(PgfStatus status, const char *message)
{
	int			code;

	switch (status)
	{
		case PGF_ERR_CHECKSUM:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case PGF_ERR_VERSION:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		case PGF_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case PGF_ERR_IO:
			code = ERRCODE_IO_ERROR;
			break;
		default:
			code = ERRCODE_INVALID_BINARY_REPRESENTATION;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("invalid model file: %s", message),
			 errdetail("The file was rejected as: %s.", pgf_status_name(status))));
	pg_unreachable();
}

/* ---- where the extension lives -------------------------------------------------- */

typedef struct ExtensionInfo
{
	Oid			namespace;
	Oid			owner;
} ExtensionInfo;

static bool
extension_info(ExtensionInfo *info)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("pgformer"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_extension form = (Form_pg_extension) GETSTRUCT(tuple);

		info->namespace = form->extnamespace;
		info->owner = form->extowner;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
require_extension(ExtensionInfo *info)
{
	if (!extension_info(info))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"pgformer\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION pgformer.")));
}

const char *
pgformer_schema_quoted(void)
{
	ExtensionInfo info;

	require_extension(&info);
	return quote_identifier(get_namespace_name(info.namespace));
}

Oid
pgformer_model_table_oid(void)
{
	ExtensionInfo info;

	if (!extension_info(&info))
		return InvalidOid;
	return get_relname_relid("pgformer_model", info.namespace);
}

/*
 * Statements run as the owner must not resolve a single name through the
 * caller's search_path: a caller who plants an operator, function or table
 * earlier in the path would otherwise have it run with the owner's rights.
 * Every statement qualifies its names, and search_path is pinned to
 * pg_catalog for the duration as a second line of defence (restored by
 * pgformer_restore_user, or by the (sub)transaction abort on an error).
 * The operation is security-restricted as well, like a maintenance command
 * that runs as a table owner.
 */
void
pgformer_become_owner(PgfOwnerContext *ctx)
{
	ExtensionInfo info;

	require_extension(&info);
	GetUserIdAndSecContext(&ctx->saved_userid, &ctx->saved_sec_context);
	ctx->guc_nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(info.owner,
						   ctx->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
pgformer_restore_user(PgfOwnerContext *ctx)
{
	SetUserIdAndSecContext(ctx->saved_userid, ctx->saved_sec_context);
	AtEOXact_GUC(true, ctx->guc_nest_level);
}

uint64
pgformer_owner_execute(const char *query, int nargs, Oid *types, Datum *values,
					   int expected, const char *what)
{
	PgfOwnerContext owner;
	uint64		processed;

	pgformer_become_owner(&owner);
	SPI_connect();
	if (SPI_execute_with_args(query, nargs, types, values, NULL, false, 0) != expected)
		elog(ERROR, "pgformer: could not %s", what);
	processed = SPI_processed;
	SPI_finish();
	pgformer_restore_user(&owner);
	return processed;
}

/* ---- reading the catalog ---------------------------------------------------------- */

static void
fill_entry(PgfCatalogEntry *e, HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Datum		digest;

	e->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	strlcpy(e->name, SPI_getvalue(tuple, desc, 2), NAMEDATALEN);
	e->version = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
	strlcpy(e->architecture, SPI_getvalue(tuple, desc, 4), NAMEDATALEN);
	e->bytes = DatumGetInt64(SPI_getbinval(tuple, desc, 5, &isnull));
	e->crc = (uint32) DatumGetInt64(SPI_getbinval(tuple, desc, 6, &isnull));
	strlcpy(e->cache_key, SPI_getvalue(tuple, desc, 7), sizeof(e->cache_key));
	digest = SPI_getbinval(tuple, desc, 8, &isnull);
	memset(e->sha256, 0, sizeof(e->sha256));
	if (!isnull)
	{
		bytea	   *b = DatumGetByteaPP(digest);

		memcpy(e->sha256, VARDATA_ANY(b), Min(VARSIZE_ANY_EXHDR(b), sizeof(e->sha256)));
	}
	strlcpy(e->owner, SPI_getvalue(tuple, desc, 9), NAMEDATALEN);
}

#define ENTRY_COLUMNS "id, name, version, architecture, bytes, crc32, cache_key, sha256, owner"

bool
pgformer_catalog_lookup(const char *name, int32 version, PgfCatalogEntry *out)
{
	PgfOwnerContext owner;
	char	   *query;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	bool		found;

	pgformer_become_owner(&owner);
	query = psprintf("SELECT " ENTRY_COLUMNS " FROM %s.pgformer_model "
					 "WHERE name OPERATOR(pg_catalog.=) $1 "
					 "AND ($2 OPERATOR(pg_catalog.=) 0 OR version OPERATOR(pg_catalog.=) $2) "
					 "ORDER BY version DESC LIMIT 1",
					 pgformer_schema_quoted());
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	SPI_connect();
	if (SPI_execute_with_args(query, 2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: could not read the model catalog");
	found = SPI_processed == 1;
	if (found)
		fill_entry(out, SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	SPI_finish();
	pgformer_restore_user(&owner);
	return found;
}

List *
pgformer_catalog_entries(const char *name)
{
	PgfOwnerContext owner;
	char	   *query;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char		nulls[1] = {name ? ' ' : 'n'};
	List	   *entries = NIL;
	MemoryContext caller = CurrentMemoryContext;

	pgformer_become_owner(&owner);
	query = psprintf("SELECT " ENTRY_COLUMNS " FROM %s.pgformer_model "
					 "WHERE $1 IS NULL OR name OPERATOR(pg_catalog.=) $1 ORDER BY name, version",
					 pgformer_schema_quoted());
	values[0] = name ? CStringGetTextDatum(name) : (Datum) 0;
	SPI_connect();
	if (SPI_execute_with_args(query, 1, types, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: could not read the model catalog");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		/* the list must outlive SPI_finish: build it in the caller's context */
		MemoryContext spi = MemoryContextSwitchTo(caller);
		PgfCatalogEntry *e = palloc(sizeof(PgfCatalogEntry));

		fill_entry(e, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		entries = lappend(entries, e);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	pgformer_restore_user(&owner);
	return entries;
}

/* ---- model owners ---------------------------------------------------------------- */

/*
 * With SPI connected as the extension owner: the role owning model name
 * (the one that loaded its first version, kept by every later version), or
 * NULL when the name has no version.
 */
static char *
owner_of(const char *schema, const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	if (SPI_execute_with_args(psprintf("SELECT owner FROM %s.pgformer_model "
									   "WHERE name OPERATOR(pg_catalog.=) $1 "
									   "ORDER BY version LIMIT 1", schema),
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: could not read the model catalog");
	return SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
}

/* Loading a version, dropping and binding need the model's owner (or a member) or a superuser. */
static void
check_owner(const char *name, const char *owner, Oid caller)
{
	Oid			owner_oid = get_role_oid(owner, true);

	if (superuser_arg(caller) || (OidIsValid(owner_oid) && has_privs_of_role(caller, owner_oid)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of model \"%s\"", name),
			 errdetail("Model \"%s\" belongs to role \"%s\": only its members and superusers may load new versions of it, drop it or change its bindings.",
					   name, owner)));
}

void
pgformer_require_model_owner(const char *name)
{
	PgfOwnerContext owner;
	char	   *role;

	pgformer_become_owner(&owner);
	SPI_connect();
	role = owner_of(pgformer_schema_quoted(), name);
	if (role != NULL)
		check_owner(name, role, owner.saved_userid);
	SPI_finish();
	pgformer_restore_user(&owner);
	if (role == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
}

void
pgformer_catalog_read_chunks(int64 model_id,
							 void (*sink) (const char *bytes, size_t n, void *arg),
							 void *arg)
{
	PgfOwnerContext owner;
	char	   *query;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(model_id)};
	Portal		portal;

	pgformer_become_owner(&owner);
	query = psprintf("SELECT data FROM %s.pgformer_model_chunk "
					 "WHERE model_id OPERATOR(pg_catalog.=) $1 ORDER BY chunk",
					 pgformer_schema_quoted());
	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, query, 1, types, values, NULL, true, 0);
	for (;;)
	{
		bool		isnull;
		Datum		datum;
		bytea	   *chunk;

		SPI_cursor_fetch(portal, true, 1);
		if (SPI_processed == 0)
			break;
		datum = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			chunk = DatumGetByteaPP(datum);
			sink(VARDATA_ANY(chunk), VARSIZE_ANY_EXHDR(chunk), arg);
			if ((Pointer) chunk != DatumGetPointer(datum))
				pfree(chunk);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	pgformer_restore_user(&owner);
}

/* ---- loading ---------------------------------------------------------------- */

void
pgformer_check_model_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name must be 1 to %d bytes long", NAMEDATALEN - 1)));
	for (const char *p = name; *p; p++)
		if ((unsigned char) *p < 0x20)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("model name must not contain control characters")));
}

void
pgformer_sha256(const uint8 *bytes, size_t size, uint8 *digest)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "pgformer: could not start a SHA-256 digest");
	for (size_t offset = 0; offset < size; offset += DIGEST_STEP)
	{
		if (pg_cryptohash_update(ctx, bytes + offset, Min((size_t) DIGEST_STEP, size - offset)) < 0)
			elog(ERROR, "pgformer: could not compute a SHA-256 digest");
		CHECK_FOR_INTERRUPTS();
	}
	if (pg_cryptohash_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "pgformer: could not finish a SHA-256 digest");
	pg_cryptohash_free(ctx);
}

/* A digest as 64 lower-case hex digits (palloc'd). */
static char *
sha256_hex(const uint8 *digest)
{
	char	   *hex = palloc(2 * PG_SHA256_DIGEST_LENGTH + 1);

	hex_encode((const char *) digest, PG_SHA256_DIGEST_LENGTH, hex);
	hex[2 * PG_SHA256_DIGEST_LENGTH] = '\0';
	return hex;
}

/*
 * With SPI connected as the extension owner and the catalog locked: the
 * SHA-256 of version of name, or NULL when that version does not exist.
 */
static bytea *
stored_digest(const char *schema, const char *name, int32 version)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	bool		isnull;

	if (SPI_execute_with_args(psprintf("SELECT sha256 FROM %s.pgformer_model "
									   "WHERE name OPERATOR(pg_catalog.=) $1 "
									   "AND version OPERATOR(pg_catalog.=) $2", schema),
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pgformer: could not read the model catalog");
	if (SPI_processed != 1)
		return NULL;
	return DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Validates bytes as a model file this build can serve and stores it as
 * version wanted of name, or as the next version when wanted is 0.  A
 * wanted version that already holds these very bytes (the same SHA-256) is
 * returned as it is, so that a load repeated with its version (by a proxy
 * on every shard, or a deployment script run twice) changes nothing; one
 * that holds other bytes is an error.
 */
int32
pgformer_store_model(const char *name, const uint8 *bytes, size_t size, const char *source,
					 int32 wanted)
{
	PgfModel	file;
	PgfStatus	status;
	char		err[512];
	PgfOwnerContext owner;
	const char *schema;
	char	   *query;
	char	   *model_owner;
	Oid			types[11] = {TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID,
	TEXTOID, BYTEAOID, NAMEOID, INT4OID};
	Datum		values[11];
	Oid			chunk_types[3] = {INT8OID, INT4OID, BYTEAOID};
	SPIPlanPtr	chunk_plan;
	bool		isnull;
	int64		model_id;
	int32		version;
	bytea	   *chunk;
	bytea	   *digest;
	uint8		nonce[16];
	char		cache_key[33];
	Oid			table_oid;

	pgformer_check_model_name(name);
	status = pgf_open(&file, bytes, size, PGF_VERIFY_DATA, &pgformer_palloc_allocator,
					  err, sizeof(err));
	if (status != PGF_OK)
		pgformer_report_file_error(status, err);
	status = pgf_model_bind(&file, NULL, err, sizeof(err));
	if (status != PGF_OK)
		pgformer_report_file_error(status, err);

	/*
	 * The cache file of this version is named by a random key, so that no
	 * file left by an earlier store (a dropped and recreated extension
	 * reuses ids) is ever taken for it; the digest covers every byte.
	 */
	digest = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	SET_VARSIZE(digest, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	pgformer_sha256(bytes, size, (uint8 *) VARDATA(digest));
	if (!pg_strong_random(nonce, sizeof(nonce)))
		elog(ERROR, "pgformer: could not generate a random cache key");
	hex_encode((const char *) nonce, sizeof(nonce), cache_key);
	cache_key[32] = '\0';

	pgformer_become_owner(&owner);
	schema = pgformer_schema_quoted();
	table_oid = pgformer_model_table_oid();
	SPI_connect();

	/* versions of one name are numbered in commit order */
	query = psprintf("LOCK TABLE %s.pgformer_model IN SHARE ROW EXCLUSIVE MODE", schema);
	if (SPI_execute(query, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "pgformer: could not lock the model catalog");

	/* a new name belongs to the caller; a new version needs the owner */
	model_owner = owner_of(schema, name);
	if (model_owner)
		check_owner(name, model_owner, owner.saved_userid);
	else
		model_owner = GetUserNameFromId(owner.saved_userid, false);

	if (wanted > 0)
	{
		bytea	   *existing = stored_digest(schema, name, wanted);

		if (existing != NULL)
		{
			if (VARSIZE_ANY_EXHDR(existing) != PG_SHA256_DIGEST_LENGTH ||
				memcmp(VARDATA_ANY(existing), VARDATA(digest), PG_SHA256_DIGEST_LENGTH) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNIQUE_VIOLATION),
						 errmsg("version %d of model \"%s\" already exists with other contents", wanted, name),
						 errdetail("Its SHA-256 is %s; this file's is %s.",
								   sha256_hex((const uint8 *) VARDATA_ANY(existing)),
								   sha256_hex((const uint8 *) VARDATA(digest))),
						 errhint("Load it as a new version, or drop version %d first.", wanted)));
			SPI_finish();
			pgformer_restore_user(&owner);
			pgf_close(&file);
			return wanted;
		}
	}

	query = psprintf("INSERT INTO %s.pgformer_model "
					 "(name, version, architecture, params, bytes, crc32, chunk_bytes, source, "
					 "cache_key, sha256, owner) "
					 "SELECT $1, CASE WHEN $11 OPERATOR(pg_catalog.>) 0 THEN $11 "
					 "ELSE coalesce(pg_catalog.max(version), 0) OPERATOR(pg_catalog.+) 1 END, "
					 "$2, $3, $4, $5, $6, $7, $8, $9, $10 "
					 "FROM %s.pgformer_model WHERE name OPERATOR(pg_catalog.=) $1 "
					 "RETURNING id, version", schema, schema);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(file.header->architecture);
	values[2] = Int64GetDatum((int64) file.n_params);
	values[3] = Int64GetDatum((int64) size);
	values[4] = Int64GetDatum((int64) file.header->data_crc32);
	values[5] = Int32GetDatum(CHUNK_BYTES);
	values[6] = CStringGetTextDatum(source);
	values[7] = CStringGetTextDatum(cache_key);
	values[8] = PointerGetDatum(digest);
	values[9] = CStringGetDatum(model_owner);
	values[10] = Int32GetDatum(wanted);
	if (SPI_execute_with_args(query, 11, types, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "pgformer: could not record the model");
	model_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	query = psprintf("INSERT INTO %s.pgformer_model_chunk (model_id, chunk, data) "
					 "VALUES ($1, $2, $3)", schema);
	chunk_plan = SPI_prepare(query, 3, chunk_types);
	if (chunk_plan == NULL)
		elog(ERROR, "pgformer: could not prepare the chunk insert");
	chunk = palloc(VARHDRSZ + Min(size, (size_t) CHUNK_BYTES));
	for (size_t offset = 0, n = 0; offset < size; offset += CHUNK_BYTES, n++)
	{
		size_t		len = Min((size_t) CHUNK_BYTES, size - offset);
		Datum		chunk_values[3];

		SET_VARSIZE(chunk, VARHDRSZ + len);
		memcpy(VARDATA(chunk), bytes + offset, len);
		chunk_values[0] = Int64GetDatum(model_id);
		chunk_values[1] = Int32GetDatum((int32) n);
		chunk_values[2] = PointerGetDatum(chunk);
		if (SPI_execute_plan(chunk_plan, chunk_values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "pgformer: could not store chunk %zu of the model", n);
		CHECK_FOR_INTERRUPTS();
	}
	pfree(chunk);
	SPI_finish();
	pgformer_restore_user(&owner);

	/* every backend re-resolves model names at its next call */
	CacheInvalidateRelcacheByRelid(table_oid);
	pgf_close(&file);
	return version;
}

/*
 * Deletes version of name (every version, and the name's bindings, when
 * all_versions) from the catalog, as its owner may; returns the deleted
 * entries (id, crc, cache_key), or errors when there was none.
 */
List *
pgformer_catalog_drop(const char *name, int32 version, bool all_versions)
{
	PgfOwnerContext owner;
	const char *schema;
	char	   *query;
	char	   *model_owner;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', all_versions ? 'n' : ' '};
	List	   *dropped = NIL;
	Oid			table_oid;
	MemoryContext caller = CurrentMemoryContext;

	pgformer_become_owner(&owner);
	schema = pgformer_schema_quoted();
	table_oid = pgformer_model_table_oid();
	SPI_connect();
	model_owner = owner_of(schema, name);
	if (model_owner)
		check_owner(name, model_owner, owner.saved_userid);
	query = psprintf("DELETE FROM %s.pgformer_model WHERE name OPERATOR(pg_catalog.=) $1 "
					 "AND ($2 IS NULL OR version OPERATOR(pg_catalog.=) $2) "
					 "RETURNING id, crc32, cache_key", schema);
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	if (SPI_execute_with_args(query, 2, types, values, nulls, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "pgformer: could not delete from the model catalog");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		PgfCatalogEntry *e = palloc0(sizeof(PgfCatalogEntry));
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		e->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		e->crc = (uint32) DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull));
		strlcpy(e->cache_key, SPI_getvalue(tuple, desc, 3), sizeof(e->cache_key));
		dropped = lappend(dropped, e);
		MemoryContextSwitchTo(spi);
	}
	if (all_versions && dropped != NIL)
	{
		/* the name is gone: so are its bindings */
		query = psprintf("DELETE FROM %s.pgformer_binding WHERE model OPERATOR(pg_catalog.=) $1",
						 schema);
		if (SPI_execute_with_args(query, 1, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "pgformer: could not delete the model's bindings");
	}
	SPI_finish();
	pgformer_restore_user(&owner);

	if (dropped == NIL)
	{
		if (all_versions)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" does not exist", name)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model \"%s\" does not exist", version, name)));
	}
	/* every backend re-resolves model names at its next call */
	CacheInvalidateRelcacheByRelid(table_oid);
	return dropped;
}
