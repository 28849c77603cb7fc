/*
 * inspect.c: looking at models and the cache from SQL: pgformer_inspect
 * (tensors of a model), pgformer_cache_status (behind the pgformer_cache
 * view), pgformer_verify (checksum of the mapped copy) and
 * pgformer_backend_memory (what this backend's mappings cost it, from
 * /proc/self/smaps).
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "extension/registry.h"
#include "extension/store.h"

static int32
optional_version(FunctionCallInfo fcinfo, int argno)
{
	int32		version;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return 0;
	version = PG_GETARG_INT32(argno);
	if (version <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model versions start at 1, %d was given", version)));
	return version;
}

PG_FUNCTION_INFO_V1(pgformer_inspect);
Datum
pgformer_inspect(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	PgfMapped  *m;

	InitMaterializedSRF(fcinfo, 0);
	m = pgformer_acquire_version(name, optional_version(fcinfo, 1));
	for (int i = 0; i < m->file.n_tensors; i++)
	{
		const PgfTensor *t = &m->file.tensors[i];
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		Datum	   *dims = palloc(sizeof(Datum) * Max(t->ndim, 1));

		for (int d = 0; d < t->ndim; d++)
			dims[d] = Int64GetDatum(t->shape[d]);
		values[0] = CStringGetTextDatum(t->name);
		values[1] = PointerGetDatum(construct_array_builtin(dims, t->ndim, INT8OID));
		values[2] = CStringGetTextDatum(pgf_dtype_name(t->dtype));
		values[3] = Int64GetDatum((int64) t->nbytes +
								  (t->scales ? t->numel / t->quant_block * (int64) sizeof(float) : 0));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pgformer_release(m, -1);
	return (Datum) 0;
}

/*
 * Rereads every byte of the mapped copy: its SHA-256 against the one the
 * catalog recorded at load.  A damaged copy is reported, its cache file
 * removed, and the next call maps a fresh copy made from the catalog.
 */
PG_FUNCTION_INFO_V1(pgformer_verify);
Datum
pgformer_verify(PG_FUNCTION_ARGS)
{
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	PgfMapped  *m = pgformer_acquire_version(name, optional_version(fcinfo, 1));
	uint8		digest[32];
	bool		ok;

	pgformer_sha256(m->base, m->size, digest);
	ok = memcmp(digest, m->sha256, sizeof(digest)) == 0;
	if (!ok)
	{
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the mapped copy of model \"%s\" version %d differs from the stored model",
						m->name, m->version),
				 errdetail("Its SHA-256 does not match the one recorded when it was loaded; cache file \"%s\" was removed and the next call makes a fresh copy.",
						   m->path)));
		pgformer_cache_mark_damaged(m);
	}
	pgformer_release(m, -1);
	PG_RETURN_BOOL(ok);
}

PG_FUNCTION_INFO_V1(pgformer_cache_status);
Datum
pgformer_cache_status(PG_FUNCTION_ARGS)
{
	static bool noticed = false;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *entries;
	List	   *rows;
	List	   *mine;
	ListCell   *lc;
	bool		shared = pgformer_registry_available();

	InitMaterializedSRF(fcinfo, 0);
	if (!shared && !noticed)
	{
		ereport(NOTICE,
				(errmsg("pgformer is not in shared_preload_libraries: pins and calls cover this backend only"),
				 errhint("Add pgformer to shared_preload_libraries and restart for cross-backend statistics.")));
		noticed = true;
	}
	entries = pgformer_catalog_entries(NULL);
	rows = pgformer_registry_rows();
	mine = pgformer_backend_mappings();
	foreach(lc, entries)
	{
		PgfCatalogEntry *e = lfirst(lc);
		char		path[MAXPGPATH];
		struct stat st;
		bool		on_disk;
		PgfRegistryRow *row = NULL;
		PgfMapped  *mapped = NULL;
		ListCell   *lc2;
		Datum		values[9];
		bool		nulls[9] = {false};

		pgformer_cache_path(path, e);
		on_disk = stat(path, &st) == 0;
		foreach(lc2, rows)
		{
			PgfRegistryRow *r = lfirst(lc2);

			if (r->dboid == MyDatabaseId && r->model_id == e->id &&
				strcmp(r->cache_key, e->cache_key) == 0)
				row = r;
		}
		foreach(lc2, mine)
		{
			PgfMapped  *m = lfirst(lc2);

			if (m->model_id == e->id)
				mapped = m;
		}
		if (!on_disk && row == NULL && mapped == NULL)
			continue;
		values[0] = CStringGetTextDatum(e->name);
		values[1] = Int32GetDatum(e->version);
		values[2] = Int64GetDatum(e->bytes);
		if (shared)
		{
			values[3] = Int32GetDatum(row ? row->pins : 0);
			values[4] = Int64GetDatum(row ? row->calls : 0);
			if (row && row->calls > 0)
				values[5] = Float8GetDatum((double) row->total_us / row->calls / 1000.0);
			else
				nulls[5] = true;
			values[6] = TimestampTzGetDatum(row ? row->last_used : 0);
			nulls[6] = (row == NULL || row->last_used == 0);
		}
		else
		{
			values[3] = Int32GetDatum(mapped ? 1 : 0);
			values[4] = Int64GetDatum(mapped ? mapped->calls : 0);
			nulls[5] = true;
			values[6] = TimestampTzGetDatum(mapped ? mapped->last_used : 0);
			nulls[6] = (mapped == NULL || mapped->last_used == 0);
		}
		values[7] = Int64GetDatum(shared ? (row ? row->unknown_inputs : 0) :
								  (mapped ? mapped->unknown_inputs : 0));
		values[8] = CStringGetTextDatum(path);
		nulls[8] = !on_disk;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Rss and Pss (bytes) of the mapping that starts at base, from smaps. */
static bool
mapping_memory(const void *base, int64 *rss, int64 *pss)
{
	FILE	   *f = AllocateFile("/proc/self/smaps", "r");
	char		line[512];
	bool		inside = false;
	bool		found = false;
	char		start[32];

	if (f == NULL)
		return false;
	snprintf(start, sizeof(start), "%lx-", (unsigned long) (uintptr_t) base);
	*rss = *pss = 0;
	while (fgets(line, sizeof(line), f))
	{
		long long	kb;

		if (strchr(line, '-') && strchr(line, ' ') && line[0] != ' ' &&
			strncmp(line, start, strlen(start)) == 0)
		{
			inside = true;
			found = true;
			continue;
		}
		if (inside)
		{
			if (sscanf(line, "Rss: %lld kB", &kb) == 1)
				*rss = kb * 1024;
			else if (sscanf(line, "Pss: %lld kB", &kb) == 1)
				*pss = kb * 1024;
			else if (strncmp(line, "VmFlags:", 8) == 0)
				break;
		}
	}
	FreeFile(f);
	return found;
}

PG_FUNCTION_INFO_V1(pgformer_backend_memory);
Datum
pgformer_backend_memory(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, pgformer_backend_mappings())
	{
		PgfMapped  *m = lfirst(lc);
		Datum		values[6];
		bool		nulls[6] = {false};
		int64		rss = 0,
					pss = 0;

		if (!mapping_memory(m->base, &rss, &pss))
			nulls[3] = nulls[4] = true;
		values[0] = CStringGetTextDatum(m->name);
		values[1] = Int32GetDatum(m->version);
		values[2] = Int64GetDatum((int64) m->size);
		values[3] = Int64GetDatum(rss);
		values[4] = Int64GetDatum(pss);
		values[5] = Int32GetDatum(MyProcPid);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* pgformer_metadata(name, version): the file's metadata map as jsonb. */
PG_FUNCTION_INFO_V1(pgformer_metadata);
Datum
pgformer_metadata(PG_FUNCTION_ARGS)
{
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	PgfMapped  *m = pgformer_acquire_version(name, optional_version(fcinfo, 1));
	const Pgformer__ModelHeader *h = m->file.header;
	JsonbParseState *state = NULL;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (size_t i = 0; i < h->n_metadata; i++)
	{
		JsonbValue	key,
					value;

		key.type = jbvString;
		key.val.string.val = h->metadata[i]->key;
		key.val.string.len = strlen(h->metadata[i]->key);
		value.type = jbvString;
		value.val.string.val = h->metadata[i]->value;
		value.val.string.len = strlen(h->metadata[i]->value);
		pushJsonbValue(&state, WJB_KEY, &key);
		pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	pgformer_release(m, -1);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
