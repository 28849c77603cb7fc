/*
 * unifork.c: the SQL surface of UniFork image generation:
 *
 *   generate_image(model, prompt, seed, cfg, temperature, top_k, top_p)   a PNG
 *   image_codes(model, image)                     the residual codes of an image
 *
 * The prompt goes into the model's image template; the image is drawn
 * position by position under classifier-free guidance (models/unifork.c),
 * decoded to pixels and written as PNG by libpng.  Generation checks for
 * interrupts at every image position.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "extension/cache.h"
#include "extension/common.h"
#include "extension/progress.h"
#include "extension/vlm.h"
#include "models/image.h"
#include "models/unifork.h"

/* A real argument: NULL gives dflt; NaN, infinities and values below lo
 * (or at lo when lo_open) are an error naming the argument. */
static float
real_arg(FunctionCallInfo fcinfo, int argno, const char *what, float dflt, float lo, bool lo_open)
{
	float		v;

	if (PG_ARGISNULL(argno))
		return dflt;
	v = PG_GETARG_FLOAT4(argno);
	if (!isfinite(v) || v < lo || (lo_open && v == lo))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number %s %g, %s was given", what, lo_open ? "above" : "of at least",
						lo, pgformer_float_text(v))));
	return v;
}

/* pgformer_progress counts a generation's image positions */
static void
position_progress(void *arg, int done)
{
	pgformer_progress_update(done);
}

/* text (server encoding) as UTF-8 ids of the model's image template */
static int32_t *
prompt_ids(const PgfUniforkModel *m, const char *text, size_t len, int *n)
{
	int32_t    *ids = palloc(sizeof(int32_t) * (pgf_unifork_prompt_bound(m, len) + 1));
	PgfArena   *scratch = pgformer_arena_acquire(pgf_tokenizer_encode_scratch_bytes(len + strlen(m->gen_template)));

	*n = pgf_unifork_prompt(m, text, len, ids, scratch);
	pgformer_arena_release(scratch);
	return ids;
}

/*
 * generate_image(model, prompt, seed, cfg, temperature, top_k, top_p):
 * a PNG of side x side pixels.  cfg >= 0 (NULL: the model's default);
 * temperature > 0; top_k > 0 or NULL (no cut); top_p in (0, 1] or NULL
 * (no cut); a seed makes the image reproducible, without one each call
 * differs.
 */
PG_FUNCTION_INFO_V1(pgformer_generate_image);
Datum
pgformer_generate_image(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	float		temperature = real_arg(fcinfo, 4, "temperature", 1.0f, 0.0f, true);
	float		top_p = real_arg(fcinfo, 6, "top_p", 1.0f, 0.0f, true);
	PgfSampling sampling;
	PgfMapped  *mapped;
	const PgfUniforkModel *m;
	text	   *prompt;
	char	   *utf8;
	int			len,
				n_cond,
				n_uncond,
				side;
	int32_t    *cond,
			   *uncond,
			   *codes;
	float	   *pixels,
				cfg;
	PgfArena   *arena;
	PgfImage	img;
	PgfUniforkProgress progress = {position_progress, NULL};
	uint8_t    *png;
	size_t		png_len;
	bytea	   *out;
	char		err[512];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the prompt of generate_image must not be NULL")));
	prompt = PG_GETARG_TEXT_PP(1);
	if (VARSIZE_ANY_EXHDR(prompt) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the prompt of generate_image is empty")));
	if (top_p > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_p must be in (0, 1], %g was given", top_p)));
	if (!PG_ARGISNULL(5) && PG_GETARG_INT32(5) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_k must be positive (or NULL for no cut), %d was given", PG_GETARG_INT32(5))));
	mapped = pgformer_acquire(name, "unifork");
	m = mapped->bound;
	cfg = real_arg(fcinfo, 3, "cfg", m->cfg_scale, 0.0f, false);

	memset(&sampling, 0, sizeof(sampling));
	sampling.temperature = temperature;
	sampling.top_p = top_p;
	sampling.top_k = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5);
	sampling.seed = PG_ARGISNULL(2) ? pg_prng_uint64(&pg_global_prng_state) : (uint64) PG_GETARG_INT64(2);

	/* the model reads UTF-8 whatever the database encoding */
	len = VARSIZE_ANY_EXHDR(prompt);
	utf8 = pg_server_to_any(VARDATA_ANY(prompt), len, PG_UTF8);
	if (utf8 != VARDATA_ANY(prompt))
		len = strlen(utf8);
	cond = prompt_ids(m, utf8, len, &n_cond);
	uncond = prompt_ids(m, m->uncond_prompt, strlen(m->uncond_prompt), &n_uncond);

	side = pgf_unifork_image_side(m);
	codes = palloc(sizeof(int32_t) * m->grid * m->grid * m->rq_depth);
	pixels = palloc_extended(sizeof(float) * side * side * 3, MCXT_ALLOC_HUGE);
	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_unifork_generate_bytes(m, n_cond, n_uncond));
	pgformer_progress_start("generate_image", mapped->name, m->grid * m->grid);
	if (pgf_unifork_generate(m, cond, n_cond, uncond, n_uncond, cfg, &sampling, codes, pixels,
							 &progress, arena, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("generate_image: %s", err)));
	pgformer_progress_end();
	pgformer_arena_release(arena);

	img.width = side;
	img.height = side;
	img.channels = 3;
	img.pixels = palloc_extended((size_t) side * side * 3, MCXT_ALLOC_HUGE);
	pgf_pixels_to_rgb(img.pixels, pixels, (size_t) side * side);
	if (pgf_png_encode(&img, &pgformer_image_allocator, &png, &png_len, err, sizeof(err)) != PGF_IMAGE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("%s", err)));
	out = palloc(VARHDRSZ + png_len);
	SET_VARSIZE(out, VARHDRSZ + png_len);
	memcpy(VARDATA(out), png, png_len);
	pgformer_release(mapped, pgformer_elapsed_us(start));
	PG_RETURN_BYTEA_P(out);
}

/*
 * image_codes(model, image): the image (PNG or JPEG) resized to the model's
 * image side (PIL's bilinear), in [-1, 1], through the image encoder and
 * the quantiser: int[] of tokens x depth codes, position-major (position
 * p's codes at p * depth + 1 .. p * depth + depth).
 */
PG_FUNCTION_INFO_V1(pgformer_image_codes);
Datum
pgformer_image_codes(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *name = pgformer_text_arg(fcinfo, 0, "model name");
	static const float mean[3] = {0.5f, 0.5f, 0.5f},
				std[3] = {0.5f, 0.5f, 0.5f};
	PgfMapped  *mapped;
	const PgfUniforkModel *m;
	bytea	   *image;
	PgfImage	decoded,
				sized;
	PgfImageStatus status;
	PgfArena   *arena;
	float	   *patches;
	int32_t    *codes;
	Datum	   *values;
	int			n;
	char		err[512];

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	image = PG_GETARG_BYTEA_PP(1);
	mapped = pgformer_acquire(name, "unifork");
	m = mapped->bound;
	if (!m->has_encoder)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" has no image encoder: it draws images but does not read them", name)));
	status = pgf_image_decode(VARDATA_ANY(image), VARSIZE_ANY_EXHDR(image), 3, (uint64_t) pgformer_max_image_pixels,
							  &pgformer_image_allocator, &decoded, err, sizeof(err));
	if (status != PGF_IMAGE_OK)
		pgformer_report_image_error(status, err);
	status = pgf_image_resize(&decoded, m->image_side, m->image_side, &pgformer_image_allocator, &sized,
							  err, sizeof(err));
	if (status != PGF_IMAGE_OK)
		pgformer_report_image_error(status, err);
	pgf_image_release(&decoded, &pgformer_image_allocator);
	patches = palloc(sizeof(float) * pgf_image_patch_floats(m->image_side, m->image_side, 3, m->enc_patch));
	pgf_image_patchify(&sized, m->enc_patch, mean, std, patches);
	pgf_image_release(&sized, &pgformer_image_allocator);

	n = m->enc_tokens * m->rq_depth;
	codes = palloc(sizeof(int32_t) * n);
	pgformer_prepare_kernels();
	arena = pgformer_arena_acquire(pgf_unifork_image_codes_bytes(m));
	pgf_unifork_image_codes(m, patches, codes, arena);
	pgformer_arena_release(arena);
	values = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		values[i] = Int32GetDatum(codes[i]);
	pgformer_release(mapped, pgformer_elapsed_us(start));
	PG_RETURN_ARRAYTYPE_P(construct_array_builtin(values, n, INT4OID));
}
