-- FinTRec / SASRec sequence recommenders.  A fintrec model reads a user's
-- events through its 'events' binding:
--   pgformer_bind('recs', 'events', $$SELECT item_id, ts [, event_type [, channel]]
--                 FROM events WHERE user_id = $1 ORDER BY ts DESC LIMIT 200$$)
-- (20_hiformer.sql defines rank_items, used by recommend(..., rerank => ...))

CREATE FUNCTION recommend(user_id bigint, k int DEFAULT 10, model text DEFAULT NULL,
                          exclude_seen boolean DEFAULT true, at timestamptz DEFAULT NULL,
                          rerank text DEFAULT NULL, candidates int DEFAULT 200,
                          context jsonb DEFAULT NULL,
                          OUT item_id bigint, OUT score real, OUT rank int)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_recommend'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE ROWS 10
    SUPPORT pgformer_rows_support;
COMMENT ON FUNCTION recommend(bigint, int, text, boolean, timestamptz, text, int, jsonb) IS
    'the top k items for a user from their bound events (a null or unknown user gets a cold-start answer); at: the request time, default now(); rerank: a Hiformer ranker that re-ranks the top `candidates` (context: its context features)';

CREATE FUNCTION recommend_from(model text, item_ids bigint[], ts timestamptz[] DEFAULT NULL,
                               k int DEFAULT 10, exclude_seen boolean DEFAULT true,
                               OUT item_id bigint, OUT score real, OUT rank int)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_recommend_from'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE ROWS 10
    SUPPORT pgformer_rows_support;
COMMENT ON FUNCTION recommend_from(text, bigint[], timestamptz[], int, boolean) IS
    'the top k items after an ad-hoc sequence of items, oldest first (or ordered by ts)';

CREATE FUNCTION recommend_batch(user_ids bigint[], k int DEFAULT 10, model text DEFAULT NULL,
                                exclude_seen boolean DEFAULT true, at timestamptz DEFAULT NULL,
                                OUT user_id bigint, OUT item_id bigint, OUT score real,
                                OUT rank int)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_recommend_batch'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE ROWS 1000
    SUPPORT pgformer_rows_support;
COMMENT ON FUNCTION recommend_batch(bigint[], int, text, boolean, timestamptz) IS
    'the top k items for many users, their sequences packed into one batched pass';

CREATE FUNCTION pgformer_rerank() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pgformer_rerank'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_rerank() IS
    'AFTER INSERT/UPDATE trigger (model, target_table [, k [, user_column]]): rewrites the users'' top k in target_table (user_id, item_id, score, rank); FOR EACH ROW, or FOR EACH STATEMENT with REFERENCING NEW TABLE (each user once, one packed pass)';
