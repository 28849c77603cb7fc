-- A hostile search_path: a caller plants operators for every type the
-- extension compares, the functions its statements call, and tables named
-- like its own, in a schema ahead of pg_catalog, then goes through every
-- public function and view.  Whatever pgformer runs with the extension
-- owner's rights must not touch any of it: each planted object logs the
-- role it runs as, and no role but the caller's may appear.
\ir helpers.psql
BEGIN;
SELECT plan(30);

CREATE ROLE pgformer_mallory;
CREATE SCHEMA evil AUTHORIZATION pgformer_mallory;
CREATE TABLE evil.log (who name, what text);
GRANT SELECT, INSERT ON evil.log TO PUBLIC;

-- models and inputs the caller may use (made by the superuser)
SELECT pgformer_load('h_bs', :'fixtures' || '/bs_tiny.pgf') AS v \gset
SELECT pgformer_load('h_rec', :'fixtures' || '/random_sasrec.pgf') AS v \gset
SELECT pgformer_load('h_rank', :'fixtures' || '/hif_full.pgf') AS v \gset
SELECT pgformer_load('h_vlm', :'fixtures' || '/solo_tiny.pgf') AS v \gset
CREATE TABLE h_clicks (user_id bigint, item_id bigint, ts timestamptz);
INSERT INTO h_clicks SELECT u, i, '2026-01-01'::timestamptz + i * interval '1 minute'
    FROM generate_series(1, 3) u, generate_series(1, 20) i;
CREATE TABLE h_recs (user_id bigint, item_id bigint, score real, rank int);
CREATE TRIGGER h_rerank AFTER INSERT ON h_clicks FOR EACH ROW
    EXECUTE FUNCTION pgformer_rerank('h_rec', 'public.h_recs', 5);
CREATE TABLE h_users (user_id bigint, u_cat int, u_dense float8, u_cat2 int, u_dense2 real);
CREATE TABLE h_items (item_id bigint, i_cat int, i_genres int[], i_dense float8, i_dense2 numeric);
INSERT INTO h_users VALUES (1, 2, 0.5, 1, -0.25);
INSERT INTO h_items SELECT g, g % 11, ARRAY[g % 9], g / 10.0, 1 FROM generate_series(1, 50) g;
SELECT pgformer_bind('h_rec', 'events',
    'SELECT item_id, ts FROM public.h_clicks WHERE user_id = $1 ORDER BY ts DESC');
SELECT pgformer_bind('h_rank', 'user_features',
    'SELECT u_cat, u_dense, u_cat2, u_dense2 FROM public.h_users WHERE user_id = $1');
SELECT pgformer_bind('h_rank', 'item_features',
    'SELECT item_id, i_cat, i_genres, i_dense, i_dense2 FROM public.h_items WHERE item_id = ANY ($1)');
SELECT pgformer_bind('h_rank', 'context_features', 'SELECT 3 AS c_cat, 0.5 AS c_dense');
CREATE TEMP TABLE h_bytes AS SELECT pg_read_binary_file(:'fixtures' || '/bs_tiny.pgf') AS data;
CREATE TEMP TABLE h_png AS SELECT pg_read_binary_file(:'fixtures' || '/images/photos/chelsea.png') AS png;
GRANT SELECT, INSERT, DELETE ON h_clicks, h_recs TO pgformer_mallory;
GRANT SELECT ON h_users, h_items, h_bytes, h_png TO pgformer_mallory;
GRANT EXECUTE ON FUNCTION pgformer_load(text, bytea), pgformer_drop(text), pgformer_drop(text, int),
    pgformer_bind(text, text, text), pgformer_unbind(text, text) TO pgformer_mallory;

-- the plant
SET ROLE pgformer_mallory;
DO $plant$
DECLARE
    t text;
    op record;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'name', 'smallint', 'integer', 'bigint', 'bytea', 'boolean',
                             'oid', 'timestamp with time zone', 'real', 'double precision',
                             'numeric', 'jsonb', 'regrole', 'integer[]', 'bigint[]'] LOOP
        FOR op IN SELECT * FROM (VALUES ('=', 'eq'), ('<>', 'ne'), ('<', 'lt'), ('<=', 'le'),
                                        ('>', 'gt'), ('>=', 'ge')) o(sym, fn) LOOP
            EXECUTE format($f$CREATE FUNCTION evil.%s_%s(a %s, b %s) RETURNS boolean
                LANGUAGE plpgsql AS $b$BEGIN
                    INSERT INTO evil.log VALUES (current_user, %L);
                    RETURN a OPERATOR(pg_catalog.%s) b;
                END$b$$f$, op.fn, md5(t), t, t, t || ' ' || op.sym, op.sym);
            EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.%s_%s)',
                           op.sym, t, t, op.fn, md5(t));
        END LOOP;
    END LOOP;
    -- mixed integer comparisons and arithmetic
    FOREACH t IN ARRAY ARRAY['integer,bigint', 'bigint,integer', 'integer,integer', 'bigint,bigint'] LOOP
        EXECUTE format($f$CREATE FUNCTION evil.eqx_%s(a %s, b %s) RETURNS boolean
            LANGUAGE plpgsql AS $b$BEGIN
                INSERT INTO evil.log VALUES (current_user, %L);
                RETURN a OPERATOR(pg_catalog.=) b;
            END$b$$f$, md5(t), split_part(t, ',', 1), split_part(t, ',', 2), t || ' =');
        IF split_part(t, ',', 1) <> split_part(t, ',', 2) THEN
            EXECUTE format('CREATE OPERATOR evil.= (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.eqx_%s)',
                           split_part(t, ',', 1), split_part(t, ',', 2), md5(t));
        END IF;
        EXECUTE format($f$CREATE FUNCTION evil.plus_%s(a %s, b %s) RETURNS %s
            LANGUAGE plpgsql AS $b$BEGIN
                INSERT INTO evil.log VALUES (current_user, %L);
                RETURN a OPERATOR(pg_catalog.+) b;
            END$b$$f$, md5(t), split_part(t, ',', 1), split_part(t, ',', 2),
            split_part(t, ',', 2), t || ' +');
        EXECUTE format('CREATE OPERATOR evil.+ (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.plus_%s)',
                       split_part(t, ',', 1), split_part(t, ',', 2), md5(t));
    END LOOP;
END
$plant$;
-- functions the statements might call unqualified
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$BEGIN
    INSERT INTO evil.log VALUES (current_user, 'now()'); RETURN pg_catalog.now(); END$$;
CREATE FUNCTION evil.max_step(integer, integer) RETURNS integer LANGUAGE plpgsql AS $$BEGIN
    INSERT INTO evil.log VALUES (current_user, 'max(integer)');
    RETURN pg_catalog.greatest($1, $2); END$$;
CREATE AGGREGATE evil.max(integer) (SFUNC = evil.max_step, STYPE = integer);
CREATE FUNCTION evil.pg_has_role(oid, text) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN
    INSERT INTO evil.log VALUES (current_user, 'pg_has_role'); RETURN true; END$$;
CREATE FUNCTION evil.to_timestamp(double precision) RETURNS timestamptz LANGUAGE plpgsql AS $$BEGIN
    INSERT INTO evil.log VALUES (current_user, 'to_timestamp'); RETURN pg_catalog.to_timestamp($1); END$$;
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE plpgsql AS $$BEGIN
    INSERT INTO evil.log VALUES (current_user, 'quote_ident'); RETURN pg_catalog.quote_ident($1); END$$;
-- tables named like the extension's, and in pg_temp
CREATE TABLE evil.pgformer_model (id bigint, name text, version int, architecture text, params bigint,
    bytes bigint, crc32 bigint, chunk_bytes int, source text, loaded_at timestamptz, loaded_by name,
    owner name, cache_key text, sha256 bytea);
INSERT INTO evil.pgformer_model VALUES (424242, 'h_bs', 99, 'block_stack', 1, 1, 1, 1, 'evil', now(),
    'pgformer_mallory', 'pgformer_mallory', repeat('0', 32), '\x00');
CREATE TABLE evil.pgformer_binding (model text, role text, query text, bound_at timestamptz);
INSERT INTO evil.pgformer_binding VALUES ('h_rec', 'events', 'SELECT 1::bigint, now()', now());
CREATE TABLE evil.pgformer_model_chunk (model_id bigint, chunk int, data bytea);
CREATE TEMP TABLE pgformer_model (LIKE evil.pgformer_model);
CREATE TEMP TABLE pgformer_binding (LIKE evil.pgformer_binding);
SET search_path = evil, pg_catalog, public;
SET pgformer.default_model = 'h_rec';

SELECT ok((SELECT 'a'::text = 'a' AND 1::bigint = 1::bigint AND 1 + 1 = 2),
          'the caller''s own statements use the planted operators');
SELECT cmp_ok((SELECT count(*) FROM evil.log WHERE who = 'pgformer_mallory'), '>', 0::bigint,
              'and they log, as the caller');

-- every public function and view, with the path in place
SELECT is(pgformer_load('m_own', (SELECT data FROM h_bytes)), 1, 'pgformer_load (bytea)');
SELECT is(pgformer_load('m_own', (SELECT data FROM h_bytes)), 2, 'pgformer_load, a second version');
SELECT is((SELECT count(*) FROM pgformer_models WHERE name IN ('h_bs', 'm_own')), 3::bigint,
          'pgformer_models');
SELECT ok((SELECT count(*) FROM pgformer_inspect('h_bs')) > 0, 'pgformer_inspect');
SELECT ok(pgformer_metadata('h_bs') IS NOT NULL, 'pgformer_metadata');
SELECT ok(pgformer_verify('h_bs'), 'pgformer_verify');
SELECT ok(pgformer_encode('m_own', '{1,2,3}') IS NOT NULL, 'pgformer_encode');
SELECT ok((SELECT count(*) FROM pgformer_cache) > 0, 'pgformer_cache');
SELECT ok((SELECT count(*) FROM pgformer_backend_memory()) > 0, 'pgformer_backend_memory');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('m_own', 'events', 'SELECT 1')$$),
          '22023: a block_stack model has no input role "events"', 'pgformer_bind checks the role');
SELECT is(pg_temp.error_of($$SELECT pgformer_unbind('m_own', 'events')$$),
          '42704: model "m_own" has no binding for role "events"', 'pgformer_unbind');
SELECT ok((SELECT count(*) FROM pgformer_bindings WHERE model = 'h_rec') = 1, 'pgformer_bindings');
SELECT is((SELECT count(*) FROM recommend(1, 5)), 5::bigint, 'recommend');
SELECT is((SELECT count(*) FROM recommend(1, 5, at => '2026-01-01 00:10+00')), 5::bigint,
          'recommend as of a time');
SELECT is((SELECT count(*) FROM recommend(1, 3, rerank => 'h_rank', candidates => 10)), 3::bigint,
          'recommend re-ranked by a ranker');
SELECT is((SELECT count(*) FROM recommend_from('h_rec', ARRAY[1, 2, 3]::bigint[])), 10::bigint,
          'recommend_from');
SELECT is((SELECT count(*) FROM recommend_batch(ARRAY[1, 2, 3]::bigint[], 4)), 12::bigint,
          'recommend_batch');
INSERT INTO h_clicks VALUES (2, 7, '2026-01-02');
SELECT is((SELECT count(*) FROM h_recs WHERE user_id = 2), 5::bigint, 'the pgformer_rerank trigger');
SELECT is((SELECT count(*) FROM rank_items('h_rank', 1, ARRAY[1, 2, 3]::bigint[])), 3::bigint,
          'rank_items');
SELECT ok(score('h_rank', '{"u_cat": 1}') BETWEEN 0 AND 1, 'score');
SELECT is(cardinality(score_batch('h_rank', ARRAY['{}'::jsonb, '{"i_cat": 2}'])), 2, 'score_batch');
SELECT ok(caption('h_vlm', (SELECT png FROM h_png), 4) IS NOT NULL, 'caption');
SELECT ok(answer('h_vlm', (SELECT png FROM h_png), 'What is this?', 4) IS NOT NULL, 'answer');
SELECT ok(generate_text('h_vlm', 'Q: ', 4) IS NOT NULL, 'generate_text');
SELECT ok(cardinality(image_embedding('h_vlm', (SELECT png FROM h_png))) > 0, 'image_embedding');
SELECT is(pgformer_drop('m_own', 1), 1, 'pgformer_drop (one version)');
SELECT is(pgformer_drop('m_own'), 1, 'pgformer_drop (the rest)');

RESET search_path;
RESET ROLE;
SELECT is((SELECT string_agg(DISTINCT who || ': ' || what, ', ') FROM evil.log
           WHERE who <> 'pgformer_mallory'), NULL,
          'no planted object ever ran as anyone but the caller');

SELECT * FROM finish();
ROLLBACK;
