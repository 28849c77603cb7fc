/*
 * binding.h: how a model finds its inputs.
 *
 * pgformer_bind(model, role, query) stores a query per (model name, role)
 * in pgformer_binding.  Each architecture's SQL module declares the roles
 * it reads (the parameter the query takes, the columns it must return) and
 * checks a query's result columns when it is bound, so a wrong query is an
 * error at bind time, naming the columns expected.  At call time a backend
 * prepares each bound query once and keeps the plan until the binding
 * changes.  Bound queries run with the caller's privileges.
 */
#ifndef PGFORMER_BINDING_H
#define PGFORMER_BINDING_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/spi.h"

#include "extension/pgformer.h"

typedef struct PgfBindingRole
{
	const char *architecture;
	const char *role;
	Oid			param_type;		/* type of $1, InvalidOid: no parameter */
	const char *param_doc;		/* "the user id", for messages */
	/* raises an error naming the expected columns when desc does not fit */
	void		(*check_columns) (PgfMapped *m, const char *role, TupleDesc desc);
} PgfBindingRole;

/* Called from _PG_init by each architecture's SQL module. */
extern void pgformer_register_binding_role(const PgfBindingRole *role);

/*
 * The prepared plan of model m's binding for role (kept across calls), and
 * its result descriptor.  An unbound role is an error that says how to bind
 * it.
 */
extern SPIPlanPtr pgformer_binding_plan(PgfMapped *m, const char *role,
										TupleDesc *desc);

/* Whether model m has a binding for role (without preparing it). */
extern bool pgformer_binding_exists(PgfMapped *m, const char *role);

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

/* A type's name for messages. */
extern const char *pgformer_type_name(Oid type);

#endif							/* PGFORMER_BINDING_H */
