/*
 * cache.c: one shared copy of the weights.
 *
 * A model version is materialised once from the store into
 * $PGDATA/pgformer/<database>_<model id>_<crc>.pgf: written under a
 * temporary name, fsynced, fully checked (CRC included), then renamed, so
 * no backend ever sees half a file.  Every backend maps the file read-only
 * with MAP_SHARED and uses the tensors in place: all backends share one
 * physical copy through the page cache, and attaching costs the same for
 * any file size (the header is parsed, the data is not read).
 *
 * This file owns the backend's mappings, the resolution of model names to
 * their newest version (cached until the catalog changes, which a relcache
 * invalidation of pgformer_model announces), and the size bound of the
 * cache folder (pgformer.cache_size, least recently used first).
 */
#include "postgres.h"

#include <dirent.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "extension/pgformer.h"
#include "extension/registry.h"
#include "extension/store.h"

#define CACHE_DIR "pgformer"
#define STALE_TMP_SECONDS (24 * 3600)

typedef struct MappingEntry
{
	int64		model_id;		/* hash key */
	PgfMapped  *mapped;
} MappingEntry;

typedef struct NameEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	int64		model_id;
	uint64		generation;
} NameEntry;

static HTAB *mapping_table = NULL;
static HTAB *name_table = NULL;

/* Bumped whenever pgformer_model may have changed. */
static uint64 catalog_generation = 1;
static uint64 swept_generation = 1;
static Oid	model_table_oid = InvalidOid;

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

static void unmap(PgfMapped *m);

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
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	pgformer_arenas_reset();
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
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(MappingEntry);
	mapping_table = hash_create("pgformer mappings", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(NameEntry);
	name_table = hash_create("pgformer model names", 16, &ctl, HASH_ELEM | HASH_STRINGS);
	CacheRegisterRelcacheCallback(catalog_changed, (Datum) 0);
	RegisterXactCallback(transaction_ended, NULL);
}

/* ---- cache files -------------------------------------------------------------- */

void
pgformer_cache_path(char *path, int64 model_id, uint32 crc)
{
	snprintf(path, MAXPGPATH, CACHE_DIR "/%u_%lld_%08x.pgf",
			 MyDatabaseId, (long long) model_id, crc);
}

void
pgformer_cache_remove_file(int64 model_id, uint32 crc)
{
	char		path[MAXPGPATH];

	pgformer_cache_path(path, model_id, crc);
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove model cache file \"%s\": %m", path)));
	pgformer_registry_forget(MyDatabaseId, model_id);
}

typedef struct CacheFile
{
	char		path[MAXPGPATH];
	Oid			dboid;
	int64		model_id;
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

/*
 * Removes least recently used cache files nobody has mapped until the
 * folder fits pgformer.cache_size (never `keep`), and leftovers of
 * materialisations that died.  Without the registry, "nobody has mapped"
 * cannot be known; removing a mapped file is still safe (mappings keep
 * their pages), it only costs a later re-materialisation.
 */
static void
enforce_cache_budget(const char *keep)
{
	DIR		   *dir;
	struct dirent *de;
	List	   *files = NIL;
	int64		total = 0;
	int64		budget = (int64) pgformer_cache_size_mb * 1024 * 1024;
	time_t		now = time(NULL);
	ListCell   *lc;

	dir = AllocateDir(CACHE_DIR);
	if (dir == NULL)
		return;
	while ((de = ReadDir(dir, CACHE_DIR)) != NULL)
	{
		char		path[MAXPGPATH];
		struct stat st;
		unsigned int dboid;
		long long	model_id;
		unsigned int crc;
		CacheFile  *f;

		snprintf(path, sizeof(path), CACHE_DIR "/%s", de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (strncmp(de->d_name, "tmp.", 4) == 0)
		{
			if (now - st.st_mtime > STALE_TMP_SECONDS)
				unlink(path);
			continue;
		}
		if (sscanf(de->d_name, "%u_%lld_%8x.pgf", &dboid, &model_id, &crc) != 3)
			continue;
		f = palloc(sizeof(CacheFile));
		strlcpy(f->path, path, MAXPGPATH);
		f->dboid = dboid;
		f->model_id = model_id;
		f->size = st.st_size;
		pgformer_registry_usage(dboid, model_id, &f->pins, &f->last_used);
		if (f->last_used == 0)
			f->last_used = time_t_to_timestamptz(st.st_mtime);
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
			total -= f->size;
			pgformer_registry_forget(f->dboid, f->model_id);
		}
	}
	if (total > budget)
		ereport(LOG,
				(errmsg("pgformer cache holds %lld MB, more than pgformer.cache_size (%d MB), because the rest is in use",
						(long long) (total / (1024 * 1024)), pgformer_cache_size_mb)));
	list_free_deep(files);
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

		pgformer_registry_usage(MyDatabaseId, e->id, &pins, &last_used);
		if (e->id != keep_id && pins == 0)
			pgformer_cache_remove_file(e->id, e->crc);
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

/* Maps a finished file privately and runs every check, data included. */
static void
verify_file(const Materialisation *mat)
{
	const PgfCatalogEntry *e = mat->entry;
	int			fd;
	void	   *base;
	PgfModel	file;
	PgfStatus	status;
	char		err[512];

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
	status = pgf_open(&file, base, e->bytes, PGF_VERIFY_DATA, &pgformer_palloc_allocator,
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
	mat->fd = OpenTransientFile(mat->tmp_path, O_CREAT | O_TRUNC | O_WRONLY | PG_BINARY);
	if (mat->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create model cache file \"%s\": %m", mat->tmp_path)));
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
	}
	PG_CATCH();
	{
		if (mat->fd >= 0)
			CloseTransientFile(mat->fd);
		unlink(mat->tmp_path);
		PG_RE_THROW();
	}
	PG_END_TRY();
	fsync_fname(CACHE_DIR, true);
	remove_other_versions(e->name, e->id);
	enforce_cache_budget(mat->path);
}

/* ---- mapping ------------------------------------------------------------------ */

/*
 * Maps the cache file and binds it.  NULL when the file vanished or does
 * not match the catalog (the caller materialises again).
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
	if (fstat(fd, &st) != 0 || st.st_size != e->bytes)
	{
		CloseTransientFile(fd);
		unlink(path);
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
		unlink(path);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model cache file \"%s\" of \"%s\" version %d is unusable: %s",
						path, e->name, e->version, err),
				 errhint("The file was removed; the next call materialises it again.")));
	}
	entry = hash_search(mapping_table, &m->model_id, HASH_ENTER, &found);
	entry->mapped = m;
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
	pgformer_cache_path(mat.path, e->id, e->crc);
	key.dboid = MyDatabaseId;
	key.model_id = e->id;
	key.crc = e->crc;
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
			/* without the registry, file times order the cache by use */
			if (!pgformer_registry_available())
				utime(mat.path, NULL);
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
	if (m->extra_free)
		m->extra_free(m);
	munmap((void *) m->base, m->size);
	pgformer_registry_detach(m->registry_slot);
	hash_search(mapping_table, &m->model_id, HASH_REMOVE, NULL);
	MemoryContextDelete(m->context);
}

static PgfMapped *
find_mapping(int64 model_id)
{
	MappingEntry *entry = hash_search(mapping_table, &model_id, HASH_FIND, NULL);

	return entry ? entry->mapped : NULL;
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
		if (!pgformer_catalog_lookup(m->name, 0, &newest) || newest.id != m->model_id)
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
		m = find_mapping(ne->model_id);
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
	if (!pgformer_catalog_lookup(name, 0, &e))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("Load it with pgformer_load('%s', ...); SELECT * FROM pgformer_models lists the models.",
						 name)));
	m = find_mapping(e.id);
	if (m == NULL)
		m = attach(&e);
	m->current = true;
	ne = hash_search(name_table, name, HASH_ENTER, &found);
	ne->model_id = e.id;
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
	m = find_mapping(e.id);
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
