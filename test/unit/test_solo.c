/*
 * test_solo.c: the SOLO generation driver (models/solo.c) and sampling
 * (models/sampling.c).
 *
 * Against tools/models/llama.py (PyTorch): template prompts with the image block,
 * greedy caption / answer / text generation and their decoded text,
 * image_embedding().  Sampling: a seed reproduces its tokens, top-k 1 is
 * greedy, draws follow the softmax, top-k and top-p cut where they should,
 * suppressed ranges and stop tokens hold.  Bad requests are errors, the
 * advertised arena always suffices, interrupts are checked.  With the
 * files of `make unit-smollm2`, SmolLM2-135M's greedy tokens must equal
 * the PyTorch reference's.
 */
#include <float.h>
#include <math.h>

#include "test/unit/solo_golden.h"

static int	interrupt_calls;

static void
count_interrupts(void)
{
	interrupt_calls++;
}

static const char *task_names[] = {"caption", "answer", "text"};

static PgfSoloImage
ref_image(const char *tag)
{
	PgfSoloImage im;

	im.patches = REF_F32("%s.patches", tag);
	im.n_h = REF_I32("%s.grid", tag)[0];
	im.n_w = REF_I32("%s.grid", tag)[1];
	return im;
}

static void
set_text(PgfSoloRequest *req, PgfSoloTask task)
{
	req->text = task == PGF_SOLO_ANSWER ? "What is this?" :
		task == PGF_SOLO_TEXT ? "Once upon a time" : NULL;
	req->text_len = req->text ? strlen(req->text) : 0;
}

/* Runs a request in an arena of exactly the advertised size. */
static int
run(const PgfSoloModel *m, const PgfSoloRequest *req, PgfSoloResult *res, PgfArena *a,
	bool *arena_ok, char *err, size_t errlen)
{
	int			rc;

	arena_new(a, pgf_solo_generate_arena_bytes(m, req));
	rc = pgf_solo_generate(m, req, a, res, err, errlen);
	if (arena_ok)
		*arena_ok &= a->high_water <= a->size;
	return rc;
}

static void
check_generation(const PgfSoloModel *m, const char *tag)
{
	PgfSoloImage im = ref_image(tag);

	for (int task = 0; task < 3; task++)
	{
		PgfSoloRequest req;
		PgfSoloResult res;
		PgfArena	a;
		char		err[256] = "";
		bool		arena_ok = true;
		int32_t    *ids;
		int32_t    *pidx;
		int			bound,
					n;
		int			tlen = REF_LEN("%s.gen.%s.text", tag, task_names[task]);
		const int32_t *tbytes = REF_I32("%s.gen.%s.text", tag, task_names[task]);
		bool		text_ok;

		memset(&req, 0, sizeof(req));
		req.task = (PgfSoloTask) task;
		req.image = &im;
		set_text(&req, req.task);

		/* the prompt alone */
		bound = pgf_solo_prompt_bound(m, req.task, task == 2 ? NULL : &im, req.text_len);
		ids = malloc(sizeof(int32_t) * bound);
		pidx = malloc(sizeof(int32_t) * bound);
		arena_new(&a, pgf_tokenizer_encode_scratch_bytes(256));
		n = pgf_solo_build_prompt(m, req.task, task == 2 ? NULL : &im, req.text, req.text_len,
								  ids, pidx, &a, err, sizeof(err));
		arena_free(&a);
		tap_ok(n > 0 && n <= bound &&
			   ids_equal(ids, n, REF_I32("%s.gen.%s.prompt", tag, task_names[task]),
						 REF_LEN("%s.gen.%s.prompt", tag, task_names[task])),
			   "%s %s: the template prompt equals the reference (%d tokens)", tag,
			   task_names[task], n);
		free(ids);
		free(pidx);

		/* greedy generation */
		interrupt_calls = 0;
		if (!tap_ok(run(m, &req, &res, &a, &arena_ok, err, sizeof(err)) == 0,
					"%s %s: generation runs", tag, task_names[task]))
			tap_diag("%s", err);
		tap_ok(ids_equal(res.tokens, res.n_tokens,
						 REF_I32("%s.gen.%s.tokens", tag, task_names[task]),
						 REF_LEN("%s.gen.%s.tokens", tag, task_names[task])),
			   "%s %s: greedy tokens equal the PyTorch reference (%d tokens, %s)", tag,
			   task_names[task], res.n_tokens, res.stopped ? "stopped" : "length");
		text_ok = res.text_len == (size_t) tlen && strlen(res.text) == res.text_len;
		for (int i = 0; text_ok && i < tlen; i++)
			text_ok = (unsigned char) res.text[i] == tbytes[i];
		tap_ok(text_ok, "%s %s: the decoded text equals the reference", tag, task_names[task]);
		tap_ok(arena_ok && interrupt_calls >= res.n_tokens,
			   "%s %s: arena within its advertised size (%zu of %zu), %d interrupt checks",
			   tag, task_names[task], a.high_water, a.size, interrupt_calls);
		arena_free(&a);
	}
}

static void
check_embedding(const PgfSoloModel *m, const char *tag)
{
	PgfSoloImage im = ref_image(tag);
	float	   *out = malloc(sizeof(float) * m->dec.d_model);
	PgfArena	a;
	char		err[256];
	char		what[128];

	arena_new(&a, pgf_solo_embedding_arena_bytes(m, &im));
	tap_ok(pgf_solo_image_embedding(m, &im, out, &a, err, sizeof(err)) == 0 &&
		   a.high_water <= a.size, "%s: image_embedding runs within its arena", tag);
	snprintf(what, sizeof(what), "%s: image_embedding equals the reference", tag);
	tap_close(out, REF_F32("%s.embed", tag), m->dec.d_model, 1e-4, what);
	arena_free(&a);
	free(out);
}

static void
check_sampled_generation(const PgfSoloModel *m)
{
	PgfSoloImage im = ref_image("a");
	PgfSoloRequest req;
	PgfSoloResult r1,
				r2,
				r3;
	PgfArena	a1,
				a2,
				a3;
	char		err[256];
	bool		differs = false;

	memset(&req, 0, sizeof(req));
	req.task = PGF_SOLO_ANSWER;
	req.image = &im;
	set_text(&req, req.task);
	req.max_new_tokens = 24;
	req.sampling.temperature = 1.5f;
	req.sampling.top_p = 0.95f;
	req.sampling.seed = 42;
	run(m, &req, &r1, &a1, NULL, err, sizeof(err));
	run(m, &req, &r2, &a2, NULL, err, sizeof(err));
	tap_ok(r1.n_tokens > 0 && ids_equal(r1.tokens, r1.n_tokens, r2.tokens, r2.n_tokens),
		   "sampling with a seed reproduces its %d tokens", r1.n_tokens);
	for (uint64_t seed = 1; seed < 6 && !differs; seed++)
	{
		req.sampling.seed = seed;
		run(m, &req, &r3, &a3, NULL, err, sizeof(err));
		differs = r3.n_tokens != r1.n_tokens ||
			memcmp(r3.tokens, r1.tokens, sizeof(int32_t) * r1.n_tokens) != 0;
		arena_free(&a3);
	}
	tap_ok(differs, "another seed gives other tokens");
	arena_free(&a1);
	arena_free(&a2);

	/* top-k 1 is greedy, whatever the temperature */
	req.max_new_tokens = 0;
	req.sampling.top_k = 1;
	req.sampling.top_p = 0;
	req.sampling.temperature = 3.0f;
	run(m, &req, &r1, &a1, NULL, err, sizeof(err));
	tap_ok(ids_equal(r1.tokens, r1.n_tokens, REF_I32("a.gen.answer.tokens"),
					 REF_LEN("a.gen.answer.tokens")), "top-k 1 sampling equals greedy");
	arena_free(&a1);

	/* suppressing every id but one forces it; a stop id ends generation */
	memset(&req.sampling, 0, sizeof(req.sampling));
	req.n_suppress = 2;
	req.suppress[0] = (PgfTokenRange) {0, 'z'};
	req.suppress[1] = (PgfTokenRange) {'z' + 1, 100000};
	req.max_new_tokens = 5;
	run(m, &req, &r1, &a1, NULL, err, sizeof(err));
	tap_ok(r1.n_tokens == 5 && !r1.stopped && strcmp(r1.text, "zzzzz") == 0,
		   "suppressed ranges leave only the allowed id (\"%s\")", r1.text);
	arena_free(&a1);
	req.suppress[0] = (PgfTokenRange) {0, 257};
	req.suppress[1] = (PgfTokenRange) {258, 100000};
	run(m, &req, &r1, &a1, NULL, err, sizeof(err));
	tap_ok(r1.n_tokens == 0 && r1.stopped && r1.text_len == 0,
		   "a stop token ends generation at once");
	arena_free(&a1);
}

/* Draws from fixed logits: frequencies follow the cut, renormalised softmax. */
static void
check_sampler_distribution(void)
{
	const float base[6] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -INFINITY};
	const int	draws = 40000;
	struct
	{
		float		temperature;
		int			top_k;
		float		top_p;
		const char *what;
	}			cases[] = {
		{1.0f, 0, 0, "temperature 1"},
		{0.5f, 0, 0, "temperature 0.5"},
		{1.0f, 2, 0, "top-k 2"},
		{1.0f, 0, 0.8f, "top-p 0.8"},
		{2.0f, 4, 0.9f, "temperature 2, top-k 4, top-p 0.9"},
	};
	PgfArena	a;

	arena_new(&a, pgf_sample_scratch_bytes(6));
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		PgfSampling s = {cases[c].temperature, cases[c].top_k, cases[c].top_p, 7};
		PgfRng		rng;
		double		p[6],
					z = 0,
					kept = 0,
					worst = 0;
		int			counts[6] = {0};
		int			limit = s.top_k > 0 ? s.top_k : 6;

		/* the expected distribution, computed independently: base is sorted
		 * descending, so top-k keeps the first ids; top-p keeps an id while
		 * the mass before it is below top_p */
		for (int i = 0; i < 6; i++)
			p[i] = i < limit ? exp(base[i] / s.temperature) : 0;
		for (int i = 0; i < 6; i++)
			z += p[i];
		for (int i = 0; i < 6; i++)
		{
			double		q = p[i] / z;

			p[i] = (s.top_p > 0 && kept >= s.top_p) ? 0 : q;
			kept += q;
		}
		z = 0;
		for (int i = 0; i < 6; i++)
			z += p[i];
		pgf_rng_seed(&rng, s.seed);
		for (int d = 0; d < draws; d++)
		{
			float		l[6];
			int			t;

			memcpy(l, base, sizeof(l));
			t = pgf_sample_token(&s, &rng, l, 6, &a);
			if (t >= 0 && t < 6)
				counts[t]++;
		}
		for (int i = 0; i < 6; i++)
		{
			double		diff = fabs((double) counts[i] / draws - p[i] / z);

			if (diff > worst)
				worst = diff;
			if (p[i] == 0 && counts[i] != 0)
				worst = 1;
		}
		tap_ok(worst < 0.01, "sampling with %s follows the expected distribution (worst gap %.4f)",
			   cases[c].what, worst);
	}
	tap_ok(a.high_water <= a.size, "the sampler stays within its scratch");
	arena_free(&a);
	{
		float		l[4] = {NAN, -INFINITY, 3.0f, 3.0f};
		float		none[2] = {-INFINITY, NAN};

		tap_ok(pgf_argmax(l, 4) == 2 && pgf_argmax(none, 2) == -1,
			   "argmax skips NaN, takes the lowest id on ties, and reports all -inf");
	}
}

static void
check_errors(const PgfSoloModel *m)
{
	PgfSoloImage im = ref_image("a");
	PgfSoloImage big = im;
	PgfSoloRequest req;
	PgfSoloResult res;
	PgfArena	a;
	char		err[256] = "";

	memset(&req, 0, sizeof(req));
	req.task = PGF_SOLO_CAPTION;
	tap_ok(run(m, &req, &res, &a, NULL, err, sizeof(err)) == -1 && strstr(err, "image") != NULL,
		   "a caption without an image is an error (%s)", err);
	arena_free(&a);
	big.n_w = 5;
	req.image = &big;
	tap_ok(run(m, &req, &res, &a, NULL, err, sizeof(err)) == -1 && strstr(err, "exceeds") != NULL,
		   "an image wider than the model's largest side is an error (%s)", err);
	arena_free(&a);
	req.image = &im;
	req.task = (PgfSoloTask) 7;
	arena_new(&a, 1 << 20);
	tap_ok(pgf_solo_generate(m, &req, &a, &res, err, sizeof(err)) == -1,
		   "an unknown task is an error (%s)", err);
	arena_free(&a);
	req.task = PGF_SOLO_TEXT;
	req.text = NULL;
	req.text_len = 0;
	req.max_new_tokens = 3;
	{
		int			rc = run(m, &req, &res, &a, NULL, err, sizeof(err));

		tap_ok(rc == 0 && res.n_prompt == 1,
			   "an empty prompt still runs the template (<s> + nothing = %d token)", res.n_prompt);
	}
	arena_free(&a);
}

/* A demo model: greedy answers and captions of Fashion-MNIST test images
 * equal PyTorch's (patches from the reference, as PIL makes them). */
static void
check_demo(const char *path, const char *prefix)
{
	LoadedFile	lf;
	PgfSoloModel *m;
	char		count[64];
	int			n,
				matched = 0;

	snprintf(count, sizeof(count), "%s.count", prefix);
	n = pgf_find(&solo_ref.file, count) ? REF_I32("%s", count)[0] : 0;
	if (n == 0 || !load_file(&lf, path, true))
	{
		tap_skip("demo model %s: no model file or no Fashion-MNIST", path);
		return;
	}
	unload_file(&lf);
	m = calloc(1, sizeof(PgfSoloModel));
	load_solo(&lf, m, path);
	for (int i = 0; i < n; i++)
	{
		PgfSoloImage im;
		bool		ok = true;

		im.patches = REF_F32("%s.%d.patches", prefix, i);
		im.n_h = REF_I32("%s.grid", prefix)[0];
		im.n_w = REF_I32("%s.grid", prefix)[1];
		for (int task = 0; task < 2; task++)
		{
			PgfSoloRequest req;
			PgfSoloResult res;
			PgfArena	a;
			char		err[256];
			const char *what = task == 0 ? "caption" : "answer";

			memset(&req, 0, sizeof(req));
			req.task = (PgfSoloTask) task;
			req.image = &im;
			req.text = "What is this?";
			req.text_len = strlen(req.text);
			req.max_new_tokens = task == 0 ? 56 : 16;
			ok &= run(m, &req, &res, &a, NULL, err, sizeof(err)) == 0 &&
				ids_equal(res.tokens, res.n_tokens, REF_I32("%s.%d.%s", prefix, i, what),
						  REF_LEN("%s.%d.%s", prefix, i, what));
			arena_free(&a);
		}
		matched += ok;
	}
	tap_ok(matched == n, "demo model %s: greedy answers and captions equal PyTorch's on %d of %d test images",
		   path, matched, n);
	unload_file(&lf);
	free(m);
}

/*
 * generate_text's edges on the demo model, as test/sql/32_generate_edges.sql
 * runs them: a tiny temperature, a tiny top_p and top_k 1 give the greedy
 * tokens; top_k past the vocabulary samples as top_k 0 does.
 */
static void
check_text_edges(const char *path)
{
	LoadedFile	lf;
	PgfSoloModel *m = calloc(1, sizeof(PgfSoloModel));
	PgfSoloRequest req;
	PgfSoloResult greedy,
				r;
	PgfArena	ag,
				a;
	char		err[256] = "";
	const PgfSampling edges[] = {
		{1e-30f, 0, 1, 0}, {1e-30f, 0, 1, 7}, {1, 0, 1e-30f, 7}, {1, 1, 1, 7},
		{FLT_TRUE_MIN, 50, 0.5f, 7},
	};
	bool		same = true,
				ok;

	load_solo(&lf, m, path);
	memset(&req, 0, sizeof(req));
	req.task = PGF_SOLO_TEXT;
	req.text = "Q: ";
	req.text_len = strlen(req.text);
	req.max_new_tokens = 10;
	ok = run(m, &req, &greedy, &ag, NULL, err, sizeof(err)) == 0 && greedy.n_tokens > 0;
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
	{
		req.sampling = edges[i];
		same &= run(m, &req, &r, &a, NULL, err, sizeof(err)) == 0 &&
			strcmp(r.text, greedy.text) == 0 &&
			ids_equal(r.tokens, r.n_tokens, greedy.tokens, greedy.n_tokens);
		arena_free(&a);
	}
	tap_ok(ok && same, "%s: tiny temperatures, a tiny top_p and top_k 1 generate the greedy \"%s\"",
		   path, ok ? greedy.text : err);
	{
		PgfSoloResult r2;
		PgfArena	a2;

		req.sampling = (PgfSampling) {1, 0, 1, 7};
		ok = run(m, &req, &r, &a, NULL, err, sizeof(err)) == 0;
		req.sampling.top_k = 100000;
		ok &= run(m, &req, &r2, &a2, NULL, err, sizeof(err)) == 0;
		tap_ok(ok && ids_equal(r.tokens, r.n_tokens, r2.tokens, r2.n_tokens),
			   "%s: top_k 100000 samples as top_k 0 does (\"%s\")", path, ok ? r2.text : err);
		arena_free(&a);
		arena_free(&a2);
	}
	arena_free(&ag);
	unload_file(&lf);
	free(m);
}

/* The context limit: generation is cut to fit, a prompt that cannot fit
 * and an oversized text are errors, and the arena bound stays exact. */
static void
check_context(PgfSoloModel *m)
{
	PgfSoloImage im = ref_image("a");
	PgfSoloRequest req;
	PgfSoloResult res;
	PgfArena	a;
	char		err[256] = "";
	bool		arena_ok = true;
	int			saved = m->dec.max_positions;
	char	   *big = calloc(1, PGF_SOLO_MAX_TEXT_BYTES + 2);

	memset(&req, 0, sizeof(req));
	req.task = PGF_SOLO_ANSWER;
	req.image = &im;
	set_text(&req, req.task);
	m->dec.max_positions = 33;	/* the prompt has 29 tokens */
	{
		int			rc = run(m, &req, &res, &a, &arena_ok, err, sizeof(err));

		tap_ok(rc == 0 && res.n_tokens <= 4 && arena_ok,
			   "generation stops at the context limit (%d new tokens, arena %zu of %zu)",
			   res.n_tokens, a.high_water, a.size);
	}
	arena_free(&a);
	m->dec.max_positions = 20;
	tap_ok(run(m, &req, &res, &a, NULL, err, sizeof(err)) == -1 && strstr(err, "at most 19") != NULL,
		   "a prompt longer than the context is an error (%s)", err);
	arena_free(&a);
	m->dec.max_positions = saved;
	memset(big, 'a', PGF_SOLO_MAX_TEXT_BYTES + 1);
	req.text = big;
	req.text_len = PGF_SOLO_MAX_TEXT_BYTES + 1;
	tap_ok(run(m, &req, &res, &a, NULL, err, sizeof(err)) == -1 && strstr(err, "bytes") != NULL &&
		   a.size < (1 << 20), "an oversized question is an error, with a small arena (%s)", err);
	arena_free(&a);
	free(big);
}

/*
 * SmolLM2-135M-Instruct, when `make unit-smollm2` has made its files: greedy
 * tokens equal the PyTorch reference's on the same weights, for the f32
 * file and for the q8 file (reference: the q8 weights dequantised).
 */
static void
check_smollm2(void)
{
	static const char *dtypes[] = {"f32", "q8"};
	LoadedFile	ref_file,
				saved = solo_ref;

	if (!load_file(&ref_file, SOLO_GOLDEN_DIR "smollm2/gen_ref.pgf", true))
	{
		for (int f = 0; f < 2; f++)
			tap_skip("SmolLM2 %s greedy tokens: no test/unit/golden/smollm2 (make unit-smollm2)",
					 dtypes[f]);
		tap_skip("SOLO on SmolLM2: no test/unit/golden/smollm2 (make unit-smollm2)");
		return;
	}
	solo_ref = ref_file;
	check_demo(SOLO_GOLDEN_DIR "smollm2/solo_smollm2_q8.pgf", "solo");
	for (int f = 0; f < 2; f++)
	{
		LoadedFile	lf;
		PgfSoloModel *m = calloc(1, sizeof(PgfSoloModel));
		char		path[256];
		int			n_prompts = REF_I32("count")[0];
		int			matched = 0,
					tokens = 0;

		snprintf(path, sizeof(path), SOLO_GOLDEN_DIR "smollm2/smollm2_%s.pgf", dtypes[f]);
		load_solo(&lf, m, path);
		for (int p = 0; p < n_prompts; p++)
		{
			int			len = REF_LEN("prompt.%d.text", p);
			const int32_t *bytes = REF_I32("prompt.%d.text", p);
			char	   *text = malloc(len + 1);
			PgfSoloRequest req;
			PgfSoloResult res;
			PgfArena	a;
			char		err[256];

			for (int j = 0; j < len; j++)
				text[j] = (char) bytes[j];
			memset(&req, 0, sizeof(req));
			req.task = PGF_SOLO_TEXT;
			req.text = text;
			req.text_len = len;
			req.max_new_tokens = REF_I32("max_new")[0];
			if (run(m, &req, &res, &a, NULL, err, sizeof(err)) != 0)
				tap_diag("prompt %d: %s", p, err);
			else
			{
				tokens += res.n_tokens;
				if (ids_equal(res.tokens, res.n_tokens,
							  REF_I32("%s.prompt.%d.tokens", dtypes[f], p),
							  REF_LEN("%s.prompt.%d.tokens", dtypes[f], p)))
					matched++;
				else
					tap_diag("prompt %d: \"%s\"", p, res.text);
			}
			arena_free(&a);
			free(text);
		}
		tap_ok(matched == n_prompts,
			   "SmolLM2 %s: greedy tokens equal PyTorch's on %d of %d prompts (%d tokens)",
			   dtypes[f], matched, n_prompts, tokens);
		unload_file(&lf);
		free(m);
	}
	solo_ref = saved;
	unload_file(&ref_file);
}

int
main(void)
{
	LoadedFile	fa,
				fb;
	PgfSoloModel *ma = calloc(1, sizeof(PgfSoloModel));
	PgfSoloModel *mb = calloc(1, sizeof(PgfSoloModel));

	pgf_interrupt_hook = count_interrupts;
	open_solo_ref();
	load_solo(&fa, ma, SOLO_GOLDEN_DIR "solo_a.pgf");
	load_solo(&fb, mb, SOLO_GOLDEN_DIR "solo_b.pgf");

	check_generation(ma, "a");
	check_generation(mb, "b");
	check_embedding(ma, "a");
	check_embedding(mb, "b");
	check_sampled_generation(ma);
	check_sampler_distribution();
	check_errors(ma);
	check_context(ma);
	check_demo("demo/models/solo_tiny.pgf", "demo");
	check_text_edges("demo/models/solo_tiny.pgf");
	check_smollm2();

	unload_file(&fa);
	unload_file(&fb);
	unload_file(&solo_ref);
	free(ma);
	free(mb);
	return tap_done_testing();
}
