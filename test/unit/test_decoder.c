/*
 * test_decoder.c: the Llama-family decoder (models/decoder.c, through the
 * solo architecture) against the PyTorch reference of tools/models/llama.py:
 * full-sequence logits with and without an image for f32, bf16 and q8
 * weights and for Qwen2 settings (q/k/v biases, tied head, one KV head,
 * head_dim != d/H); prefill-then-decode and chunked prefill equal a full
 * recompute; bad inputs are errors.
 */
#include "test/unit/solo_golden.h"

#define LOGIT_TOL 1e-4

static double
max_diff(const float *a, const float *b, size_t n)
{
	return tap_max_abs_diff(a, b, n);
}

/* Full logits of a reference case through pgf_solo_forward_logits. */
static void
check_logits(const PgfSoloModel *m, const char *tag, const char *ref_tag, const char *cs)
{
	int			n = REF_LEN("%s.%s.ids", ref_tag, cs);
	const int32_t *ids = REF_I32("%s.%s.ids", ref_tag, cs);
	const int32_t *pidx = REF_I32("%s.%s.pidx", ref_tag, cs);
	const float *want = REF_F32("%s.%s.logits", ref_tag, cs);
	const float *patches = REF_F32("%s.patches", ref_tag);
	const int32_t *grid = REF_I32("%s.grid", ref_tag);
	int			np = grid[0] * grid[1];
	int			V = m->dec.vocab_size;
	float	   *got = malloc(sizeof(float) * n * V);
	PgfArena	a;
	char		err[256];
	int			rc;

	arena_new(&a, pgf_solo_logits_arena_bytes(m, n, np));
	rc = pgf_solo_forward_logits(m, ids, pidx, n, patches, np, got, &a, err, sizeof(err));
	if (!tap_ok(rc == 0, "%s %s: forward runs", tag, cs))
		tap_diag("%s", err);
	{
		char		what[128];

		snprintf(what, sizeof(what), "%s %s: logits equal the PyTorch reference", tag, cs);
		tap_close(got, want, (size_t) n * V, LOGIT_TOL, what);
	}
	tap_ok(a.high_water <= a.size, "%s %s: the arena size suffices (%zu of %zu bytes)", tag, cs,
		   a.high_water, a.size);
	arena_free(&a);
	free(got);
}

/*
 * Prefill the first `split` rows (image included), then one decode step per
 * remaining token: each step's logits must equal the reference row.
 */
static void
check_prefill_decode(const PgfSoloModel *m, const char *tag, const char *cs, int split, int chunk)
{
	int			n = REF_LEN("%s.%s.ids", tag, cs);
	const int32_t *ids = REF_I32("%s.%s.ids", tag, cs);
	const int32_t *pidx = REF_I32("%s.%s.pidx", tag, cs);
	const float *want = REF_F32("%s.%s.logits", tag, cs);
	const float *patches = REF_F32("%s.patches", tag);
	const int32_t *grid = REF_I32("%s.grid", tag);
	int			V = m->dec.vocab_size,
				d = m->dec.d_model;
	float	   *full = malloc(sizeof(float) * n * V);
	float	   *step = malloc(sizeof(float) * n * V);
	float	   *x = malloc(sizeof(float) * n * d);
	PgfArena	a;
	PgfDecoderState st;
	char		err[256];
	int			ok = 1;
	double		worst_ref = 0,
				worst_full = 0;

	/* the full recompute, through the same code path */
	arena_new(&a, pgf_solo_logits_arena_bytes(m, n, grid[0] * grid[1]));
	pgf_solo_forward_logits(m, ids, pidx, n, patches, grid[0] * grid[1], full, &a, err, sizeof(err));
	arena_free(&a);

	/* embeddings of the prefix: the solo forward does the patch sums; here
	 * only text rows follow the split, so embed those by id */
	arena_new(&a, pgf_decoder_state_bytes(&m->dec, n, chunk) + pgf_solo_logits_arena_bytes(m, n, grid[0] * grid[1]));
	ok &= pgf_decoder_state_init(&st, &m->dec, n, chunk, &a, err, sizeof(err)) == 0;
	{
		/* prefix embedding with patches, computed by the model's own path:
		 * tok embedding + W_patch . patch */
		int			np = grid[0] * grid[1];
		float	   *proj = malloc(sizeof(float) * np * d);
		size_t		mark = pgf_arena_mark(&a);

		pgf_decoder_embed(&m->dec, ids, n, x, err, sizeof(err));
		pgf_linear(proj, patches, np, &m->patch_proj, NULL, &a);
		pgf_arena_reset(&a, mark);
		for (int i = 0; i < n; i++)
			if (pidx[i] >= 0)
				pgf_add(x + (size_t) i * d, proj + (size_t) pidx[i] * d, d);
		free(proj);
	}
	ok &= pgf_decoder_forward(&st, x, split, true, err, sizeof(err)) == 0;
	memcpy(step + (size_t) (split - 1) * V, st.logits, sizeof(float) * V);
	for (int i = split; i < n && ok; i++)
	{
		ok &= pidx[i] < 0;
		ok &= pgf_decoder_step(&st, ids[i], err, sizeof(err)) == 0;
		memcpy(step + (size_t) i * V, st.logits, sizeof(float) * V);
	}
	if (!tap_ok(ok && st.len == n, "%s %s: prefill %d rows (chunks of %d) then %d steps run",
				tag, cs, split, chunk, n - split))
		tap_diag("%s", err);
	for (int i = split - 1; i < n; i++)
	{
		double		r = max_diff(step + (size_t) i * V, want + (size_t) i * V, V);
		double		f = max_diff(step + (size_t) i * V, full + (size_t) i * V, V);

		worst_ref = r > worst_ref ? r : worst_ref;
		worst_full = f > worst_full ? f : worst_full;
	}
	tap_ok(worst_full <= 1e-5, "%s %s: decode steps equal the full recompute (max abs diff %.3g)",
		   tag, cs, worst_full);
	tap_ok(worst_ref <= LOGIT_TOL, "%s %s: decode steps equal the reference (max abs diff %.3g)",
		   tag, cs, worst_ref);
	arena_free(&a);
	free(full);
	free(step);
	free(x);
}

/* Forward and logits in chunks of 5 rows through an explicit state. */
static void
check_chunked_logits(const PgfSoloModel *m, const char *tag, const char *cs)
{
	int			n = REF_LEN("%s.%s.ids", tag, cs);
	const int32_t *ids = REF_I32("%s.%s.ids", tag, cs);
	const float *want = REF_F32("%s.%s.logits", tag, cs);
	int			V = m->dec.vocab_size;
	float	   *x = malloc(sizeof(float) * n * m->dec.d_model);
	float	   *got = malloc(sizeof(float) * n * V);
	PgfArena	a;
	PgfDecoderState st;
	char		err[256];
	char		what[128];

	arena_new(&a, pgf_decoder_state_bytes(&m->dec, n, 5));
	pgf_decoder_state_init(&st, &m->dec, n, 5, &a, err, sizeof(err));
	pgf_decoder_embed(&m->dec, ids, n, x, err, sizeof(err));
	pgf_decoder_forward(&st, x, n, false, err, sizeof(err));
	pgf_decoder_logits(&st, x, n, got);
	snprintf(what, sizeof(what), "%s %s: forward and logits in chunks of 5 rows equal the reference",
			 tag, cs);
	tap_close(got, want, (size_t) n * V, LOGIT_TOL, what);
	arena_free(&a);
	free(x);
	free(got);
}

static void
check_errors(const PgfSoloModel *m)
{
	PgfArena	a;
	PgfDecoderState st;
	char		err[256] = "";
	int32_t		bad[2] = {1, 100000};
	float	   *x = malloc(sizeof(float) * 4 * m->dec.d_model);

	tap_ok(pgf_decoder_embed(&m->dec, bad, 2, x, err, sizeof(err)) == -1 &&
		   strstr(err, "outside the vocabulary") != NULL,
		   "an id outside the vocabulary is an error (%s)", err);
	arena_new(&a, pgf_decoder_state_bytes(&m->dec, 3, 2));
	pgf_decoder_state_init(&st, &m->dec, 3, 2, &a, err, sizeof(err));
	pgf_decoder_embed(&m->dec, bad, 1, x, err, sizeof(err));
	pgf_decoder_embed(&m->dec, bad, 1, x + m->dec.d_model, err, sizeof(err));
	pgf_decoder_embed(&m->dec, bad, 1, x + 2 * m->dec.d_model, err, sizeof(err));
	pgf_decoder_embed(&m->dec, bad, 1, x + 3 * m->dec.d_model, err, sizeof(err));
	tap_ok(pgf_decoder_forward(&st, x, 4, true, err, sizeof(err)) == -1 &&
		   strstr(err, "positions") != NULL,
		   "running past the cache capacity is an error (%s)", err);
	tap_ok(pgf_decoder_forward(&st, x, 3, true, err, sizeof(err)) == 0 && st.len == 3,
		   "a sequence that fits runs");
	tap_ok(pgf_decoder_step(&st, 1, err, sizeof(err)) == -1, "a step on a full cache is an error");
	pgf_decoder_state_reset(&st);
	tap_ok(st.len == 0 && pgf_decoder_step(&st, 1, err, sizeof(err)) == 0,
		   "after a reset the state decodes again");
	arena_free(&a);
	free(x);
}

int
main(void)
{
	static const char *files[] = {"solo_a.pgf", "solo_a_bf16.pgf", "solo_a_q8.pgf", "solo_b.pgf"};
	static const char *tags[] = {"a", "a_bf16", "a_q8", "b"};
	PgfSoloModel *m = calloc(1, sizeof(PgfSoloModel));

	open_solo_ref();
	for (int f = 0; f < 4; f++)
	{
		LoadedFile lf;
		char		path[256];

		snprintf(path, sizeof(path), SOLO_GOLDEN_DIR "%s", files[f]);
		load_solo(&lf, m, path);
		check_logits(m, tags[f], tags[f], "img");
		check_logits(m, tags[f], tags[f], "txt");
		if (f == 0)
		{
			int			n_img = REF_LEN("a.img.ids");
			int			split = 0;

			/* split right after the image block */
			for (int i = 0; i < n_img; i++)
				if (REF_I32("a.img.ids")[i] == m->vision_close_id)
					split = i + 1;
			check_prefill_decode(m, "a", "img", split, 128);
			check_prefill_decode(m, "a", "txt", 1, 1);
			check_chunked_logits(m, "a", "txt");
			check_errors(m);
		}
		if (f == 3)
			check_prefill_decode(m, "b", "img", REF_LEN("b.img.ids") - 5, 3);
		unload_file(&lf);
	}
	{
		/* model b through a Hugging Face folder and tools/export/hf.py */
		LoadedFile	lf;

		load_solo(&lf, m, SOLO_GOLDEN_DIR "solo_b_hf.pgf");
		check_logits(m, "b_hf", "b", "txt");
		unload_file(&lf);
	}
	free(m);
	unload_file(&solo_ref);
	return tap_done_testing();
}
