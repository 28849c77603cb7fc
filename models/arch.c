/*
 * arch.c: the table of architectures and the dispatch to their bind
 * functions.
 */
#include "models/arch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/block_stack.h"
#include "models/fintrec.h"
#include "models/hiformer.h"
#include "models/solo.h"
#include "models/unifork.h"

static const PgfArch arches[] = {
	{"block_stack", PGFORMER__MODEL_HEADER__CONFIG_BLOCK_STACK,
	sizeof(PgfBlockStackModel), pgf_block_stack_bind},
	{"fintrec", PGFORMER__MODEL_HEADER__CONFIG_FINTREC, sizeof(PgfFintrecModel), pgf_fintrec_bind},
	{"hiformer", PGFORMER__MODEL_HEADER__CONFIG_HIFORMER, sizeof(PgfHiformerModel), pgf_hiformer_bind},
	{"solo", PGFORMER__MODEL_HEADER__CONFIG_SOLO, sizeof(PgfSoloModel), pgf_solo_bind},
	{"unifork", PGFORMER__MODEL_HEADER__CONFIG_UNIFORK, sizeof(PgfUniforkModel), pgf_unifork_bind},
};

const PgfArch *
pgf_arch_find(const char *name)
{
	for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++)
		if (strcmp(arches[i].name, name) == 0)
			return &arches[i];
	return NULL;
}

const char *
pgf_arch_names(void)
{
	static char names[256];

	if (names[0] == '\0')
	{
		size_t		used = 0;

		for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]) && used < sizeof(names); i++)
			used += snprintf(names + used, sizeof(names) - used, "%s%s",
							 i ? ", " : "", arches[i].name);
	}
	return names;
}

PgfStatus
pgf_model_bind(const PgfModel *file, void *model, char *err, size_t errlen)
{
	const char *name = file->header->architecture;
	const PgfArch *arch = pgf_arch_find(name);
	void	   *scratch = NULL;
	PgfStatus	status;

	if (arch == NULL)
	{
		snprintf(err, errlen, "unknown architecture \"%s\" (this build serves %s)",
				 name, pgf_arch_names());
		return PGF_ERR_CONFIG;
	}
	if ((int) file->header->config_case != arch->config_case)
	{
		snprintf(err, errlen, "architecture \"%s\" needs its own config in the header, which is missing",
				 name);
		return PGF_ERR_CONFIG;
	}
	if (model == NULL)
	{
		scratch = calloc(1, arch->model_size);
		if (scratch == NULL)
		{
			snprintf(err, errlen, "out of memory checking the model");
			return PGF_ERR_NOMEM;
		}
		model = scratch;
	}
	else
		memset(model, 0, arch->model_size);
	status = arch->bind(file, model, err, errlen);
	free(scratch);
	return status;
}
