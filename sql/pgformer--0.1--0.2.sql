-- pgformer 0.1 -> 0.2 (ALTER EXTENSION pgformer UPDATE TO '0.2').
\echo Use "ALTER EXTENSION pgformer UPDATE TO '0.2'" to load this file. \quit

-- Loads with an explicit version: the same version of the same bytes on
-- every server of a deployment (pgformer_proxy loads this way).
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

REVOKE EXECUTE ON FUNCTION pgformer_load(text, text, int), pgformer_load(text, bytea, int)
    FROM PUBLIC;

-- pgformer_models shows each version's SHA-256 (a new last column).
CREATE OR REPLACE VIEW pgformer_models AS
    SELECT name, version, architecture AS arch, params, bytes, loaded_at, owner,
           version OPERATOR(pg_catalog.=) pg_catalog.max(version) OVER (PARTITION BY name) AS current,
           pg_catalog.encode(sha256, 'hex') AS sha256
    FROM pgformer_model;

-- UniFork image generation and image codes.
CREATE FUNCTION generate_image(model text, prompt text, seed bigint DEFAULT NULL,
                               cfg real DEFAULT NULL, temperature real DEFAULT 1,
                               top_k int DEFAULT NULL, top_p real DEFAULT NULL) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pgformer_generate_image'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION generate_image(text, text, bigint, real, real, int, real) IS
    'a PNG drawn for the prompt under classifier-free guidance cfg (NULL: the model''s default); a seed makes it reproducible';

CREATE FUNCTION image_codes(model text, image bytea) RETURNS int[]
    AS 'MODULE_PATHNAME', 'pgformer_image_codes'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION image_codes(text, bytea) IS
    'the residual codes of an image (positions x depth, position-major), for deduplication and search';
