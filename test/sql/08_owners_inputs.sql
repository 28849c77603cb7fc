-- Model owners: the role that loads a name first owns it; only it, its
-- members and superusers load new versions, drop it and change its
-- bindings, and only they read its binding queries.  Then inputs a hostile
-- or careless caller can pass: a FIFO or a device as the model file, a
-- null version to drop, resource settings.
\ir helpers.psql
\set tiny :fixtures '/bs_tiny.pgf'
\set rec :fixtures '/random_sasrec.pgf'
BEGIN;
SELECT plan(28);

CREATE ROLE pgformer_owner_a;
CREATE ROLE pgformer_owner_b;
CREATE ROLE pgformer_owner_c IN ROLE pgformer_owner_a;
GRANT EXECUTE ON FUNCTION pgformer_load(text, bytea), pgformer_drop(text), pgformer_drop(text, int),
    pgformer_bind(text, text, text), pgformer_unbind(text, text)
    TO pgformer_owner_a, pgformer_owner_b, pgformer_owner_c;
CREATE TEMP TABLE files AS
    SELECT pg_read_binary_file(:'tiny') AS tiny, pg_read_binary_file(:'rec') AS rec;
GRANT SELECT ON files TO PUBLIC;

SET ROLE pgformer_owner_a;
SELECT is((SELECT pgformer_load('own_a', tiny) FROM files), 1, 'a role loads a new name');
SELECT is((SELECT pgformer_load('own_rec', rec) FROM files), 1, 'and another');
SELECT lives_ok($$SELECT pgformer_bind('own_rec', 'events', 'SELECT 1::bigint AS item_id, now() AS ts')$$,
                'the owner binds its model');
RESET ROLE;
SELECT is((SELECT string_agg(DISTINCT owner, ',') FROM pgformer_models WHERE name IN ('own_a', 'own_rec')),
          'pgformer_owner_a', 'pgformer_models shows the owner');

SET ROLE pgformer_owner_b;
SELECT is(pg_temp.error_of($$SELECT pgformer_load('own_a', tiny) FROM files$$),
          '42501: must be owner of model "own_a"', 'another role cannot load a new version');
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('own_a')$$),
          '42501: must be owner of model "own_a"', 'nor drop the model');
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('own_a', 1)$$),
          '42501: must be owner of model "own_a"', 'nor one version');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('own_rec', 'events', 'SELECT 2::bigint AS item_id, now() AS ts')$$),
          '42501: must be owner of model "own_rec"', 'nor bind its inputs');
SELECT is(pg_temp.error_of($$SELECT pgformer_unbind('own_rec', 'events')$$),
          '42501: must be owner of model "own_rec"', 'nor unbind them');
SELECT is((SELECT query FROM pgformer_bindings WHERE model = 'own_rec'), NULL,
          'nor read the binding query');
SELECT is((SELECT count(*) FROM pgformer_bindings WHERE model = 'own_rec'), 1::bigint,
          'though it sees that the binding exists');
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('no_such_model')$$),
          '42704: model "no_such_model" does not exist', 'an unknown model is named, not refused');
RESET ROLE;
SELECT is((SELECT max(version) FROM pgformer_models WHERE name = 'own_a'), 1,
          'the refused load stored nothing');

SET ROLE pgformer_owner_c;
SELECT is((SELECT pgformer_load('own_a', tiny) FROM files), 2, 'a member of the owner loads a version');
SELECT is((SELECT query FROM pgformer_bindings WHERE model = 'own_rec'),
          'SELECT 1::bigint AS item_id, now() AS ts', 'and reads the binding query');
SELECT is(pgformer_drop('own_a', 1), 1, 'and drops a version');
RESET ROLE;
SELECT is((SELECT owner FROM pgformer_models WHERE name = 'own_a'), 'pgformer_owner_a',
          'the owner stays the role that loaded the first version');
SELECT is((SELECT query FROM pgformer_bindings WHERE model = 'own_rec'),
          'SELECT 1::bigint AS item_id, now() AS ts', 'a superuser reads binding queries');
SELECT is(pgformer_drop('own_rec'), 1, 'a superuser drops any model');
SELECT is((SELECT count(*) FROM pgformer_bindings WHERE model = 'own_rec'), 0::bigint,
          'dropping a name drops its bindings');

-- a null version is an error, never "every version"
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('own_a', NULL)$$),
          '22004: version must not be null', 'pgformer_drop(name, NULL) is refused');
SELECT is((SELECT count(*) FROM pgformer_models WHERE name = 'own_a'), 1::bigint,
          'and drops nothing');

-- a FIFO or a device is refused before it is opened: opening a FIFO waits
-- for a writer (here one comes after 8 s, so that an open cannot hang)
DO $$BEGIN
    EXECUTE format($c$COPY (SELECT 1) TO PROGRAM 'rm -f %1$s; mkfifo %1$s; (sleep 8; timeout 20 sh -c ": > %1$s" &) >/dev/null 2>&1 &'$c$,
                   current_setting('data_directory') || '/pgformer_test.fifo');
END$$;
CREATE TEMP TABLE fifo_try AS
    SELECT clock_timestamp() AS started,
           pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'fifo',
                                   current_setting('data_directory') || '/pgformer_test.fifo')) AS error,
           clock_timestamp() AS ended;
SELECT is((SELECT error FROM fifo_try),
          format('42809: "%s/pgformer_test.fifo" is not a regular file', current_setting('data_directory')),
          'a FIFO is refused');
SELECT ok((SELECT ended - started < interval '6 s' FROM fifo_try),
          'without waiting for a writer');
SELECT is(pg_temp.error_of($$SELECT pgformer_load('dev', '/dev/zero')$$),
          '42809: "/dev/zero" is not a regular file', 'so is a device');

-- settings that bound resources are for superusers
SET ROLE pgformer_owner_b;
SELECT is(pg_temp.error_of('SET pgformer.max_image_pixels = 1000000000'),
          '42501: permission denied to set parameter "pgformer.max_image_pixels"',
          'pgformer.max_image_pixels is superuser-only');
SELECT is(pg_temp.error_of('SET pgformer.threads = 64'),
          '42501: permission denied to set parameter "pgformer.threads"',
          'pgformer.threads is superuser-only');
SELECT is(pg_temp.error_of('SET pgformer.default_model = ''own_a'''), 'no error',
          'pgformer.default_model is anyone''s');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
