-- The broken-file corpus (build/fixtures/broken, made by
-- test/gen/make_test_fixtures.py): every file is rejected, from a path and as
-- bytea, with the SQLSTATE and a message naming the problem; nothing is
-- stored and the backend survives.
\ir helpers.psql
\set manifest :fixtures '/broken.csv'
\set dir :fixtures '/broken/'
BEGIN;
CREATE TEMP TABLE broken (file text, sqlstate text, pattern text);
COPY broken FROM :'manifest' WITH (FORMAT csv, HEADER true);
SELECT plan((SELECT 2 * count(*)::int + 2 FROM broken));

SELECT ok(split_part(e, ': ', 1) = b.sqlstate AND e ~ b.pattern,
          format('%s from a path: %s', b.file, e))
FROM broken b, pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'broken', :'dir' || b.file)) e
ORDER BY b.file;

SELECT ok(split_part(e, ': ', 1) = b.sqlstate AND e ~ b.pattern,
          format('%s as bytea: %s', b.file, e))
FROM broken b,
     pg_temp.error_of(format('SELECT pgformer_load(%L, pg_read_binary_file(%L))', 'broken', :'dir' || b.file)) e
ORDER BY b.file;

SELECT cmp_ok((SELECT count(*) FROM broken), '>=', 30::bigint, 'the corpus has at least 30 files');
SELECT is((SELECT count(*) FROM pgformer_models WHERE name = 'broken'), 0::bigint,
          'no broken file was stored');

SELECT * FROM finish();
ROLLBACK;
