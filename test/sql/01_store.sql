-- The model store: loading from a path and from bytea, versions, the
-- models view, dropping, chunked storage, pg_dump registration, privileges.
\ir helpers.psql
\set tiny :fixtures '/bs_tiny.pgf'
\set big :fixtures '/bs_big.pgf'
\set missing :fixtures '/no_such_file.pgf'
BEGIN;
SELECT plan(46);

SELECT has_table('pgformer_model');
SELECT has_table('pgformer_model_chunk');
SELECT has_view('pgformer_models');
SELECT has_view('pgformer_cache');
SELECT has_function('pgformer_load', ARRAY['text', 'text']);
SELECT has_function('pgformer_load', ARRAY['text', 'bytea']);
SELECT has_function('pgformer_drop', ARRAY['text', 'integer']);
SELECT has_function('pgformer_inspect', ARRAY['text', 'integer']);

SELECT is(pgformer_load('t1', :'tiny'), 1, 'the first load of a name is version 1');
SELECT is(pgformer_load('t1', pg_read_binary_file(:'tiny')), 2,
          'loading the name again, as bytea, makes version 2');
SELECT results_eq(
    $$SELECT version, arch, params, bytes, current FROM pgformer_models WHERE name = 't1' ORDER BY version$$,
    format($$VALUES (1, 'block_stack', 22400::bigint, %s::bigint, false),
                   (2, 'block_stack', 22400::bigint, %s::bigint, true)$$,
           (pg_stat_file(:'tiny')).size, (pg_stat_file(:'tiny')).size),
    'pgformer_models shows both versions with architecture, parameters, bytes; the newest is current');
SELECT ok((SELECT loaded_at IS NOT NULL FROM pgformer_models WHERE name = 't1' AND version = 2),
          'pgformer_models records when a version was loaded');

-- a 36 MB file is stored in chunks and reassembles exactly
SELECT is(pgformer_load('big', :'big'), 1, 'a 36 MB model loads');
SELECT cmp_ok((SELECT count(*) FROM pgformer_model_chunk c JOIN pgformer_model m ON m.id = c.model_id
               WHERE m.name = 'big'), '>', 1::bigint, 'a big file is stored in several chunks');
SELECT ok((SELECT string_agg(c.data, ''::bytea ORDER BY c.chunk) = pg_read_binary_file(:'big')
           FROM pgformer_model_chunk c JOIN pgformer_model m ON m.id = c.model_id WHERE m.name = 'big'),
          'the chunks reassemble the file byte for byte');

-- pg_dump carries the store
SELECT ok((SELECT extconfig @> ARRAY['pgformer_model'::regclass, 'pgformer_model_chunk'::regclass,
                                     'pgformer_model_id_seq'::regclass]::oid[]
           FROM pg_extension WHERE extname = 'pgformer'),
          'the store tables and their sequence are registered for pg_dump');

-- dropping
SELECT is(pgformer_drop('t1', 1), 1, 'dropping one version removes it');
SELECT results_eq($$SELECT version, current FROM pgformer_models WHERE name = 't1'$$,
                  $$VALUES (2, true)$$, 'the other version stays, current');
SELECT is(pgformer_load('t1', :'tiny'), 3, 'versions keep counting after a drop');
SELECT is(pgformer_drop('t1'), 2, 'dropping a name removes every version');
SELECT is((SELECT count(*) FROM pgformer_model_chunk c WHERE NOT EXISTS
             (SELECT 1 FROM pgformer_model m WHERE m.id = c.model_id)), 0::bigint,
          'no chunk outlives its model');
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('t1')$$),
          '42704: model "t1" does not exist', 'dropping an unknown model names it');
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('big', 7)$$),
          '42704: version 7 of model "big" does not exist', 'dropping an unknown version names it');

-- an explicit version: the same version of the same bytes everywhere
\set tiny2 :fixtures '/bs_tiny_v2.pgf'
SELECT has_function('pgformer_load', ARRAY['text', 'bytea', 'integer']);
SELECT is(pgformer_load('pinned', :'tiny', 4), 4, 'a load with a version stores that version');
SELECT is(pgformer_load('pinned', pg_read_binary_file(:'tiny'), 4), 4,
          'loading the same bytes as the same version again returns it');
SELECT is((SELECT count(*) FROM pgformer_models WHERE name = 'pinned'), 1::bigint, 'and stores nothing');
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L, 4)', 'pinned', :'tiny2')),
          '23505: version 4 of model "pinned" already exists with other contents',
          'other bytes under a taken version are refused');
SELECT is(pgformer_load('pinned', :'tiny2', 2), 2, 'a lower free version may be filled');
SELECT is(pgformer_load('pinned', :'tiny2'), 5, 'a load without a version continues after the highest');
SELECT results_eq($$SELECT version, current FROM pgformer_models WHERE name = 'pinned' ORDER BY version$$,
                  $$VALUES (2, false), (4, false), (5, true)$$, 'the highest version is current');
SELECT is((SELECT sha256 FROM pgformer_models WHERE name = 'pinned' AND version = 4),
          encode(sha256(pg_read_binary_file(:'tiny')), 'hex'),
          'pgformer_models shows the SHA-256 of the file');
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L, NULL)', 'pinned', :'tiny')),
          '22004: version must not be null', 'a null version is refused, not taken as "next"');
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L, 0)', 'pinned', :'tiny')),
          '22023: version must be positive, not 0', 'version 0 is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_load('pinned', NULL::bytea, 3)$$),
          '22004: model data must not be null', 'null data is refused');

-- bad input
SELECT is(pg_temp.error_of($$SELECT pgformer_load('', '$$ || :'tiny' || $$')$$),
          '42602: model name must be 1 to 63 bytes long', 'an empty name is refused');
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', repeat('x', 64), :'tiny')),
          '42602: model name must be 1 to 63 bytes long', 'a 64-byte name is refused');
SELECT matches(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'm', :'missing')),
               '^58P01: could not open model file ".*no_such_file.pgf": No such file',
               'a missing file is reported with its path');
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'm', :'fixtures')),
          format('42809: "%s" is not a regular file', :'fixtures'), 'a directory is refused');
SELECT is(pgformer_load(NULL, :'tiny'), NULL, 'a null name gives null (strict)');

-- privileges
CREATE ROLE pgformer_alice;
GRANT USAGE ON SCHEMA public TO pgformer_alice;
SET ROLE pgformer_alice;
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'a', :'tiny')),
          '42501: permission denied for function pgformer_load',
          'EXECUTE on pgformer_load is revoked from PUBLIC');
SELECT is(pg_temp.error_of('SELECT count(*) FROM pgformer_model_chunk'),
          '42501: permission denied for table pgformer_model_chunk',
          'ordinary users cannot read the stored bytes');
SELECT is((SELECT count(*) FROM pgformer_models WHERE name = 'big'), 1::bigint,
          'ordinary users can list the models');
RESET ROLE;
GRANT EXECUTE ON FUNCTION pgformer_load(text, text), pgformer_load(text, bytea) TO pgformer_alice;
SET ROLE pgformer_alice;
SELECT is(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'a', :'tiny')),
          '42501: permission denied to load a model from a server file',
          'a granted user who may not read server files cannot load from a path');
RESET ROLE;
CREATE TEMP TABLE tiny_bytes AS SELECT pg_read_binary_file(:'tiny') AS data;
GRANT SELECT ON tiny_bytes TO pgformer_alice;
SET ROLE pgformer_alice;
SELECT is((SELECT pgformer_load('alice', data) FROM tiny_bytes), 1,
          'a granted user loads a model passed as bytea');
RESET ROLE;
GRANT pg_read_server_files TO pgformer_alice;
SET ROLE pgformer_alice;
SELECT is(pgformer_load('alice', :'tiny'), 2,
          'members of pg_read_server_files may load from a path');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
