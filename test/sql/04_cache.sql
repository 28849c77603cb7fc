-- The shared cache: a used model is materialised once under
-- $PGDATA/pgformer and mapped; pgformer_inspect and pgformer_verify look at
-- the mapping; loading a name again swaps versions for new calls and removes
-- the old file; dropping the newest version rolls back; pgformer.cache_size
-- bounds the folder.  Runs outside a transaction: other backends must see
-- the models.
\ir helpers.psql
\set tiny :fixtures '/bs_tiny.pgf'
\set tiny2 :fixtures '/bs_tiny_v2.pgf'
\set expected_csv :fixtures '/expected.csv'
SELECT plan(26);

CREATE TEMP TABLE expected (model text, tokens int[], hidden real[]);
COPY expected FROM :'expected_csv' WITH (FORMAT csv, HEADER true);
SELECT is(pgformer_load('cache_t', :'tiny'), 1, 'cache_t version 1 loaded');
SELECT is((SELECT count(*) FROM pgformer_cache WHERE name = 'cache_t'), 0::bigint,
          'a model nobody used has no cache file yet');

SELECT is((SELECT count(*) FROM pgformer_inspect('cache_t')), 36::bigint,
          'pgformer_inspect lists every tensor (36)');
SELECT results_eq($$SELECT shape, dtype, bytes FROM pgformer_inspect('cache_t') WHERE tensor = 'bs.emb.tok'$$,
                  $$VALUES ('{100,32}'::bigint[], 'f32', 12800::bigint)$$,
                  'a tensor row has its shape, dtype and bytes');
SELECT results_eq($$SELECT version, pins, file IS NOT NULL FROM pgformer_cache WHERE name = 'cache_t'$$,
                  $$VALUES (1, 1, true)$$,
                  'after inspect the version is materialised and mapped by this backend');
SELECT ok((SELECT (pg_stat_file(file)).size = bytes FROM pgformer_cache WHERE name = 'cache_t'),
          'the cache file has the model''s size');
SELECT ok(pgformer_verify('cache_t'), 'the mapped copy passes its checksum');

SELECT ok(pgformer_encode('cache_t', '{1,2,3}') IS NOT NULL, 'version 1 answers');
SELECT ok(pgformer_encode('cache_t', '{4,5}') IS NOT NULL, 'and again');
SELECT ok((SELECT calls >= 2 AND mean_ms > 0 AND last_used > now() - interval '1 minute'
           FROM pgformer_cache WHERE name = 'cache_t'),
          'pgformer_cache counts calls, their mean time and the last use');

-- hot swap: a new version serves the next call, the old file goes
SELECT is(pgformer_load('cache_t', :'tiny2'), 2, 'version 2 loaded');
SELECT cmp_ok(pg_temp.max_abs_diff(pgformer_encode('cache_t', '{1,2,3}'),
                                   (SELECT hidden FROM expected WHERE model = 'bs_tiny_v2')),
              '<=', 1e-4::float8, 'the next call answers with version 2''s weights');
SELECT results_eq($$SELECT version, pins FROM pgformer_cache WHERE name = 'cache_t' ORDER BY version$$,
                  $$VALUES (2, 1)$$,
                  'version 1 is unmapped and its cache file removed; version 2 is mapped');
SELECT is((SELECT count(*) FROM pg_ls_dir('pgformer') f WHERE f LIKE 'tmp.%'), 0::bigint,
          'no temporary file is left behind');

-- an old version stays inspectable
SELECT is((SELECT count(*) FROM pgformer_inspect('cache_t', 1)), 36::bigint,
          'an older version can still be inspected by number');
SELECT is(pg_temp.error_of($$SELECT count(*) FROM pgformer_inspect('cache_t', 9)$$),
          '42704: version 9 of model "cache_t" does not exist', 'an unknown version is named');
SELECT is(pg_temp.error_of($$SELECT count(*) FROM pgformer_inspect('cache_t', 0)$$),
          '22023: model versions start at 1, 0 was given', 'version 0 is refused');
SELECT is(pg_temp.error_of($$SELECT count(*) FROM pgformer_inspect(NULL)$$),
          '22004: model name must not be null', 'a null name is refused');

-- rolling back: drop the newest version, the previous one serves again
SELECT is(pgformer_drop('cache_t', 2), 1, 'version 2 dropped');
SELECT cmp_ok((SELECT pg_temp.max_abs_diff(pgformer_encode('cache_t', tokens), hidden)
               FROM expected WHERE model = 'bs_tiny' ORDER BY cardinality(tokens) DESC LIMIT 1),
              '<=', 1e-4::float8, 'the next call answers with version 1 again');
SELECT results_eq($$SELECT version, pins FROM pgformer_cache WHERE name = 'cache_t'$$,
                  $$VALUES (1, 1)$$, 'only version 1 is cached and mapped');

-- the folder is bounded by pgformer.cache_size (least recently used first,
-- never what a backend has mapped)
SELECT is(pgformer_load('cache_a', :'tiny'), 1, 'cache_a loaded');
SELECT is(pgformer_load('cache_b', :'tiny2'), 1, 'cache_b loaded');
SELECT ok(pgformer_verify('cache_a') AND pgformer_verify('cache_b'), 'both materialised and mapped');
SELECT pgformer_drop('cache_a') + pgformer_drop('cache_b') AS dropped \gset
ALTER SYSTEM SET pgformer.cache_size = '1MB';
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_sleep(0.3) AS slept \gset
SELECT pgformer_load('cache_c', :'fixtures' || '/bs_llama.pgf') AS loaded \gset
SELECT ok(pgformer_verify('cache_c'), 'a model loaded while the cache is over budget is materialised');
SELECT ok((SELECT sum((pg_stat_file('pgformer/' || f)).size) FROM pg_ls_dir('pgformer') f)
          <= (SELECT sum(bytes) FROM pgformer_cache WHERE pins > 0) + 1024 * 1024,
          'unmapped files were removed to fit pgformer.cache_size');
ALTER SYSTEM RESET pgformer.cache_size;
SELECT pg_reload_conf() AS reloaded \gset
SELECT pgformer_drop('cache_c') + pgformer_drop('cache_t') AS dropped \gset

SELECT * FROM finish();
