/*
 * transformer.c: binding and running a stack of transformer blocks.
 */
#include "models/transformer.h"

#include <string.h>

static PgfNormKind
norm_kind(Pgformer__NormKind k)
{
	return k == PGFORMER__NORM_KIND__RMS_NORM ? PGF_NORM_RMS : PGF_NORM_LAYER;
}

static void
bind_norm(PgfBinder *b, const char *prefix, const char *part, int d,
		  PgfNormKind kind, const float **gamma, const float **beta)
{
	char		name[PGF_NAME_MAX];

	*gamma = pgf_bind_vector(b, pgf_name(name, "%s.%s.gamma", prefix, part), d, false);
	*beta = NULL;
	if (kind == PGF_NORM_LAYER)
		*beta = pgf_bind_vector(b, pgf_name(name, "%s.%s.beta", prefix, part), d, false);
}

static PgfMatrix
bind_linear(PgfBinder *b, const char *prefix, const char *part, int rows, int cols,
			bool has_bias, const float **bias)
{
	char		name[PGF_NAME_MAX];
	PgfMatrix	w = pgf_bind_matrix(b, pgf_name(name, "%s.%s.weight", prefix, part),
									rows, cols, false);

	*bias = has_bias ?
		pgf_bind_vector(b, pgf_name(name, "%s.%s.bias", prefix, part), rows, false) : NULL;
	return w;
}

static PgfMatrix
bind_ffn(PgfBinder *b, const char *prefix, const char *w, const char *bias,
		 int rows, int cols, bool has_bias, const float **bias_out)
{
	char		name[PGF_NAME_MAX];
	PgfMatrix	m = pgf_bind_matrix(b, pgf_name(name, "%s.ffn.%s", prefix, w),
									rows, cols, false);

	*bias_out = has_bias ?
		pgf_bind_vector(b, pgf_name(name, "%s.ffn.%s", prefix, bias), rows, false) : NULL;
	return m;
}

void
pgf_stack_bind(PgfBinder *b, const Pgformer__TransformerConfig *cfg,
			   const char *prefix, PgfStack *stack)
{
	PgfBlockSpec *s = &stack->spec;
	bool		skip[PGF_MAX_LAYERS] = {false};
	char		lp[PGF_NAME_MAX];

	memset(stack, 0, sizeof(*stack));
	if (cfg == NULL)
	{
		pgf_bind_fail(b, "the header has no transformer config for \"%s\"", prefix);
		return;
	}
	if (cfg->d_model == 0 || cfg->n_heads == 0 || cfg->n_layers == 0 || cfg->d_ff == 0)
	{
		pgf_bind_fail(b, "transformer \"%s\": d_model, n_heads, n_layers and d_ff must be positive",
					  prefix);
		return;
	}
	if (cfg->n_layers > PGF_MAX_LAYERS || cfg->d_model > 65536 || cfg->d_ff > 1048576 ||
		cfg->n_heads > 1024)
	{
		pgf_bind_fail(b, "transformer \"%s\": %u layers, d_model %u, d_ff %u or %u heads exceed the limits (%d layers, 65536, 1048576, 1024)",
					  prefix, cfg->n_layers, cfg->d_model, cfg->d_ff, cfg->n_heads,
					  PGF_MAX_LAYERS);
		return;
	}
	s->d_model = (int) cfg->d_model;
	s->n_heads = (int) cfg->n_heads;
	s->n_kv_heads = cfg->n_kv_heads ? (int) cfg->n_kv_heads : s->n_heads;
	s->head_dim = cfg->head_dim ? (int) cfg->head_dim : s->d_model / s->n_heads;
	s->d_ff = (int) cfg->d_ff;
	s->norm = norm_kind(cfg->norm);
	s->placement = cfg->norm_placement == PGFORMER__NORM_PLACEMENT__POST_NORM ?
		PGF_POST_NORM : PGF_PRE_NORM;
	s->activation = (PgfActivation) cfg->activation;
	s->norm_eps = cfg->norm_eps > 0 ? cfg->norm_eps : 1e-5f;
	s->out_proj = cfg->out_proj;
	s->rope_theta = cfg->rope_theta;
	if (s->n_heads % s->n_kv_heads != 0 || s->head_dim <= 0 || s->head_dim > 1024)
	{
		pgf_bind_fail(b, "transformer \"%s\": %d heads cannot share %d key/value heads of dimension %d",
					  prefix, s->n_heads, s->n_kv_heads, s->head_dim);
		return;
	}
	if (!s->out_proj && s->n_heads * s->head_dim != s->d_model)
	{
		pgf_bind_fail(b, "transformer \"%s\": without an output projection n_heads * head_dim must equal d_model",
					  prefix);
		return;
	}
	if ((int) cfg->activation > PGF_ACT_SWIGLU)
	{
		pgf_bind_fail(b, "transformer \"%s\": unknown activation %d", prefix,
					  (int) cfg->activation);
		return;
	}
	if (s->rope_theta != 0 && (s->rope_theta < 0 || s->head_dim % 2 != 0))
	{
		pgf_bind_fail(b, "transformer \"%s\": rotary embedding needs a positive theta and an even head_dim",
					  prefix);
		return;
	}
	if (cfg->n_layer_source != 0 && cfg->n_layer_source != cfg->n_layers)
	{
		pgf_bind_fail(b, "transformer \"%s\": layer_source has %zu entries for %u layers",
					  prefix, cfg->n_layer_source, cfg->n_layers);
		return;
	}
	for (size_t i = 0; i < cfg->n_skip_layers; i++)
	{
		if (cfg->skip_layers[i] >= cfg->n_layers)
		{
			pgf_bind_fail(b, "transformer \"%s\": skip_layers names layer %u of %u",
						  prefix, cfg->skip_layers[i], cfg->n_layers);
			return;
		}
		skip[cfg->skip_layers[i]] = true;
	}
	stack->n_layers = (int) cfg->n_layers;
	stack->final_norm = cfg->final_norm;
	stack->max_positions = (int) cfg->max_positions;

	for (int l = 0; l < stack->n_layers; l++)
	{
		int			src = cfg->n_layer_source ? (int) cfg->layer_source[l] : l;
		PgfBlockWeights *w = &stack->layers[l];
		int			d = s->d_model,
					qd = s->n_heads * s->head_dim,
					kvd = s->n_kv_heads * s->head_dim;
		bool		fb = cfg->ffn_bias;

		if (src < 0 || src >= stack->n_layers)
		{
			pgf_bind_fail(b, "transformer \"%s\": layer %d reads layer %d, which does not exist",
						  prefix, l, src);
			return;
		}
		if (!skip[l])
			stack->run[stack->n_run++] = l;
		pgf_name(lp, "%s.l%d", prefix, src);
		bind_norm(b, lp, "ln1", d, s->norm, &w->ln1_gamma, &w->ln1_beta);
		bind_norm(b, lp, "ln2", d, s->norm, &w->ln2_gamma, &w->ln2_beta);
		w->wq = bind_linear(b, lp, "attn.q", qd, d, cfg->qkv_bias, &w->bq);
		w->wk = bind_linear(b, lp, "attn.k", kvd, d, cfg->qkv_bias, &w->bk);
		w->wv = bind_linear(b, lp, "attn.v", kvd, d, cfg->qkv_bias, &w->bv);
		if (s->out_proj)
			w->wo = bind_linear(b, lp, "attn.o", d, qd, cfg->out_bias, &w->bo);
		w->w1 = bind_ffn(b, lp, "w1", "b1", s->d_ff, d, fb, &w->b1);
		w->w2 = bind_ffn(b, lp, "w2", "b2", d, s->d_ff, fb, &w->b2);
		if (s->activation == PGF_ACT_SWIGLU)
			w->w3 = bind_ffn(b, lp, "w3", "b3", s->d_ff, d, fb, &w->b3);
	}
	if (stack->final_norm)
		bind_norm(b, prefix, "lnf", s->d_model, s->norm, &stack->lnf_gamma,
				  &stack->lnf_beta);
}

void
pgf_stack_forward(const PgfStack *stack, float *x, int n_segments,
				  const int *seg_offsets, const PgfAttnMask *masks,
				  PgfKVCache *caches, PgfArena *scratch)
{
	for (int i = 0; i < stack->n_run; i++)
	{
		int			l = stack->run[i];

		pgf_check_interrupts();
		pgf_block_forward(&stack->spec, &stack->layers[l], x, n_segments,
						  seg_offsets, masks,
						  caches ? caches + (size_t) l * n_segments : NULL,
						  scratch);
	}
	if (stack->final_norm)
		pgf_stack_final_norm(stack, x, seg_offsets[n_segments]);
}

size_t
pgf_stack_scratch_bytes(const PgfStack *stack, int total_rows, int max_kv)
{
	return pgf_block_scratch_bytes(&stack->spec, total_rows, max_kv);
}

void
pgf_stack_final_norm(const PgfStack *stack, float *x, int n)
{
	if (!stack->final_norm)
		return;
	if (stack->spec.norm == PGF_NORM_RMS)
		pgf_rmsnorm(x, x, n, stack->spec.d_model, stack->lnf_gamma, stack->spec.norm_eps);
	else
		pgf_layernorm(x, x, n, stack->spec.d_model, stack->lnf_gamma,
					  stack->lnf_beta, stack->spec.norm_eps);
}
