/*
 * test_kernels_attention.c: unit tests of attention and the transformer
 * block: masks, padding, bias with slopes, grouped-query heads, decoding,
 * packed segments, KV caches and scratch sizing, against a naive loop
 * written here and PyTorch references (torch.nn.TransformerEncoderLayer
 * and a Hugging Face style Llama layer, test/gen/golden_kernels.py).
 *
 * Tolerances, relative to the largest reference value: attention and
 * blocks 1e-5 against PyTorch in float64 (Q8 blocks: against PyTorch on
 * the dequantised weights); packed segments and KV-cache runs against
 * separate full runs 1e-5.
 */
#include <setjmp.h>

#include "test/unit/kernels_golden.h"

/* ---- fatal errors and interrupts ------------------------------------------- */

static jmp_buf fatal_jump;
static bool fatal_armed;
static char fatal_message[512];

static void
fatal_to_test(const char *message)
{
	snprintf(fatal_message, sizeof(fatal_message), "%s", message);
	if (fatal_armed)
		longjmp(fatal_jump, 1);
}

static int	interrupt_calls;

static void
count_interrupts(void)
{
	interrupt_calls++;
}

/* ---- attention ---------------------------------------------------------------- */

static void
naive_attention(float *out, int out_stride, const float *q, int q_stride,
				const float *k, const float *v, int kv_stride, int n_q, int n_kv,
				int H, int K, int hd, double scale, const PgfAttnMask *m)
{
	double	   *s = malloc(sizeof(double) * (n_kv ? n_kv : 1));

	for (int h = 0; h < H; h++)
	{
		int			g = h / (H / K);

		for (int i = 0; i < n_q; i++)
		{
			long		p = (long) m->q_pos0 + i;
			double		mx = -INFINITY,
						sum = 0;

			for (int j = 0; j < n_kv; j++)
			{
				bool		vis = m->kind == PGF_MASK_BIDIRECTIONAL || j <= p ||
					(m->kind == PGF_MASK_PREFIX && j < m->prefix_len);

				if (m->key_valid && !m->key_valid[j])
					vis = false;
				s[j] = -INFINITY;
				if (vis)
				{
					double		dot = 0;

					for (int c = 0; c < hd; c++)
						dot += (double) q[i * q_stride + h * hd + c] * k[j * kv_stride + g * hd + c];
					s[j] = dot * scale;
					if (m->bias)
						s[j] += (m->slopes ? m->slopes[h] : 1.0) * m->bias[i * n_kv + j];
				}
				mx = s[j] > mx ? s[j] : mx;
			}
			for (int j = 0; j < n_kv; j++)
			{
				s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
				sum += s[j];
			}
			for (int c = 0; c < hd; c++)
			{
				double		o = 0;

				for (int j = 0; j < n_kv; j++)
					o += s[j] * v[j * kv_stride + g * hd + c];
				out[i * out_stride + h * hd + c] = sum > 0 ? (float) (o / sum) : 0.0f;
			}
		}
	}
	free(s);
}

static const char *attention_cases[] = {
	"mha_bidir", "gqa_causal", "prefix", "padding", "bias_slopes", "bias_shared",
	"offset", "blas_causal", "blas_prefix", "decode", "decode_long", "blind"
};
#define N_ATTENTION_CASES 12

static void
test_attention_golden(void)
{
	for (int c = 0; c < N_ATTENTION_CASES; c++)
	{
		const char *name = attention_cases[c];
		const int32_t *dims = golden_i32(11, "attn.%s.dims", name);
		int			n_q = dims[0],
					n_kv = dims[1],
					H = dims[2],
					K = dims[3],
					hd = dims[4];
		float		scale = golden_f32(1, "attn.%s.f", name)[0];
		const float *q = golden_f32((long) n_q * H * hd, "attn.%s.q", name);
		const float *k = golden_f32((long) n_kv * K * hd, "attn.%s.k", name);
		const float *v = golden_f32((long) n_kv * K * hd, "attn.%s.v", name);
		const float *want = golden_f32((long) n_q * H * hd, "attn.%s.out", name);
		uint8_t    *valid = NULL;
		PgfAttnMask mask;
		PgfArena	arena = test_arena(pgf_attention_scratch_bytes(n_q, n_kv));
		float	   *out = malloc(sizeof(float) * n_q * H * hd);
		float	   *naive = malloc(sizeof(float) * n_q * H * hd);

		memset(&mask, 0, sizeof(mask));
		mask.kind = (PgfMaskKind) dims[5];
		mask.prefix_len = dims[6];
		mask.q_pos0 = dims[7];
		if (dims[8])
		{
			const int32_t *v32 = golden_i32(n_kv, "attn.%s.valid", name);

			valid = malloc(n_kv);
			for (int j = 0; j < n_kv; j++)
				valid[j] = (uint8_t) v32[j];
			mask.key_valid = valid;
		}
		if (dims[9])
			mask.bias = golden_f32((long) n_q * n_kv, "attn.%s.bias", name);
		if (dims[10])
			mask.slopes = golden_f32(H, "attn.%s.slopes", name);
		for (int i = 0; i < n_q * H * hd; i++)
			out[i] = NAN;
		pgf_attention(out, H * hd, q, H * hd, k, v, K * hd, n_q, n_kv, H, K, hd, scale,
					  &mask, &arena);
		naive_attention(naive, H * hd, q, H * hd, k, v, K * hd, n_q, n_kv, H, K, hd, scale,
						&mask);
		check_rel(out, want, (size_t) n_q * H * hd, 1e-5,
				  "attention %s (%d queries, %d keys, %d/%d heads of %d, mask %d) vs torch",
				  name, n_q, n_kv, H, K, hd, dims[5]);
		check_rel(out, naive, (size_t) n_q * H * hd, 1e-5, "attention %s vs naive loop", name);
		if (strcmp(name, "blind") == 0)
		{
			bool		zeros = true;

			for (int i = 0; i < 3 * H * hd; i++)
				zeros &= out[i] == 0.0f;
			tap_ok(zeros, "attention: queries that see no key get zeros");
		}
		test_arena_free(&arena);
		free(valid);
		free(out);
		free(naive);
	}
}

/* Strided q / out rows, and GQA decode with every group size up to 16. */
static void
test_attention_strides(void)
{
	int			n_q = 5,
				n_kv = 9,
				H = 4,
				K = 2,
				hd = 6;
	int			qs = H * hd + 3,
				kvs = K * hd + 5,
				os = H * hd + 7;
	float	   *q = test_rand_floats(n_q * qs, 1);
	float	   *k = test_rand_floats(n_kv * kvs, 1);
	float	   *v = test_rand_floats(n_kv * kvs, 1);
	float	   *out = malloc(sizeof(float) * n_q * os);
	float	   *naive = malloc(sizeof(float) * n_q * os);
	PgfAttnMask mask;
	PgfArena	arena = test_arena(pgf_attention_scratch_bytes(n_q, n_kv));
	bool		untouched = true;
	double		worst = 0;

	memset(&mask, 0, sizeof(mask));
	mask.kind = PGF_MASK_CAUSAL;
	mask.q_pos0 = 4;
	for (int i = 0; i < n_q * os; i++)
		out[i] = naive[i] = -7.0f;
	pgf_attention(out, os, q, qs, k, v, kvs, n_q, n_kv, H, K, hd, 0.3f, &mask, &arena);
	naive_attention(naive, os, q, qs, k, v, kvs, n_q, n_kv, H, K, hd, 0.3, &mask);
	for (int i = 0; i < n_q; i++)
		for (int c = H * hd; c < os; c++)
			untouched &= out[i * os + c] == -7.0f;
	check_rel(out, naive, n_q * os, 1e-5, "attention with row strides %d/%d/%d vs naive loop",
			  qs, kvs, os);
	tap_ok(untouched, "attention leaves the columns past the heads alone");
	test_arena_free(&arena);

	/* one query, K key/value heads shared by g query heads each */
	for (int g = 1; g <= 16; g++)
	{
		int			kh = 2,
					h = kh * g,
					d = 16,
					nk = 70;
		float	   *q1 = test_rand_floats(h * d, 1);
		float	   *k1 = test_rand_floats(nk * kh * d, 1);
		float	   *v1 = test_rand_floats(nk * kh * d, 1);
		float	   *o1 = malloc(sizeof(float) * h * d);
		float	   *n1 = malloc(sizeof(float) * h * d);
		float	   *bias = test_rand_floats(nk, 1);
		float		slopes[32];
		PgfArena	a1 = test_arena(pgf_attention_scratch_bytes(1, nk));
		double		e;

		for (int i = 0; i < h; i++)
			slopes[i] = 1.0f / (i + 1);
		memset(&mask, 0, sizeof(mask));
		mask.kind = PGF_MASK_CAUSAL;
		mask.q_pos0 = nk - 1;
		mask.bias = bias;
		mask.slopes = slopes;
		pgf_attention(o1, h * d, q1, h * d, k1, v1, kh * d, 1, nk, h, kh, d, 0.25f, &mask, &a1);
		naive_attention(n1, h * d, q1, h * d, k1, v1, kh * d, 1, nk, h, kh, d, 0.25, &mask);
		e = tap_rel_error(o1, n1, h * d);
		worst = e > worst ? e : worst;
		test_arena_free(&a1);
		free(q1);
		free(k1);
		free(v1);
		free(o1);
		free(n1);
		free(bias);
	}
	tap_ok(worst <= 1e-5, "decode attention, group sizes 1..16, bias with slopes, vs naive (%.2g)",
		   worst);
	free(q);
	free(k);
	free(v);
	free(out);
	free(naive);
}

/* ---- blocks --------------------------------------------------------------------- */

typedef struct BlockCase
{
	const char *name;
	PgfBlockSpec spec;
	PgfBlockWeights w;
	bool		causal;
	int			n_segments;
	int			offsets[8];
	int			max_seg;
	const float *x;
	const float *want;
} BlockCase;

static const float *
opt_vector(const char *name, const char *part)
{
	return golden_has("block.%s.%s", name, part) ?
		golden_f32(-1, "block.%s.%s", name, part) : NULL;
}

static PgfMatrix
opt_matrix(const char *name, const char *part)
{
	PgfMatrix	m;

	if (golden_has("block.%s.%s", name, part))
		return pgf_tensor_matrix(golden_tensor("block.%s.%s", name, part));
	memset(&m, 0, sizeof(m));
	return m;
}

static BlockCase
load_block(const char *name)
{
	BlockCase	bc;
	const PgfTensor *dt = golden_tensor("block.%s.dims", name);
	const int32_t *dims = (const int32_t *) dt->data;
	bool		llama = strncmp(name, "llama", 5) == 0;

	memset(&bc, 0, sizeof(bc));
	bc.name = name;
	bc.spec.d_model = dims[0];
	bc.spec.n_heads = dims[1];
	bc.spec.n_kv_heads = dims[2];
	bc.spec.head_dim = dims[3];
	bc.spec.d_ff = dims[4];
	bc.causal = dims[5];
	bc.spec.out_proj = true;
	if (llama)
	{
		const float *f = golden_f32(2, "block.%s.f", name);

		bc.spec.norm = PGF_NORM_RMS;
		bc.spec.placement = PGF_PRE_NORM;
		bc.spec.activation = PGF_ACT_SWIGLU;
		bc.spec.rope_theta = f[0];
		bc.spec.norm_eps = f[1];
	}
	else
	{
		bool		pre = strncmp(name, "preln", 5) == 0;

		bc.spec.norm = PGF_NORM_LAYER;
		bc.spec.placement = pre ? PGF_PRE_NORM : PGF_POST_NORM;
		bc.spec.activation = pre ? PGF_ACT_GELU_ERF : PGF_ACT_RELU;
		bc.spec.norm_eps = 1e-5f;
	}
	bc.n_segments = (int) dt->numel - 6;
	for (int s = 0; s < bc.n_segments; s++)
	{
		bc.offsets[s + 1] = bc.offsets[s] + dims[6 + s];
		if (dims[6 + s] > bc.max_seg)
			bc.max_seg = dims[6 + s];
	}
	bc.w.ln1_gamma = opt_vector(name, "ln1.gamma");
	bc.w.ln1_beta = opt_vector(name, "ln1.beta");
	bc.w.ln2_gamma = opt_vector(name, "ln2.gamma");
	bc.w.ln2_beta = opt_vector(name, "ln2.beta");
	bc.w.wq = opt_matrix(name, "wq");
	bc.w.wk = opt_matrix(name, "wk");
	bc.w.wv = opt_matrix(name, "wv");
	bc.w.wo = opt_matrix(name, "wo");
	bc.w.w1 = opt_matrix(name, "w1");
	bc.w.w2 = opt_matrix(name, "w2");
	bc.w.w3 = opt_matrix(name, "w3");
	bc.w.bq = opt_vector(name, "bq");
	bc.w.bk = opt_vector(name, "bk");
	bc.w.bv = opt_vector(name, "bv");
	bc.w.bo = opt_vector(name, "bo");
	bc.w.b1 = opt_vector(name, "b1");
	bc.w.b2 = opt_vector(name, "b2");
	bc.w.b3 = opt_vector(name, "b3");
	bc.x = golden_f32((long) bc.offsets[bc.n_segments] * bc.spec.d_model, "block.%s.x", name);
	bc.want = golden_f32((long) bc.offsets[bc.n_segments] * bc.spec.d_model, "block.%s.out", name);
	return bc;
}

static PgfAttnMask
block_mask(const BlockCase *bc, int q_pos0)
{
	PgfAttnMask m;

	memset(&m, 0, sizeof(m));
	m.kind = bc->causal ? PGF_MASK_CAUSAL : PGF_MASK_BIDIRECTIONAL;
	m.q_pos0 = q_pos0;
	return m;
}

/*
 * Runs the block over x with an arena of exactly pgf_block_scratch_bytes;
 * returns false (with the message in fatal_message) if it ran out.
 */
static bool
run_block(const BlockCase *bc, float *x, int n_segments, const int *offsets,
		  const PgfAttnMask *masks, PgfKVCache *caches, int max_kv,
		  size_t *used, size_t *size)
{
	size_t		bytes = pgf_block_scratch_bytes(&bc->spec, offsets[n_segments] - offsets[0],
												max_kv);
	PgfArena	arena = test_arena(bytes);
	bool		ok = true;

	fatal_message[0] = '\0';
	fatal_armed = true;
	if (setjmp(fatal_jump) == 0)
		pgf_block_forward(&bc->spec, &bc->w, x, n_segments, offsets, masks, caches, &arena);
	else
		ok = false;
	fatal_armed = false;
	if (used)
		*used = arena.high_water;
	if (size)
		*size = bytes;
	ok &= arena.used == 0;
	test_arena_free(&arena);
	return ok;
}

static void
test_block_case(const char *name)
{
	BlockCase	bc = load_block(name);
	int			d = bc.spec.d_model;
	int			total = bc.offsets[bc.n_segments];
	float	   *x = test_copy(bc.x, (size_t) total * d);
	float	   *sep = test_copy(bc.x, (size_t) total * d);
	PgfAttnMask masks[8];
	size_t		used,
				size;
	bool		ok;

	for (int s = 0; s < bc.n_segments; s++)
		masks[s] = block_mask(&bc, 0);
	interrupt_calls = 0;
	pgf_interrupt_hook = count_interrupts;
	ok = run_block(&bc, x, bc.n_segments, bc.offsets, masks, NULL, bc.max_seg, &used, &size);
	pgf_interrupt_hook = NULL;
	tap_ok(ok, "block %s: an arena of pgf_block_scratch_bytes (%zu) is enough (high water %zu) %s",
		   name, size, used, fatal_message);
	check_rel(x, bc.want, (size_t) total * d, 1e-5,
			  "block %s: %d packed segments (%d rows) vs torch", name, bc.n_segments, total);
	tap_ok(interrupt_calls >= bc.n_segments, "block %s checks for interrupts (%d calls)", name,
		   interrupt_calls);

	/* each segment alone gives the same rows as the packed run */
	ok = true;
	for (int s = 0; s < bc.n_segments; s++)
	{
		int			off[2] = {bc.offsets[s], bc.offsets[s + 1]};

		ok &= run_block(&bc, sep, 1, off, masks, NULL, off[1] - off[0], NULL, NULL);
	}
	tap_ok(ok, "block %s: separate runs fit their arenas", name);
	check_rel(sep, x, (size_t) total * d, 1e-5, "block %s: packed segments == separate runs", name);
	free(x);
	free(sep);
}

/*
 * KV cache: segment 0 of a causal case as a prefill of `prefill` rows and
 * then one row per call equals the full run; then two sequences decoded
 * together (two segments with two caches per call).
 */
static void
test_block_cache(const char *name, int prefill)
{
	BlockCase	bc = load_block(name);
	int			d = bc.spec.d_model;
	int			kvd = bc.spec.n_kv_heads * bc.spec.head_dim;
	int			len0 = bc.offsets[1];
	int			len1 = bc.offsets[2] - bc.offsets[1];
	float	   *x = test_copy(bc.x, (size_t) bc.offsets[2] * d);
	PgfKVCache	caches[2];
	float	   *store = malloc(sizeof(float) * 2 * 2 * len0 * kvd);
	bool		ok = true;

	for (int c = 0; c < 2; c++)
	{
		caches[c].k = store + (size_t) (2 * c) * len0 * kvd;
		caches[c].v = store + (size_t) (2 * c + 1) * len0 * kvd;
		caches[c].capacity = len0;
		caches[c].len = 0;
	}

	/* one sequence: prefill, then token by token */
	{
		int			off[2] = {0, prefill};
		PgfAttnMask m = block_mask(&bc, 0);

		ok &= run_block(&bc, x, 1, off, &m, caches, prefill, NULL, NULL);
		for (int t = prefill; t < len0; t++)
		{
			int			one[2] = {t, t + 1};

			m = block_mask(&bc, caches[0].len);
			ok &= run_block(&bc, x, 1, one, &m, caches, caches[0].len + 1, NULL, NULL);
		}
		tap_ok(ok && caches[0].len == len0,
			   "block %s: KV cache prefill of %d rows + %d decode steps runs (cache length %d)",
			   name, prefill, len0 - prefill, caches[0].len);
		check_rel(x, bc.want, (size_t) len0 * d, 1e-5,
				  "block %s: KV-cache prefill + decode == full recompute (torch)", name);
	}

	/* two sequences at once: segments 0 and 1, with their own caches */
	{
		int			p0 = prefill,
					p1 = len1 / 2;
		int			done0,
					done1;
		PgfAttnMask m[2];
		float	   *out = malloc(sizeof(float) * bc.offsets[2] * d);
		float	   *buf = malloc(sizeof(float) * bc.offsets[2] * d);

		caches[0].len = caches[1].len = 0;
		ok = true;
		/* prefill both: rows [0, p0) of sequence 0, [0, p1) of sequence 1 */
		{
			int			off[3] = {0, p0, p0 + p1};

			memcpy(buf, bc.x, sizeof(float) * p0 * d);
			memcpy(buf + p0 * d, bc.x + len0 * d, sizeof(float) * p1 * d);
			m[0] = block_mask(&bc, 0);
			m[1] = block_mask(&bc, 0);
			ok &= run_block(&bc, buf, 2, off, m, caches, p0, NULL, NULL);
			memcpy(out, buf, sizeof(float) * p0 * d);
			memcpy(out + len0 * d, buf + p0 * d, sizeof(float) * p1 * d);
		}
		done0 = p0;
		done1 = p1;
		/* then one row of each sequence per call while both have rows */
		while (done0 < len0 || done1 < len1)
		{
			int			off[3] = {0, 0, 0};
			int			nseg = 0;
			PgfKVCache	step_caches[2];
			int			which[2];
			int			max_kv = 0;

			if (done0 < len0)
			{
				memcpy(buf + off[nseg] * d, bc.x + done0 * d, sizeof(float) * d);
				step_caches[nseg] = caches[0];
				m[nseg] = block_mask(&bc, caches[0].len);
				which[nseg] = 0;
				off[nseg + 1] = off[nseg] + 1;
				max_kv = caches[0].len + 1;
				nseg++;
			}
			if (done1 < len1)
			{
				memcpy(buf + off[nseg] * d, bc.x + (len0 + done1) * d, sizeof(float) * d);
				step_caches[nseg] = caches[1];
				m[nseg] = block_mask(&bc, caches[1].len);
				which[nseg] = 1;
				off[nseg + 1] = off[nseg] + 1;
				if (caches[1].len + 1 > max_kv)
					max_kv = caches[1].len + 1;
				nseg++;
			}
			ok &= run_block(&bc, buf, nseg, off, m, step_caches, max_kv, NULL, NULL);
			for (int s = 0; s < nseg; s++)
			{
				caches[which[s]] = step_caches[s];
				if (which[s] == 0)
					memcpy(out + (done0++) * d, buf + off[s] * d, sizeof(float) * d);
				else
					memcpy(out + (len0 + done1++) * d, buf + off[s] * d, sizeof(float) * d);
			}
		}
		tap_ok(ok && caches[0].len == len0 && caches[1].len == len1,
			   "block %s: two sequences decoded together with their own caches", name);
		check_rel(out, bc.want, (size_t) bc.offsets[2] * d, 1e-5,
				  "block %s: batched KV-cache decode == full recompute (torch)", name);
		free(out);
		free(buf);
	}

	/* a cache without room is reported, not overrun */
	{
		int			off[2] = {0, 2};
		PgfAttnMask m = block_mask(&bc, len0 - 1);

		caches[0].len = len0 - 1;
		tap_ok(!run_block(&bc, x, 1, off, &m, caches, len0 + 1, NULL, NULL) &&
			   strstr(fatal_message, "KV cache") != NULL,
			   "block %s: appending past the cache capacity is a reported error (%s)", name,
			   fatal_message);
	}
	free(x);
	free(store);
}

/* An arena smaller than the bound is reported through pgf_fatal. */
static void
test_block_small_arena(void)
{
	BlockCase	bc = load_block("llama");
	int			total = bc.offsets[bc.n_segments];
	float	   *x = test_copy(bc.x, (size_t) total * bc.spec.d_model);
	size_t		bytes = pgf_block_scratch_bytes(&bc.spec, total, bc.max_seg) / 4;
	PgfArena	arena = test_arena(bytes);
	PgfAttnMask masks[8];
	bool		reported = false;

	for (int s = 0; s < bc.n_segments; s++)
		masks[s] = block_mask(&bc, 0);
	fatal_message[0] = '\0';
	fatal_armed = true;
	if (setjmp(fatal_jump) == 0)
		pgf_block_forward(&bc.spec, &bc.w, x, bc.n_segments, bc.offsets, masks, NULL, &arena);
	else
		reported = strstr(fatal_message, "arena exhausted") != NULL;
	fatal_armed = false;
	tap_ok(reported, "block with a quarter of the scratch it needs reports \"%s\"", fatal_message);
	test_arena_free(&arena);
	free(x);
}

/* Without an output projection the concatenated heads are the output. */
static void
test_block_no_out_proj(void)
{
	BlockCase	bc = load_block("preln_gelu");
	int			d = bc.spec.d_model;
	int			total = bc.offsets[bc.n_segments];
	float	   *x = test_copy(bc.x, (size_t) total * d);
	float	   *want = test_copy(bc.x, (size_t) total * d);
	float	   *eye = calloc((size_t) d * d, sizeof(float));
	PgfAttnMask masks[8];
	BlockCase	with_eye = bc;

	for (int i = 0; i < d; i++)
		eye[i * d + i] = 1.0f;
	for (int s = 0; s < bc.n_segments; s++)
		masks[s] = block_mask(&bc, 0);
	/* reference: the same block with an identity output projection */
	with_eye.w.wo = pgf_matrix_f32(eye, d, d);
	with_eye.w.bo = NULL;
	run_block(&with_eye, want, bc.n_segments, bc.offsets, masks, NULL, bc.max_seg, NULL, NULL);
	bc.spec.out_proj = false;
	bc.w.bo = NULL;
	memset(&bc.w.wo, 0, sizeof(bc.w.wo));
	tap_ok(run_block(&bc, x, bc.n_segments, bc.offsets, masks, NULL, bc.max_seg, NULL, NULL),
		   "block without out projection fits its arena");
	check_rel(x, want, (size_t) total * d, 1e-6,
			  "block without out projection == identity out projection");
	free(x);
	free(want);
	free(eye);
}

int
main(void)
{
	static const char *blocks[] = {"preln_gelu", "postln_relu", "llama", "llama_q8"};

	golden_open();
	pgf_fatal_hook = fatal_to_test;
	test_attention_golden();
	test_attention_strides();
	for (int b = 0; b < 4; b++)
		test_block_case(blocks[b]);
	test_block_cache("postln_relu", 4);
	test_block_cache("llama", 9);
	test_block_cache("llama_q8", 6);
	test_block_small_arena();
	test_block_no_out_proj();
	golden_unload(&golden);
	return tap_done_testing();
}
