/*
 * transformer.h: a stack of configurable transformer blocks bound to a
 * model file's tensors.
 *
 * Every architecture with a TransformerConfig (block stacks, FinTRec, the
 * Llama-family decoder) binds its blocks here.  Layer l's tensors are named
 *   <prefix>.l<l>.ln1.gamma [d]          .ln1.beta [d]   (LayerNorm only)
 *   <prefix>.l<l>.attn.q.weight [H*hd, d]   .attn.q.bias [H*hd]
 *   <prefix>.l<l>.attn.k.weight [K*hd, d]   .attn.k.bias [K*hd]
 *   <prefix>.l<l>.attn.v.weight [K*hd, d]   .attn.v.bias [K*hd]
 *   <prefix>.l<l>.attn.o.weight [d, H*hd]   .attn.o.bias [d]
 *   <prefix>.l<l>.ln2.gamma [d]          .ln2.beta [d]
 *   <prefix>.l<l>.ffn.w1 [d_ff, d]  .ffn.b1 [d_ff]
 *   <prefix>.l<l>.ffn.w3 [d_ff, d]  .ffn.b3 [d_ff]      (SwiGLU up)
 *   <prefix>.l<l>.ffn.w2 [d, d_ff]  .ffn.b2 [d]
 *   <prefix>.lnf.gamma [d]  .lnf.beta [d]                (final_norm)
 * Biases exist exactly when the config says so.  layer_source lets layers
 * share another layer's tensors; skip_layers drops layers at run time.
 */
#ifndef PGF_TRANSFORMER_H
#define PGF_TRANSFORMER_H

#include "kernels/kernels.h"
#include "models/bind.h"

#define PGF_MAX_LAYERS 128

typedef struct PgfStack
{
	PgfBlockSpec spec;
	int			n_layers;		/* layers in the config */
	int			n_run;			/* layers actually run */
	int			run[PGF_MAX_LAYERS];	/* which config layers run, in order */
	PgfBlockWeights layers[PGF_MAX_LAYERS];
	bool		final_norm;
	const float *lnf_gamma;
	const float *lnf_beta;
	int			max_positions;
} PgfStack;

/* Binds the stack; errors go to the binder. */
void		pgf_stack_bind(PgfBinder *b, const Pgformer__TransformerConfig *cfg,
						   const char *prefix, PgfStack *stack);

/*
 * Runs every layer over packed segments (see pgf_block_forward), checking
 * for interrupts between layers, then the final norm when configured.
 * caches: NULL, or n_layers * n_segments caches, layer-major
 * (caches[layer * n_segments + s]); a skipped layer's caches are untouched.
 */
void		pgf_stack_forward(const PgfStack *stack, float *x, int n_segments,
							  const int *seg_offsets, const PgfAttnMask *masks,
							  PgfKVCache *caches, PgfArena *scratch);

/* Scratch bytes pgf_stack_forward needs. */
size_t		pgf_stack_scratch_bytes(const PgfStack *stack, int total_rows, int max_kv);

/* Final norm over x[n, d] in place (no-op without final_norm). */
void		pgf_stack_final_norm(const PgfStack *stack, float *x, int n);

#endif							/* PGF_TRANSFORMER_H */
