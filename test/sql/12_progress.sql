-- How far a long call is, seen from another session: pgformer_progress
-- shows a recommend_batch running in another backend (function, model,
-- done of total users, start), advancing; the row goes when the call ends,
-- cancelled or finished.  Image calls show their tokens out of max_tokens,
-- image generation its positions.  Runs outside a transaction: the other session
-- must see the model.
\ir helpers.psql
SELECT plan(14);

SELECT pgformer_load('pr_rec', :'fixtures' || '/random_sasrec.pgf') AS v \gset
CREATE TABLE pr_events (user_id bigint, item_id bigint, ts timestamptz);
INSERT INTO pr_events SELECT g, g % 300, now() FROM generate_series(1, 1000) g;
-- about a millisecond a user, so that the batch is still running when looked at
CREATE FUNCTION pr_slow() RETURNS boolean LANGUAGE sql AS 'SELECT pg_sleep(0.001) IS NULL OR true';
SELECT pgformer_bind('pr_rec', 'events',
    'SELECT item_id, ts FROM pr_events WHERE user_id = $1 AND (SELECT pr_slow())') AS b \gset

SELECT is((SELECT count(*) FROM pgformer_progress WHERE model = 'pr_rec'), 0::bigint,
          'nothing runs yet');
SELECT dblink_connect('busy', pg_temp.self_conninfo()) AS c \gset
SELECT pid AS busy_pid FROM dblink('busy', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SELECT dblink_send_query('busy', $$SELECT count(*) FROM recommend_batch(
    ARRAY(SELECT generate_series(1, 100000))::bigint[], 5, 'pr_rec')$$) AS sent \gset
DO $$BEGIN
    FOR i IN 1..400 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM pgformer_progress WHERE model = 'pr_rec' AND done > 0);
        PERFORM pg_sleep(0.05);
    END LOOP;
END$$;
CREATE TEMP TABLE first_look AS SELECT * FROM pgformer_progress WHERE model = 'pr_rec';
SELECT results_eq($$SELECT pid, function, model, total FROM first_look$$,
                  format($$VALUES (%s, 'recommend_batch', 'pr_rec', 100000::bigint)$$, :busy_pid),
                  'the other backend''s recommend_batch is listed with its model and 100,000 users');
SELECT ok((SELECT done > 0 AND done < total FROM first_look), 'part of it is done');
SELECT ok((SELECT started <= now() AND started > now() - interval '1 minute' FROM first_look),
          'with the time it started');
DO $$BEGIN
    FOR i IN 1..400 LOOP
        EXIT WHEN (SELECT done FROM pgformer_progress WHERE model = 'pr_rec') >
                  (SELECT done FROM first_look);
        PERFORM pg_sleep(0.05);
    END LOOP;
END$$;
SELECT ok((SELECT p.done > f.done FROM pgformer_progress p, first_look f WHERE p.model = 'pr_rec'),
          'and the count advances');

SELECT dblink_cancel_query('busy') AS cancelled \gset
SELECT count(*) AS drained FROM dblink_get_result('busy', false) AS t(n bigint) \gset
SELECT count(*) AS drained FROM dblink_get_result('busy', false) AS t(n bigint) \gset
DO $$BEGIN
    FOR i IN 1..400 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pgformer_progress WHERE model = 'pr_rec');
        PERFORM pg_sleep(0.05);
    END LOOP;
END$$;
SELECT is((SELECT count(*) FROM pgformer_progress WHERE model = 'pr_rec'), 0::bigint,
          'a cancelled call leaves no row');
SELECT is((SELECT count(*) FROM dblink('busy', $$SELECT count(*) FROM recommend_batch(
               ARRAY[1, 2, 3]::bigint[], 5, 'pr_rec')$$) AS t(n bigint)), 1::bigint,
          'the other session goes on');
SELECT is((SELECT count(*) FROM pgformer_progress WHERE model = 'pr_rec'), 0::bigint,
          'a finished call leaves no row either');

-- captions over many images: each call shows its tokens out of max_tokens
\set fashion_csv :fixtures '/fashion_t10k.csv'
SELECT pgformer_load('pr_vlm', :'fixtures' || '/solo_tiny.pgf') AS v \gset
CREATE TABLE pr_fashion (idx int, label int, class text, caption text, png bytea);
COPY pr_fashion FROM :'fashion_csv' WITH (FORMAT csv, HEADER true);
-- runs query in the busy session, records pgformer_progress's rows of
-- model until done has taken three values, then cancels it
CREATE TEMP TABLE looks (model text, function text, done bigint, total bigint);
CREATE FUNCTION pg_temp.watch(model text, query text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dblink_send_query('busy', query);
    FOR i IN 1..2000 LOOP
        INSERT INTO looks SELECT p.model, p.function, p.done, p.total FROM pgformer_progress p
            WHERE p.model = watch.model;
        EXIT WHEN (SELECT count(DISTINCT done) FROM looks l WHERE l.model = watch.model) >= 3;
        PERFORM pg_sleep(0.002);
    END LOOP;
    PERFORM dblink_cancel_query('busy');
    PERFORM * FROM dblink_get_result('busy', false) AS t(n bigint);
    PERFORM * FROM dblink_get_result('busy', false) AS t(n bigint);
END $$;
SELECT pg_temp.watch('pr_vlm', $$SELECT count(caption('pr_vlm', png, 24)) FROM pr_fashion$$) AS w \gset
SELECT results_eq($$SELECT DISTINCT function, total FROM looks WHERE model = 'pr_vlm'$$, $$VALUES ('caption', 24::bigint)$$,
                  'a caption call is listed with max_tokens as its total');
SELECT ok((SELECT count(DISTINCT done) >= 3 AND bool_and(done BETWEEN 0 AND total) FROM looks WHERE model = 'pr_vlm'),
          'and the tokens it has generated so far');
DO $$BEGIN
    FOR i IN 1..400 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pgformer_progress WHERE model = 'pr_vlm');
        PERFORM pg_sleep(0.05);
    END LOOP;
END$$;
SELECT is((SELECT count(*) FROM pgformer_progress WHERE model = 'pr_vlm'), 0::bigint,
          'the row goes when the statement is cancelled');

-- image generation: each call shows its image positions out of the grid's
SELECT pgformer_load('pr_uf', :'fixtures' || '/unifork_fashion.pgf') AS v \gset
SELECT pg_temp.watch('pr_uf', $$SELECT count(generate_image('pr_uf', 'a photo of a bag', s)) FROM generate_series(1, 1000) s$$) AS w \gset
SELECT results_eq($$SELECT DISTINCT function, total FROM looks WHERE model = 'pr_uf'$$, $$VALUES ('generate_image', 64::bigint)$$,
                  'a generate_image call is listed with its 64 image positions as its total');
SELECT ok((SELECT count(DISTINCT done) >= 3 AND bool_and(done BETWEEN 0 AND total) FROM looks WHERE model = 'pr_uf'),
          'and the positions it has drawn so far');

-- a call whose error an exception block catches leaves no row behind
CREATE FUNCTION pr_fail(u bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF u = 2 THEN RAISE EXCEPTION 'no events for user 2'; END IF;
    RETURN true;
END $$;
SELECT pgformer_load('pr_err', :'fixtures' || '/random_sasrec.pgf') AS v \gset
SELECT pgformer_bind('pr_err', 'events',
    'SELECT item_id, ts FROM pr_events WHERE user_id = $1 AND pr_fail($1)') AS b \gset
CREATE TEMP TABLE after_error (rows bigint);
DO $$BEGIN
    BEGIN
        PERFORM count(*) FROM recommend_batch(ARRAY[1, 2, 3]::bigint[], 5, 'pr_err');
    EXCEPTION WHEN others THEN NULL;
    END;
    INSERT INTO after_error SELECT count(*) FROM pgformer_progress WHERE pid = pg_backend_pid();
END$$;
SELECT is((SELECT rows FROM after_error), 0::bigint,
          'a batch whose error was caught leaves no row, even before the transaction ends');
SELECT pgformer_drop('pr_err') AS d \gset
DROP FUNCTION pr_fail(bigint);

SELECT dblink_disconnect('busy') AS d \gset
SELECT pgformer_drop('pr_vlm') AS d \gset
SELECT pgformer_drop('pr_uf') AS d \gset
DROP TABLE pr_fashion;
SELECT pgformer_drop('pr_rec') AS d \gset
DROP TABLE pr_events;
DROP FUNCTION pr_slow();
SELECT * FROM finish();
