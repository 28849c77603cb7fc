-- Without shared_preload_libraries everything still works: models load,
-- materialise once and are shared through one cache file; pgformer_cache
-- says once that its pins and calls cover this backend only.
\ir ../sql/helpers.psql
\set tiny :fixtures '/bs_tiny.pgf'
\set expected_csv :fixtures '/expected.csv'
SELECT plan(7);
SET client_min_messages = notice;

CREATE TEMP TABLE expected (model text, tokens int[], hidden real[]);
COPY expected FROM :'expected_csv' WITH (FORMAT csv, HEADER true);
SELECT is(pgformer_load('np', :'tiny'), 1, 'a model loads without the preload');
SELECT cmp_ok((SELECT max(pg_temp.max_abs_diff(pgformer_encode('np', tokens), hidden))
               FROM expected WHERE model = 'bs_tiny'),
              '<=', 1e-4::float8, 'and answers like PyTorch');
SELECT results_eq($$SELECT version, pins, file IS NOT NULL FROM pgformer_cache WHERE name = 'np'$$,
                  $$VALUES (1, 1, true)$$, 'pgformer_cache shows this backend''s mapping');

SELECT dblink_connect('other', pg_temp.self_conninfo()) AS connected \gset
SELECT ok((SELECT ok FROM dblink('other', $$SELECT pgformer_verify('np')$$) AS t(ok boolean)),
          'another backend maps the same model');
SELECT is((SELECT count(*) FROM pg_ls_dir('pgformer') f
           WHERE f LIKE '%\_' || (SELECT max(id) FROM pgformer_model WHERE name = 'np') || '\_%.pgf'),
          1::bigint, 'both use one cache file');
SELECT is((SELECT n FROM dblink('other', $$SELECT count(*) FROM pgformer_cache WHERE name = 'np' AND pins = 1$$)
           AS t(n bigint)), 1::bigint, 'the other backend sees its own pin');
SELECT dblink_disconnect('other') AS disconnected \gset
SELECT is(pgformer_drop('np'), 1, 'the model drops');

SELECT * FROM finish();
