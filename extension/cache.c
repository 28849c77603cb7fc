/*
 * cache.c: one shared copy of the weights.
 *
 * A model version is materialised once from the store into
 * $PGDATA/pgformer/<database>_<model id>_<cache key>.pgf, where the cache
 * key is random and unique to the stored version (ids come from a sequence
 * that starts again when the extension is recreated): written read-only
 * under a temporary name, fsynced, fully checked (the SHA-256 of every
 * byte against the catalog's, then the format), then renamed, so no backend
 * ever sees half a file.  A small sidecar, <database>_<id>_<key>.ok,
 * records the identity of the checked file (device, inode, size,
 * modification and change times); attaching compares it with the file, so
 * a file changed or replaced on disk after the check is rebuilt from the
 * catalog at the next attach, at a cost that does not depend on the
 * model's size (pgformer_verify rereads every byte).
 *
 * Every backend maps the file read-only with MAP_SHARED and uses the
 * tensors in place: all backends share one physical copy through the page
 * cache.
 *
 * This file owns the backend's mappings, the resolution of model names to
 * their newest version (cached until the catalog changes, which a relcache
 * invalidation of pgformer_model announces), and the housekeeping of the
 * cache folder: files of dropped versions go when the drop commits or, if
 * a backend made them after, once the catalog change reaches it; files of
 * dropped databases and temporary files of backends that died go at the
 * next tidy-up; everything counts against pgformer.cache_size (least
 * recently used first); and the folder starts empty with the server.
 */
#include "postgres.h"

#include <dirent.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "extension/progress.h"
#include "extension/registry.h"
#include "extension/store.h"

#define CACHE_DIR "pgformer"

typedef struct MappingKey
{
	int64		model_id;
	char		cache_key[33];
} MappingKey;

typedef struct MappingEntry
{
	MappingKey	key;			/* hash key */
	PgfMapped  *mapped;
} MappingEntry;

typedef struct NameEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	int64		model_id;
	char		cache_key[33];
	uint64		generation;
} NameEntry;

static HTAB *mapping_table = NULL;
static HTAB *name_table = NULL;

/* Bumped whenever pgformer_model may have changed. */
static uint64 catalog_generation = 1;
static uint64 swept_generation = 1;
static Oid	model_table_oid = InvalidOid;

/* Set when a mapping went: the folder may hold a file nobody can use now. */
static bool tidy_wanted = true;

/*
 * Set when this transaction mapped a version: its snapshot may predate a
 * drop of it, so the next transaction checks the mappings again.
 */
static bool mapped_in_transaction = false;

/* Cache files of versions this transaction dropped (removed at commit). */
typedef struct DroppedFile
{
	int64		model_id;
	char		cache_key[33];
} DroppedFile;
static List *dropped_files = NIL;

/* Databases whose files go at commit (DROP DATABASE, DROP EXTENSION pgformer). */
static List *dropped_databases = NIL;
static object_access_hook_type prev_object_access_hook = NULL;

/* The temporary file this backend is writing, removed if it exits. */
static char writing_path[MAXPGPATH];

/* ---- invalidation and transaction end ------------------------------------------- */

static void
catalog_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == model_table_oid)
	{
		catalog_generation++;
		if (relid != InvalidOid)
			model_table_oid = InvalidOid;	/* may be a dropped table */
	}
}

/* What a cache file's name says: <database>_<model id>_<cache key>.<pgf|ok> */
typedef struct CacheName
{
	Oid			dboid;
	int64		model_id;
	char		cache_key[33];
	char		suffix[4];
} CacheName;

static bool
parse_cache_name(const char *file, CacheName *name)
{
	unsigned int dboid;
	long long	model_id;

	if (sscanf(file, "%u_%lld_%32[0-9a-f].%3s", &dboid, &model_id, name->cache_key,
			   name->suffix) != 4 || strlen(name->cache_key) != 32)
		return false;
	name->dboid = dboid;
	name->model_id = model_id;
	return true;
}

/* The path of a version's cache file (suffix "pgf") or sidecar ("ok"). */
static void
db_file_path(char *path, Oid dboid, int64 model_id, const char *cache_key, const char *suffix)
{
	snprintf(path, MAXPGPATH, CACHE_DIR "/%u_%lld_%s.%s",
			 dboid, (long long) model_id, cache_key, suffix);
}

static void unmap(PgfMapped *m);
static void remove_cache_files(int64 model_id, const char *cache_key);
static void remove_database_files(Oid dboid);

static void
remove_dropped_files(void)
{
	ListCell   *lc;

	foreach(lc, dropped_files)
	{
		DroppedFile *d = lfirst(lc);

		remove_cache_files(d->model_id, d->cache_key);
	}
	foreach(lc, dropped_databases)
		remove_database_files(lfirst_oid(lc));
	/* the lists live in the transaction's memory */
	dropped_files = NIL;
	dropped_databases = NIL;
}

/* Removes every cache file of database dboid (it, or its extension, is gone). */
static void
remove_database_files(Oid dboid)
{
	DIR		   *dir = AllocateDir(CACHE_DIR);
	struct dirent *de;

	if (dir == NULL)
		return;
	while ((de = ReadDir(dir, CACHE_DIR)) != NULL)
	{
		CacheName	name;
		char		path[MAXPGPATH];

		if (!parse_cache_name(de->d_name, &name) || name.dboid != dboid)
			continue;
		snprintf(path, sizeof(path), CACHE_DIR "/%s", de->d_name);
		unlink(path);
		pgformer_registry_forget(dboid, name.model_id, name.cache_key);
	}
	FreeDir(dir);
}

/*
 * DROP EXTENSION pgformer and DROP DATABASE: the files of that database go
 * when the drop commits (mapped copies stay valid until unmapped).
 */
static void
object_dropped(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void *arg)
{
	Oid			dboid = InvalidOid;

	if (prev_object_access_hook)
		prev_object_access_hook(access, class_id, object_id, sub_id, arg);
	if (access != OAT_DROP)
		return;
	if (class_id == DatabaseRelationId)
		dboid = object_id;
	else if (class_id == ExtensionRelationId)
	{
		char	   *name = get_extension_name(object_id);

		if (name && strcmp(name, "pgformer") == 0)
			dboid = MyDatabaseId;
	}
	if (OidIsValid(dboid))
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		dropped_databases = lappend_oid(dropped_databases, dboid);
		MemoryContextSwitchTo(old);
	}
}

void
pgformer_cache_forget_at_commit(const PgfCatalogEntry *e)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	DroppedFile *d = palloc(sizeof(DroppedFile));

	d->model_id = e->id;
	strlcpy(d->cache_key, e->cache_key, sizeof(d->cache_key));
	dropped_files = lappend(dropped_files, d);
	MemoryContextSwitchTo(old);
}

/* A backend that exits while writing a cache file removes it. */
static void
remove_writing_file(int code, Datum arg)
{
	if (writing_path[0] != '\0')
		unlink(writing_path);
	writing_path[0] = '\0';
}

static void
transaction_ended(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS status;
	MappingEntry *entry;
	List	   *stale = NIL;
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			remove_dropped_files();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			dropped_files = NIL;
			dropped_databases = NIL;
			break;
		default:
			return;
	}
	if (mapped_in_transaction)
	{
		catalog_generation++;
		mapped_in_transaction = false;
	}
	if (mapping_table == NULL)
		return;
	hash_seq_init(&status, mapping_table);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		entry->mapped->refcount = 0;
		if (!entry->mapped->current)
			stale = lappend(stale, entry->mapped);
	}
	foreach(lc, stale)
		unmap(lfirst(lc));
	list_free(stale);
}

void
pgformer_cache_init(void)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(MappingKey);
	ctl.entrysize = sizeof(MappingEntry);
	mapping_table = hash_create("pgformer mappings", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(NameEntry);
	name_table = hash_create("pgformer model names", 16, &ctl, HASH_ELEM | HASH_STRINGS);
	CacheRegisterRelcacheCallback(catalog_changed, (Datum) 0);
	RegisterXactCallback(transaction_ended, NULL);
	before_shmem_exit(remove_writing_file, (Datum) 0);
	prev_object_access_hook = object_access_hook;
	object_access_hook = object_dropped;
}

/* ---- cache files -------------------------------------------------------------- */

static void
file_path(char *path, int64 model_id, const char *cache_key, const char *suffix)
{
	db_file_path(path, MyDatabaseId, model_id, cache_key, suffix);
}

void
pgformer_cache_path(char *path, const PgfCatalogEntry *e)
{
	file_path(path, e->id, e->cache_key, "pgf");
}

static void
remove_path(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove model cache file \"%s\": %m", path)));
}

/* Removes a version's cache file and sidecar (mapped copies stay valid). */
static void
remove_cache_files(int64 model_id, const char *cache_key)
{
	char		path[MAXPGPATH];

	file_path(path, model_id, cache_key, "pgf");
	remove_path(path);
	file_path(path, model_id, cache_key, "ok");
	remove_path(path);
	pgformer_registry_forget(MyDatabaseId, model_id, cache_key);
}

/*
 * The identity of a checked cache file, kept in its sidecar: any write,
 * truncation, replacement or change of mode after the check changes it.
 */
typedef struct FileIdentity
{
	uint64		device;
	uint64		inode;
	int64		size;
	int64		modified_ns;
	int64		changed_ns;
} FileIdentity;

static void
identity_of(const struct stat *st, FileIdentity *id)
{
	memset(id, 0, sizeof(*id));
	id->device = (uint64) st->st_dev;
	id->inode = (uint64) st->st_ino;
	id->size = (int64) st->st_size;
	id->modified_ns = (int64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	id->changed_ns = (int64) st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

/* Writes the sidecar of the checked file at path (temporary name, then rename). */
static void
write_sidecar(const PgfCatalogEntry *e, const char *path)
{
	struct stat st;
	FileIdentity id;
	char		sidecar[MAXPGPATH];
	char		tmp[MAXPGPATH];
	int			fd;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model cache file \"%s\": %m", path)));
	identity_of(&st, &id);
	file_path(sidecar, e->id, e->cache_key, "ok");
	snprintf(tmp, sizeof(tmp), CACHE_DIR "/tmp.%d.%lld.ok", MyProcPid, (long long) e->id);
	unlink(tmp);
	fd = OpenTransientFilePerm(tmp, O_CREAT | O_EXCL | O_WRONLY | PG_BINARY, S_IRUSR);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create model cache file \"%s\": %m", tmp)));
	if (write(fd, &id, sizeof(id)) != sizeof(id) || pg_fsync(fd) != 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		unlink(tmp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write model cache file \"%s\": %m", tmp)));
	}
	CloseTransientFile(fd);
	if (rename(tmp, sidecar) != 0)
	{
		unlink(tmp);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename \"%s\" to \"%s\": %m", tmp, sidecar)));
	}
}

/* Whether the open cache file (st) is the one its sidecar says was checked. */
static bool
matches_sidecar(const PgfCatalogEntry *e, const struct stat *st)
{
	char		sidecar[MAXPGPATH];
	FileIdentity recorded;
	FileIdentity actual;
	int			fd;
	bool		same;

	file_path(sidecar, e->id, e->cache_key, "ok");
	fd = OpenTransientFile(sidecar, O_RDONLY | PG_BINARY);
	if (fd < 0)
		return false;
	same = read(fd, &recorded, sizeof(recorded)) == sizeof(recorded);
	CloseTransientFile(fd);
	identity_of(st, &actual);
	return same && memcmp(&recorded, &actual, sizeof(actual)) == 0;
}

typedef struct CacheFile
{
	char		path[MAXPGPATH];
	Oid			dboid;
	int64		model_id;
	char		cache_key[33];
	off_t		size;
	int			pins;
	TimestampTz last_used;
} CacheFile;

static int
compare_last_used(const ListCell *a, const ListCell *b)
{
	const CacheFile *x = lfirst(a);
	const CacheFile *y = lfirst(b);

	return (x->last_used > y->last_used) - (x->last_used < y->last_used);
}

/* Whether this backend has the version mapped. */
static bool mapped_here(int64 model_id, const char *cache_key);

/* Whether a version of this database is still in the catalog. */
static bool
in_catalog(List *entries, int64 model_id, const char *cache_key)
{
	ListCell   *lc;

	foreach(lc, entries)
	{
		PgfCatalogEntry *e = lfirst(lc);

		if (e->id == model_id && strcmp(e->cache_key, cache_key) == 0)
			return true;
	}
	return false;
}

/* Whether a database still exists (its folder under base/ does). */
static bool
database_exists(Oid dboid)
{
	char		path[MAXPGPATH];
	struct stat st;

	snprintf(path, sizeof(path), "base/%u", dboid);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Tidies the cache folder: removes what nobody can use (temporary files of
 * backends that are gone, files of versions no longer in this database's
 * catalog, of databases that were dropped, and sidecars without their
 * file), then the least recently used files nobody has mapped until the
 * folder, temporary files included, fits pgformer.cache_size (never
 * `keep`).  Without the registry "nobody has mapped" cannot be known for
 * other backends; removing a mapped file is still safe (mappings keep their
 * pages), it only costs a later re-materialisation.
 */
static void
tidy_cache_folder(const char *keep)
{
	DIR		   *dir;
	struct dirent *de;
	List	   *files = NIL;
	List	   *entries = pgformer_catalog_entries(NULL);
	int64		total = 0;
	int64		budget = (int64) pgformer_cache_size_mb * 1024 * 1024;
	ListCell   *lc;

	tidy_wanted = false;
	dir = AllocateDir(CACHE_DIR);
	if (dir == NULL)
		return;
	while ((de = ReadDir(dir, CACHE_DIR)) != NULL)
	{
		char		path[MAXPGPATH];
		CacheName	name;
		const char *key;
		const char *suffix;
		struct stat st;
		Oid			dboid;
		int64		model_id;
		int			pid;
		CacheFile  *f;

		snprintf(path, sizeof(path), CACHE_DIR "/%s", de->d_name);
		if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (sscanf(de->d_name, "tmp.%d.", &pid) == 1)
		{
			/* a file being written counts; one whose writer is gone goes */
			if (pid != MyProcPid && BackendPidGetProc(pid) == NULL)
				unlink(path);
			else
				total += st.st_size;
			continue;
		}
		if (!parse_cache_name(de->d_name, &name))
			continue;
		dboid = name.dboid;
		model_id = name.model_id;
		key = name.cache_key;
		suffix = name.suffix;
		if (!database_exists(dboid) ||
			(dboid == MyDatabaseId && !in_catalog(entries, model_id, key) &&
			 !mapped_here(model_id, key)))
		{
			int			pins;
			TimestampTz last_used;

			pgformer_registry_usage(dboid, model_id, key, &pins, &last_used);
			if (pins == 0)
			{
				unlink(path);
				pgformer_registry_forget(dboid, model_id, key);
				continue;
			}
		}
		if (strcmp(suffix, "ok") == 0)
		{
			char		data[MAXPGPATH];

			db_file_path(data, dboid, model_id, key, "pgf");
			if (access(data, F_OK) != 0 && errno == ENOENT)
				unlink(path);
			continue;
		}
		if (strcmp(suffix, "pgf") != 0)
			continue;
		f = palloc(sizeof(CacheFile));
		strlcpy(f->path, path, MAXPGPATH);
		f->dboid = dboid;
		f->model_id = model_id;
		strlcpy(f->cache_key, key, sizeof(f->cache_key));
		f->size = st.st_size;
		pgformer_registry_usage(dboid, model_id, key, &f->pins, &f->last_used);
		if (f->last_used == 0)
		{
			struct stat used;
			char		sidecar[MAXPGPATH];

			db_file_path(sidecar, dboid, model_id, key, "ok");
			f->last_used = time_t_to_timestamptz(stat(sidecar, &used) == 0 ?
												 used.st_mtime : st.st_mtime);
		}
		total += st.st_size;
		files = lappend(files, f);
	}
	FreeDir(dir);

	list_sort(files, compare_last_used);
	foreach(lc, files)
	{
		CacheFile  *f = lfirst(lc);

		if (total <= budget)
			break;
		if (strcmp(f->path, keep) == 0 || f->pins > 0)
			continue;
		if (unlink(f->path) == 0)
		{
			char		sidecar[MAXPGPATH];

			db_file_path(sidecar, f->dboid, f->model_id, f->cache_key, "ok");
			unlink(sidecar);
			total -= f->size;
			pgformer_registry_forget(f->dboid, f->model_id, f->cache_key);
		}
	}
	if (total > budget)
		ereport(LOG,
				(errmsg("pgformer cache holds %lld MB, more than pgformer.cache_size (%d MB), because the rest is in use",
						(long long) (total / (1024 * 1024)), pgformer_cache_size_mb)));
	list_free_deep(files);
	list_free_deep(entries);
}

void
pgformer_cache_clear_folder(void)
{
	DIR		   *dir = opendir(CACHE_DIR);
	struct dirent *de;
	int			removed = 0;

	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL)
	{
		char		path[MAXPGPATH];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), CACHE_DIR "/%s", de->d_name);
		if (unlink(path) == 0)
			removed++;
	}
	closedir(dir);
	if (removed > 0)
		ereport(LOG,
				(errmsg("pgformer removed %d model cache files left from before the server started",
						removed)));
}

/* Removes the files of the other versions of name that nobody has mapped. */
static void
remove_other_versions(const char *name, int64 keep_id)
{
	List	   *entries = pgformer_catalog_entries(name);
	ListCell   *lc;

	foreach(lc, entries)
	{
		PgfCatalogEntry *e = lfirst(lc);
		int			pins;
		TimestampTz last_used;

		pgformer_registry_usage(MyDatabaseId, e->id, e->cache_key, &pins, &last_used);
		if (e->id != keep_id && pins == 0 && !mapped_here(e->id, e->cache_key))
			remove_cache_files(e->id, e->cache_key);
	}
	list_free_deep(entries);
}

/* ---- materialisation ------------------------------------------------------------ */

typedef struct Materialisation
{
	const PgfCatalogEntry *entry;
	char		path[MAXPGPATH];
	/* while writing */
	int			fd;
	char		tmp_path[MAXPGPATH];
	int64		written;
} Materialisation;

static bool
file_ready(void *arg)
{
	Materialisation *mat = arg;
	struct stat st;

	return stat(mat->path, &st) == 0 && st.st_size == mat->entry->bytes;
}

static void
write_chunk(const char *bytes, size_t n, void *arg)
{
	Materialisation *mat = arg;

	if (mat->written + (int64) n > mat->entry->bytes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored model \"%s\" version %d has more bytes than its catalog row records",
						mat->entry->name, mat->entry->version)));
	while (n > 0)
	{
		ssize_t		done = write(mat->fd, bytes, n);

		if (done < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write model cache file \"%s\": %m", mat->tmp_path)));
		}
		bytes += done;
		n -= done;
		mat->written += done;
	}
}

/*
 * Maps a finished file and runs every check: the SHA-256 of every byte
 * against the catalog's (which also stands for the data checksum: the
 * bytes passed it when they were loaded), then the format.
 */
static void
verify_file(const Materialisation *mat)
{
	const PgfCatalogEntry *e = mat->entry;
	int			fd;
	void	   *base;
	PgfModel	file;
	PgfStatus	status = PGF_OK;
	char		err[512];
	uint8		digest[32];

	fd = OpenTransientFile(mat->tmp_path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model cache file \"%s\": %m", mat->tmp_path)));
	base = mmap(NULL, e->bytes, PROT_READ, MAP_SHARED, fd, 0);
	CloseTransientFile(fd);
	if (base == MAP_FAILED)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not map model cache file \"%s\": %m", mat->tmp_path)));
	memset(&file, 0, sizeof(file));
	PG_TRY();
	{
		pgformer_sha256(base, e->bytes, digest);
	}
	PG_CATCH();
	{
		munmap(base, e->bytes);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (memcmp(digest, e->sha256, sizeof(digest)) != 0)
	{
		snprintf(err, sizeof(err), "the stored bytes do not have the SHA-256 the catalog records");
		status = PGF_ERR_CHECKSUM;
	}
	if (status == PGF_OK)
		status = pgf_open(&file, base, e->bytes, 0, &pgformer_palloc_allocator,
						  err, sizeof(err));
	if (status == PGF_OK && file.header->data_crc32 != e->crc)
	{
		snprintf(err, sizeof(err), "stored bytes have checksum %08x, the catalog records %08x",
				 file.header->data_crc32, e->crc);
		status = PGF_ERR_CHECKSUM;
	}
	if (status == PGF_OK)
		status = pgf_model_bind(&file, NULL, err, sizeof(err));
	if (file.header)
		pgf_close(&file);
	munmap(base, e->bytes);
	if (status != PGF_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored model \"%s\" version %d is corrupted: %s",
						e->name, e->version, err),
				 errhint("Drop this version and load the model again.")));
}

static void
materialise(void *arg)
{
	Materialisation *mat = arg;
	const PgfCatalogEntry *e = mat->entry;

	if (MakePGDirectory(CACHE_DIR) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", CACHE_DIR)));
	snprintf(mat->tmp_path, MAXPGPATH, CACHE_DIR "/tmp.%d.%lld",
			 MyProcPid, (long long) e->id);
	unlink(mat->tmp_path);		/* a leftover of an earlier backend with our pid */
	/* read-only from the start: nothing writes to a cache file once made */
	mat->fd = OpenTransientFilePerm(mat->tmp_path, O_CREAT | O_EXCL | O_WRONLY | PG_BINARY,
									S_IRUSR);
	if (mat->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create model cache file \"%s\": %m", mat->tmp_path)));
	strlcpy(writing_path, mat->tmp_path, MAXPGPATH);
	mat->written = 0;
	PG_TRY();
	{
		pgformer_catalog_read_chunks(e->id, write_chunk, mat);
		if (mat->written != e->bytes)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stored model \"%s\" version %d has %lld bytes, its catalog row records %lld",
							e->name, e->version, (long long) mat->written,
							(long long) e->bytes)));
		if (pg_fsync(mat->fd) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not fsync model cache file \"%s\": %m", mat->tmp_path)));
		CloseTransientFile(mat->fd);
		mat->fd = -1;
		verify_file(mat);
		if (rename(mat->tmp_path, mat->path) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not rename \"%s\" to \"%s\": %m",
							mat->tmp_path, mat->path)));
		writing_path[0] = '\0';
		write_sidecar(e, mat->path);
	}
	PG_CATCH();
	{
		if (mat->fd >= 0)
			CloseTransientFile(mat->fd);
		unlink(mat->tmp_path);
		writing_path[0] = '\0';
		PG_RE_THROW();
	}
	PG_END_TRY();
	fsync_fname(CACHE_DIR, true);
	remove_other_versions(e->name, e->id);
	tidy_cache_folder(mat->path);
}

/* ---- mapping ------------------------------------------------------------------ */

static PgfMapped *
find_mapping(int64 model_id, const char *cache_key)
{
	MappingKey	key;
	MappingEntry *entry;

	memset(&key, 0, sizeof(key));
	key.model_id = model_id;
	strlcpy(key.cache_key, cache_key, sizeof(key.cache_key));
	entry = hash_search(mapping_table, &key, HASH_FIND, NULL);
	return entry ? entry->mapped : NULL;
}

static bool
mapped_here(int64 model_id, const char *cache_key)
{
	return mapping_table != NULL && find_mapping(model_id, cache_key) != NULL;
}

/*
 * Maps the cache file and binds it.  NULL when the file vanished, or is not
 * the file that was checked (it is removed; the caller materialises again).
 */
static PgfMapped *
map_file(const PgfCatalogEntry *e, const char *path, int slot)
{
	int			fd;
	struct stat st;
	void	   *base;
	MemoryContext context;
	MemoryContext old;
	PgfMapped  *m;
	PgfStatus	status;
	char		err[512];
	MappingEntry *entry;
	MappingKey	key;
	bool		found;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model cache file \"%s\": %m", path)));
	}
	if (fstat(fd, &st) != 0 || st.st_size != e->bytes || !matches_sidecar(e, &st))
	{
		CloseTransientFile(fd);
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model cache file \"%s\" of \"%s\" version %d changed on disk after it was checked",
						path, e->name, e->version),
				 errdetail("It is removed and made again from the catalog.")));
		remove_cache_files(e->id, e->cache_key);
		return NULL;
	}
	base = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	CloseTransientFile(fd);
	if (base == MAP_FAILED)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not map model cache file \"%s\": %m", path)));

	context = AllocSetContextCreate(TopMemoryContext, "pgformer model",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(context);
	m = palloc0(sizeof(PgfMapped));
	m->model_id = e->id;
	strlcpy(m->name, e->name, NAMEDATALEN);
	m->version = e->version;
	m->crc = e->crc;
	strlcpy(m->cache_key, e->cache_key, sizeof(m->cache_key));
	memcpy(m->sha256, e->sha256, sizeof(m->sha256));
	strlcpy(m->path, path, MAXPGPATH);
	m->base = base;
	m->size = st.st_size;
	m->context = context;
	m->registry_slot = slot;
	status = pgf_open(&m->file, base, st.st_size, 0, &pgformer_palloc_allocator,
					  err, sizeof(err));
	if (status == PGF_OK && m->file.header->data_crc32 != e->crc)
	{
		snprintf(err, sizeof(err), "cache file checksum %08x differs from the catalog's %08x",
				 m->file.header->data_crc32, e->crc);
		status = PGF_ERR_CHECKSUM;
	}
	if (status == PGF_OK)
	{
		m->arch = pgf_arch_find(m->file.header->architecture);
		if (m->arch == NULL)
		{
			snprintf(err, sizeof(err), "unknown architecture \"%s\"",
					 m->file.header->architecture);
			status = PGF_ERR_CONFIG;
		}
	}
	if (status == PGF_OK)
	{
		m->bound = palloc0(m->arch->model_size);
		status = pgf_model_bind(&m->file, m->bound, err, sizeof(err));
	}
	MemoryContextSwitchTo(old);
	if (status != PGF_OK)
	{
		munmap(base, st.st_size);
		MemoryContextDelete(context);
		remove_cache_files(e->id, e->cache_key);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model cache file \"%s\" of \"%s\" version %d is unusable: %s",
						path, e->name, e->version, err),
				 errhint("The file was removed; the next call materialises it again.")));
	}
	memset(&key, 0, sizeof(key));
	key.model_id = m->model_id;
	strlcpy(key.cache_key, m->cache_key, sizeof(key.cache_key));
	entry = hash_search(mapping_table, &key, HASH_ENTER, &found);
	entry->mapped = m;
	mapped_in_transaction = true;
	return m;
}

static PgfMapped *
attach(const PgfCatalogEntry *e)
{
	Materialisation mat;
	PgfRegistryKey key;

	memset(&mat, 0, sizeof(mat));
	mat.entry = e;
	mat.fd = -1;
	pgformer_cache_path(mat.path, e);
	key.dboid = MyDatabaseId;
	key.model_id = e->id;
	key.cache_key = e->cache_key;
	key.name = e->name;
	key.version = e->version;
	key.bytes = e->bytes;

	for (int attempt = 0; attempt < 3; attempt++)
	{
		int			slot = pgformer_registry_attach(&key, file_ready, materialise, &mat);
		PgfMapped  *m = NULL;

		PG_TRY();
		{
			m = map_file(e, mat.path, slot);
		}
		PG_CATCH();
		{
			pgformer_registry_detach(slot);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (m != NULL)
		{
			/*
			 * Without the registry, sidecar times order the cache by use (the
			 * model file's own times are part of its checked identity).
			 */
			if (!pgformer_registry_available())
			{
				char		sidecar[MAXPGPATH];

				file_path(sidecar, e->id, e->cache_key, "ok");
				utime(sidecar, NULL);
			}
			return m;
		}
		/* the file went away between the check and the open: start over */
		pgformer_registry_detach(slot);
		if (!pgformer_registry_available())
			materialise(&mat);
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("model cache file \"%s\" keeps disappearing", mat.path),
			 errhint("Check that pgformer.cache_size can hold the models in use.")));
	return NULL;
}

static void
unmap(PgfMapped *m)
{
	MappingKey	key;

	munmap((void *) m->base, m->size);
	pgformer_registry_detach(m->registry_slot);
	memset(&key, 0, sizeof(key));
	key.model_id = m->model_id;
	strlcpy(key.cache_key, m->cache_key, sizeof(key.cache_key));
	hash_search(mapping_table, &key, HASH_REMOVE, NULL);
	MemoryContextDelete(m->context);
	/* its file may have no use left (the version was dropped meanwhile) */
	tidy_wanted = true;
}

/*
 * After the catalog changed: mappings that are no longer the newest version
 * of their name (or whose model was dropped) stop being current, and go
 * as soon as no call holds them.
 */
static void
sweep_mappings(void)
{
	HASH_SEQ_STATUS status;
	MappingEntry *entry;
	List	   *stale = NIL;
	ListCell   *lc;

	hash_seq_init(&status, mapping_table);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		PgfMapped  *m = entry->mapped;
		PgfCatalogEntry newest;

		if (!m->current)
			continue;
		if (!pgformer_catalog_lookup(m->name, 0, &newest) || newest.id != m->model_id ||
			strcmp(newest.cache_key, m->cache_key) != 0)
		{
			m->current = false;
			if (m->refcount == 0)
				stale = lappend(stale, m);
		}
	}
	foreach(lc, stale)
		unmap(lfirst(lc));
	list_free(stale);
}

void
pgformer_cache_mark_damaged(PgfMapped *m)
{
	remove_cache_files(m->model_id, m->cache_key);
	/* the next call resolves the name again and makes a fresh copy */
	m->current = false;
	catalog_generation++;
}

/* ---- the API ------------------------------------------------------------------ */

static PgfMapped *
resolve(const char *name)
{
	NameEntry  *ne;
	PgfMapped  *m;
	PgfCatalogEntry e;
	uint64		generation;
	bool		found;

	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
	ne = hash_search(name_table, name, HASH_FIND, NULL);
	if (ne && ne->generation == catalog_generation)
	{
		m = find_mapping(ne->model_id, ne->cache_key);
		if (m)
			return m;
	}

	generation = catalog_generation;
	model_table_oid = pgformer_model_table_oid();
	if (swept_generation != generation)
	{
		sweep_mappings();
		swept_generation = generation;
	}
	if (tidy_wanted)
		tidy_cache_folder("");
	if (!pgformer_catalog_lookup(name, 0, &e))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("Load it with pgformer_load('%s', ...); SELECT * FROM pgformer_models lists the models.",
						 name)));
	m = find_mapping(e.id, e.cache_key);
	if (m == NULL)
		m = attach(&e);
	m->current = true;
	ne = hash_search(name_table, name, HASH_ENTER, &found);
	ne->model_id = e.id;
	strlcpy(ne->cache_key, e.cache_key, sizeof(ne->cache_key));
	ne->generation = generation;
	return m;
}

PgfMapped *
pgformer_acquire(const char *name, const char *arch)
{
	PgfMapped  *m;

	if (name == NULL)
	{
		name = pgformer_default_model;
		if (name == NULL || name[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no model named and pgformer.default_model is not set"),
					 errhint("Pass model => 'name' or SET pgformer.default_model = 'name'.")));
	}
	m = resolve(name);
	if (arch && strcmp(m->arch->name, arch) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is a %s model, this function needs a %s model",
						name, m->arch->name, arch)));
	m->refcount++;
	return m;
}

PgfMapped *
pgformer_acquire_version(const char *name, int32 version)
{
	PgfCatalogEntry e;
	PgfMapped  *m;

	if (version == 0)
		return pgformer_acquire(name, NULL);
	if (strlen(name) >= NAMEDATALEN || !pgformer_catalog_lookup(name, version, &e))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model \"%s\" does not exist", version, name)));
	m = find_mapping(e.id, e.cache_key);
	if (m == NULL)
		m = attach(&e);
	m->refcount++;
	return m;
}

void
pgformer_release(PgfMapped *m, int64 elapsed_us)
{
	if (m->refcount > 0)
		m->refcount--;
	if (elapsed_us >= 0)
	{
		m->calls++;
		m->last_used = GetCurrentTimestamp();
		pgformer_registry_note_call(m->registry_slot, elapsed_us);
	}
	if (!m->current && m->refcount == 0)
		unmap(m);
}

void
pgformer_note_unknown(PgfMapped *m, int64 count)
{
	if (count <= 0)
		return;
	m->unknown_inputs += count;
	pgformer_registry_note_unknown(m->registry_slot, count);
}

uint64
pgformer_catalog_generation(void)
{
	/* the relcache callback bumps it: take in pending invalidations first */
	AcceptInvalidationMessages();
	return catalog_generation;
}

List *
pgformer_backend_mappings(void)
{
	HASH_SEQ_STATUS status;
	MappingEntry *entry;
	List	   *list = NIL;

	hash_seq_init(&status, mapping_table);
	while ((entry = hash_seq_search(&status)) != NULL)
		list = lappend(list, entry->mapped);
	return list;
}
