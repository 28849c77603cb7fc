/*
 * registry.c: the fixed shared-memory registry of model versions (see
 * registry.h).  One LWLock guards the entries; counters that every call
 * touches are atomics so that the hot path takes no lock.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "extension/common.h"
#include "extension/registry.h"

typedef enum EntryState
{
	ENTRY_EMPTY = 0,			/* known, no cache file made by anyone yet */
	ENTRY_MATERIALISING,		/* owner_pid is writing the cache file */
	ENTRY_READY					/* the cache file exists */
} EntryState;

typedef struct RegistryEntry
{
	bool		in_use;
	EntryState	state;
	int			owner_pid;
	Oid			dboid;
	int64		model_id;
	char		cache_key[33];
	char		name[NAMEDATALEN];
	int32		version;
	int64		bytes;
	int32		pins;
	pg_atomic_uint64 calls;
	pg_atomic_uint64 total_us;
	pg_atomic_uint64 last_used;
	pg_atomic_uint64 unknown_inputs;
} RegistryEntry;

typedef struct Registry
{
	LWLock	   *lock;
	ConditionVariable changed;	/* broadcast when a materialisation ends */
	int			n_entries;
	RegistryEntry entries[FLEXIBLE_ARRAY_MEMBER];
} Registry;

static Registry *registry = NULL;
static int *local_pins = NULL;	/* pins this backend holds, per slot */
static bool exit_callback_registered = false;

Size
pgformer_registry_shmem_size(void)
{
	return add_size(offsetof(Registry, entries),
					mul_size(sizeof(RegistryEntry), pgformer_max_models));
}

bool
pgformer_registry_shmem_init(void)
{
	bool		found;

	registry = ShmemInitStruct("pgformer registry", pgformer_registry_shmem_size(), &found);
	if (!found)
	{
		registry->lock = &(GetNamedLWLockTranche("pgformer"))->lock;
		ConditionVariableInit(&registry->changed);
		registry->n_entries = pgformer_max_models;
		for (int i = 0; i < registry->n_entries; i++)
		{
			RegistryEntry *e = &registry->entries[i];

			memset(e, 0, offsetof(RegistryEntry, calls));
			pg_atomic_init_u64(&e->calls, 0);
			pg_atomic_init_u64(&e->total_us, 0);
			pg_atomic_init_u64(&e->last_used, 0);
			pg_atomic_init_u64(&e->unknown_inputs, 0);
		}
	}
	return !found;
}

bool
pgformer_registry_available(void)
{
	return registry != NULL;
}

/* Drops this backend's pins and claims when it exits. */
static void
registry_backend_exit(int code, Datum arg)
{
	if (registry == NULL || local_pins == NULL)
		return;
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < registry->n_entries; i++)
	{
		RegistryEntry *e = &registry->entries[i];

		e->pins -= local_pins[i];
		local_pins[i] = 0;
		if (e->state == ENTRY_MATERIALISING && e->owner_pid == MyProcPid)
		{
			e->state = ENTRY_EMPTY;
			e->owner_pid = 0;
		}
	}
	LWLockRelease(registry->lock);
	ConditionVariableBroadcast(&registry->changed);
}

static void
ensure_local_state(void)
{
	if (local_pins == NULL)
		local_pins = MemoryContextAllocZero(TopMemoryContext,
											sizeof(int) * registry->n_entries);
	if (!exit_callback_registered)
	{
		before_shmem_exit(registry_backend_exit, (Datum) 0);
		exit_callback_registered = true;
	}
}

/* With the lock held: the slot of a stored version, or -1. */
static int
find_slot(Oid dboid, int64 model_id, const char *cache_key)
{
	for (int i = 0; i < registry->n_entries; i++)
	{
		RegistryEntry *e = &registry->entries[i];

		if (e->in_use && e->dboid == dboid && e->model_id == model_id &&
			strcmp(e->cache_key, cache_key) == 0)
			return i;
	}
	return -1;
}

/* With the lock held exclusively: a slot for key, reusing the least
 * recently used unpinned one when all are taken. */
static int
claim_slot(const PgfRegistryKey *key)
{
	int			slot = find_slot(key->dboid, key->model_id, key->cache_key);
	RegistryEntry *e;

	if (slot < 0)
	{
		uint64		oldest = PG_UINT64_MAX;

		for (int i = 0; i < registry->n_entries; i++)
		{
			RegistryEntry *c = &registry->entries[i];
			uint64		used;

			if (!c->in_use)
			{
				slot = i;
				break;
			}
			if (c->pins > 0 || c->state == ENTRY_MATERIALISING)
				continue;
			used = pg_atomic_read_u64(&c->last_used);
			if (used < oldest)
			{
				oldest = used;
				slot = i;
			}
		}
		if (slot < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("all %d model slots of the shared registry are in use",
							registry->n_entries),
					 errhint("Raise pgformer.max_models (needs a restart).")));
		e = &registry->entries[slot];
		e->in_use = true;
		e->state = ENTRY_EMPTY;
		e->owner_pid = 0;
		e->dboid = key->dboid;
		e->model_id = key->model_id;
		strlcpy(e->cache_key, key->cache_key, sizeof(e->cache_key));
		e->pins = 0;
		pg_atomic_write_u64(&e->calls, 0);
		pg_atomic_write_u64(&e->total_us, 0);
		pg_atomic_write_u64(&e->last_used, 0);
		pg_atomic_write_u64(&e->unknown_inputs, 0);
	}
	e = &registry->entries[slot];
	strlcpy(e->name, key->name, NAMEDATALEN);
	e->version = key->version;
	e->bytes = key->bytes;
	return slot;
}

int
pgformer_registry_attach(const PgfRegistryKey *key,
						 bool (*file_ready) (void *arg),
						 void (*materialise) (void *arg), void *arg)
{
	int			slot;
	RegistryEntry *e;

	if (registry == NULL)
	{
		if (!file_ready(arg))
			materialise(arg);
		return -1;
	}
	ensure_local_state();
	for (;;)
	{
		LWLockAcquire(registry->lock, LW_EXCLUSIVE);
		slot = claim_slot(key);
		e = &registry->entries[slot];
		if (e->state == ENTRY_MATERIALISING && e->owner_pid != MyProcPid)
		{
			LWLockRelease(registry->lock);
			ConditionVariableSleep(&registry->changed, PG_WAIT_EXTENSION);
			continue;
		}
		if (e->state == ENTRY_READY && file_ready(arg))
		{
			e->pins++;
			local_pins[slot]++;
			LWLockRelease(registry->lock);
			ConditionVariableCancelSleep();
			return slot;
		}
		e->state = ENTRY_MATERIALISING;
		e->owner_pid = MyProcPid;
		LWLockRelease(registry->lock);
		break;
	}
	ConditionVariableCancelSleep();

	PG_TRY();
	{
		materialise(arg);
	}
	PG_CATCH();
	{
		LWLockAcquire(registry->lock, LW_EXCLUSIVE);
		e->state = ENTRY_EMPTY;
		e->owner_pid = 0;
		LWLockRelease(registry->lock);
		ConditionVariableBroadcast(&registry->changed);
		PG_RE_THROW();
	}
	PG_END_TRY();

	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	e->state = ENTRY_READY;
	e->owner_pid = 0;
	e->pins++;
	local_pins[slot]++;
	LWLockRelease(registry->lock);
	ConditionVariableBroadcast(&registry->changed);
	return slot;
}

void
pgformer_registry_detach(int slot)
{
	if (registry == NULL || slot < 0 || local_pins == NULL || local_pins[slot] == 0)
		return;
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	registry->entries[slot].pins--;
	local_pins[slot]--;
	LWLockRelease(registry->lock);
}

void
pgformer_registry_note_call(int slot, int64 elapsed_us)
{
	RegistryEntry *e;

	if (registry == NULL || slot < 0)
		return;
	e = &registry->entries[slot];
	pg_atomic_fetch_add_u64(&e->calls, 1);
	pg_atomic_fetch_add_u64(&e->total_us, (uint64) Max(elapsed_us, 0));
	pg_atomic_write_u64(&e->last_used, (uint64) GetCurrentTimestamp());
}

void
pgformer_registry_note_unknown(int slot, int64 count)
{
	if (registry == NULL || slot < 0 || count <= 0)
		return;
	pg_atomic_fetch_add_u64(&registry->entries[slot].unknown_inputs, (uint64) count);
}

void
pgformer_registry_usage(Oid dboid, int64 model_id, const char *cache_key, int *pins,
						TimestampTz *last_used)
{
	int			slot;

	*pins = 0;
	*last_used = 0;
	if (registry == NULL)
		return;
	LWLockAcquire(registry->lock, LW_SHARED);
	slot = find_slot(dboid, model_id, cache_key);
	if (slot >= 0)
	{
		RegistryEntry *e = &registry->entries[slot];

		/* a version being written counts as pinned: it must not go */
		*pins = e->pins + (e->state == ENTRY_MATERIALISING ? 1 : 0);
		*last_used = (TimestampTz) pg_atomic_read_u64(&e->last_used);
	}
	LWLockRelease(registry->lock);
}

void
pgformer_registry_forget(Oid dboid, int64 model_id, const char *cache_key)
{
	int			slot;

	if (registry == NULL)
		return;
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	slot = find_slot(dboid, model_id, cache_key);
	if (slot >= 0 && registry->entries[slot].pins == 0 &&
		registry->entries[slot].state != ENTRY_MATERIALISING)
		registry->entries[slot].in_use = false;
	LWLockRelease(registry->lock);
}

List *
pgformer_registry_rows(void)
{
	List	   *rows = NIL;

	if (registry == NULL)
		return NIL;
	LWLockAcquire(registry->lock, LW_SHARED);
	for (int i = 0; i < registry->n_entries; i++)
	{
		RegistryEntry *e = &registry->entries[i];
		PgfRegistryRow *row;

		if (!e->in_use)
			continue;
		row = palloc(sizeof(PgfRegistryRow));
		row->dboid = e->dboid;
		row->model_id = e->model_id;
		strlcpy(row->cache_key, e->cache_key, sizeof(row->cache_key));
		strlcpy(row->name, e->name, NAMEDATALEN);
		row->version = e->version;
		row->bytes = e->bytes;
		row->pins = e->pins;
		row->calls = (int64) pg_atomic_read_u64(&e->calls);
		row->total_us = (int64) pg_atomic_read_u64(&e->total_us);
		row->last_used = (TimestampTz) pg_atomic_read_u64(&e->last_used);
		row->unknown_inputs = (int64) pg_atomic_read_u64(&e->unknown_inputs);
		row->ready = e->state == ENTRY_READY;
		rows = lappend(rows, row);
	}
	LWLockRelease(registry->lock);
	return rows;
}
