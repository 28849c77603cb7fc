-- pgformer_proxy 0.2: pgformer's public functions on a PL/Proxy node,
-- routed to pgformer shards.  The shards are the partitions of the
-- PL/Proxy cluster (a SQL/MED server) named pgformer_shards:
--
--   CREATE SERVER pgformer_shards FOREIGN DATA WRAPPER plproxy
--       OPTIONS (p0 'host=/run/shard0 dbname=app', p1 'host=/run/shard1 dbname=app');
--   CREATE USER MAPPING FOR PUBLIC SERVER pgformer_shards;
--   GRANT USAGE ON FOREIGN SERVER pgformer_shards TO ...;
--
-- A user's rows live on shard coalesce(hashint8(user_id), 0) & (shards - 1)
-- (the number of shards is a power of two).  Calls about one user run on
-- that user's shard, batches are split by user, calls about no user run on
-- any shard, and the model store's functions (pgformer_load,
-- pgformer_drop, pgformer_bind, pgformer_unbind) run on every shard, so
-- that every shard holds the same versions of the same bytes.  Each shard
-- has pgformer installed in a schema of the same name as this one's.
\echo Use "CREATE EXTENSION pgformer_proxy" to load this file. \quit

-- ---- routing ------------------------------------------------------------------

-- The hash that places a user on a shard; a null user hashes to 0 like
-- any other value, so it is routed (to the first shard), never refused.
CREATE FUNCTION pgformer_proxy_hash(user_id bigint) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce(pg_catalog.hashint8(user_id), 0);
COMMENT ON FUNCTION pgformer_proxy_hash(bigint) IS
    'the PL/Proxy hash of a user id: its rows belong on shard hash & (shards - 1)';

-- The shards, in partition order, each with a name for messages: its
-- connection string without a password.
CREATE FUNCTION pgformer_proxy_shards(OUT shard int, OUT conninfo text)
    RETURNS SETOF record
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pg_catalog.substr(o.key, 2)::int AS shard,
           pg_catalog.regexp_replace(o.value, '\s*password\s*=\s*(''[^'']*''|\S*)', '', 'g') AS conninfo
    FROM pg_catalog.pg_foreign_server s,
         LATERAL pg_catalog.pg_options_to_table(s.srvoptions) o(key, value)
    WHERE s.srvname OPERATOR(pg_catalog.=) 'pgformer_shards'
      AND o.key OPERATOR(pg_catalog.~) '^p[0-9]+$'
    ORDER BY 1;
END;
COMMENT ON FUNCTION pgformer_proxy_shards() IS
    'the shards of cluster pgformer_shards: partition number and connection string (no password)';

-- ---- calls about one user: on that user's shard --------------------------------

CREATE FUNCTION recommend(user_id bigint, k int DEFAULT 10, model text DEFAULT NULL,
                          exclude_seen boolean DEFAULT true, at timestamptz DEFAULT NULL,
                          rerank text DEFAULT NULL, candidates int DEFAULT 200,
                          context jsonb DEFAULT NULL,
                          OUT item_id bigint, OUT score real, OUT rank int)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE ROWS 10
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON pgformer_proxy_hash(user_id);
$$;

CREATE FUNCTION rank_items(model text, user_id bigint, item_ids bigint[],
                           context jsonb DEFAULT NULL, task text DEFAULT NULL,
                           OUT item_id bigint, OUT score real, OUT rank int)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE ROWS 100
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON pgformer_proxy_hash(user_id);
$$;

-- each shard gets the users it holds, in one call
CREATE FUNCTION recommend_batch(user_ids bigint[], k int DEFAULT 10, model text DEFAULT NULL,
                                exclude_seen boolean DEFAULT true, at timestamptz DEFAULT NULL,
                                OUT user_id bigint, OUT item_id bigint, OUT score real,
                                OUT rank int)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE ROWS 1000
AS $$
    CLUSTER 'pgformer_shards';
    SPLIT user_ids;
    RUN ON pgformer_proxy_hash(user_ids);
$$;

-- ---- calls about no user: on any shard (every shard has every model) -----------

CREATE FUNCTION recommend_from(model text, item_ids bigint[], ts timestamptz[] DEFAULT NULL,
                               k int DEFAULT 10, exclude_seen boolean DEFAULT true,
                               OUT item_id bigint, OUT score real, OUT rank int)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE ROWS 10
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION score(model text, features jsonb, task text DEFAULT NULL) RETURNS real
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION score_batch(model text, features jsonb[], task text DEFAULT NULL) RETURNS real[]
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION caption(model text, image bytea, max_tokens int DEFAULT 32) RETURNS text
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION answer(model text, image bytea, question text, max_tokens int DEFAULT 32) RETURNS text
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION generate_text(model text, prompt text, max_tokens int DEFAULT 64,
                              temperature real DEFAULT 0, top_p real DEFAULT 1,
                              seed bigint DEFAULT NULL, top_k int DEFAULT 0) RETURNS text
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION image_embedding(model text, image bytea) RETURNS real[]
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION pgformer_encode(model text, tokens int[]) RETURNS real[]
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION pgformer_inspect(name text, version int DEFAULT NULL,
    OUT tensor text, OUT shape bigint[], OUT dtype text, OUT bytes bigint)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

CREATE FUNCTION pgformer_metadata(name text, version int DEFAULT NULL) RETURNS jsonb
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON ANY;
$$;

-- ---- one shard at a time (the store's functions below go through these) -------
-- The queries they send name pgformer's objects in this extension's
-- schema: on every shard pgformer lives in a schema of that name.

CREATE FUNCTION pgformer_proxy_versions_on(p_shard int, p_name text,
    OUT version int, OUT sha256 text)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT m.version, m.sha256 FROM @extschema@.pgformer_models m
    WHERE m.name OPERATOR(pg_catalog.=) p_name;
$$;

CREATE FUNCTION pgformer_proxy_models_on(p_shard int,
    OUT name text, OUT version int, OUT arch text, OUT params bigint, OUT bytes bigint,
    OUT loaded_at timestamptz, OUT owner name, OUT current boolean, OUT sha256 text)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT m.name, m.version, m.arch, m.params, m.bytes, m.loaded_at, m.owner, m.current, m.sha256
    FROM @extschema@.pgformer_models m;
$$;

CREATE FUNCTION pgformer_proxy_bindings_on(p_shard int,
    OUT model text, OUT role text, OUT query text, OUT bound_at timestamptz)
    RETURNS SETOF record
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT b.model, b.role, b.query, b.bound_at FROM @extschema@.pgformer_bindings b;
$$;

CREATE FUNCTION pgformer_proxy_load_on(p_shard int, p_name text, p_data bytea, p_version int,
    OUT version int)
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT @extschema@.pgformer_load(p_name, p_data, p_version) AS version;
$$;

CREATE FUNCTION pgformer_proxy_drop_on(p_shard int, p_name text, p_version int,
    OUT dropped int)
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT CASE WHEN p_version IS NULL THEN @extschema@.pgformer_drop(p_name)
                ELSE @extschema@.pgformer_drop(p_name, p_version) END AS dropped;
$$;

CREATE FUNCTION pgformer_proxy_bind_on(p_shard int, p_model text, p_role text, p_query text,
    OUT done boolean)
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT (CASE WHEN p_query IS NULL THEN @extschema@.pgformer_unbind(p_model, p_role)
                 ELSE @extschema@.pgformer_bind(p_model, p_role, p_query) END) IS NULL AS done;
$$;

CREATE FUNCTION pgformer_proxy_verify_on(p_shard int, p_name text, p_version int,
    OUT ok boolean)
    LANGUAGE plproxy VOLATILE PARALLEL UNSAFE
AS $$
    CLUSTER 'pgformer_shards';
    RUN ON p_shard;
    SELECT @extschema@.pgformer_verify(p_name, p_version) AS ok;
$$;

-- ---- the store on every shard -------------------------------------------------

-- Every version of name on every shard, or an error naming the first
-- shard that does not answer (before anything is changed anywhere).
CREATE TYPE pgformer_proxy_version AS (shard int, conninfo text, version int, sha256 text);

CREATE FUNCTION pgformer_proxy_versions(p_name text)
    RETURNS SETOF pgformer_proxy_version
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    v record;
BEGIN
    FOR s IN SELECT * FROM @extschema@.pgformer_proxy_shards() LOOP
        BEGIN
            FOR v IN SELECT * FROM @extschema@.pgformer_proxy_versions_on(s.shard, p_name) LOOP
                RETURN QUERY SELECT s.shard, s.conninfo, v.version, v.sha256;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'shard % (%) did not answer: %', s.shard, s.conninfo, SQLERRM
                USING ERRCODE = 'connection_failure',
                      HINT = 'Nothing was changed on any shard.';
        END;
    END LOOP;
    -- FOUND: whether the loop over the shards ran at all
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no shards: server pgformer_shards has no partitions p0, p1, ...'
            USING ERRCODE = 'undefined_object';
    END IF;
END $$;

-- The message of a change that failed on one shard, after others were done.
CREATE FUNCTION pgformer_proxy_failed(p_shard record, p_what text, p_done int[], p_error text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'shard % (%) failed to %: %', p_shard.shard, p_shard.conninfo, p_what, p_error
        USING ERRCODE = 'connection_failure',
              DETAIL = CASE WHEN cardinality(p_done) = 0 THEN 'No shard was changed.'
                            ELSE 'Shards ' || array_to_string(p_done, ', ') || ' were changed.' END,
              HINT = 'The call is safe to repeat once the shard is back: shards already done stay as they are.';
END $$;

-- The version a load stores on every shard: the one any shard already
-- holds these bytes under, else one past the highest on any shard.
CREATE FUNCTION pgformer_proxy_load(p_name text, p_data bytea, p_version int) RETURNS int
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    digest text := encode(sha256(p_data), 'hex');
    versions @extschema@.pgformer_proxy_version[];
    target int := p_version;
    clash record;
    s record;
    done int[] := '{}';
BEGIN
    IF p_data IS NULL THEN
        RAISE EXCEPTION 'model data must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT array_agg(v) INTO versions FROM @extschema@.pgformer_proxy_versions(p_name) v;
    IF target IS NULL THEN
        SELECT max(v.version) INTO target FROM unnest(versions) v WHERE v.sha256 = digest;
        IF target IS NULL THEN
            SELECT coalesce(max(v.version), 0) + 1 INTO target FROM unnest(versions) v;
        END IF;
    END IF;
    SELECT * INTO clash FROM unnest(versions) v WHERE v.version = target AND v.sha256 <> digest LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'version % of model "%" already exists with other contents on shard % (%)',
                target, p_name, clash.shard, clash.conninfo
            USING ERRCODE = 'unique_violation', HINT = 'Nothing was changed on any shard.';
    END IF;
    FOR s IN SELECT * FROM @extschema@.pgformer_proxy_shards() LOOP
        BEGIN
            PERFORM @extschema@.pgformer_proxy_load_on(s.shard, p_name, p_data, target);
        EXCEPTION WHEN OTHERS THEN
            PERFORM @extschema@.pgformer_proxy_failed(s, 'load the model', done, SQLERRM);
        END;
        done := done || s.shard;
    END LOOP;
    RETURN target;
END $$;

CREATE FUNCTION pgformer_load(name text, data bytea) RETURNS int
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_proxy_load(name, data, NULL);
COMMENT ON FUNCTION pgformer_load(text, bytea) IS
    'stores a model file on every shard, as the same version everywhere (repeating a load changes nothing); returns the version';

CREATE FUNCTION pgformer_load(name text, data bytea, version int) RETURNS int
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF version IS NULL OR version <= 0 THEN
        RAISE EXCEPTION 'version must be positive and not null'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN @extschema@.pgformer_proxy_load(name, data, version);
END $$;
COMMENT ON FUNCTION pgformer_load(text, bytea, int) IS
    'stores a model file on every shard as the given version (idempotent); returns the version';

-- A path is a file on this node (superusers and pg_read_server_files).
CREATE FUNCTION pgformer_load(name text, path text) RETURNS int
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_proxy_load(name, pg_catalog.pg_read_binary_file(path), NULL);
COMMENT ON FUNCTION pgformer_load(text, text) IS
    'stores the model file at a path on the proxy node on every shard, as the same version everywhere; returns the version';

CREATE FUNCTION pgformer_load(name text, path text, version int) RETURNS int
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_load(name, pg_catalog.pg_read_binary_file(path), version);
COMMENT ON FUNCTION pgformer_load(text, text, int) IS
    'stores the model file at a path on the proxy node on every shard as the given version; returns the version';

-- Drops where the model (or version) is; an error only when no shard has
-- it, so that a drop that stopped half-way is finished by repeating it.
CREATE FUNCTION pgformer_proxy_drop(p_name text, p_version int, p_all boolean) RETURNS int
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held @extschema@.pgformer_proxy_version[];
    n int;
    s record;
    done int[] := '{}';
BEGIN
    IF NOT p_all AND p_version IS NULL THEN
        RAISE EXCEPTION 'version must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = format('pgformer_drop(%L) drops every version.', p_name);
    END IF;
    SELECT array_agg(v) INTO held FROM @extschema@.pgformer_proxy_versions(p_name) v
        WHERE p_all OR v.version = p_version;
    SELECT count(DISTINCT h.version) INTO n FROM unnest(held) h;
    IF n = 0 THEN
        IF p_all THEN
            RAISE EXCEPTION 'model "%" does not exist on any shard', p_name USING ERRCODE = 'undefined_object';
        END IF;
        RAISE EXCEPTION 'version % of model "%" does not exist on any shard', p_version, p_name
            USING ERRCODE = 'undefined_object';
    END IF;
    FOR s IN SELECT DISTINCT h.shard, h.conninfo FROM unnest(held) h ORDER BY 1 LOOP
        BEGIN
            PERFORM @extschema@.pgformer_proxy_drop_on(s.shard, p_name,
                                                      CASE WHEN p_all THEN NULL ELSE p_version END);
        EXCEPTION WHEN OTHERS THEN
            PERFORM @extschema@.pgformer_proxy_failed(s, 'drop the model', done, SQLERRM);
        END;
        done := done || s.shard;
    END LOOP;
    RETURN n;
END $$;

CREATE FUNCTION pgformer_drop(name text) RETURNS int
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_proxy_drop(name, NULL, true);
COMMENT ON FUNCTION pgformer_drop(text) IS
    'removes every version of a model and its bindings from every shard; returns how many versions';

CREATE FUNCTION pgformer_drop(name text, version int) RETURNS int
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_proxy_drop(name, version, false);
COMMENT ON FUNCTION pgformer_drop(text, int) IS
    'removes one version of a model from every shard; returns 1';

CREATE FUNCTION pgformer_proxy_bind(p_model text, p_role text, p_query text) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    done int[] := '{}';
BEGIN
    -- every shard answers before any is changed
    PERFORM count(*) FROM @extschema@.pgformer_proxy_versions(p_model);
    FOR s IN SELECT * FROM @extschema@.pgformer_proxy_shards() LOOP
        BEGIN
            PERFORM @extschema@.pgformer_proxy_bind_on(s.shard, p_model, p_role, p_query);
        EXCEPTION WHEN OTHERS THEN
            PERFORM @extschema@.pgformer_proxy_failed(s,
                CASE WHEN p_query IS NULL THEN 'unbind the model' ELSE 'bind the model' END, done, SQLERRM);
        END;
        done := done || s.shard;
    END LOOP;
END $$;

CREATE FUNCTION pgformer_bind(model text, role text, query text) RETURNS void
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_proxy_bind(model, role, query);
COMMENT ON FUNCTION pgformer_bind(text, text, text) IS
    'binds the query through which a model reads its inputs on every shard';

CREATE FUNCTION pgformer_unbind(model text, role text) RETURNS void
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    RETURN @extschema@.pgformer_proxy_bind(model, role, NULL);
COMMENT ON FUNCTION pgformer_unbind(text, text) IS
    'removes a binding on every shard';

-- true when the mapped copy passes its checksum on every shard
CREATE FUNCTION pgformer_verify(name text, version int DEFAULT NULL) RETURNS boolean
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT pg_catalog.bool_and(v.ok)
    FROM pgformer_proxy_shards() s, LATERAL pgformer_proxy_verify_on(s.shard, name, version) v;
END;
COMMENT ON FUNCTION pgformer_verify(text, int) IS
    'recomputes the checksum of the mapped copy of a model version on every shard';

REVOKE EXECUTE ON FUNCTION
    pgformer_load(text, text), pgformer_load(text, bytea),
    pgformer_load(text, text, int), pgformer_load(text, bytea, int),
    pgformer_drop(text), pgformer_drop(text, int),
    pgformer_bind(text, text, text), pgformer_unbind(text, text),
    pgformer_proxy_load(text, bytea, int), pgformer_proxy_drop(text, int, boolean),
    pgformer_proxy_bind(text, text, text),
    pgformer_proxy_load_on(int, text, bytea, int), pgformer_proxy_drop_on(int, text, int),
    pgformer_proxy_bind_on(int, text, text, text)
    FROM PUBLIC;

-- ---- views over every shard ------------------------------------------------------

-- Every version on every shard: a model is consistent when each shard
-- lists the same versions with the same sha256.
CREATE VIEW pgformer_models AS
    SELECT s.shard, m.*
    FROM pgformer_proxy_shards() s, LATERAL pgformer_proxy_models_on(s.shard) m;
GRANT SELECT ON pgformer_models TO PUBLIC;

CREATE VIEW pgformer_bindings AS
    SELECT s.shard, b.*
    FROM pgformer_proxy_shards() s, LATERAL pgformer_proxy_bindings_on(s.shard) b;
GRANT SELECT ON pgformer_bindings TO PUBLIC;
