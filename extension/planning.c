/*
 * planning.c: what the planner is told about the set-returning model
 * calls.  A support function (SupportRequestRows) turns constant arguments
 * into row counts, so that EXPLAIN and the plans above a call are right:
 *
 *   recommend(user, k, ...)              k rows
 *   recommend_from(model, items, ts, k)  k rows
 *   recommend_batch(users, k, ...)       users x k rows
 *   rank_items(model, user, items)       one row per candidate
 *
 * Arguments that are not constants keep the ROWS of the declaration.
 * SupportRequestCost prices the work the same way: a sequence pass per
 * user, a scoring pass per candidate (else the declared COST).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/nodeFuncs.h"
#include "nodes/supportnodes.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

/* Argument argno of a call as a non-null constant, or NULL. */
static Const *
constant_argument(FuncExpr *call, int argno)
{
	Node	   *arg;

	if (list_length(call->args) <= argno)
		return NULL;
	arg = (Node *) list_nth(call->args, argno);
	if (!IsA(arg, Const) || ((Const *) arg)->constisnull)
		return NULL;
	return (Const *) arg;
}

/* A constant int argument, or -1. */
static double
constant_int(FuncExpr *call, int argno)
{
	Const	   *c = constant_argument(call, argno);

	if (c == NULL || c->consttype != INT4OID)
		return -1;
	return (double) DatumGetInt32(c->constvalue);
}

/* The element count of a constant one-dimensional array argument, or -1. */
static double
constant_length(FuncExpr *call, int argno)
{
	Const	   *c = constant_argument(call, argno);
	ArrayType  *array;

	if (c == NULL || !type_is_array(c->consttype))
		return -1;
	array = DatumGetArrayTypeP(c->constvalue);
	return (double) ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
}

/*
 * Planner cost units of one user's sequence pass and of one candidate's
 * scoring: about 1 ms and 10 us on the demo models, at roughly 20 us a
 * unit (a sequential page read).
 */
#define USER_PASS_COST 50.0
#define CANDIDATE_COST 0.5

static Node *
estimate_cost(SupportRequestCost *req, FuncExpr *call, const char *name)
{
	double		units = -1;

	if (strcmp(name, "recommend") == 0 || strcmp(name, "recommend_from") == 0)
		units = USER_PASS_COST;
	else if (strcmp(name, "recommend_batch") == 0)
	{
		double		users = constant_length(call, 0);

		if (users >= 0)
			units = USER_PASS_COST * Max(users, 1);
	}
	else if (strcmp(name, "rank_items") == 0)
	{
		double		candidates = constant_length(call, 2);

		if (candidates >= 0)
			units = CANDIDATE_COST * Max(candidates, 1);
	}
	if (units < 0)
		return NULL;
	req->startup = units;
	req->per_tuple = 0;
	return (Node *) req;
}

PG_FUNCTION_INFO_V1(pgformer_rows_support);
Datum
pgformer_rows_support(PG_FUNCTION_ARGS)
{
	Node	   *raw = (Node *) PG_GETARG_POINTER(0);
	SupportRequestRows *req;
	FuncExpr   *call;
	char	   *name;
	double		rows = -1;

	if (IsA(raw, SupportRequestCost))
	{
		SupportRequestCost *cost = (SupportRequestCost *) raw;

		if (cost->node == NULL || !IsA(cost->node, FuncExpr) ||
			(name = get_func_name(cost->funcid)) == NULL)
			PG_RETURN_POINTER(NULL);
		PG_RETURN_POINTER(estimate_cost(cost, (FuncExpr *) cost->node, name));
	}
	if (!IsA(raw, SupportRequestRows))
		PG_RETURN_POINTER(NULL);
	req = (SupportRequestRows *) raw;
	if (req->node == NULL || !IsA(req->node, FuncExpr))
		PG_RETURN_POINTER(NULL);
	call = (FuncExpr *) req->node;
	name = get_func_name(req->funcid);
	if (name == NULL)
		PG_RETURN_POINTER(NULL);
	if (strcmp(name, "recommend") == 0)
		rows = constant_int(call, 1);
	else if (strcmp(name, "recommend_from") == 0)
		rows = constant_int(call, 3);
	else if (strcmp(name, "recommend_batch") == 0)
	{
		double		users = constant_length(call, 0);
		double		k = constant_int(call, 1);

		if (users >= 0 && k >= 0)
			rows = users * k;
	}
	else if (strcmp(name, "rank_items") == 0)
		rows = constant_length(call, 2);
	if (rows < 0)
		PG_RETURN_POINTER(NULL);
	req->rows = Max(rows, 1);
	PG_RETURN_POINTER(req);
}
