/*
 * solo.c: binding the "solo" architecture and its generation driver (see
 * solo.h): prompt templates, the image block layout, patch embeddings,
 * prefill, sampling loop and decoding back to text.
 */
#include "models/solo.h"

#include <stdio.h>
#include <string.h>

static const char *const default_templates[3] = {"{image}", "{image}{question}", "{prompt}"};
static const char *const task_names[3] = {"caption", "answer", "text"};

PgfStatus
pgf_solo_bind(const PgfModel *file, void *model, char *err, size_t errlen)
{
	PgfSoloModel *m = model;
	const Pgformer__DecoderLMConfig *cfg = file->header->solo;
	PgfBinder	b;
	int			vocab;

	pgf_binder_init(&b, file, err, errlen);
	if (cfg == NULL)
	{
		pgf_bind_fail(&b, "solo: the header has no solo config");
		return b.status;
	}
	pgf_decoder_bind(&b, cfg->blocks, cfg->vocab_size, cfg->tied_embeddings, "dec", &m->dec);
	if (b.status != PGF_OK)
		return b.status;
	vocab = m->dec.vocab_size;
	pgf_tokenizer_bind(&b, &m->tok, vocab);
	if (b.status != PGF_OK)
		return b.status;

	m->bos_id = (int32_t) cfg->bos_id;
	m->eos_id = (int32_t) cfg->eos_id;
	if (cfg->bos_id >= (uint32_t) vocab || cfg->eos_id >= (uint32_t) vocab)
	{
		pgf_bind_fail(&b, "solo: bos_id %u or eos_id %u is outside the vocabulary of %d",
					  cfg->bos_id, cfg->eos_id, vocab);
		return b.status;
	}
	if (cfg->n_stop_ids > PGF_SOLO_MAX_STOP)
	{
		pgf_bind_fail(&b, "solo: %zu stop ids, at most %d are supported",
					  cfg->n_stop_ids, PGF_SOLO_MAX_STOP);
		return b.status;
	}
	for (size_t i = 0; i < cfg->n_stop_ids; i++)
	{
		if (cfg->stop_ids[i] >= (uint32_t) vocab)
		{
			pgf_bind_fail(&b, "solo: stop id %u is outside the vocabulary of %d",
						  cfg->stop_ids[i], vocab);
			return b.status;
		}
		m->stop_ids[m->n_stop++] = (int32_t) cfg->stop_ids[i];
	}
	if (m->n_stop == 0)
		m->stop_ids[m->n_stop++] = m->eos_id;
	if (cfg->suppress_from > (uint32_t) vocab)
	{
		pgf_bind_fail(&b, "solo: suppress_from %u is beyond the vocabulary of %d",
					  cfg->suppress_from, vocab);
		return b.status;
	}
	m->suppress_from = cfg->suppress_from ? (int) cfg->suppress_from : vocab;
	m->max_new_tokens = cfg->max_new_tokens ? (int) cfg->max_new_tokens : 32;
	if (m->max_new_tokens > PGF_SOLO_MAX_NEW_TOKENS)
		m->max_new_tokens = PGF_SOLO_MAX_NEW_TOKENS;
	m->templates[PGF_SOLO_CAPTION] = cfg->caption_template[0] ?
		cfg->caption_template : default_templates[PGF_SOLO_CAPTION];
	m->templates[PGF_SOLO_ANSWER] = cfg->answer_template[0] ?
		cfg->answer_template : default_templates[PGF_SOLO_ANSWER];
	m->templates[PGF_SOLO_TEXT] = cfg->text_template[0] ?
		cfg->text_template : default_templates[PGF_SOLO_TEXT];

	m->patch_size = (int) cfg->patch_size;
	if (cfg->patch_size == 0)
		return b.status;
	if (cfg->patch_size > 64)
	{
		pgf_bind_fail(&b, "solo: patch_size %u is out of range (1 to 64)", cfg->patch_size);
		return b.status;
	}
	if (cfg->max_image_side > 16384 ||
		(cfg->max_image_side != 0 && cfg->max_image_side % cfg->patch_size != 0))
	{
		pgf_bind_fail(&b, "solo: max_image_side %u must be a multiple of patch_size %u (at most 16384)",
					  cfg->max_image_side, cfg->patch_size);
		return b.status;
	}
	if (cfg->vision_id >= (uint32_t) vocab || cfg->vpatch_id >= (uint32_t) vocab ||
		cfg->vrow_sep_id >= (uint32_t) vocab || cfg->vision_close_id >= (uint32_t) vocab)
	{
		pgf_bind_fail(&b, "solo: an image token id (%u, %u, %u, %u) is outside the vocabulary of %d",
					  cfg->vision_id, cfg->vpatch_id, cfg->vrow_sep_id,
					  cfg->vision_close_id, vocab);
		return b.status;
	}
	{
		const Pgformer__ImagePreprocess *im = file->header->image;

		/* models/image.c prepares patches from these settings */
		if (im == NULL || im->patch_size != cfg->patch_size ||
			im->max_side != cfg->max_image_side || im->grey ||
			im->n_mean != 3 || im->n_std != 3)
		{
			pgf_bind_fail(&b, "solo: the image settings of the file (patch size, largest side, three means and deviations, RGB) disagree with the model's patch_size %u and max_image_side %u",
						  cfg->patch_size, cfg->max_image_side);
			return b.status;
		}
		for (int c = 0; c < 3; c++)
			if (!(im->std[c] > 0) || im->mean[c] != im->mean[c])
			{
				pgf_bind_fail(&b, "solo: image channel %d has mean %g and deviation %g", c,
							  im->mean[c], im->std[c]);
				return b.status;
			}
	}
	m->max_image_side = (int) cfg->max_image_side;
	m->patch_dim = 3 * m->patch_size * m->patch_size;
	m->vision_id = (int32_t) cfg->vision_id;
	m->vpatch_id = (int32_t) cfg->vpatch_id;
	m->vrow_sep_id = (int32_t) cfg->vrow_sep_id;
	m->vision_close_id = (int32_t) cfg->vision_close_id;
	m->patch_proj = pgf_bind_matrix(&b, "dec.emb.patch.weight", m->dec.d_model,
									m->patch_dim, false);
	return b.status;
}

/* ---- images and prompts -------------------------------------------------- */

int
pgf_solo_image_tokens(int n_h, int n_w)
{
	return n_h * n_w + (n_h - 1) + 2;
}

int
pgf_solo_check_image(const PgfSoloModel *m, const PgfSoloImage *image, char *err,
					 size_t errlen)
{
	if (m->patch_size == 0)
	{
		snprintf(err, errlen, "this model takes no images (it is a text-only decoder)");
		return -1;
	}
	if (image == NULL || image->patches == NULL || image->n_h <= 0 || image->n_w <= 0)
	{
		snprintf(err, errlen, "no image patches given");
		return -1;
	}
	if (image->n_h > 4096 || image->n_w > 4096 ||
		(m->max_image_side > 0 &&
		 (image->n_h * m->patch_size > m->max_image_side ||
		  image->n_w * m->patch_size > m->max_image_side)))
	{
		snprintf(err, errlen, "an image of %d x %d patches of %d pixels exceeds the model's largest side of %d pixels",
				 image->n_w, image->n_h, m->patch_size, m->max_image_side);
		return -1;
	}
	return 0;
}

/* The next "{image}" / "{question}" / "{prompt}" at or after s: its start
 * (or NULL) and kind (0 image, 1 text). */
static const char *
next_slot(const char *s, int *kind, size_t *len)
{
	static const char *const slots[3] = {"{image}", "{question}", "{prompt}"};
	const char *best = NULL;

	for (int i = 0; i < 3; i++)
	{
		const char *p = strstr(s, slots[i]);

		if (p && (best == NULL || p < best))
		{
			best = p;
			*kind = i == 0 ? 0 : 1;
			*len = strlen(slots[i]);
		}
	}
	return best;
}

int
pgf_solo_prompt_bound(const PgfSoloModel *m, PgfSoloTask task, const PgfSoloImage *image,
					  size_t text_len)
{
	const char *s = m->templates[task];
	size_t		n = 0;

	for (;;)
	{
		int			kind;
		size_t		sl;
		const char *p = next_slot(s, &kind, &sl);

		if (p == NULL)
		{
			n += strlen(s);
			break;
		}
		n += (size_t) (p - s);
		if (kind == 0)
			n += image ? (size_t) pgf_solo_image_tokens(image->n_h, image->n_w) : 0;
		else
			n += text_len;
		s = p + sl;
	}
	return n > INT32_MAX / 64 ? INT32_MAX / 64 : (int) n;
}

int
pgf_solo_build_prompt(const PgfSoloModel *m, PgfSoloTask task, const PgfSoloImage *image,
					  const char *text, size_t text_len, int32_t *ids, int32_t *patch_index,
					  PgfArena *scratch, char *err, size_t errlen)
{
	const char *s = m->templates[task];
	int			n = 0;

	if (image && pgf_solo_check_image(m, image, err, errlen) != 0)
		return -1;
	for (;;)
	{
		int			kind;
		size_t		sl;
		const char *p = next_slot(s, &kind, &sl);
		size_t		lit = p ? (size_t) (p - s) : strlen(s);
		int			k;

		k = pgf_tokenizer_encode(&m->tok, s, lit, true, ids + n, scratch);
		for (int i = 0; i < k; i++)
			patch_index[n + i] = -1;
		n += k;
		if (p == NULL)
			break;
		if (kind == 0 && image)
		{
			ids[n] = m->vision_id;
			patch_index[n++] = -1;
			for (int r = 0; r < image->n_h; r++)
			{
				if (r > 0)
				{
					ids[n] = m->vrow_sep_id;
					patch_index[n++] = -1;
				}
				for (int c = 0; c < image->n_w; c++)
				{
					ids[n] = m->vpatch_id;
					patch_index[n++] = r * image->n_w + c;
				}
			}
			ids[n] = m->vision_close_id;
			patch_index[n++] = -1;
		}
		else if (kind == 1 && text_len > 0)
		{
			k = pgf_tokenizer_encode(&m->tok, text, text_len, false, ids + n, scratch);
			for (int i = 0; i < k; i++)
				patch_index[n + i] = -1;
			n += k;
		}
		s = p + sl;
	}
	if (n == 0)
	{
		snprintf(err, errlen, "the %s prompt is empty", task_names[task]);
		return -1;
	}
	return n;
}

/* ---- embeddings -------------------------------------------------------- */

static size_t
patch_bytes(const PgfSoloModel *m, int n_patches)
{
	if (n_patches <= 0 || m->patch_size == 0)
		return 0;
	return pgf_arena_round((size_t) n_patches * m->dec.d_model * sizeof(float)) +
		pgf_arena_round(pgf_linear_scratch_bytes(&m->patch_proj, n_patches));
}

/* x[n, d] = tok_emb[ids] + W_patch . patches[patch_index] where >= 0. */
static int
embed_sequence(const PgfSoloModel *m, const int32_t *ids, const int32_t *patch_index,
			   int n, const float *patches, int n_patches, float *x, PgfArena *arena,
			   char *err, size_t errlen)
{
	int			d = m->dec.d_model;
	size_t		mark;
	float	   *proj;
	bool		any = false;

	if (pgf_decoder_embed(&m->dec, ids, n, x, err, errlen) != 0)
		return -1;
	for (int i = 0; i < n && patch_index; i++)
	{
		if (patch_index[i] < 0)
			continue;
		if (patch_index[i] >= n_patches || patches == NULL || m->patch_size == 0)
		{
			snprintf(err, errlen, "position %d names patch %d, but %d patches were given",
					 i, patch_index[i], patches ? n_patches : 0);
			return -1;
		}
		any = true;
	}
	if (!any)
		return 0;
	mark = pgf_arena_mark(arena);
	proj = pgf_arena_floats(arena, (size_t) n_patches * d);
	pgf_linear(proj, patches, n_patches, &m->patch_proj, NULL, arena);
	for (int i = 0; i < n; i++)
		if (patch_index[i] >= 0)
			pgf_add(x + (size_t) i * d, proj + (size_t) patch_index[i] * d, (size_t) d);
	pgf_arena_reset(arena, mark);
	return 0;
}

static int
prefill_chunk(int n)
{
	return n < PGF_SOLO_PREFILL_CHUNK ? (n > 0 ? n : 1) : PGF_SOLO_PREFILL_CHUNK;
}

/* ---- generation ---------------------------------------------------------- */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
request_max_new(const PgfSoloModel *m, const PgfSoloRequest *req)
{
	int			n = req->max_new_tokens > 0 ? req->max_new_tokens : m->max_new_tokens;

	return n > PGF_SOLO_MAX_NEW_TOKENS ? PGF_SOLO_MAX_NEW_TOKENS : n;
}

static const PgfSoloImage *
request_image(const PgfSoloRequest *req)
{
	return req->task == PGF_SOLO_TEXT ? NULL : req->image;
}

/* Positions a sequence may have: the model's limit, or a safety cap. */
static int
context_limit(const PgfSoloModel *m)
{
	return m->dec.max_positions > 0 ? m->dec.max_positions : PGF_SOLO_MAX_CONTEXT;
}

static int
min_int(int a, int b)
{
	return a < b ? a : b;
}

size_t
pgf_solo_generate_arena_bytes(const PgfSoloModel *m, const PgfSoloRequest *req)
{
	const PgfSoloImage *image = request_image(req);
	size_t		text_len = req->text_len > PGF_SOLO_MAX_TEXT_BYTES ? 0 : req->text_len;
	int			bound,
				ctx = context_limit(m),
				max_new = request_max_new(m, req),
				rows,
				capacity,
				n_patches = 0;
	size_t		tlen,
				bytes = 0;

	if ((unsigned) req->task > PGF_SOLO_TEXT)
		return PGF_ARENA_ALIGN;
	tlen = strlen(m->templates[req->task]);
	if (image && (image->n_h <= 0 || image->n_w <= 0 || image->n_h > 4096 || image->n_w > 4096))
		image = NULL;
	if (image)
		n_patches = min_int(image->n_h * image->n_w, ctx);
	bound = pgf_solo_prompt_bound(m, req->task, image, text_len);
	rows = min_int(bound, ctx);
	capacity = min_int(bound + max_new, ctx);
	if (tlen < text_len)
		tlen = text_len;
	bytes += 2 * pgf_arena_round((size_t) (bound + 1) * sizeof(int32_t));
	bytes += pgf_tokenizer_encode_scratch_bytes(tlen);
	bytes += pgf_arena_round((size_t) (rows + 1) * m->dec.d_model * sizeof(float));
	bytes += patch_bytes(m, n_patches);
	bytes += pgf_decoder_state_bytes(&m->dec, capacity, prefill_chunk(rows));
	bytes += pgf_sample_scratch_bytes(m->dec.vocab_size);
	bytes += pgf_arena_round((size_t) max_new * sizeof(int32_t));
	bytes += pgf_arena_round(pgf_tokenizer_decode_bound(&m->tok, max_new));
	bytes += pgf_arena_round((size_t) max_new * m->tok.max_token_bytes + 1);
	return bytes + 16 * PGF_ARENA_ALIGN;
}

int
pgf_solo_generate(const PgfSoloModel *m, const PgfSoloRequest *req, PgfArena *arena,
				  PgfSoloResult *res, char *err, size_t errlen)
{
	const PgfSoloImage *image = request_image(req);
	int			vocab = m->dec.vocab_size;
	int			bound,
				n,
				ctx = context_limit(m),
				max_new = request_max_new(m, req);
	int32_t    *ids,
			   *pidx;
	float	   *x;
	PgfDecoderState st;
	PgfRng		rng;
	PgfTokenRange ranges[PGF_SOLO_MAX_SUPPRESS + 1];
	int			n_ranges = 0;

	memset(res, 0, sizeof(*res));
	if ((unsigned) req->task > PGF_SOLO_TEXT)
	{
		snprintf(err, errlen, "unknown task %d", (int) req->task);
		return -1;
	}
	if (req->task != PGF_SOLO_TEXT && pgf_solo_check_image(m, image, err, errlen) != 0)
		return -1;
	if (req->text_len > 0 && req->text == NULL)
	{
		snprintf(err, errlen, "text length given without text");
		return -1;
	}
	if (req->text_len > PGF_SOLO_MAX_TEXT_BYTES)
	{
		snprintf(err, errlen, "the text is %zu bytes, at most %d are accepted",
				 req->text_len, PGF_SOLO_MAX_TEXT_BYTES);
		return -1;
	}
	if (req->n_suppress < 0 || req->n_suppress > PGF_SOLO_MAX_SUPPRESS)
	{
		snprintf(err, errlen, "%d suppressed ranges, at most %d are supported",
				 req->n_suppress, PGF_SOLO_MAX_SUPPRESS);
		return -1;
	}
	if (req->sampling.temperature != req->sampling.temperature ||
		req->sampling.top_p != req->sampling.top_p)
	{
		snprintf(err, errlen, "temperature and top_p must be numbers");
		return -1;
	}

	bound = pgf_solo_prompt_bound(m, req->task, image, req->text_len);
	ids = pgf_arena_alloc(arena, (size_t) (bound + 1) * sizeof(int32_t));
	pidx = pgf_arena_alloc(arena, (size_t) (bound + 1) * sizeof(int32_t));
	n = pgf_solo_build_prompt(m, req->task, image, req->text, req->text_len, ids, pidx,
							  arena, err, errlen);
	if (n < 0)
		return -1;
	res->n_prompt = n;
	if (n >= ctx)
	{
		snprintf(err, errlen, "the prompt has %d tokens, the model takes at most %d",
				 n, ctx - 1);
		return -1;
	}
	if (n + max_new > ctx)
		max_new = ctx - n;

	x = pgf_arena_floats(arena, (size_t) (min_int(bound, ctx) + 1) * m->dec.d_model);
	if (embed_sequence(m, ids, pidx, n, image ? image->patches : NULL,
					   image ? image->n_h * image->n_w : 0, x, arena, err, errlen) != 0)
		return -1;
	if (pgf_decoder_state_init(&st, &m->dec, n + max_new, prefill_chunk(n), arena,
							   err, errlen) != 0)
		return -1;
	if (pgf_decoder_forward(&st, x, n, true, err, errlen) != 0)
		return -1;

	if (m->suppress_from < vocab)
	{
		ranges[n_ranges].lo = m->suppress_from;
		ranges[n_ranges++].hi = vocab;
	}
	for (int i = 0; i < req->n_suppress; i++)
		ranges[n_ranges++] = req->suppress[i];
	pgf_rng_seed(&rng, req->sampling.seed);
	res->tokens = pgf_arena_alloc(arena, (size_t) (max_new > 0 ? max_new : 1) * sizeof(int32_t));
	for (int t = 0; t < max_new; t++)
	{
		int			tok;

		pgf_check_interrupts();
		pgf_suppress_ranges(st.logits, vocab, ranges, n_ranges);
		tok = pgf_sample_token(&req->sampling, &rng, st.logits, vocab, arena);
		if (tok < 0)
			break;
		if (pgf_is_stop_token(tok, m->stop_ids, m->n_stop))
		{
			res->stopped = true;
			break;
		}
		res->tokens[res->n_tokens++] = tok;
		if (req->on_token)
			req->on_token(req->on_token_arg, res->n_tokens);
		if (t + 1 == max_new)
			break;
		if (pgf_decoder_step(&st, tok, err, errlen) != 0)
			return -1;
	}
	res->text = pgf_arena_alloc(arena, pgf_tokenizer_decode_bound(&m->tok, res->n_tokens));
	res->text_len = pgf_tokenizer_decode(&m->tok, res->tokens, res->n_tokens, true,
										 res->text, arena);
	if (req->task != PGF_SOLO_TEXT)
	{
		/* captions and answers are phrases: no surrounding white space */
		size_t		start = 0;

		while (res->text_len > 0 && is_blank(res->text[res->text_len - 1]))
			res->text[--res->text_len] = '\0';
		while (start < res->text_len && is_blank(res->text[start]))
			start++;
		res->text += start;
		res->text_len -= start;
	}
	return 0;
}

/* ---- image embedding and full logits ------------------------------------ */

size_t
pgf_solo_embedding_arena_bytes(const PgfSoloModel *m, const PgfSoloImage *image)
{
	int			n,
				np;

	if (image == NULL || image->n_h <= 0 || image->n_w <= 0 || image->n_h > 4096 ||
		image->n_w > 4096)
		return PGF_ARENA_ALIGN;
	n = pgf_solo_image_tokens(image->n_h, image->n_w);
	np = image->n_h * image->n_w;
	if (n > context_limit(m))
		return PGF_ARENA_ALIGN;
	return 2 * pgf_arena_round((size_t) n * sizeof(int32_t)) +
		pgf_arena_round((size_t) n * m->dec.d_model * sizeof(float)) +
		patch_bytes(m, np) +
		pgf_decoder_state_bytes(&m->dec, n, prefill_chunk(n)) + 4 * PGF_ARENA_ALIGN;
}

int
pgf_solo_image_embedding(const PgfSoloModel *m, const PgfSoloImage *image, float *out,
						 PgfArena *arena, char *err, size_t errlen)
{
	int			d = m->dec.d_model;
	int			n,
				np,
				k = 0;
	int32_t    *ids,
			   *pidx;
	float	   *x;
	PgfDecoderState st;

	if (pgf_solo_check_image(m, image, err, errlen) != 0)
		return -1;
	n = pgf_solo_image_tokens(image->n_h, image->n_w);
	np = image->n_h * image->n_w;
	if (n > context_limit(m))
	{
		snprintf(err, errlen, "the image takes %d tokens, the model takes at most %d",
				 n, context_limit(m));
		return -1;
	}
	ids = pgf_arena_alloc(arena, (size_t) n * sizeof(int32_t));
	pidx = pgf_arena_alloc(arena, (size_t) n * sizeof(int32_t));
	ids[k] = m->vision_id;
	pidx[k++] = -1;
	for (int r = 0; r < image->n_h; r++)
	{
		if (r > 0)
		{
			ids[k] = m->vrow_sep_id;
			pidx[k++] = -1;
		}
		for (int c = 0; c < image->n_w; c++)
		{
			ids[k] = m->vpatch_id;
			pidx[k++] = r * image->n_w + c;
		}
	}
	ids[k] = m->vision_close_id;
	pidx[k++] = -1;

	x = pgf_arena_floats(arena, (size_t) n * d);
	if (embed_sequence(m, ids, pidx, n, image->patches, np, x, arena, err, errlen) != 0)
		return -1;
	if (pgf_decoder_state_init(&st, &m->dec, n, prefill_chunk(n), arena, err, errlen) != 0)
		return -1;
	if (pgf_decoder_forward(&st, x, n, false, err, errlen) != 0)
		return -1;
	memset(out, 0, sizeof(float) * d);
	for (int i = 0; i < n; i++)
		if (pidx[i] >= 0)
			pgf_add(out, x + (size_t) i * d, (size_t) d);
	pgf_scale(out, 1.0f / np, (size_t) d);
	return 0;
}

size_t
pgf_solo_logits_arena_bytes(const PgfSoloModel *m, int n, int n_patches)
{
	if (n <= 0)
		return PGF_ARENA_ALIGN;
	return pgf_arena_round((size_t) n * m->dec.d_model * sizeof(float)) +
		patch_bytes(m, n_patches) +
		pgf_decoder_state_bytes(&m->dec, n, prefill_chunk(n)) + 4 * PGF_ARENA_ALIGN;
}

int
pgf_solo_forward_logits(const PgfSoloModel *m, const int32_t *ids,
						const int32_t *patch_index, int n, const float *patches,
						int n_patches, float *logits, PgfArena *arena,
						char *err, size_t errlen)
{
	float	   *x;
	PgfDecoderState st;

	if (n <= 0)
	{
		snprintf(err, errlen, "the sequence is empty");
		return -1;
	}
	x = pgf_arena_floats(arena, (size_t) n * m->dec.d_model);
	if (embed_sequence(m, ids, patch_index, n, patches, n_patches, x, arena, err, errlen) != 0)
		return -1;
	if (pgf_decoder_state_init(&st, &m->dec, n, prefill_chunk(n), arena, err, errlen) != 0)
		return -1;
	if (pgf_decoder_forward(&st, x, n, false, err, errlen) != 0)
		return -1;
	pgf_decoder_logits(&st, x, n, logits);
	return 0;
}
