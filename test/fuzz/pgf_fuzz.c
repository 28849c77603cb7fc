/*
 * pgf_fuzz.c: libFuzzer target for the model-file reader.
 *
 * Every input goes through pgf_open with the full data pass (checksum,
 * item table) and, when that accepts it, through the architecture binding,
 * exactly as pgformer_load does.  Built with clang -fsanitize=fuzzer,address
 * by test/fuzz/run.sh; any crash, overread or leak is a finding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "proto/pgf.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PgfModel	m;
	char		err[512];
	/* an exact-size copy, so that reading one byte too far is caught */
	uint8_t    *copy = malloc(size ? size : 1);

	memcpy(copy, data, size);
	if (pgf_open(&m, copy, size, PGF_VERIFY_DATA, NULL, err, sizeof(err)) == PGF_OK)
	{
		for (int i = 0; i < m.n_tensors; i++)
			(void) pgf_find(&m, m.tensors[i].name);
		(void) pgf_model_bind(&m, NULL, err, sizeof(err));
		pgf_close(&m);
	}
	free(copy);
	return 0;
}
