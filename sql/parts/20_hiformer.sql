-- Hiformer rankers.  A hiformer model reads its features through bindings
-- whose column names are its feature names:
--   pgformer_bind('ranker', 'user_features',    $$... WHERE user_id = $1$$)     one row
--   pgformer_bind('ranker', 'item_features',    $$SELECT item_id, ... WHERE item_id = ANY ($1)$$)
--   pgformer_bind('ranker', 'context_features', $$SELECT ... $$)               optional

CREATE FUNCTION rank_items(model text, user_id bigint, item_ids bigint[],
                           context jsonb DEFAULT NULL, task text DEFAULT NULL,
                           OUT item_id bigint, OUT score real, OUT rank int)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_rank_items'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE ROWS 100
    SUPPORT pgformer_rows_support;
COMMENT ON FUNCTION rank_items(text, bigint, bigint[], jsonb, text) IS
    'scores candidate items for a user with a Hiformer ranker, best first; context: feature values overriding the context binding; task: which head (default the first)';

CREATE FUNCTION score(model text, features jsonb, task text DEFAULT NULL) RETURNS real
    AS 'MODULE_PATHNAME', 'pgformer_score'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION score(text, jsonb, text) IS
    'the probability a Hiformer ranker gives one ready-made feature row (feature name -> value)';

CREATE FUNCTION score_batch(model text, features jsonb[], task text DEFAULT NULL) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgformer_score_many'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION score_batch(text, jsonb[], text) IS
    'probabilities for many feature rows in one call, in the same order';
