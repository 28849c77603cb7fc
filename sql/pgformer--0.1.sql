-- pgformer core: the model store, the cache views and inspection.
\echo Use "CREATE EXTENSION pgformer" to load this file. \quit

-- One row per loaded model version.  The bytes live in
-- pgformer_model_chunk, split so that no value nears the 1 GB limit.
CREATE TABLE pgformer_model (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    version      int NOT NULL CHECK (version > 0),
    architecture text NOT NULL,
    params       bigint NOT NULL,
    bytes        bigint NOT NULL,
    crc32        bigint NOT NULL,
    chunk_bytes  int NOT NULL,
    source       text NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    loaded_by    name NOT NULL DEFAULT session_user,
    -- the role that loaded the first version of the name: it and its
    -- members (and superusers) load new versions, drop and bind the model
    owner        name NOT NULL,
    -- random and unique to this stored version: names its cache file
    cache_key    text NOT NULL UNIQUE,
    -- SHA-256 of every byte of the file, checked when it is materialised
    sha256       bytea NOT NULL,
    UNIQUE (name, version)
);

CREATE TABLE pgformer_model_chunk (
    model_id bigint NOT NULL REFERENCES pgformer_model (id) ON DELETE CASCADE,
    chunk    int NOT NULL,
    data     bytea NOT NULL,
    PRIMARY KEY (model_id, chunk)
);
-- weights do not compress: store them out of line without trying
ALTER TABLE pgformer_model_chunk ALTER COLUMN data SET STORAGE EXTERNAL;

-- pg_dump carries the models
SELECT pg_catalog.pg_extension_config_dump('pgformer_model', '');
SELECT pg_catalog.pg_extension_config_dump('pgformer_model_chunk', '');
SELECT pg_catalog.pg_extension_config_dump('pgformer_model_id_seq', '');

REVOKE ALL ON pgformer_model, pgformer_model_chunk FROM PUBLIC;

CREATE FUNCTION pgformer_load(name text, path text) RETURNS int
    AS 'MODULE_PATHNAME', 'pgformer_load_path'
    LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_load(text, text) IS
    'stores the model file at a server path as a new version of name; returns the version';

CREATE FUNCTION pgformer_load(name text, data bytea) RETURNS int
    AS 'MODULE_PATHNAME', 'pgformer_load_bytea'
    LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_load(text, bytea) IS
    'stores a model file passed as bytes as a new version of name; returns the version';

CREATE FUNCTION pgformer_drop(name text) RETURNS int
    AS 'MODULE_PATHNAME', 'pgformer_drop'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_drop(text) IS
    'removes every version of a model and its bindings; returns how many versions';

-- not strict: a null version is an error, never "every version"
CREATE FUNCTION pgformer_drop(name text, version int) RETURNS int
    AS 'MODULE_PATHNAME', 'pgformer_drop'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_drop(text, int) IS
    'removes one version of a model; returns 1';

REVOKE EXECUTE ON FUNCTION pgformer_load(text, text), pgformer_load(text, bytea),
    pgformer_drop(text), pgformer_drop(text, int) FROM PUBLIC;

CREATE VIEW pgformer_models AS
    SELECT name, version, architecture AS arch, params, bytes, loaded_at, owner,
           version OPERATOR(pg_catalog.=) pg_catalog.max(version) OVER (PARTITION BY name) AS current
    FROM pgformer_model;
GRANT SELECT ON pgformer_models TO PUBLIC;

CREATE FUNCTION pgformer_cache_status(
    OUT name text, OUT version int, OUT bytes bigint, OUT pins int,
    OUT calls bigint, OUT mean_ms float8, OUT last_used timestamptz,
    OUT unknown_inputs bigint, OUT file text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_cache_status'
    LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

-- pins: backends that have the version mapped now; unknown_inputs: inputs
-- calls replaced because the model did not know them (item ids it never
-- saw, missing or out-of-vocabulary features); file: the cache file under
-- $PGDATA (null when not materialised).
CREATE VIEW pgformer_cache AS SELECT * FROM pgformer_cache_status();
GRANT SELECT ON pgformer_cache TO PUBLIC;

CREATE FUNCTION pgformer_progress_status(
    OUT pid int, OUT function text, OUT model text, OUT done bigint, OUT total bigint,
    OUT started timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_progress_status'
    LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

-- Long calls in flight in every backend (recommend_batch: users,
-- score_batch: rows), with how many units are done; needs the preload.
CREATE VIEW pgformer_progress AS SELECT * FROM pgformer_progress_status();
GRANT SELECT ON pgformer_progress TO PUBLIC;

CREATE FUNCTION pgformer_inspect(name text, version int DEFAULT NULL,
    OUT tensor text, OUT shape bigint[], OUT dtype text, OUT bytes bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_inspect'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgformer_inspect(text, int) IS
    'one row per tensor of a model version (default: the newest); maps the model';

CREATE FUNCTION pgformer_metadata(name text, version int DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pgformer_metadata'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgformer_metadata(text, int) IS
    'what the model file records about itself: training data, settings, measured quality';

CREATE FUNCTION pgformer_verify(name text, version int DEFAULT NULL) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pgformer_verify'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgformer_verify(text, int) IS
    'recomputes the checksum of the mapped copy of a model version';

CREATE FUNCTION pgformer_backend_memory(
    OUT name text, OUT version int, OUT mapped_bytes bigint,
    OUT rss_bytes bigint, OUT pss_bytes bigint, OUT pid int)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgformer_backend_memory'
    LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pgformer_backend_memory() IS
    'resident and proportional set size of each model this backend has mapped';

CREATE FUNCTION pgformer_encode(model text, tokens int[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgformer_encode'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgformer_encode(text, int[]) IS
    'runs a block_stack model over tokens; returns the last hidden state';

-- Row counts and costs from constant arguments (k, array lengths) for the
-- model calls that return sets; see the SUPPORT clauses of recommend,
-- recommend_from, recommend_batch and rank_items.
CREATE FUNCTION pgformer_rows_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'pgformer_rows_support'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
-- Bindings: the query through which a model finds its inputs (per model
-- name and role, kept across versions; removed when the model is dropped).
CREATE TABLE pgformer_binding (
    model    text NOT NULL,
    role     text NOT NULL,
    query    text NOT NULL,
    bound_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, role)
);
SELECT pg_catalog.pg_extension_config_dump('pgformer_binding', '');
REVOKE ALL ON pgformer_binding FROM PUBLIC;

CREATE FUNCTION pgformer_bind(model text, role text, query text) RETURNS void
    AS 'MODULE_PATHNAME', 'pgformer_bind'
    LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_bind(text, text, text) IS
    'binds the query through which a model reads its inputs for a role; the query''s columns are checked now';

CREATE FUNCTION pgformer_unbind(model text, role text) RETURNS void
    AS 'MODULE_PATHNAME', 'pgformer_unbind'
    LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

REVOKE EXECUTE ON FUNCTION pgformer_bind(text, text, text), pgformer_unbind(text, text) FROM PUBLIC;

-- A binding's query runs inside every caller's model calls; its text is
-- shown to the model's owner (and members, and superusers) only.
CREATE VIEW pgformer_bindings AS
    SELECT b.model, b.role,
           CASE WHEN pg_catalog.pg_has_role(r.oid, 'USAGE') OR me.rolsuper THEN b.query END AS query,
           b.bound_at
    FROM pgformer_binding b
    LEFT JOIN LATERAL (SELECT m.owner FROM pgformer_model m
                       WHERE m.name OPERATOR(pg_catalog.=) b.model
                       ORDER BY m.version LIMIT 1) o ON true
    LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) o.owner
    LEFT JOIN pg_catalog.pg_roles me ON me.rolname OPERATOR(pg_catalog.=) CURRENT_USER;
GRANT SELECT ON pgformer_bindings TO PUBLIC;
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
-- SOLO vision-language models (and solo models used as text LLMs).  Images
-- are PNG or JPEG bytes, checked against pgformer.max_image_pixels before
-- decoding.

CREATE FUNCTION caption(model text, image bytea, max_tokens int DEFAULT 32) RETURNS text
    AS 'MODULE_PATHNAME', 'pgformer_caption'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION caption(text, bytea, int) IS
    'a caption of the image (greedy decoding, at most max_tokens tokens)';

CREATE FUNCTION answer(model text, image bytea, question text, max_tokens int DEFAULT 32) RETURNS text
    AS 'MODULE_PATHNAME', 'pgformer_answer'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION answer(text, bytea, text, int) IS
    'the answer to a question about the image (greedy decoding)';

-- VOLATILE: with a temperature and no seed every call samples anew
CREATE FUNCTION generate_text(model text, prompt text, max_tokens int DEFAULT 64,
                              temperature real DEFAULT 0, top_p real DEFAULT 1,
                              seed bigint DEFAULT NULL, top_k int DEFAULT 0) RETURNS text
    AS 'MODULE_PATHNAME', 'pgformer_generate_text'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION generate_text(text, text, int, real, real, bigint, int) IS
    'continues a prompt: greedy at temperature 0, else sampled (top_k, top_p; a seed makes it reproducible)';

CREATE FUNCTION image_embedding(model text, image bytea) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgformer_image_embedding'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION image_embedding(text, bytea) IS
    'the mean final hidden state over the image''s patch tokens';
