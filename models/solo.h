/*
 * solo.h: the "solo" architecture: a Llama-family decoder (decoder.h) whose
 * input can hold raw image patches (SOLO, docs/solo.md),
 * its tokenizer, prompt templates and the generation driver behind the
 * SQL functions caption(), answer(), generate_text() and
 * image_embedding().  With patch_size 0 it is a plain text LLM.
 *
 * Tensors: the decoder's under prefix "dec" (decoder.h), plus
 *   dec.emb.patch.weight [d, 3*P*P]   pixel-patch projection (patch_size > 0)
 * and the tokenizer tables (tokenizer.h).
 *
 * An image is given as normalised channel-major patches [nH*nW, 3*P*P]
 * in row-major patch order (models/image.c makes them) and enters the
 * sequence as
 *   <vision> P(0,0) .. P(0,nW-1) <vrow_sep> P(1,0) .. P(nH-1,nW-1) <close>
 * where each P is the <vpatch> token and its embedding is
 * tok_emb[<vpatch>] + W_patch . patch; <close> is vision_close_id (SOLO's
 * released model closes with a second <vision>).
 *
 * Prompts come from the model's templates: "{image}" is replaced by the
 * image block, "{question}" and "{prompt}" by the caller's text (tokenized
 * as plain text, so it can never forge a special token); the template's
 * own text is tokenized with special tokens recognised.  Each part is
 * tokenized on its own.
 *
 * Every call takes a caller-owned arena of at least the size the matching
 * *_arena_bytes function returns, and allocates nothing else.
 */
#ifndef PGF_SOLO_H
#define PGF_SOLO_H

#include "models/decoder.h"
#include "models/sampling.h"
#include "models/tokenizer.h"

#define PGF_SOLO_MAX_STOP 16
#define PGF_SOLO_MAX_NEW_TOKENS 4096
#define PGF_SOLO_MAX_SUPPRESS 8
#define PGF_SOLO_PREFILL_CHUNK 128
#define PGF_SOLO_MAX_TEXT_BYTES (1 << 20)	/* longest question or prompt */
#define PGF_SOLO_MAX_CONTEXT 32768	/* positions when the model sets no limit */

typedef enum PgfSoloTask
{
	PGF_SOLO_CAPTION = 0,		/* caption_template, needs an image */
	PGF_SOLO_ANSWER = 1,		/* answer_template, an image and a question */
	PGF_SOLO_TEXT = 2			/* text_template, a prompt */
} PgfSoloTask;

typedef struct PgfSoloModel
{
	PgfDecoder	dec;
	PgfTokenizer tok;
	PgfMatrix	patch_proj;		/* [d, patch_dim]; unused when patch_size 0 */
	int			patch_size;
	int			patch_dim;		/* 3 * P * P */
	int			max_image_side; /* 0: no limit */
	int32_t		vision_id;
	int32_t		vpatch_id;
	int32_t		vrow_sep_id;
	int32_t		vision_close_id;
	int32_t		bos_id;
	int32_t		eos_id;
	int32_t		stop_ids[PGF_SOLO_MAX_STOP];
	int			n_stop;
	int			suppress_from;	/* vocab_size when nothing is suppressed */
	const char *templates[3];	/* by PgfSoloTask */
	int			max_new_tokens; /* default generation length */
} PgfSoloModel;

PgfStatus	pgf_solo_bind(const PgfModel *file, void *model, char *err, size_t errlen);

/* An image as patches [n_h * n_w, patch_dim], row-major patch order. */
typedef struct PgfSoloImage
{
	const float *patches;
	int			n_h;
	int			n_w;
} PgfSoloImage;

typedef struct PgfSoloRequest
{
	PgfSoloTask task;
	const PgfSoloImage *image;	/* caption and answer; ignored for text */
	const char *text;			/* the question or prompt (may be NULL) */
	size_t		text_len;
	int			max_new_tokens; /* <= 0: the model's default */
	PgfSampling sampling;		/* temperature <= 0: greedy */
	/* extra id ranges never to generate (beyond suppress_from) */
	PgfTokenRange suppress[PGF_SOLO_MAX_SUPPRESS];
	int			n_suppress;
	/* called (when set) after each generated token with the count so far */
	void		(*on_token) (void *arg, int n_tokens);
	void	   *on_token_arg;
} PgfSoloRequest;

typedef struct PgfSoloResult
{
	char	   *text;			/* in the arena, NUL-terminated valid UTF-8;
								 * captions and answers without surrounding
								 * white space */
	size_t		text_len;
	int32_t    *tokens;			/* generated ids, stop token excluded */
	int			n_tokens;
	int			n_prompt;		/* prompt length in tokens */
	bool		stopped;		/* ended on a stop token (not on length) */
} PgfSoloResult;

/* Tokens of the image block of an n_h x n_w patch grid. */
int			pgf_solo_image_tokens(int n_h, int n_w);

/*
 * Checks an image against the model (patches exist, grid within the
 * maximum side).  Returns 0 or -1 with a message.
 */
int			pgf_solo_check_image(const PgfSoloModel *m, const PgfSoloImage *image,
								 char *err, size_t errlen);

/*
 * The prompt of a task: ids[n] and patch_index[n] (-1 for text tokens).
 * Both arrays hold pgf_solo_prompt_bound() entries.  image may be NULL
 * ("{image}" then adds nothing).  Returns n, or -1 with a message.
 */
int			pgf_solo_prompt_bound(const PgfSoloModel *m, PgfSoloTask task,
								  const PgfSoloImage *image, size_t text_len);
int			pgf_solo_build_prompt(const PgfSoloModel *m, PgfSoloTask task,
								  const PgfSoloImage *image, const char *text,
								  size_t text_len, int32_t *ids, int32_t *patch_index,
								  PgfArena *scratch, char *err, size_t errlen);

/* Arena bytes pgf_solo_generate needs for this request. */
size_t		pgf_solo_generate_arena_bytes(const PgfSoloModel *m, const PgfSoloRequest *req);

/*
 * Runs a request: builds the prompt, prefills it, then generates until a
 * stop token or max_new_tokens, checking for interrupts every token.
 * Returns 0, or -1 with a message for any bad input.
 */
int			pgf_solo_generate(const PgfSoloModel *m, const PgfSoloRequest *req,
							  PgfArena *arena, PgfSoloResult *result,
							  char *err, size_t errlen);

/*
 * image_embedding(): runs the image block alone and writes the mean of
 * the final-normed hidden states of its patch tokens to out[d_model].
 */
size_t		pgf_solo_embedding_arena_bytes(const PgfSoloModel *m, const PgfSoloImage *image);
int			pgf_solo_image_embedding(const PgfSoloModel *m, const PgfSoloImage *image,
									 float *out, PgfArena *arena, char *err, size_t errlen);

/*
 * Logits of every position of a prepared sequence (ids, patch_index as
 * pgf_solo_build_prompt makes them; patches [n_patches, patch_dim] or
 * NULL): logits[n, vocab].  For tests and scoring.
 */
size_t		pgf_solo_logits_arena_bytes(const PgfSoloModel *m, int n, int n_patches);
int			pgf_solo_forward_logits(const PgfSoloModel *m, const int32_t *ids,
									const int32_t *patch_index, int n,
									const float *patches, int n_patches, float *logits,
									PgfArena *arena, char *err, size_t errlen);

#endif							/* PGF_SOLO_H */
