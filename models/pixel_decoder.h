/*
 * pixel_decoder.h: the convolutional pixel decoder of a VQ image
 * tokenizer (taming-transformers' Decoder, as UniFork's VILA-U tokenizer
 * and LlamaGen use it): quantised features [h * w, embed_dim] to an RGB
 * image [(h * s) * (w * s), 3], s = 2^(levels - 1).  The graph and the
 * tensor names are in docs/unifork.md; the PyTorch reference is
 * tools/models/unifork.py (PixelDecoder).
 *
 * Feature maps are position-major (kernels/conv.c).  The decoder holds
 * views into the model file only; all scratch comes from the caller's
 * arena, sized by pgf_pixel_decoder_arena_bytes.
 */
#ifndef PGF_PIXEL_DECODER_H
#define PGF_PIXEL_DECODER_H

#include "kernels/kernels.h"
#include "models/bind.h"

#define PGF_PIXDEC_MAX_LEVELS 6
#define PGF_PIXDEC_MAX_BLOCKS 4		/* blocks per level: num_res_blocks + 1 */

typedef struct PgfPixelDecoderConfig
{
	int			ch;				/* base width; level l has ch * ch_mult[l] */
	int			n_levels;
	int			ch_mult[PGF_PIXDEC_MAX_LEVELS];
	int			num_res_blocks; /* a level runs num_res_blocks + 1 blocks */
	int			z_channels;		/* post_quant_conv's output, conv_in's input */
	int			embed_dim;		/* the quantised features' width */
	int			out_channels;	/* 3 */
	int			groups;			/* GroupNorm groups (32) */
	float		eps;			/* GroupNorm epsilon (1e-6) */
} PgfPixelDecoderConfig;

/* A residual block: GroupNorm, SiLU, 3x3 conv, twice; 1x1 shortcut when
 * the width changes. */
typedef struct PgfResBlock
{
	int			c_in,
				c_out;
	const float *norm1_gamma,
			   *norm1_beta,
			   *norm2_gamma,
			   *norm2_beta;
	PgfMatrix	conv1,
				conv2,
				shortcut;		/* shortcut.data NULL: identity */
	const float *conv1_bias,
			   *conv2_bias,
			   *shortcut_bias;
} PgfResBlock;

typedef struct PgfPixelDecoder
{
	PgfPixelDecoderConfig cfg;
	PgfMatrix	post_quant;		/* [z_channels, embed_dim] */
	const float *post_quant_bias;
	PgfMatrix	conv_in;		/* [ch * ch_mult[last], 9 * z_channels] */
	const float *conv_in_bias;
	PgfResBlock mid1,
				mid2;
	PgfSpatialAttention mid_attn;
	PgfResBlock block[PGF_PIXDEC_MAX_LEVELS][PGF_PIXDEC_MAX_BLOCKS];
	PgfSpatialAttention attn[PGF_PIXDEC_MAX_BLOCKS];	/* the lowest level's */
	PgfMatrix	upsample[PGF_PIXDEC_MAX_LEVELS];	/* all levels but 0 */
	const float *upsample_bias[PGF_PIXDEC_MAX_LEVELS];
	const float *norm_out_gamma,
			   *norm_out_beta;
	PgfMatrix	conv_out;
	const float *conv_out_bias;
} PgfPixelDecoder;

/*
 * Binds the tensors under prefix (e.g. "uf.vq.": prefix + "post_quant_conv.weight",
 * prefix + "decoder.conv_in.weight", ...) with the shapes cfg implies.
 * Checks cfg itself first.  Errors go to the binder (PGF_ERR_CONFIG).
 */
void		pgf_pixel_decoder_bind(PgfPixelDecoder *d, PgfBinder *b, const char *prefix,
								   const PgfPixelDecoderConfig *cfg);

/* Arena bytes pgf_pixel_decode needs for an h x w latent grid. */
size_t		pgf_pixel_decoder_arena_bytes(const PgfPixelDecoder *d, int h, int w);

/*
 * out[(h s) * (w s), out_channels] = the decoder's output (about [-1, 1],
 * not clamped) for zq[h * w, embed_dim].  Checks for interrupts between
 * layers.
 */
void		pgf_pixel_decode(const PgfPixelDecoder *d, const float *zq, int h, int w,
							 float *out, PgfArena *arena);

/* rgb[n * 3] = clamp(round((x + 1) * 127.5), 0, 255) of out[n * 3]. */
void		pgf_pixels_to_rgb(uint8_t *rgb, const float *x, size_t n);

#endif							/* PGF_PIXEL_DECODER_H */
