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

-- Users waiting for an asynchronous re-rank (pgformer_rerank_async), with
-- the role that queued them and the target table as resolved then.
CREATE TABLE pgformer_rerank_pending (
    id        bigserial PRIMARY KEY,
    model     text NOT NULL,
    target    oid NOT NULL,
    k         int NOT NULL,
    role      oid NOT NULL,
    user_id   bigint NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
REVOKE ALL ON pgformer_rerank_pending FROM PUBLIC;

CREATE VIEW pgformer_rerank_queue AS
    SELECT model, target::pg_catalog.regclass AS target_table,
           pg_catalog.count(DISTINCT user_id) AS users, pg_catalog.count(*) AS entries,
           pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(queued_at) AS oldest
    FROM pgformer_rerank_pending GROUP BY model, target;
GRANT SELECT ON pgformer_rerank_queue TO PUBLIC;

CREATE FUNCTION pgformer_rerank_async() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pgformer_rerank_async'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_rerank_async() IS
    'like pgformer_rerank, after commit: queues the users; background workers (pgformer.rerank_workers, in pgformer.rerank_database) re-rank them in packed batches';

CREATE FUNCTION pgformer_rerank() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pgformer_rerank'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_rerank() IS
    'AFTER INSERT/UPDATE trigger (model, target_table [, k [, user_column]]): rewrites the users'' top k in target_table (user_id, item_id, score, rank); FOR EACH ROW, or FOR EACH STATEMENT with REFERENCING NEW TABLE (each user once, one packed pass)';
