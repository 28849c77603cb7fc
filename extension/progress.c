/*
 * progress.c: the shared slots behind pgformer_progress (see progress.h).
 *
 * Each backend writes only its own slot.  The text fields change only when
 * a call starts or ends, under a change counter (odd while writing, as
 * PostgreSQL's own backend status does), so that a reader copies a
 * consistent row without taking a lock; `done` is an atomic the hot loop
 * updates.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "extension/progress.h"

typedef struct ProgressSlot
{
	pg_atomic_uint32 changecount;
	int			pid;			/* 0: no call */
	char		function[32];
	char		model[NAMEDATALEN];
	int64		total;
	TimestampTz started;
	pg_atomic_uint64 done;
} ProgressSlot;

static ProgressSlot *slots = NULL;
static int	n_slots = 0;
static int	depth = 0;			/* nesting of long calls in this backend */

/* the subtransaction each open call started in (the first levels) */
#define PROGRESS_MAX_DEPTH 16
static SubTransactionId started_in[PROGRESS_MAX_DEPTH];

static Size
slots_size(void)
{
	return mul_size(sizeof(ProgressSlot), MaxBackends);
}

Size
pgformer_progress_shmem_size(void)
{
	return slots_size();
}

void
pgformer_progress_shmem_init(void)
{
	bool		found;

	slots = ShmemInitStruct("pgformer progress", slots_size(), &found);
	n_slots = MaxBackends;
	if (!found)
	{
		for (int i = 0; i < n_slots; i++)
		{
			memset(&slots[i], 0, sizeof(ProgressSlot));
			pg_atomic_init_u32(&slots[i].changecount, 0);
			pg_atomic_init_u64(&slots[i].done, 0);
		}
	}
}

static ProgressSlot *
my_slot(void)
{
	if (slots == NULL || MyBackendId == InvalidBackendId || MyBackendId > n_slots)
		return NULL;
	return &slots[MyBackendId - 1];
}

/* Writes the row of this backend's slot (pid 0: clears it). */
static void
write_slot(ProgressSlot *s, int pid, const char *function, const char *model, int64 total)
{
	pg_atomic_fetch_add_u32(&s->changecount, 1);
	pg_write_barrier();
	s->pid = pid;
	strlcpy(s->function, function, sizeof(s->function));
	strlcpy(s->model, model, sizeof(s->model));
	s->total = total;
	s->started = GetCurrentTimestamp();
	pg_atomic_write_u64(&s->done, 0);
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&s->changecount, 1);
}

void
pgformer_progress_start(const char *function, const char *model, int64 total)
{
	ProgressSlot *s = my_slot();

	if (depth < PROGRESS_MAX_DEPTH)
		started_in[depth] = GetCurrentSubTransactionId();
	if (depth++ > 0 || s == NULL)
		return;
	write_slot(s, MyProcPid, function, model ? model : "", total);
}

void
pgformer_progress_update(int64 done)
{
	ProgressSlot *s = my_slot();

	if (depth == 1 && s != NULL)
		pg_atomic_write_u64(&s->done, (uint64) done);
}

void
pgformer_progress_end(void)
{
	ProgressSlot *s = my_slot();

	if (depth > 0 && --depth == 0 && s != NULL)
		write_slot(s, 0, "", "", 0);
}

void
pgformer_progress_subxact_abort(SubTransactionId subxact)
{
	/* calls started in subxact or in its children (later ids) are gone */
	while (depth > 0 && depth <= PROGRESS_MAX_DEPTH && started_in[depth - 1] >= subxact)
		pgformer_progress_end();
}

void
pgformer_progress_reset(void)
{
	if (depth > 0)
	{
		depth = 1;
		pgformer_progress_end();
	}
}

PG_FUNCTION_INFO_V1(pgformer_progress_status);
Datum
pgformer_progress_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; slots != NULL && i < n_slots; i++)
	{
		ProgressSlot *s = &slots[i];
		ProgressSlot copy;
		Datum		values[6];
		bool		nulls[6] = {false};

		/* a consistent copy: the counter is even and unchanged around it */
		for (;;)
		{
			uint32		before = pg_atomic_read_u32(&s->changecount);

			pg_read_barrier();
			copy.pid = s->pid;
			memcpy(copy.function, s->function, sizeof(copy.function));
			memcpy(copy.model, s->model, sizeof(copy.model));
			copy.total = s->total;
			copy.started = s->started;
			pg_read_barrier();
			if ((before & 1) == 0 && before == pg_atomic_read_u32(&s->changecount))
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (copy.pid == 0)
			continue;
		copy.function[sizeof(copy.function) - 1] = '\0';
		copy.model[sizeof(copy.model) - 1] = '\0';
		values[0] = Int32GetDatum(copy.pid);
		values[1] = CStringGetTextDatum(copy.function);
		values[2] = CStringGetTextDatum(copy.model);
		values[3] = Int64GetDatum((int64) Min(pg_atomic_read_u64(&s->done), (uint64) copy.total));
		values[4] = Int64GetDatum(copy.total);
		values[5] = TimestampTzGetDatum(copy.started);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
