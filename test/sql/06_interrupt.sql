-- Long model calls stop promptly: statement_timeout and pg_cancel_backend
-- interrupt pgformer_encode between layers (a 512-token pass over the 36 MB
-- model takes about 0.15 s), and the backend answers correctly afterwards.
\ir helpers.psql
\set big :fixtures '/bs_big.pgf'
\set expected_csv :fixtures '/expected.csv'
SELECT plan(5);
SELECT count(pgformer_drop(name)) AS cleaned FROM pgformer_models WHERE name = 'slow' AND current \gset
SELECT pgformer_load('slow', :'big') AS loaded \gset
CREATE TEMP TABLE long_input AS SELECT array_agg(g % 4000) AS tokens FROM generate_series(1, 512) g;
CREATE TEMP TABLE expected (model text, tokens int[], hidden real[]);
COPY expected FROM :'expected_csv' WITH (FORMAT csv, HEADER true);
SELECT cardinality(pgformer_encode('slow', tokens)) AS warm FROM long_input \gset

SET statement_timeout = '20ms';
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('slow', tokens) FROM long_input$$),
          '57014: canceling statement due to statement timeout',
          'statement_timeout stops a long model call');
RESET statement_timeout;
SELECT cmp_ok(pg_temp.max_abs_diff(pgformer_encode('slow', '{5,6,7,8}'),
                                   (SELECT hidden FROM expected WHERE model = 'bs_big')),
              '<=', 1e-4::float8, 'the backend answers correctly after the cancel');

-- a cancel from another session
SELECT dblink_connect('victim', pg_temp.self_conninfo()) AS connected \gset
SELECT victim_pid FROM dblink('victim', 'SELECT pg_backend_pid()') AS t(victim_pid int) \gset
SELECT dblink_send_query('victim',
    $$SELECT count(pgformer_encode('slow', tokens)) FROM (SELECT (SELECT array_agg(g % 4000) FROM generate_series(1, 512) g) AS tokens FROM generate_series(1, 200)) s$$) AS sent \gset
SELECT pg_sleep(0.3) AS slept \gset
SELECT ok(pg_cancel_backend(:victim_pid), 'pg_cancel_backend reaches the busy backend');
SELECT matches(pg_temp.error_of($$SELECT * FROM dblink_get_result('victim') AS t(n bigint)$$),
               'canceling statement due to user request', 'the 30-second batch was cancelled');
SELECT pg_temp.error_of($$SELECT * FROM dblink_get_result('victim') AS t(n bigint)$$) AS drained \gset
SELECT is((SELECT n FROM dblink('victim', $$SELECT cardinality(pgformer_encode('slow', '{1,2}'))$$) AS t(n int)),
          256, 'the cancelled backend serves the next call');
SELECT dblink_disconnect('victim') AS disconnected \gset
SELECT pgformer_drop('slow') AS dropped \gset

SELECT * FROM finish();
