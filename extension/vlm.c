/*
 * vlm.c: the SQL surface of the SOLO vision-language model (and of any
 * "solo" model used as a plain text LLM):
 *
 *   caption(model, image, max_tokens)                  text about an image
 *   answer(model, image, question, max_tokens)         an answer about it
 *   generate_text(model, prompt, max_tokens, temperature, top_p, seed, top_k)
 *   image_embedding(model, image)                      real[] of d_model
 *
 * Images are PNG or JPEG bytes; their header is checked against
 * pgformer.max_image_pixels before anything is decoded.  Generation checks
 * for interrupts every token, so statement_timeout stops it within a step.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "extension/progress.h"
#include "extension/vlm.h"
#include "models/image.h"
#include "models/solo.h"

int			pgformer_max_image_pixels = (int) PGF_IMAGE_DEFAULT_MAX_PIXELS;

/* ---- images ---------------------------------------------------------------- */

static void *
image_alloc(void *context, size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
image_free(void *context, void *ptr)
{
	if (ptr)
		pfree(ptr);
}

const PgfImageAllocator pgformer_image_allocator = {image_alloc, image_free, NULL};

void
pgformer_report_image_error(PgfImageStatus status, const char *err)
{
	int			code;

	switch (status)
	{
		case PGF_IMAGE_ERR_TOO_LARGE:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case PGF_IMAGE_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case PGF_IMAGE_ERR_UNSUPPORTED:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		default:
			code = ERRCODE_INVALID_BINARY_REPRESENTATION;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", err),
			 status == PGF_IMAGE_ERR_TOO_LARGE ?
			 errhint("pgformer.max_image_pixels is %d.", pgformer_max_image_pixels) : 0));
}

/* Decodes and preprocesses image bytes into the model's patches. */
static void
image_patches(const PgfModel *file, const PgfSoloModel *m, bytea *image, PgfSoloImage *out)
{
	PgfImagePreprocess pp;
	PgfImagePlan plan;
	PgfImageStatus status;
	char		err[512];
	float	   *patches;

	if (m->patch_size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this model reads text only; it takes no image")));
	if (file->header->image)
		status = pgf_image_preprocess_from_config(file->header->image,
												  (uint64_t) pgformer_max_image_pixels,
												  &pp, err, sizeof(err));
	else
	{
		pgf_image_preprocess_init(&pp, m->patch_size,
								  m->max_image_side > 0 ? m->max_image_side : 1024);
		pp.max_pixels = (uint64_t) pgformer_max_image_pixels;
		status = pgf_image_preprocess_check(&pp, err, sizeof(err));
	}
	if (status != PGF_IMAGE_OK)
		pgformer_report_image_error(status, err);
	status = pgf_image_plan(VARDATA_ANY(image), VARSIZE_ANY_EXHDR(image), &pp, &plan,
							err, sizeof(err));
	if (status != PGF_IMAGE_OK)
		pgformer_report_image_error(status, err);
	patches = palloc_extended(sizeof(float) * Max(plan.n_floats, 1), MCXT_ALLOC_HUGE);
	status = pgf_image_to_patches(VARDATA_ANY(image), VARSIZE_ANY_EXHDR(image), &pp,
								  &pgformer_image_allocator, patches, plan.n_floats, &plan,
								  err, sizeof(err));
	if (status != PGF_IMAGE_OK)
		pgformer_report_image_error(status, err);
	out->patches = patches;
	out->n_h = plan.rows;
	out->n_w = plan.cols;
	if (pgf_solo_check_image(m, out, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err)));
}

/* ---- generation ------------------------------------------------------------- */

/* max_tokens: positive; a huge request is cut to what one call may generate */
static int
max_tokens_argument(FunctionCallInfo fcinfo, int argno)
{
	return Min(pgformer_positive_arg(fcinfo, argno, "max_tokens"), PGF_SOLO_MAX_NEW_TOKENS);
}

/* pgformer_progress counts a generation's tokens out of max_tokens */
static void
token_progress(void *arg, int n_tokens)
{
	pgformer_progress_update(n_tokens);
}

/* Runs req on m for function (its name in pgformer_progress). */
static text *
run_generation(const char *function, PgfMapped *m, PgfSoloRequest *req)
{
	const PgfSoloModel *model = m->bound;
	PgfArena   *arena;
	PgfSoloResult result;
	char		err[512];
	text	   *out;

	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_solo_generate_arena_bytes(model, req));
	pgformer_progress_start(function, m->name, req->max_new_tokens);
	req->on_token = token_progress;
	if (pgf_solo_generate(model, req, arena, &result, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err)));
	/* the model writes UTF-8; the database may use another encoding */
	out = cstring_to_text(pg_any_to_server(result.text, (int) result.text_len, PG_UTF8));
	pgformer_progress_end();
	pgformer_arena_release(arena);
	return out;
}

/*
 * The model reads UTF-8 whatever the database encoding.  When no
 * conversion is needed pg_server_to_any returns its input, which is not
 * NUL-terminated: keep the length we know then.
 */
static void
set_request_text(PgfSoloRequest *req, text *t)
{
	char	   *bytes = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);

	req->text = pg_server_to_any(bytes, len, PG_UTF8);
	req->text_len = req->text == bytes ? (size_t) len : strlen(req->text);
}

/* caption(model, image, max_tokens) and answer(model, image, question, max_tokens) */
static Datum
describe_image(FunctionCallInfo fcinfo, PgfSoloTask task)
{
	TimestampTz start = GetCurrentTimestamp();
	int			tokens_arg = task == PGF_SOLO_ANSWER ? 3 : 2;
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	int			max_tokens = max_tokens_argument(fcinfo, tokens_arg);
	PgfMapped  *m;
	PgfSoloImage image;
	PgfSoloRequest req;
	text	   *question = NULL;
	text	   *result;

	if (PG_ARGISNULL(1) || (task == PGF_SOLO_ANSWER && PG_ARGISNULL(2)))
		PG_RETURN_NULL();
	if (task == PGF_SOLO_ANSWER)
		question = PG_GETARG_TEXT_PP(2);
	m = pgformer_acquire(name, "solo");
	image_patches(&m->file, m->bound, PG_GETARG_BYTEA_PP(1), &image);
	memset(&req, 0, sizeof(req));
	req.task = task;
	req.image = &image;
	if (question)
		set_request_text(&req, question);
	req.max_new_tokens = max_tokens;
	result = run_generation(task == PGF_SOLO_ANSWER ? "answer" : "caption", m, &req);
	pgformer_release(m, pgformer_elapsed_us(start));
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(pgformer_caption);
Datum
pgformer_caption(PG_FUNCTION_ARGS)
{
	return describe_image(fcinfo, PGF_SOLO_CAPTION);
}

PG_FUNCTION_INFO_V1(pgformer_answer);
Datum
pgformer_answer(PG_FUNCTION_ARGS)
{
	return describe_image(fcinfo, PGF_SOLO_ANSWER);
}

const char *
pgformer_float_text(float v)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "Infinity" : "-Infinity";
	return psprintf("%g", v);
}

/*
 * generate_text(model, prompt, max_tokens, temperature, top_p, seed, top_k):
 * temperature 0 is greedy, and so is any temperature small enough that only
 * the top token keeps weight (the sampler decides); top_p in (0, 1], a tiny
 * one keeping the top token alone; top_k 0 for no cut, past the vocabulary
 * the same.  NaN and infinities are refused.
 */
PG_FUNCTION_INFO_V1(pgformer_generate_text);
Datum
pgformer_generate_text(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	int			max_tokens = max_tokens_argument(fcinfo, 2);
	float		temperature = PG_ARGISNULL(3) ? 0.0f : PG_GETARG_FLOAT4(3);
	float		top_p = PG_ARGISNULL(4) ? 1.0f : PG_GETARG_FLOAT4(4);
	int			top_k = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT32(6);
	text	   *prompt;
	PgfMapped  *m;
	PgfSoloRequest req;
	text	   *result;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (!isfinite(temperature))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("temperature must be a finite number, %s was given",
						pgformer_float_text(temperature))));
	if (temperature < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("temperature must be 0 (greedy) or positive, %g was given", temperature)));
	if (isnan(top_p) || top_p <= 0 || top_p > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_p must be in (0, 1], %s was given", pgformer_float_text(top_p))));
	if (top_k < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_k must be 0 (off) or positive, %d was given", top_k)));
	prompt = PG_GETARG_TEXT_PP(1);
	m = pgformer_acquire(name, "solo");
	memset(&req, 0, sizeof(req));
	req.task = PGF_SOLO_TEXT;
	set_request_text(&req, prompt);
	req.max_new_tokens = max_tokens;
	req.sampling.temperature = temperature;
	req.sampling.top_p = top_p;
	req.sampling.top_k = top_k;
	/* a seed makes sampling reproducible; without one each call differs */
	req.sampling.seed = PG_ARGISNULL(5) ? pg_prng_uint64(&pg_global_prng_state) :
		(uint64) PG_GETARG_INT64(5);
	result = run_generation("generate_text", m, &req);
	pgformer_release(m, pgformer_elapsed_us(start));
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(pgformer_image_embedding);
Datum
pgformer_image_embedding(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	PgfMapped  *m;
	const PgfSoloModel *model;
	PgfSoloImage image;
	PgfArena   *arena;
	float	   *vector;
	Datum	   *values;
	int			d;
	char		err[512];

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	m = pgformer_acquire(name, "solo");
	model = m->bound;
	image_patches(&m->file, model, PG_GETARG_BYTEA_PP(1), &image);
	d = model->dec.d_model;
	vector = palloc(sizeof(float) * d);
	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_solo_embedding_arena_bytes(model, &image));
	if (pgf_solo_image_embedding(model, &image, vector, arena, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err)));
	pgformer_arena_release(arena);
	values = palloc(sizeof(Datum) * d);
	for (int i = 0; i < d; i++)
		values[i] = Float4GetDatum(vector[i]);
	pgformer_release(m, pgformer_elapsed_us(start));
	PG_RETURN_ARRAYTYPE_P(construct_array_builtin(values, d, FLOAT4OID));
}
