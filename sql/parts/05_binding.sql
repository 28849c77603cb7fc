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

CREATE VIEW pgformer_bindings AS SELECT model, role, query, bound_at FROM pgformer_binding;
GRANT SELECT ON pgformer_bindings TO PUBLIC;
