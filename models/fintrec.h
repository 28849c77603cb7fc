/*
 * fintrec.h: the FinTRec sequence recommender (and plain SASRec, a special
 * case of it): bind a .pgf file, then recommend the next items for users
 * given their events.
 *
 * A request is one user's events (external item ids, unix-second
 * timestamps, optional event types and channels), optional static context
 * values and foundation-model embedding, a placement and the request time.
 * The model builds
 *     [FM token] [static tokens] [event tokens, oldest first] [query token]
 * runs the transformer stack (prefix-LM causal mask for the decoder,
 * bidirectional for the encoder, an ALiBi-style bias over time and token
 * distance), reads the
 * query token's final state h_u and scores every item row with one GEMM:
 *     logit_a = (W_c h_u) . T[a] + beta_a + beta_place[placement]
 * then takes the top k, never returning the pad or unknown rows and, with
 * exclude_seen, none of the request's items.  The exact definition (time
 * features, positions, masks) is the reference in tools/models/fintrec.py.
 *
 * Events may be given newest first (as "ORDER BY ts DESC LIMIT n" returns
 * them) or oldest first; the order given is the sequence order (timestamps
 * are not re-sorted).  Only the newest max_events events enter the model;
 * older ones still count as seen.  Ids the model does not know map to its
 * unknown row and are counted for the caller.  Zero events (cold start) is
 * a valid request: the answer comes from the prefix and query tokens.
 *
 * Nothing allocates: every call works in a caller-owned arena of at least
 * pgf_fintrec_arena_bytes() bytes.  Work per call: the stack over the user's
 * tokens, one GEMM over the item table and the top-k; nothing else is
 * proportional to the catalogue.
 */
#ifndef PGF_FINTREC_H
#define PGF_FINTREC_H

#include "models/transformer.h"

#define FINTREC_MAX_STATIC 64
#define FINTREC_TIME_FEATURES 9

typedef struct PgfFintrecModel
{
	PgfStack	stack;
	bool		decoder;		/* causal (pCTR) or bidirectional (pCVR) */
	int			d;
	int			n_heads;
	int			max_events;

	/* item rows */
	int			n_rows;			/* rows of the item table */
	int			item_pad;
	int			item_unknown;
	int			item_first;
	const int64_t *item_ids;	/* [n_ids] sorted; row item_first + i */
	int			n_ids;

	/* embeddings */
	PgfMatrix	item_emb;		/* [n_rows, d] */
	float		item_scale;		/* sqrt(d) or 1 */
	int			n_event_types;	/* 0: none */
	PgfMatrix	evt_emb;
	int			n_channels;		/* 0: none */
	PgfMatrix	chan_emb;
	PgfMatrix	time_w;			/* [d, 9] or empty */
	bool		time_encoding;
	PgfMatrix	pos_emb;		/* [max_events + 1, d] or empty */
	bool		learned_positions;
	bool		query_token;	/* false: SASRec read-out of the last token */
	const float *query_emb;		/* [d] */
	int			n_placements;
	PgfMatrix	place_emb;		/* [n_placements, d] */
	int			n_static;
	PgfMatrix	static_field;	/* [n_static, d] */
	PgfMatrix	static_value[FINTREC_MAX_STATIC];	/* [static_vocab[k], d] */
	int			static_vocab[FINTREC_MAX_STATIC];
	int			d_fm;			/* 0: no FM token */
	PgfMatrix	fm_w;			/* [d, d_fm] */
	const float *fm_b;			/* [d] */
	int			n_prefix;		/* FM token + static tokens */

	/* attention bias: -slope_h * (|t_i - t_j| / tau + index_bias * |i - j|) */
	bool		has_bias;
	bool		time_bias;
	double		time_bias_tau;	/* seconds */
	double		index_bias;
	const float *slopes;		/* [n_heads] */

	/* scoring */
	PgfMatrix	score_w;		/* [d, d] W_c or empty */
	PgfMatrix	score_table;	/* [n_rows, d]: item_emb when tied */
	const float *bias_item;		/* [n_rows] or NULL */
	const float *bias_place;	/* [n_placements] or NULL */
} PgfFintrecModel;

/* One user's request.  Arrays have n entries; optional ones may be NULL. */
typedef struct PgfFintrecEvents
{
	int			n;
	const int64_t *item_ids;	/* external ids */
	const int64_t *timestamps;	/* unix seconds; NULL only if the model uses
								 * no time (then now is ignored too) */
	const int32_t *event_types; /* NULL: type 0 (unspecified) */
	const int32_t *channels;	/* NULL: channel 0 */
	bool		newest_first;	/* order of the arrays */
	const int32_t *static_values;	/* [n_static]; NULL: all 0 */
	const float *fm;			/* [d_fm]; NULL: zeros */
	int			placement;		/* 0 .. n_placements - 1 */
	int64_t		now;			/* request time, unix seconds */
} PgfFintrecEvents;

/* Binds a validated file (PgfArch bind function; model is a PgfFintrecModel). */
PgfStatus	pgf_fintrec_bind(const PgfModel *file, void *model, char *err, size_t errlen);

/*
 * Arena bytes for one call with up to batch users of up to max_events
 * events each (events beyond the model's max_events cost nothing extra,
 * except one byte each for the exclusion list).
 */
size_t		pgf_fintrec_arena_bytes(const PgfFintrecModel *m, int max_events, int batch);

/* Rows of the item table (the length of pgf_fintrec_logits' output). */
int			pgf_fintrec_rows(const PgfFintrecModel *m);

/*
 * Top k items for one user: out_ids / out_scores get up to k entries,
 * best first (ties: lower item row first).  k beyond the eligible items is
 * clamped.  *n_unknown (may be NULL) gets the number of events whose id the
 * model does not know.  Returns the number written, or -1 with a message
 * in err when the request is invalid (bad placement, event type, static
 * value, missing timestamps, negative k or n).
 */
int			pgf_fintrec_recommend(const PgfFintrecModel *m, const PgfFintrecEvents *ev, int k,
							  bool exclude_seen, int64_t *out_ids, float *out_scores,
							  int *n_unknown, PgfArena *arena, char *err, size_t errlen);

/*
 * Many users in one call: their tokens are packed back to back (no
 * padding) through one stack pass, and all users are scored in one GEMM.
 * Output of user u: out_ids[u * k ..], out_scores[u * k ..], out_counts[u]
 * entries; n_unknown[u] (may be NULL).  The arena must hold
 * pgf_fintrec_arena_bytes(m, max events of any user, n_users).  Returns 0, or
 * -1 with a message naming the first invalid request.
 */
int			pgf_fintrec_recommend_batch(const PgfFintrecModel *m, const PgfFintrecEvents *users,
									int n_users, int k, bool exclude_seen,
									int64_t *out_ids, float *out_scores, int *out_counts,
									int *n_unknown, PgfArena *arena,
									char *err, size_t errlen);

/*
 * Raw logits of every item row (pgf_fintrec_rows() of them, pad and unknown
 * rows included), placement bias included.  Returns 0 or -1 with a message.
 */
int			pgf_fintrec_logits(const PgfFintrecModel *m, const PgfFintrecEvents *ev,
						   float *out_logits, int *n_unknown, PgfArena *arena,
						   char *err, size_t errlen);

/*
 * The user's query vector u [d] (u = W_c h_u), such that the logit of item
 * row a is u . T[a] + beta_a + beta_place: what an inner-product index over
 * the scoring table needs.  Returns 0 or -1 with a message.
 */
int			pgf_fintrec_user_vector(const PgfFintrecModel *m, const PgfFintrecEvents *ev,
								float *out, int *n_unknown, PgfArena *arena,
								char *err, size_t errlen);

/* Item-table row of an external id, or the unknown row. */
int			pgf_fintrec_item_row(const PgfFintrecModel *m, int64_t id);

/* External id of a real item row (row >= item_first), or -1. */
int64_t		pgf_fintrec_row_id(const PgfFintrecModel *m, int row);

#endif							/* PGF_FINTREC_H */
