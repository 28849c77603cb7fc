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
