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

-- With an explicit version (not strict: a null version is an error): the
-- same version of the same bytes on every server of a deployment.  Loading
-- a version again with the same bytes returns it and changes nothing; with
-- other bytes it is an error.
CREATE FUNCTION pgformer_load(name text, path text, version int) RETURNS int
    AS 'MODULE_PATHNAME', 'pgformer_load_path'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_load(text, text, int) IS
    'stores the model file at a server path as the given version of name (idempotent); returns the version';

CREATE FUNCTION pgformer_load(name text, data bytea, version int) RETURNS int
    AS 'MODULE_PATHNAME', 'pgformer_load_bytea'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgformer_load(text, bytea, int) IS
    'stores a model file passed as bytes as the given version of name (idempotent); returns the version';

REVOKE EXECUTE ON FUNCTION pgformer_load(text, text), pgformer_load(text, bytea),
    pgformer_load(text, text, int), pgformer_load(text, bytea, int),
    pgformer_drop(text), pgformer_drop(text, int) FROM PUBLIC;

-- sha256: of the whole file, as hex; equal versions on two servers hold
-- the same bytes exactly when their sha256 are equal.
CREATE VIEW pgformer_models AS
    SELECT name, version, architecture AS arch, params, bytes, loaded_at, owner,
           version OPERATOR(pg_catalog.=) pg_catalog.max(version) OVER (PARTITION BY name) AS current,
           pg_catalog.encode(sha256, 'hex') AS sha256
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
-- score_batch: rows, caption / answer / generate_text: tokens out of
-- max_tokens), with how many units are done; needs the preload.
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
