/*
 * arch.h: the architectures this build can serve.
 *
 * Each architecture has a bind function that checks a validated file's
 * tensors against its config and fills the architecture's model struct
 * (views into the file, nothing copied).  The extension binds a model once
 * when it maps the file and keeps the bound struct for every call.
 * Adding an architecture: write models/<arch>.c with its bind function and
 * add one line to the table in arch.c.
 */
#ifndef PGF_ARCH_H
#define PGF_ARCH_H

#include "proto/pgf.h"

typedef struct PgfArch
{
	const char *name;			/* ModelHeader.architecture */
	int			config_case;	/* the ModelHeader config it needs */
	size_t		model_size;		/* bytes of the bound model struct */
	/* Checks the file and fills model (model_size bytes, zeroed). */
	PgfStatus	(*bind) (const PgfModel *file, void *model, char *err, size_t errlen);
} PgfArch;

/* The architecture called name, or NULL. */
const PgfArch *pgf_arch_find(const char *name);

/*
 * Finds the file's architecture, checks its config is the one the
 * architecture needs and binds into model (which must hold model_size
 * bytes of that architecture; pass NULL to only check, using a temporary).
 * PGF_ERR_CONFIG with a message naming the problem when anything disagrees.
 */
PgfStatus	pgf_model_bind(const PgfModel *file, void *model, char *err, size_t errlen);

/* Comma-separated names of every architecture, for error messages. */
const char *pgf_arch_names(void);

#endif							/* PGF_ARCH_H */
