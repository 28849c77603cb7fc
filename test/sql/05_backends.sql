-- One copy of the weights for many backends: eight backends (dblink) first
-- use a 36 MB model at the same moment; exactly one materialises it, all
-- eight map that one file, pgformer_cache shows 8 pins on one version, and
-- the proportional set size of the mapping summed over the eight is at most
-- 1.1 x the file: the page cache holds one physical copy.
\ir helpers.psql
\set big :fixtures '/bs_big.pgf'
SELECT plan(10);
SELECT count(pgformer_drop(name)) AS cleaned FROM pgformer_models WHERE name = 'shared_big' AND current \gset

SELECT is(pgformer_load('shared_big', :'big'), 1, 'a 36 MB model is loaded');
SELECT is((SELECT count(*) FROM pgformer_cache WHERE name = 'shared_big'), 0::bigint,
          'nobody has materialised it yet');

CREATE TEMP TABLE conns AS SELECT 'b' || i AS name FROM generate_series(1, 8) i;
SELECT count(dblink_connect(name, pg_temp.self_conninfo())) AS connected FROM conns \gset
SELECT is(:connected::bigint, 8::bigint, 'eight backends connected');

-- all eight ask at once: only one may write the cache file
SELECT count(dblink_send_query(name, $$SELECT pgformer_verify('shared_big')$$)) AS sent FROM conns \gset
CREATE TEMP TABLE verified AS
    SELECT name, r.ok FROM conns, dblink_get_result(name) AS r(ok boolean);
SELECT is((SELECT count(*) FROM verified WHERE ok), 8::bigint,
          'all eight backends map the model and read every byte with a good checksum');
SELECT count(*) AS drained FROM conns, dblink_get_result(name) AS r(ok boolean) \gset

SELECT results_eq($$SELECT version, pins FROM pgformer_cache WHERE name = 'shared_big'$$,
                  $$VALUES (1, 8)$$,
                  'pgformer_cache: one version, pinned by the eight backends');
SELECT is((SELECT count(*) FROM pg_ls_dir('pgformer') f
           WHERE f LIKE '%\_' || (SELECT max(id) FROM pgformer_model WHERE name = 'shared_big') || '\_%.pgf'),
          1::bigint, 'exactly one cache file exists for it');

CREATE TEMP TABLE memory AS
    SELECT name, m.*
    FROM conns, dblink(name, $$SELECT mapped_bytes, rss_bytes, pss_bytes, pid
                             FROM pgformer_backend_memory() WHERE name = 'shared_big'$$)
         AS m(mapped_bytes bigint, rss_bytes bigint, pss_bytes bigint, pid int);
SELECT is((SELECT count(DISTINCT pid) FROM memory), 8::bigint, 'eight distinct backends report their mapping');
SELECT ok((SELECT bool_and(rss_bytes >= mapped_bytes * 0.95) FROM memory),
          'each backend has (nearly) all of the file resident');
SELECT ok((SELECT sum(pss_bytes) <= 1.1 * max(mapped_bytes) FROM memory),
          format('summed PSS of the eight mappings is %s MB for a %s MB file (limit 1.1x)',
                 (SELECT round(sum(pss_bytes) / 1048576.0, 1) FROM memory),
                 (SELECT round(max(mapped_bytes) / 1048576.0, 1) FROM memory)));

SELECT count(dblink_disconnect(name)) AS disconnected FROM conns \gset
-- the backends exit asynchronously: wait up to 10 s for the pins to drop
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN (SELECT pins FROM pgformer_cache WHERE name = 'shared_big') = 0;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT is((SELECT pins FROM pgformer_cache WHERE name = 'shared_big'), 0,
          'a backend that exits gives its pin back');
SELECT pgformer_drop('shared_big') AS dropped \gset

SELECT * FROM finish();
