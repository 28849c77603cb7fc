/*
 * test_rq.c: residual quantisation (models/rq.c) against
 * tools/models/unifork.py (float64 PyTorch, written by
 * test/gen/golden_unifork.py): the quantiser's codes and sums over three
 * depths, the embedding of codes back into features, and the depth head:
 * its key/value-cached logits at every depth equal PyTorch's recomputed
 * ones within 1e-4 (relative) for a (cond, uncond) pair, greedy decoding
 * under classifier-free guidance picks PyTorch's codes, guidance scale 1
 * equals the cond row alone, a seed draws the same codes twice, and a
 * config that does not match the tensors is rejected naming what is wrong.
 */
#include "models/rq.h"
#include "test/unit/golden.h"
#include "test/unit/tap.h"

#define GOLDEN_PATH "test/unit/golden/unifork.pgf"

static GoldenFile golden;

static const void *
need(int dtype, long numel, const char *name)
{
	return golden_named(&golden, dtype, numel, name)->data;
}

static PgfMatrix
codebook_matrix(void)
{
	const PgfTensor *t = golden_named(&golden, PGF_DTYPE_F32, -1, "rq.codebook");

	return pgf_matrix_f32(t->data, (int) t->shape[0], (int) t->shape[1]);
}

static void
test_quantizer(void)
{
	PgfMatrix	cb = codebook_matrix();
	const PgfTensor *zt = golden_named(&golden, PGF_DTYPE_F32, -1, "rq.z");
	int			n = (int) zt->shape[0],
				e = cb.cols,
				depth = ((const int32_t *) need(PGF_DTYPE_I32, 1, "rq.dims"))[0];
	const int32_t *want = need(PGF_DTYPE_I32, (long) n * depth, "rq.codes");
	int32_t    *codes = malloc(sizeof(int32_t) * n * depth);
	float	   *zq = malloc(sizeof(float) * n * e),
			   *back = malloc(sizeof(float) * n * e);
	PgfArena	a = test_arena(pgf_rq_quantize_scratch_bytes(n, &cb));

	pgf_rq_quantize(codes, zq, zt->data, n, depth, &cb, &a);
	tap_ok(memcmp(codes, want, sizeof(int32_t) * n * depth) == 0,
		   "quantiser: %d vectors, depth %d, a %d-entry codebook: PyTorch's codes", n, depth, cb.rows);
	tap_ok(tap_rel_error(zq, need(PGF_DTYPE_F32, (long) n * e, "rq.zq"), (size_t) n * e) < 1e-6,
		   "quantiser: the sums of the chosen entries match");
	pgf_rq_embed(back, codes, n, depth, &cb, &a);
	tap_ok(tap_rel_error(back, zq, (size_t) n * e) < 1e-6, "embedding the codes gives the quantised features back");
	tap_ok(a.used == 0, "quantiser: the scratch is given back");
	test_arena_free(&a);
	free(codes);
	free(zq);
	free(back);
}

static PgfDepthHeadConfig
depth_config(void)
{
	const int32_t *d = need(PGF_DTYPE_I32, 6, "depth.dims");
	PgfDepthHeadConfig c = {.d = d[0], .width = d[1], .n_heads = d[2], .d_ff = d[3], .n_blocks = d[4],
	.depth = d[5], .eps = 1e-5f};

	return c;
}

static PgfStatus
bind_head(PgfDepthHead *h, const PgfDepthHeadConfig *c, const PgfMatrix *cb, char *err, size_t errlen)
{
	PgfBinder	b;

	pgf_binder_init(&b, &golden.file, err, errlen);
	pgf_depth_head_bind(h, &b, "depth.", c, cb);
	return b.status;
}

static void
test_depth_head(void)
{
	PgfMatrix	cb = codebook_matrix();
	PgfDepthHeadConfig c = depth_config();
	PgfDepthHead *h = calloc(1, sizeof(PgfDepthHead));
	char		err[512] = "";
	int			k = cb.rows;
	const float *hidden = need(PGF_DTYPE_F32, 2L * c.d, "depth.hidden");
	const int32_t *greedy = need(PGF_DTYPE_I32, c.depth, "depth.greedy");
	float		scale = ((const float *) need(PGF_DTYPE_F32, 1, "depth.cfg"))[0];
	float	   *logits = malloc(sizeof(float) * c.depth * 2 * k),
			   *cond = malloc(sizeof(float) * c.depth * k);
	int32_t		codes[PGF_RQ_MAX_DEPTH],
				again[PGF_RQ_MAX_DEPTH],
				alone[PGF_RQ_MAX_DEPTH];
	PgfSampling greedy_s = {.temperature = 0},
				drawn = {.temperature = 1.0f, .top_k = 10, .top_p = 0.96f};
	PgfRng		rng;
	PgfArena	a;
	bool		same = true;

	if (!tap_ok(bind_head(h, &c, &cb, err, sizeof(err)) == PGF_OK, "depth head binds %s", err))
		return;
	a = test_arena(pgf_depth_head_arena_bytes(h, 2));
	pgf_depth_head_forced(h, hidden, 2, need(PGF_DTYPE_I32, c.depth, "depth.forced"), logits, &a);
	tap_ok(tap_rel_error(logits, need(PGF_DTYPE_F32, (long) c.depth * 2 * k, "depth.logits"),
					(size_t) c.depth * 2 * k) < 1e-4,
		   "depth head: the cached logits of %d depths, 2 rows, match PyTorch's recomputed ones (relative %.2g)",
		   c.depth, tap_rel_error(logits, need(PGF_DTYPE_F32, -1, "depth.logits"), (size_t) c.depth * 2 * k));
	pgf_rng_seed(&rng, 1);
	same = pgf_depth_head_codes(h, hidden, 2, scale, &greedy_s, &rng, codes, NULL, &a);
	tap_ok(same && memcmp(codes, greedy, sizeof(int32_t) * c.depth) == 0,
		   "greedy codes under guidance %.0f are PyTorch's (%d %d %d)", scale, codes[0], codes[1], codes[2]);

	/* guidance 1: l_u + (l_c - l_u) is the cond row's logits */
	pgf_depth_head_codes(h, hidden, 2, 1.0f, &greedy_s, &rng, codes, NULL, &a);
	pgf_depth_head_codes(h, hidden, 1, 0.0f, &greedy_s, &rng, alone, cond, &a);
	tap_ok(memcmp(codes, alone, sizeof(int32_t) * c.depth) == 0,
		   "guidance scale 1 picks the codes of the cond row alone");

	pgf_rng_seed(&rng, 42);
	pgf_depth_head_codes(h, hidden, 2, scale, &drawn, &rng, codes, NULL, &a);
	pgf_rng_seed(&rng, 42);
	pgf_depth_head_codes(h, hidden, 2, scale, &drawn, &rng, again, NULL, &a);
	same = true;
	for (int j = 0; j < c.depth; j++)
		same &= codes[j] == again[j] && codes[j] >= 0 && codes[j] < k;
	tap_ok(same, "a seed draws the same codes twice (%d %d %d)", codes[0], codes[1], codes[2]);
	tap_ok(a.used == 0, "depth head: the arena is given back");
	test_arena_free(&a);
	free(logits);
	free(cond);
	free(h);
}

static void
test_depth_mismatch(void)
{
	PgfMatrix	cb = codebook_matrix();
	PgfDepthHeadConfig c = depth_config(),
				bad;
	PgfDepthHead *h = calloc(1, sizeof(PgfDepthHead));
	char		err[512] = "";

	bad = c;
	bad.n_blocks++;
	tap_ok(bind_head(h, &bad, &cb, err, sizeof(err)) == PGF_ERR_CONFIG && strstr(err, "depth.blocks.2.ln1.weight"),
		   "a block more than the file has: rejected naming the tensor (%s)", err);
	bad = c;
	bad.depth++;
	tap_ok(bind_head(h, &bad, &cb, err, sizeof(err)) == PGF_ERR_CONFIG && strstr(err, "depth.pos_emb_d"),
		   "a depth the position table does not have: rejected naming it (%s)", err);
	bad = c;
	bad.n_heads = 5;
	tap_ok(bind_head(h, &bad, &cb, err, sizeof(err)) == PGF_ERR_CONFIG && strstr(err, "multiple of the heads"),
		   "an attention width that the heads do not divide: rejected (%s)", err);
	free(h);
}

int
main(void)
{
	golden_load(&golden, GOLDEN_PATH, false, "test/gen/golden_unifork.py");
	test_quantizer();
	test_depth_head();
	test_depth_mismatch();
	golden_unload(&golden);
	return tap_done_testing();
}
