-- Re-entry and catalog changes in the middle of a call.  A binding query
-- may call functions that rebind the same model and call it again, or
-- another session may load or drop models while the query runs, or load a
-- new version of the model a recommend_batch is serving: the call in
-- flight finishes on what it holds and answers as before, the next call
-- sees the change, and no backend dies; errors caught inside a transaction
-- give back what the failed calls held.  Runs outside a transaction: the
-- other session's loads commit.
\ir helpers.psql
\set rec :fixtures '/random_decoder.pgf'
\set rec2 :fixtures '/random_encoder.pgf'
\set tiny :fixtures '/bs_tiny.pgf'
SELECT plan(15);

CREATE TABLE re_events (user_id bigint, item_id bigint, ts timestamptz);
INSERT INTO re_events SELECT u, (u * 7 + i * 13) % 500, '2026-01-01'::timestamptz + (u * 10 + i) * interval '1 min'
    FROM generate_series(1, 60) u, generate_series(1, 8) i;
SELECT pgformer_load('re_rec', :'rec') AS v \gset
SELECT pgformer_bind('re_rec', 'events',
    'SELECT item_id, ts FROM re_events WHERE user_id = $1 ORDER BY ts DESC') AS b \gset
CREATE TEMP TABLE plain AS
    SELECT u AS user_id, array_agg(r.item_id ORDER BY r.rank) AS ids
    FROM generate_series(1, 60) u, recommend(u, 5, 're_rec') r GROUP BY u;
SELECT dblink_connect('other', pg_temp.self_conninfo()) AS c \gset

-- 1. the binding query rebinds its own model and calls it, once.  The new
-- query leaves a mark when it runs: a random model may well give the same
-- top five from six events as from eight, so the answer alone proves little.
CREATE FUNCTION re_mark(u bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('re.read', u::text, false);
    RETURN true;
END $$;
CREATE FUNCTION re_rebind(u bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF u = 1 AND current_setting('re.done', true) IS DISTINCT FROM 'rebind' THEN
        PERFORM set_config('re.done', 'rebind', false);
        -- another shape: times as unix seconds, only the six newest
        PERFORM pgformer_bind('re_rec', 'events',
            'SELECT item_id, extract(epoch FROM ts)::float8 FROM re_events
             WHERE user_id = $1 AND re_mark($1) ORDER BY ts DESC LIMIT 6');
        PERFORM count(*) FROM recommend(2, 5, 're_rec');
    END IF;
    RETURN u;
END $$;
SELECT pgformer_bind('re_rec', 'events',
    'SELECT item_id, ts FROM re_events WHERE re_rebind(user_id) = $1 ORDER BY ts DESC') AS b \gset
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM recommend(1, 5, 're_rec')),
          (SELECT ids FROM plain WHERE user_id = 1),
          'a call whose binding query rebinds the model and calls it answers as before');
SELECT is((SELECT query FROM pgformer_bindings WHERE model = 're_rec'),
          E'SELECT item_id, extract(epoch FROM ts)::float8 FROM re_events\n             WHERE user_id = $1 AND re_mark($1) ORDER BY ts DESC LIMIT 6',
          'the rebinding took effect');
SELECT set_config('re.read', '', false) AS t \gset
SELECT is((SELECT count(*) FROM recommend(1, 5, 're_rec')), 5::bigint, 'the next call answers');
SELECT is(current_setting('re.read'), '1', 'and it read user 1 through the new binding');

-- 2. another session loads and drops models while the binding query runs
CREATE FUNCTION re_elsewhere(u bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF u = 1 AND current_setting('re.done', true) IS DISTINCT FROM 'elsewhere' THEN
        PERFORM set_config('re.done', 'elsewhere', false);
        PERFORM * FROM dblink('other', format('SELECT pgformer_load(%L, %L)', 're_unrelated',
                                              current_setting('re.tiny'))) AS t(v int);
        PERFORM * FROM dblink('other', $q$SELECT pgformer_drop('re_unrelated')$q$) AS t(v int);
        PERFORM pg_sleep(0.05);
        PERFORM count(*) FROM recommend(3, 5, 're_rec');
        PERFORM count(*) FROM recommend_batch(ARRAY[4, 5]::bigint[], 5, 're_rec');
    END IF;
    RETURN u;
END $$;
SELECT set_config('re.tiny', :'tiny', false) AS t \gset
SELECT pgformer_bind('re_rec', 'events',
    'SELECT item_id, ts FROM re_events WHERE re_elsewhere(user_id) = $1 ORDER BY ts DESC') AS b \gset
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM recommend(1, 5, 're_rec')),
          (SELECT ids FROM plain WHERE user_id = 1),
          'a call during which another session loads and drops a model answers as before');
SELECT set_config('re.done', '', false) AS t \gset
SELECT is((SELECT count(*) FROM (SELECT u.user_id, array_agg(r.item_id ORDER BY r.rank) AS ids
                                 FROM plain u, recommend_batch(ARRAY[u.user_id], 5, 're_rec') r
                                 GROUP BY u.user_id) b JOIN plain p USING (user_id)
           WHERE b.ids = p.ids), 60::bigint,
          'and so does recommend_batch, user after user');

-- 3. a new version of the same model arrives in the middle of a batch
CREATE FUNCTION re_swap(u bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF u = 30 AND current_setting('re.done', true) IS DISTINCT FROM 'swap' THEN
        PERFORM set_config('re.done', 'swap', false);
        PERFORM * FROM dblink('other', format('SELECT pgformer_load(%L, %L)', 're_rec',
                                              current_setting('re.rec2'))) AS t(v int);
        PERFORM pg_sleep(0.05);
        PERFORM count(*) FROM recommend(31, 5, 're_rec');
    END IF;
    RETURN u;
END $$;
SELECT set_config('re.rec2', :'rec2', false) AS t \gset
SELECT pgformer_bind('re_rec', 'events',
    'SELECT item_id, ts FROM re_events WHERE re_swap(user_id) = $1 ORDER BY ts DESC') AS b \gset
CREATE TEMP TABLE batch AS
    SELECT user_id, array_agg(item_id ORDER BY rank) AS ids
    FROM recommend_batch(ARRAY(SELECT generate_series(1, 60))::bigint[], 5, 're_rec') GROUP BY user_id;
SELECT is((SELECT max(version) FROM pgformer_models WHERE name = 're_rec'), 2,
          'a second version was loaded while the batch ran');
SELECT is((SELECT count(*) FROM batch b JOIN plain p USING (user_id) WHERE b.ids = p.ids), 60::bigint,
          'the batch finished on version 1 for all 60 users');
SELECT is((SELECT count(*) FROM batch), 60::bigint, 'and answered every user');
SELECT is((SELECT count(*) FROM recommend(30, 5, 're_rec')), 5::bigint, 'the next call answers');
SELECT cmp_ok((SELECT calls FROM pgformer_cache WHERE name = 're_rec' AND version = 2), '>', 0::bigint,
              'from version 2');
SELECT is((SELECT coalesce(max(pins), 0) FROM pgformer_cache WHERE name = 're_rec' AND version = 1), 0,
          'and version 1 is no longer mapped');

-- the pinned queries of the calls above are gone: a rebind is still clean
SELECT lives_ok($$SELECT pgformer_bind('re_rec', 'events',
    'SELECT item_id, ts FROM re_events WHERE user_id = $1 ORDER BY ts DESC')$$, 'rebinding afterwards');
SELECT is((SELECT count(*) FROM recommend(7, 5, 're_rec')), 5::bigint, 'and calling');

-- 4. errors caught by an exception block give back what the calls held
SELECT pgformer_load('re_vlm', :'fixtures' || '/solo_tiny.pgf') AS v \gset
DO $$BEGIN
    FOR i IN 1..8 LOOP
        BEGIN
            PERFORM generate_text('re_vlm', repeat('hello ', 200), 4);   -- too long a prompt
        EXCEPTION WHEN invalid_parameter_value THEN NULL;
        END;
    END LOOP;
END$$;
SELECT is(generate_text('re_vlm', 'Q: ', 4), generate_text('re_vlm', 'Q: ', 4, temperature => 0),
          'after eight caught errors a model call still runs');

SELECT dblink_disconnect('other') AS d \gset
SELECT pgformer_drop('re_vlm') AS d \gset
SELECT pgformer_drop('re_rec') AS d \gset
DROP TABLE re_events;
DROP FUNCTION re_rebind(bigint), re_elsewhere(bigint), re_swap(bigint);
SELECT * FROM finish();
