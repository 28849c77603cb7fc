/*
 * binding.h: how a model finds its inputs.
 *
 * pgformer_bind(model, role, query) stores a query per (model name, role)
 * in pgformer_binding.  Each architecture's SQL module declares the roles
 * it reads (the parameter the query takes, the columns it must return) and
 * checks a query's result columns when it is bound, so a wrong query is an
 * error at bind time, naming the columns expected.  At call time a backend
 * prepares each bound query once and keeps the plan until the binding
 * changes.  Bound queries run with the caller's privileges and search_path;
 * only the model's owner may bind them.
 */
#ifndef PGFORMER_BINDING_H
#define PGFORMER_BINDING_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/spi.h"

#include "extension/cache.h"

typedef struct PgfBindingRole
{
	const char *architecture;
	const char *role;
	int			n_params;		/* the query may use $1 .. $n_params */
	const Oid  *param_types;
	const char *param_doc;		/* "$1: the user id, $2: the as-of time", for messages */
	/* raises an error naming the expected columns when desc does not fit */
	void		(*check_columns) (PgfMapped *m, const char *role, TupleDesc desc);
} PgfBindingRole;

/* Called from _PG_init by each architecture's SQL module. */
extern void pgformer_register_binding_role(const PgfBindingRole *role);

/*
 * A prepared binding query and its result descriptor, pinned by the calls
 * running it.
 */
typedef struct PgfBoundQuery
{
	SPIPlanPtr	plan;
	TupleDesc	desc;
	int			pins;
} PgfBoundQuery;

/*
 * Model m's query for role (prepared once, kept across calls), pinned until
 * pgformer_binding_close.  An unbound role is NULL, or an error that says
 * how to bind it when required.  Call inside an SPI connection.
 */
extern PgfBoundQuery *pgformer_binding_open(PgfMapped *m, const char *role, bool required);
extern void pgformer_binding_close(PgfBoundQuery *q);

/* ---- reading bound query results --------------------------------------- */

/* Integer types a binding may use for ids. */
extern bool pgformer_is_integer_type(Oid type);

/* Types a binding may use for a time: timestamptz, timestamp, date, or
 * numbers of unix seconds. */
extern bool pgformer_is_time_type(Oid type);

/* Datum of an integer type as int64. */
extern int64 pgformer_datum_int64(Datum value, Oid type);

/* Datum of a time type as unix seconds. */
extern int64 pgformer_datum_unix_seconds(Datum value, Oid type);

/* Whether a value of a time type is later than `at`. */
extern bool pgformer_datum_after(Datum value, Oid type, TimestampTz at);

/* A type's name for messages. */
extern const char *pgformer_type_name(Oid type);

/* Transaction end: no call holds a binding query any more. */
extern void pgformer_bindings_reset(void);

#endif							/* PGFORMER_BINDING_H */
