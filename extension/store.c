/*
 * store.c: the durable model store: catalog tables pgformer_model (one
 * row per version) and pgformer_model_chunk (the file's bytes in chunks,
 * so that no single value approaches the 1 GB limit), and the SQL
 * functions that load and drop models.
 *
 * Catalog work runs as the extension's owner, so that callers need
 * EXECUTE on a function, never privileges on the tables.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "extension/pgformer.h"
#include "extension/store.h"

#define CHUNK_BYTES (8 * 1024 * 1024)

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

void
pgformer_become_owner(PgfOwnerContext *ctx)
{
	ExtensionInfo info;

	require_extension(&info);
	GetUserIdAndSecContext(&ctx->saved_userid, &ctx->saved_sec_context);
	SetUserIdAndSecContext(info.owner,
						   ctx->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
pgformer_restore_user(PgfOwnerContext *ctx)
{
	SetUserIdAndSecContext(ctx->saved_userid, ctx->saved_sec_context);
}

/* ---- reading the catalog ---------------------------------------------------------- */

static void
fill_entry(PgfCatalogEntry *e, HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	char	   *text;

	e->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	text = SPI_getvalue(tuple, desc, 2);
	strlcpy(e->name, text, NAMEDATALEN);
	e->version = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
	text = SPI_getvalue(tuple, desc, 4);
	strlcpy(e->architecture, text, NAMEDATALEN);
	e->bytes = DatumGetInt64(SPI_getbinval(tuple, desc, 5, &isnull));
	e->crc = (uint32) DatumGetInt64(SPI_getbinval(tuple, desc, 6, &isnull));
}

#define ENTRY_COLUMNS "id, name, version, architecture, bytes, crc32"

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
					 "WHERE name = $1 AND ($2 = 0 OR version = $2) "
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
					 "WHERE $1 IS NULL OR name = $1 ORDER BY name, version",
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
					 "WHERE model_id = $1 ORDER BY chunk",
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

static void
check_model_name(const char *name)
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

/* Validates bytes as a model file this build can serve and stores it. */
static int32
store_model(const char *name, const uint8 *bytes, size_t size, const char *source)
{
	PgfModel	file;
	PgfStatus	status;
	char		err[512];
	PgfOwnerContext owner;
	const char *schema;
	char	   *query;
	Oid			types[7] = {TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID};
	Datum		values[7];
	Oid			chunk_types[3] = {INT8OID, INT4OID, BYTEAOID};
	SPIPlanPtr	chunk_plan;
	bool		isnull;
	int64		model_id;
	int32		version;
	bytea	   *chunk;
	Oid			table_oid;

	check_model_name(name);
	status = pgf_open(&file, bytes, size, PGF_VERIFY_DATA, &pgformer_palloc_allocator,
					  err, sizeof(err));
	if (status != PGF_OK)
		pgformer_report_file_error(status, err);
	status = pgf_model_bind(&file, NULL, err, sizeof(err));
	if (status != PGF_OK)
		pgformer_report_file_error(status, err);

	pgformer_become_owner(&owner);
	schema = pgformer_schema_quoted();
	table_oid = pgformer_model_table_oid();
	SPI_connect();

	/* versions of one name are numbered in commit order */
	query = psprintf("LOCK TABLE %s.pgformer_model IN SHARE ROW EXCLUSIVE MODE", schema);
	if (SPI_execute(query, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "pgformer: could not lock the model catalog");

	query = psprintf("INSERT INTO %s.pgformer_model "
					 "(name, version, architecture, params, bytes, crc32, chunk_bytes, source) "
					 "SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7 "
					 "FROM %s.pgformer_model WHERE name = $1 "
					 "RETURNING id, version", schema, schema);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(file.header->architecture);
	values[2] = Int64GetDatum((int64) file.n_params);
	values[3] = Int64GetDatum((int64) size);
	values[4] = Int64GetDatum((int64) file.header->data_crc32);
	values[5] = Int32GetDatum(CHUNK_BYTES);
	values[6] = CStringGetTextDatum(source);
	if (SPI_execute_with_args(query, 7, types, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING ||
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

PG_FUNCTION_INFO_V1(pgformer_load_path);
Datum
pgformer_load_path(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			fd;
	struct stat st;
	void	   *bytes = NULL;
	int32		version = 0;

	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to load a model from a server file"),
				 errdetail("Only superusers and members of pg_read_server_files may read server files."),
				 errhint("Pass the file's contents as bytea instead: pgformer_load(name, data).")));
	check_model_name(name);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file \"%s\": %m", path)));
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a regular file", path)));
	if (st.st_size < PGF_PREAMBLE_LEN)
	{
		char		err[256];

		CloseTransientFile(fd);
		snprintf(err, sizeof(err), "file is %lld bytes, shorter than the %d-byte preamble",
				 (long long) st.st_size, PGF_PREAMBLE_LEN);
		pgformer_report_file_error(PGF_ERR_TRUNCATED, err);
	}
	bytes = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (bytes == MAP_FAILED)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not map model file \"%s\": %m", path)));
	CloseTransientFile(fd);
	PG_TRY();
	{
		version = store_model(name, bytes, st.st_size, path);
	}
	PG_FINALLY();
	{
		munmap(bytes, st.st_size);
	}
	PG_END_TRY();
	PG_RETURN_INT32(version);
}

PG_FUNCTION_INFO_V1(pgformer_load_bytea);
Datum
pgformer_load_bytea(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *data = PG_GETARG_BYTEA_PP(1);

	PG_RETURN_INT32(store_model(name, (const uint8 *) VARDATA_ANY(data),
								VARSIZE_ANY_EXHDR(data), "bytea"));
}

PG_FUNCTION_INFO_V1(pgformer_drop);
Datum
pgformer_drop(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		all_versions = PG_ARGISNULL(1);
	int32		version = all_versions ? 0 : PG_GETARG_INT32(1);
	PgfOwnerContext owner;
	char	   *query;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', all_versions ? 'n' : ' '};
	List	   *dropped = NIL;
	Oid			table_oid;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;

	name = pgformer_text_arg(fcinfo, 0, "model name");

	pgformer_become_owner(&owner);
	table_oid = pgformer_model_table_oid();
	query = psprintf("DELETE FROM %s.pgformer_model WHERE name = $1 "
					 "AND ($2 IS NULL OR version = $2) RETURNING id, crc32",
					 pgformer_schema_quoted());
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	SPI_connect();
	if (SPI_execute_with_args(query, 2, types, values, nulls, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "pgformer: could not delete from the model catalog");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		PgfCatalogEntry *e = palloc0(sizeof(PgfCatalogEntry));

		e->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		e->crc = (uint32) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		dropped = lappend(dropped, e);
		MemoryContextSwitchTo(spi);
	}
	if (all_versions && dropped != NIL)
	{
		/* the name is gone: so are its bindings */
		query = psprintf("DELETE FROM %s.pgformer_binding WHERE model = $1",
						 pgformer_schema_quoted());
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
	CacheInvalidateRelcacheByRelid(table_oid);
	foreach(lc, dropped)
	{
		PgfCatalogEntry *e = lfirst(lc);

		pgformer_cache_remove_file(e->id, e->crc);
	}
	PG_RETURN_INT32(list_length(dropped));
}
