/*
 * load.c: the SQL functions that load and drop models:
 *   pgformer_load(name, path [, version])   a server file
 *   pgformer_load(name, data [, version])   the file's bytes
 *   pgformer_drop(name [, version])
 * The catalog work is store.c's; a drop also tells the cache (cache.c) to
 * remove the dropped versions' files once the transaction commits.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "extension/store.h"

/* Errors unless a stat call (its result rc) found a regular file. */
static void
require_regular_file(int rc, const struct stat *st, const char *path, const char *verb)
{
	if (rc != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not %s model file \"%s\": %m", verb, path)));
	if (!S_ISREG(st->st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a regular file", path)));
}

/*
 * The version a load asks for: 0 (the next one) for pgformer_load(name,
 * file); for pgformer_load(name, file, version) that version, which must
 * be positive and not null.
 */
static int32
wanted_version(FunctionCallInfo fcinfo)
{
	int32		version;

	if (PG_NARGS() < 3)
		return 0;
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("version must not be null"),
				 errhint("pgformer_load(name, file) stores the next version.")));
	version = PG_GETARG_INT32(2);
	if (version <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("version must be positive, not %d", version)));
	return version;
}

/*
 * pgformer_load(name, path [, version]): a server file (superusers and
 * pg_read_server_files only).
 */
PG_FUNCTION_INFO_V1(pgformer_load_path);
Datum
pgformer_load_path(PG_FUNCTION_ARGS)
{
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	char	   *path = pgformer_text_arg(fcinfo, 1, "path");
	int32		wanted = wanted_version(fcinfo);
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
	pgformer_check_model_name(name);

	/*
	 * Only a regular file is read.  Opening a FIFO or a device would block
	 * (uninterruptibly) or read without end, so the type is checked before
	 * the open, and the open itself does not block, in case the path was
	 * swapped in between; the descriptor is checked again.
	 */
	require_regular_file(stat(path, &st), &st, path, "open");
	fd = OpenTransientFile(path, O_RDONLY | O_NONBLOCK | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file \"%s\": %m", path)));
	require_regular_file(fstat(fd, &st), &st, path, "stat");
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
		version = pgformer_store_model(name, bytes, st.st_size, path, wanted);
	}
	PG_FINALLY();
	{
		munmap(bytes, st.st_size);
	}
	PG_END_TRY();
	PG_RETURN_INT32(version);
}

/* pgformer_load(name, data [, version]): the file's bytes */
PG_FUNCTION_INFO_V1(pgformer_load_bytea);
Datum
pgformer_load_bytea(PG_FUNCTION_ARGS)
{
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	bytea	   *data;
	int32		wanted = wanted_version(fcinfo);

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model data must not be null")));
	data = PG_GETARG_BYTEA_PP(1);
	PG_RETURN_INT32(pgformer_store_model(name, (const uint8 *) VARDATA_ANY(data),
										 VARSIZE_ANY_EXHDR(data), "bytea", wanted));
}

/*
 * pgformer_drop(name): every version; pgformer_drop(name, version): that
 * one (a null version is an error, never "all of them").
 */
PG_FUNCTION_INFO_V1(pgformer_drop);
Datum
pgformer_drop(PG_FUNCTION_ARGS)
{
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	bool		all_versions = PG_NARGS() < 2;
	int32		version = 0;
	List	   *dropped;
	ListCell   *lc;

	if (!all_versions)
	{
		if (PG_ARGISNULL(1))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("version must not be null"),
					 errhint("pgformer_drop('%s') drops every version.", name)));
		version = PG_GETARG_INT32(1);
	}
	dropped = pgformer_catalog_drop(name, version, all_versions);
	foreach(lc, dropped)
		pgformer_cache_forget_at_commit(lfirst(lc));
	PG_RETURN_INT32(list_length(dropped));
}
