/*
 * unifork.c: binding a UniFork file and drawing images (unifork.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/unifork.h"

/* Chunk of prompt rows per forward pass. */
#define UNIFORK_CHUNK 64

static const char default_gen_template[] = "{prompt}";

/* The generation path as one decoder: und's first shared layers, the fork's, norm_gen. */
static void
compose_gen(PgfUniforkModel *m)
{
	PgfStack   *g = &m->gen.stack;
	int			s = m->shared_layers;

	m->gen = m->und;
	g->n_layers = s + m->fork.n_layers;
	g->n_run = g->n_layers;
	for (int l = 0; l < g->n_layers; l++)
	{
		g->layers[l] = l < s ? m->und.stack.layers[l] : m->fork.layers[l - s];
		g->run[l] = l;
	}
	g->final_norm = true;
	g->lnf_gamma = m->fork.lnf_gamma;
	g->lnf_beta = NULL;
}

static void
bind_config(PgfBinder *b, const Pgformer__UniForkConfig *c, PgfDepthHeadConfig *head,
			PgfPixelDecoderConfig *dec)
{
	memset(head, 0, sizeof(*head));
	head->d = (int) c->blocks->d_model;
	head->width = (int) c->depth_width;
	head->n_heads = (int) c->depth_heads;
	head->d_ff = (int) c->depth_ff;
	head->n_blocks = (int) c->depth_blocks;
	head->depth = (int) c->rq_depth;
	head->eps = 1e-5f;
	memset(dec, 0, sizeof(*dec));
	if (c->n_decoder_ch_mult > PGF_PIXDEC_MAX_LEVELS)
	{
		pgf_bind_fail(b, "unifork: %zu pixel decoder levels, at most %d", c->n_decoder_ch_mult,
					  PGF_PIXDEC_MAX_LEVELS);
		return;
	}
	dec->ch = (int) c->decoder_ch;
	dec->n_levels = (int) c->n_decoder_ch_mult;
	for (int l = 0; l < dec->n_levels; l++)
		dec->ch_mult[l] = (int) c->decoder_ch_mult[l];
	dec->num_res_blocks = (int) c->decoder_res_blocks;
	dec->z_channels = (int) c->decoder_z_channels;
	dec->embed_dim = (int) c->code_dim;
	dec->out_channels = 3;
	dec->groups = c->decoder_groups ? (int) c->decoder_groups : 32;
	dec->eps = 1e-6f;
}

/* The image encoder, when the file has one (an encoder config with layers). */
static void
bind_encoder(PgfBinder *b, const Pgformer__UniForkConfig *c, PgfUniforkModel *m)
{
	const Pgformer__TransformerConfig *e = c->encoder;
	int64_t		pos_shape[2];
	int			d,
				grid;

	m->has_encoder = e != NULL && e->n_layers > 0;
	if (!m->has_encoder)
		return;
	if (c->encoder_patch < 1 || c->image_side < c->encoder_patch || c->image_side % c->encoder_patch != 0 ||
		c->image_side > 1024)
	{
		pgf_bind_fail(b, "unifork: an image side of %u and encoder patches of %u (the side must be a multiple of the patch, at most 1024)",
					  c->image_side, c->encoder_patch);
		return;
	}
	if (e->rope_theta != 0 || e->activation == PGFORMER__ACTIVATION__SWIGLU)
	{
		pgf_bind_fail(b, "unifork: the image encoder takes learned positions and a two-matrix MLP");
		return;
	}
	pgf_stack_bind(b, e, "uf.enc", &m->enc);
	if (b->status != PGF_OK)
		return;
	d = m->enc.spec.d_model;
	grid = (int) (c->image_side / c->encoder_patch);
	m->image_side = (int) c->image_side;
	m->enc_patch = (int) c->encoder_patch;
	m->enc_tokens = grid * grid;
	m->enc_patch_proj = pgf_bind_matrix(b, "uf.enc.patch.weight", d, 3L * m->enc_patch * m->enc_patch, false);
	m->enc_patch_bias = pgf_bind_vector(b, "uf.enc.patch.bias", d, false);
	pos_shape[0] = m->enc_tokens;
	pos_shape[1] = d;
	m->enc_pos = pgf_bind_f32(b, "uf.enc.pos", 2, pos_shape, false);
	m->enc_out = pgf_bind_matrix(b, "uf.enc.out.weight", c->code_dim, d, false);
	m->enc_out_bias = pgf_bind_vector(b, "uf.enc.out.bias", c->code_dim, false);
}

PgfStatus
pgf_unifork_bind(const PgfModel *file, void *model, char *err, size_t errlen)
{
	PgfUniforkModel *m = model;
	const Pgformer__UniForkConfig *c = file->header->unifork;
	Pgformer__TransformerConfig fork_cfg;
	PgfDepthHeadConfig head;
	PgfPixelDecoderConfig dec;
	PgfBinder	b;
	int64_t		boi_shape[2];
	int			layers,
				d;

	pgf_binder_init(&b, file, err, errlen);
	if (c == NULL || c->blocks == NULL)
	{
		pgf_bind_fail(&b, "unifork: the header has no unifork config with blocks");
		return b.status;
	}
	layers = (int) c->blocks->n_layers;
	d = (int) c->blocks->d_model;
	m->shared_layers = c->shared_layers ? (int) c->shared_layers : layers / 2;
	if (c->blocks->n_layer_source || c->blocks->n_skip_layers)
		pgf_bind_fail(&b, "unifork: shared or skipped layers are not supported");
	else if (m->shared_layers < 1 || m->shared_layers >= layers)
		pgf_bind_fail(&b, "unifork: %d shared layers of %d (the fork needs at least one layer of its own)",
					  m->shared_layers, layers);
	else if (c->image_grid < 1 || c->image_grid > PGF_UNIFORK_MAX_GRID)
		pgf_bind_fail(&b, "unifork: an image grid of %u (1 to %d)", c->image_grid, PGF_UNIFORK_MAX_GRID);
	else if (c->codebook_size < 2 || c->code_dim < 1 || c->codebook_size > 1u << 20 || c->code_dim > 1u << 14)
		pgf_bind_fail(&b, "unifork: a codebook of %u x %u", c->codebook_size, c->code_dim);
	else if (!(c->cfg_scale >= 0) || isinf(c->cfg_scale))
		pgf_bind_fail(&b, "unifork: a guidance scale of %g", c->cfg_scale);
	if (b.status != PGF_OK)
		return b.status;

	pgf_decoder_bind(&b, c->blocks, c->vocab_size, c->tied_embeddings, "uf", &m->und);
	fork_cfg = *c->blocks;
	fork_cfg.n_layers = (uint32_t) (layers - m->shared_layers);
	pgf_stack_bind(&b, &fork_cfg, "uf.gen", &m->fork);
	if (b.status != PGF_OK)
		return b.status;
	compose_gen(m);
	pgf_tokenizer_bind(&b, &m->tok, m->und.vocab_size);

	m->codebook = pgf_bind_matrix(&b, "uf.rq.codebook", c->codebook_size, c->code_dim, false);
	m->proj1 = pgf_bind_matrix(&b, "uf.proj.linear1.weight", d, c->code_dim, false);
	m->proj1_bias = pgf_bind_vector(&b, "uf.proj.linear1.bias", d, false);
	m->proj2 = pgf_bind_matrix(&b, "uf.proj.linear2.weight", d, d, false);
	m->proj2_bias = pgf_bind_vector(&b, "uf.proj.linear2.bias", d, false);
	boi_shape[0] = 2;
	boi_shape[1] = d;
	m->boi_eoi = pgf_bind_f32(&b, "uf.proj.boi_eoi", 2, boi_shape, false);
	bind_config(&b, c, &head, &dec);
	if (b.status != PGF_OK)
		return b.status;
	bind_encoder(&b, c, m);
	pgf_depth_head_bind(&m->depth, &b, "uf.depth.", &head, &m->codebook);
	pgf_pixel_decoder_bind(&m->vq, &b, "uf.vq.", &dec);
	m->grid = (int) c->image_grid;
	m->rq_depth = (int) c->rq_depth;
	m->cfg_scale = c->cfg_scale > 0 ? c->cfg_scale : 4.0f;
	m->gen_template = c->gen_template[0] ? c->gen_template : default_gen_template;
	m->uncond_prompt = c->uncond_prompt;
	return b.status;
}

int
pgf_unifork_image_side(const PgfUniforkModel *m)
{
	return m->grid << (m->vq.cfg.n_levels - 1);
}

int
pgf_unifork_prompt_bound(const PgfUniforkModel *m, size_t text_len)
{
	size_t		n = 0;
	const char *s = m->gen_template,
			   *p;

	while ((p = strstr(s, "{prompt}")) != NULL)
	{
		n += (size_t) (p - s) + text_len;
		s = p + strlen("{prompt}");
	}
	n += strlen(s);
	return n > INT32_MAX / 64 ? INT32_MAX / 64 : (int) n;
}

int
pgf_unifork_prompt(const PgfUniforkModel *m, const char *text, size_t text_len, int32_t *ids,
				   PgfArena *scratch)
{
	const char *s = m->gen_template,
			   *p;
	int			n = 0;

	while ((p = strstr(s, "{prompt}")) != NULL)
	{
		n += pgf_tokenizer_encode(&m->tok, s, (size_t) (p - s), true, ids + n, scratch);
		n += pgf_tokenizer_encode(&m->tok, text, text_len, false, ids + n, scratch);
		s = p + strlen("{prompt}");
	}
	return n + pgf_tokenizer_encode(&m->tok, s, strlen(s), true, ids + n, scratch);
}

/* Positions one sequence needs: its tokens, boi, then all image positions but the last. */
static int
sequence_capacity(const PgfUniforkModel *m, int n)
{
	return n + 1 + m->grid * m->grid - 1;
}

static int
chunk_of(int n)
{
	return n + 1 < UNIFORK_CHUNK ? n + 1 : UNIFORK_CHUNK;
}

size_t
pgf_unifork_generate_bytes(const PgfUniforkModel *m, int n_cond, int n_uncond)
{
	int			n = m->grid * m->grid,
				d = m->und.d_model,
				e = m->codebook.cols,
				longest = n_cond > n_uncond ? n_cond : n_uncond;
	size_t		llm = pgf_decoder_state_bytes(&m->gen, sequence_capacity(m, n_cond), chunk_of(n_cond)) +
		pgf_decoder_state_bytes(&m->gen, sequence_capacity(m, n_uncond), chunk_of(n_uncond)),
				step = pgf_depth_head_arena_bytes(&m->depth, 2),
				proj = pgf_linear_scratch_bytes(&m->proj1, 1) + pgf_linear_scratch_bytes(&m->proj2, 1),
				pixels = pgf_arena_round(sizeof(float) * (size_t) n * e) +
		pgf_pixel_decoder_arena_bytes(&m->vq, m->grid, m->grid);

	step = step > proj ? step : proj;
	step = step > pixels ? step : pixels;
	return llm + step + pgf_arena_round(sizeof(float) * 2 * d) +	/* hidden */
		pgf_arena_round(sizeof(float) * (size_t) (longest + 1) * d) +	/* a prompt's rows */
		pgf_arena_round(sizeof(float) * e) + pgf_arena_round(sizeof(float) * d) +
		pgf_arena_round(sizeof(float) * d) + pgf_arena_round(sizeof(float) * e);
}

/* Runs [ids; boi] through a fresh state; hidden[d] = the last row's hidden state. */
static int
prefill(const PgfUniforkModel *m, PgfDecoderState *st, const int32_t *ids, int n, float *rows,
		float *hidden, char *err, size_t errlen)
{
	int			d = m->und.d_model;

	if (n > 0 && pgf_decoder_embed(&m->gen, ids, n, rows, err, errlen) != 0)
		return -1;
	memcpy(rows + (size_t) n * d, m->boi_eoi, sizeof(float) * d);
	if (pgf_decoder_forward(st, rows, n + 1, false, err, errlen) != 0)
		return -1;
	memcpy(hidden, rows + (size_t) n * d, sizeof(float) * d);
	return 0;
}

int
pgf_unifork_generate(const PgfUniforkModel *m, const int32_t *cond, int n_cond,
					 const int32_t *uncond, int n_uncond, float cfg_scale,
					 const PgfSampling *s, int32_t *codes, float *pixels,
					 const PgfUniforkProgress *progress, PgfArena *arena,
					 char *err, size_t errlen)
{
	size_t		mark = pgf_arena_mark(arena);
	int			n = m->grid * m->grid,
				d = m->und.d_model,
				e = m->codebook.cols,
				depth = m->rq_depth,
				longest = n_cond > n_uncond ? n_cond : n_uncond,
				rc = -1;
	PgfDecoderState st[2];
	float	   *hidden,
			   *rows,
			   *sum,
			   *mid,
			   *next;
	PgfRng		rng;

	if (isnan(cfg_scale))
	{
		snprintf(err, errlen, "the guidance scale is NaN");
		return -1;
	}
	if (m->gen.max_positions > 0 && sequence_capacity(m, longest) > m->gen.max_positions)
	{
		snprintf(err, errlen, "a prompt of %d tokens and %d image positions need %d positions, the model takes at most %d",
				 longest, n, sequence_capacity(m, longest), m->gen.max_positions);
		return -1;
	}
	if (pgf_decoder_state_init(&st[0], &m->gen, sequence_capacity(m, n_cond), chunk_of(n_cond), arena, err, errlen) != 0 ||
		pgf_decoder_state_init(&st[1], &m->gen, sequence_capacity(m, n_uncond), chunk_of(n_uncond), arena, err, errlen) != 0)
		goto done;
	hidden = pgf_arena_floats(arena, 2 * (size_t) d);
	rows = pgf_arena_floats(arena, (size_t) (longest + 1) * d);
	sum = pgf_arena_floats(arena, e);
	mid = pgf_arena_floats(arena, d);
	next = pgf_arena_floats(arena, d);
	if (prefill(m, &st[0], cond, n_cond, rows, hidden, err, errlen) != 0 ||
		prefill(m, &st[1], uncond, n_uncond, rows, hidden + d, err, errlen) != 0)
		goto done;
	pgf_rng_seed(&rng, s->seed);
	for (int p = 0; p < n; p++)
	{
		int32_t    *pc = codes + (size_t) p * depth;

		if (!pgf_depth_head_codes(&m->depth, hidden, 2, cfg_scale, s, &rng, pc, NULL, arena))
		{
			snprintf(err, errlen, "image position %d: no code could be drawn (every logit is NaN or -inf)", p);
			goto done;
		}
		if (progress && progress->on_position)
			progress->on_position(progress->arg, p + 1);
		if (p + 1 == n)
			break;
		pgf_rq_embed(sum, pc, 1, depth, &m->codebook, arena);
		pgf_linear(mid, sum, 1, &m->proj1, m->proj1_bias, arena);
		pgf_gelu_erf(mid, d);
		pgf_linear(next, mid, 1, &m->proj2, m->proj2_bias, arena);
		for (int r = 0; r < 2; r++)
		{
			memcpy(hidden + (size_t) r * d, next, sizeof(float) * d);
			if (pgf_decoder_forward(&st[r], hidden + (size_t) r * d, 1, false, err, errlen) != 0)
				goto done;
		}
		pgf_check_interrupts();
	}
	if (pixels)
	{
		size_t		m2 = pgf_arena_mark(arena);
		float	   *zq = pgf_arena_floats(arena, (size_t) n * e);

		pgf_rq_embed(zq, codes, n, depth, &m->codebook, arena);
		pgf_pixel_decode(&m->vq, zq, m->grid, m->grid, pixels, arena);
		pgf_arena_reset(arena, m2);
	}
	rc = 0;
done:
	pgf_arena_reset(arena, mark);
	return rc;
}

size_t
pgf_unifork_image_codes_bytes(const PgfUniforkModel *m)
{
	int			n = m->enc_tokens,
				d = m->enc.spec.d_model,
				e = m->codebook.cols;
	size_t		kernels = pgf_stack_scratch_bytes(&m->enc, n, n),
				lin = pgf_linear_scratch_bytes(&m->enc_patch_proj, n) + pgf_linear_scratch_bytes(&m->enc_out, n),
				rq = pgf_rq_quantize_scratch_bytes(n, &m->codebook);

	kernels = kernels > lin ? kernels : lin;
	kernels = kernels > rq ? kernels : rq;
	return pgf_arena_round(sizeof(float) * (size_t) n * d) + pgf_arena_round(sizeof(float) * (size_t) n * e) +
		pgf_arena_round(kernels);
}

void
pgf_unifork_image_codes(const PgfUniforkModel *m, const float *patches, int32_t *codes, PgfArena *arena)
{
	size_t		mark = pgf_arena_mark(arena);
	int			n = m->enc_tokens,
				d = m->enc.spec.d_model,
				offsets[2] = {0, n};
	float	   *x = pgf_arena_floats(arena, (size_t) n * d),
			   *z = pgf_arena_floats(arena, (size_t) n * m->codebook.cols);
	PgfAttnMask mask = {.kind = PGF_MASK_BIDIRECTIONAL};

	if (!m->has_encoder)
		pgf_fatal("unifork: image codes of a model without an image encoder");
	pgf_linear(x, patches, n, &m->enc_patch_proj, m->enc_patch_bias, arena);
	pgf_add(x, m->enc_pos, (size_t) n * d);
	pgf_stack_forward(&m->enc, x, 1, offsets, &mask, NULL, arena);
	pgf_linear(z, x, n, &m->enc_out, m->enc_out_bias, arena);
	pgf_rq_quantize(codes, NULL, z, n, m->rq_depth, &m->codebook, arena);
	pgf_arena_reset(arena, mark);
}
