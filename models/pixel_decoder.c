/*
 * pixel_decoder.c: the VQ pixel decoder (pixel_decoder.h): binding the
 * taming-named tensors and running the graph
 *
 *   post_quant 1x1 -> conv_in 3x3 -> Res, Attn, Res ->
 *   for level = last .. 0: (num_res_blocks + 1) x Res (each followed by
 *   Attn on the last level), then nearest x2 + conv 3x3 unless level 0 ->
 *   GroupNorm -> SiLU -> conv_out 3x3
 *
 * on three feature-map buffers of the largest map's size that take turns.
 */
#include <math.h>
#include <string.h>

#include "models/pixel_decoder.h"

/* Channels of level l. */
static int
level_channels(const PgfPixelDecoderConfig *c, int l)
{
	return c->ch * c->ch_mult[l];
}

static bool
config_ok(PgfBinder *b, const PgfPixelDecoderConfig *c)
{
	if (c->n_levels < 1 || c->n_levels > PGF_PIXDEC_MAX_LEVELS)
		pgf_bind_fail(b, "pixel decoder: %d levels (1 to %d)", c->n_levels, PGF_PIXDEC_MAX_LEVELS);
	else if (c->num_res_blocks < 0 || c->num_res_blocks + 1 > PGF_PIXDEC_MAX_BLOCKS)
		pgf_bind_fail(b, "pixel decoder: %d residual blocks per level (0 to %d)",
					  c->num_res_blocks, PGF_PIXDEC_MAX_BLOCKS - 1);
	else if (c->ch < 1 || c->z_channels < 1 || c->embed_dim < 1 || c->out_channels < 1 ||
			 c->groups < 1 || !(c->eps > 0))
		pgf_bind_fail(b, "pixel decoder: widths, groups and eps must be positive");
	else
		for (int l = 0; l < c->n_levels; l++)
			if (c->ch_mult[l] < 1 || level_channels(c, l) % c->groups != 0 ||
				level_channels(c, l) > 1 << 16)
			{
				pgf_bind_fail(b, "pixel decoder: level %d has %d channels (a positive multiple of %d groups, at most 65536)",
							  l, c->ch * c->ch_mult[l], c->groups);
				break;
			}
	return b->status == PGF_OK;
}

/* A k x k convolution's weight [c_out, k k c_in] and bias [c_out]. */
static void
bind_conv(PgfBinder *b, const char *name, int c_in, int c_out, int k, PgfMatrix *w, const float **bias)
{
	char		buf[PGF_NAME_MAX];

	*w = pgf_bind_matrix(b, pgf_name(buf, "%s.weight", name), c_out, (int64_t) k * k * c_in, false);
	*bias = pgf_bind_vector(b, pgf_name(buf, "%s.bias", name), c_out, false);
}

static void
bind_norm(PgfBinder *b, const char *name, int c, const float **gamma, const float **beta)
{
	char		buf[PGF_NAME_MAX];

	*gamma = pgf_bind_vector(b, pgf_name(buf, "%s.weight", name), c, false);
	*beta = pgf_bind_vector(b, pgf_name(buf, "%s.bias", name), c, false);
}

static void
bind_res(PgfBinder *b, const char *name, int c_in, int c_out, PgfResBlock *r)
{
	char		buf[PGF_NAME_MAX];

	r->c_in = c_in;
	r->c_out = c_out;
	bind_norm(b, pgf_name(buf, "%s.norm1", name), c_in, &r->norm1_gamma, &r->norm1_beta);
	bind_conv(b, pgf_name(buf, "%s.conv1", name), c_in, c_out, 3, &r->conv1, &r->conv1_bias);
	bind_norm(b, pgf_name(buf, "%s.norm2", name), c_out, &r->norm2_gamma, &r->norm2_beta);
	bind_conv(b, pgf_name(buf, "%s.conv2", name), c_out, c_out, 3, &r->conv2, &r->conv2_bias);
	memset(&r->shortcut, 0, sizeof(r->shortcut));
	r->shortcut_bias = NULL;
	if (c_in != c_out)
		bind_conv(b, pgf_name(buf, "%s.nin_shortcut", name), c_in, c_out, 1, &r->shortcut, &r->shortcut_bias);
}

static void
bind_attn(PgfBinder *b, const char *name, int c, const PgfPixelDecoderConfig *cfg, PgfSpatialAttention *a)
{
	char		buf[PGF_NAME_MAX];

	a->groups = cfg->groups;
	a->norm_eps = cfg->eps;
	bind_norm(b, pgf_name(buf, "%s.norm", name), c, &a->norm_gamma, &a->norm_beta);
	bind_conv(b, pgf_name(buf, "%s.q", name), c, c, 1, &a->wq, &a->bq);
	bind_conv(b, pgf_name(buf, "%s.k", name), c, c, 1, &a->wk, &a->bk);
	bind_conv(b, pgf_name(buf, "%s.v", name), c, c, 1, &a->wv, &a->bv);
	bind_conv(b, pgf_name(buf, "%s.proj_out", name), c, c, 1, &a->wo, &a->bo);
}

void
pgf_pixel_decoder_bind(PgfPixelDecoder *d, PgfBinder *b, const char *prefix,
					   const PgfPixelDecoderConfig *cfg)
{
	char		buf[PGF_NAME_MAX];
	int			last = cfg->n_levels - 1,
				c;

	memset(d, 0, sizeof(*d));
	d->cfg = *cfg;
	if (!config_ok(b, cfg))
		return;
	c = level_channels(cfg, last);
	bind_conv(b, pgf_name(buf, "%spost_quant_conv", prefix), cfg->embed_dim, cfg->z_channels, 1,
			  &d->post_quant, &d->post_quant_bias);
	bind_conv(b, pgf_name(buf, "%sdecoder.conv_in", prefix), cfg->z_channels, c, 3,
			  &d->conv_in, &d->conv_in_bias);
	bind_res(b, pgf_name(buf, "%sdecoder.mid.block_1", prefix), c, c, &d->mid1);
	bind_attn(b, pgf_name(buf, "%sdecoder.mid.attn_1", prefix), c, cfg, &d->mid_attn);
	bind_res(b, pgf_name(buf, "%sdecoder.mid.block_2", prefix), c, c, &d->mid2);
	for (int l = last; l >= 0; l--)
	{
		int			c_out = level_channels(cfg, l);

		for (int j = 0; j <= cfg->num_res_blocks; j++)
		{
			bind_res(b, pgf_name(buf, "%sdecoder.up.%d.block.%d", prefix, l, j), j == 0 ? c : c_out,
					 c_out, &d->block[l][j]);
			if (l == last)
				bind_attn(b, pgf_name(buf, "%sdecoder.up.%d.attn.%d", prefix, l, j), c_out, cfg,
						  &d->attn[j]);
		}
		if (l > 0)
			bind_conv(b, pgf_name(buf, "%sdecoder.up.%d.upsample.conv", prefix, l), c_out, c_out, 3,
					  &d->upsample[l], &d->upsample_bias[l]);
		c = c_out;
	}
	bind_norm(b, pgf_name(buf, "%sdecoder.norm_out", prefix), c, &d->norm_out_gamma, &d->norm_out_beta);
	bind_conv(b, pgf_name(buf, "%sdecoder.conv_out", prefix), c, cfg->out_channels, 3,
			  &d->conv_out, &d->conv_out_bias);
}

/* ---- sizes ------------------------------------------------------------------ */

static size_t
max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* Scratch of one residual block at n = h * w positions (besides the maps). */
static size_t
res_scratch(const PgfResBlock *r, int h, int w)
{
	size_t		s = max_size(pgf_conv2d_scratch_bytes(h, w, r->c_in, 3, &r->conv1),
							 pgf_conv2d_scratch_bytes(h, w, r->c_out, 3, &r->conv2));

	if (r->shortcut.data)
		s = max_size(s, pgf_conv2d_scratch_bytes(h, w, r->c_in, 1, &r->shortcut));
	return s;
}

/*
 * Floats of the largest feature map (*map) and bytes of the largest
 * kernel scratch (return value) for an h x w latent grid.
 */
static size_t
plan(const PgfPixelDecoder *d, int h, int w, size_t *map)
{
	const PgfPixelDecoderConfig *cfg = &d->cfg;
	int			last = cfg->n_levels - 1,
				c = level_channels(cfg, last);
	size_t		n = (size_t) h * w,
				scratch;

	*map = max_size(n * cfg->embed_dim, n * max_size(cfg->z_channels, c));
	scratch = max_size(pgf_conv2d_scratch_bytes(h, w, cfg->embed_dim, 1, &d->post_quant),
					   pgf_conv2d_scratch_bytes(h, w, cfg->z_channels, 3, &d->conv_in));
	scratch = max_size(scratch, res_scratch(&d->mid1, h, w));
	scratch = max_size(scratch, pgf_spatial_attention_scratch_bytes((int) n, c, &d->mid_attn));
	for (int l = last; l >= 0; l--)
	{
		int			c_out = level_channels(cfg, l);

		*map = max_size(*map, n * max_size(c, c_out));
		for (int j = 0; j <= cfg->num_res_blocks; j++)
			scratch = max_size(scratch, res_scratch(&d->block[l][j], h, w));
		if (l == last)
			scratch = max_size(scratch, pgf_spatial_attention_scratch_bytes((int) n, c_out, &d->attn[0]));
		if (l > 0)
		{
			h *= 2;
			w *= 2;
			n = (size_t) h * w;
			*map = max_size(*map, n * c_out);
			scratch = max_size(scratch, pgf_conv2d_scratch_bytes(h, w, c_out, 3, &d->upsample[l]));
		}
		c = c_out;
	}
	return max_size(scratch, pgf_conv2d_scratch_bytes(h, w, c, 3, &d->conv_out));
}

size_t
pgf_pixel_decoder_arena_bytes(const PgfPixelDecoder *d, int h, int w)
{
	size_t		map,
				scratch = plan(d, h, w, &map);

	return 3 * pgf_arena_round(sizeof(float) * map) + scratch;
}

/* ---- forward ---------------------------------------------------------------- */

/* The three maps that take turns; x is the current one. */
typedef struct Maps
{
	float	   *x,
			   *a,
			   *b;
} Maps;

static void
norm_silu(float *out, const float *x, int n, int c, const float *gamma, const float *beta,
		  const PgfPixelDecoderConfig *cfg)
{
	pgf_groupnorm(out, x, n, c, cfg->groups, gamma, beta, cfg->eps);
	pgf_silu(out, (size_t) n * c);
}

/* m->x = Res(m->x) at h x w. */
static void
res_forward(const PgfResBlock *r, Maps *m, int h, int w, const PgfPixelDecoderConfig *cfg, PgfArena *arena)
{
	int			n = h * w;
	float	   *t;

	norm_silu(m->a, m->x, n, r->c_in, r->norm1_gamma, r->norm1_beta, cfg);
	pgf_conv2d(m->b, m->a, h, w, r->c_in, 3, &r->conv1, r->conv1_bias, arena);
	norm_silu(m->b, m->b, n, r->c_out, r->norm2_gamma, r->norm2_beta, cfg);
	pgf_conv2d(m->a, m->b, h, w, r->c_out, 3, &r->conv2, r->conv2_bias, arena);
	if (r->shortcut.data)
	{
		pgf_conv2d(m->b, m->x, h, w, r->c_in, 1, &r->shortcut, r->shortcut_bias, arena);
		pgf_add(m->b, m->a, (size_t) n * r->c_out);
		t = m->x;
		m->x = m->b;
		m->b = t;
	}
	else
		pgf_add(m->x, m->a, (size_t) n * r->c_out);
	pgf_check_interrupts();
}

/* m->x = conv(m->x) into the next buffer. */
static void
conv_forward(Maps *m, int h, int w, int c_in, int k, const PgfMatrix *wt, const float *bias, PgfArena *arena)
{
	float	   *t = m->x;

	pgf_conv2d(m->a, m->x, h, w, c_in, k, wt, bias, arena);
	m->x = m->a;
	m->a = t;
}

void
pgf_pixel_decode(const PgfPixelDecoder *d, const float *zq, int h, int w, float *out, PgfArena *arena)
{
	const PgfPixelDecoderConfig *cfg = &d->cfg;
	size_t		mark = pgf_arena_mark(arena),
				map;
	int			last = cfg->n_levels - 1,
				c = level_channels(cfg, last);
	Maps		m;

	plan(d, h, w, &map);
	m.x = pgf_arena_floats(arena, map);
	m.a = pgf_arena_floats(arena, map);
	m.b = pgf_arena_floats(arena, map);
	pgf_conv2d(m.a, zq, h, w, cfg->embed_dim, 1, &d->post_quant, d->post_quant_bias, arena);
	pgf_conv2d(m.x, m.a, h, w, cfg->z_channels, 3, &d->conv_in, d->conv_in_bias, arena);
	res_forward(&d->mid1, &m, h, w, cfg, arena);
	pgf_spatial_attention(m.x, h * w, c, &d->mid_attn, arena);
	res_forward(&d->mid2, &m, h, w, cfg, arena);
	for (int l = last; l >= 0; l--)
	{
		int			c_out = level_channels(cfg, l);

		for (int j = 0; j <= cfg->num_res_blocks; j++)
		{
			res_forward(&d->block[l][j], &m, h, w, cfg, arena);
			if (l == last)
				pgf_spatial_attention(m.x, h * w, c_out, &d->attn[j], arena);
		}
		if (l > 0)
		{
			float	   *t = m.x;

			pgf_upsample_nearest2(m.a, m.x, h, w, c_out);
			m.x = m.a;
			m.a = t;
			h *= 2;
			w *= 2;
			conv_forward(&m, h, w, c_out, 3, &d->upsample[l], d->upsample_bias[l], arena);
		}
		c = c_out;
	}
	norm_silu(m.a, m.x, h * w, c, d->norm_out_gamma, d->norm_out_beta, cfg);
	pgf_conv2d(out, m.a, h, w, c, 3, &d->conv_out, d->conv_out_bias, arena);
	pgf_arena_reset(arena, mark);
}

void
pgf_pixels_to_rgb(uint8_t *rgb, const float *x, size_t n)
{
	for (size_t i = 0; i < n * 3; i++)
	{
		float		v = rintf((x[i] + 1.0f) * 127.5f);

		rgb[i] = (uint8_t) (v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : isnan(v) ? 0.0f : v);
	}
}
