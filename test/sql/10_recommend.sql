-- FinTRec through SQL: recommend() equals the PyTorch reference
-- (tools/models/fintrec.py via test/gen/fintrec_sql_cases.py) on 60 requests for each
-- of a decoder, an encoder and plain SASRec, read through bindings of three
-- shapes; recommend_from, recommend_batch and LATERAL joins agree with it;
-- then every bad input of the issue.
\ir helpers.psql
\set events_csv :fixtures '/fintrec_events.csv'
\set expected_csv :fixtures '/fintrec_expected.csv'
BEGIN;
SELECT plan(62);

CREATE TABLE fin_events (model text, user_id bigint, item_id bigint, ts bigint,
                         event_type int, channel int);
COPY fin_events FROM :'events_csv' WITH (FORMAT csv, HEADER true);
CREATE TABLE fin_expected (model text, user_id bigint, now bigint, top_ids bigint[], top_scores real[]);
COPY fin_expected FROM :'expected_csv' WITH (FORMAT csv, HEADER true);
CREATE TABLE loaded AS
    SELECT m, pgformer_load(m, :'fixtures' || '/' || m || '.pgf') AS version
    FROM unnest(ARRAY['random_decoder', 'random_encoder', 'random_sasrec']) m;

-- three binding shapes: timestamptz with types and channels, unix seconds,
-- and two columns (SASRec needs neither types nor channels)
SELECT lives_ok($$SELECT pgformer_bind('random_decoder', 'events',
    'SELECT item_id, to_timestamp(ts), event_type, channel FROM fin_events
     WHERE model = ''random_decoder'' AND user_id = $1 ORDER BY ts DESC')$$,
    'a timestamptz binding with event types and channels');
SELECT lives_ok($$SELECT pgformer_bind('random_encoder', 'events',
    'SELECT item_id, ts, event_type, channel FROM fin_events
     WHERE model = ''random_encoder'' AND user_id = $1 ORDER BY ts')$$,
    'a binding in unix seconds, oldest first');
SELECT lives_ok($$SELECT pgformer_bind('random_sasrec', 'events',
    'SELECT item_id, ts FROM fin_events WHERE model = ''random_sasrec'' AND user_id = $1')$$,
    'a two-column binding in no particular order');
SELECT is((SELECT count(*) FROM pgformer_bindings WHERE role = 'events'), 3::bigint,
          'pgformer_bindings lists them');

CREATE TABLE got AS
    SELECT e.model, e.user_id, e.top_ids, e.top_scores,
           (SELECT array_agg(item_id ORDER BY rank) FROM recommend(e.user_id, 10, e.model, true, to_timestamp(e.now))) AS ids,
           (SELECT array_agg(score ORDER BY rank) FROM recommend(e.user_id, 10, e.model, true, to_timestamp(e.now))) AS scores
    FROM fin_expected e;
SELECT is((SELECT count(*) FROM got WHERE ids = top_ids), 180::bigint,
          'recommend returns PyTorch''s top 10 for all 180 requests');
SELECT cmp_ok((SELECT max(pg_temp.max_abs_diff(scores, top_scores)) FROM got), '<=', 1e-4::float8,
              'and its scores within 1e-4');
SELECT is((SELECT count(*) FROM got WHERE model = m AND ids = top_ids), 60::bigint,
          format('all 60 requests of %s', m))
FROM unnest(ARRAY['random_decoder', 'random_encoder', 'random_sasrec']) m;

-- an ad-hoc sequence (the events up to the request time): SASRec uses no
-- time, so the request time does not matter
SELECT is((SELECT count(*) FROM fin_expected x
           WHERE model = 'random_sasrec' AND top_ids =
                 (SELECT coalesce(array_agg(item_id ORDER BY rank), '{}') FROM recommend_from('random_sasrec',
                      (SELECT array_agg(item_id ORDER BY ts) FROM fin_events v
                       WHERE v.model = 'random_sasrec' AND v.user_id = x.user_id AND v.ts <= x.now),
                      (SELECT array_agg(to_timestamp(ts) ORDER BY ts) FROM fin_events v
                       WHERE v.model = 'random_sasrec' AND v.user_id = x.user_id AND v.ts <= x.now), 10))),
          60::bigint, 'recommend_from on the same sequences gives the same answers');

-- one packed pass for many users
SELECT is((SELECT count(*) FROM (
              SELECT b.user_id, array_agg(b.item_id ORDER BY b.rank) AS ids
              FROM recommend_batch((SELECT array_agg(user_id ORDER BY user_id) FROM fin_expected
                                    WHERE model = 'random_decoder'), 10, 'random_decoder') b
              GROUP BY b.user_id) b
           JOIN fin_expected x ON x.model = 'random_decoder' AND x.user_id = b.user_id
           WHERE b.ids = (SELECT array_agg(item_id ORDER BY rank)
                          FROM recommend(b.user_id, 10, 'random_decoder'))),
          60::bigint, 'recommend_batch answers every user as recommend does');
SELECT is((SELECT count(*) FROM recommend_batch(ARRAY[1, NULL, 1]::bigint[], 3, 'random_decoder')),
          9::bigint, 'recommend_batch answers repeated and null users too');
SELECT is((SELECT count(*) FROM recommend_batch('{}'::bigint[], 3, 'random_decoder')), 0::bigint,
          'an empty batch gives nothing');

-- a batch job as a plain join, in parallel workers
CREATE TABLE fin_users AS SELECT DISTINCT user_id AS id FROM fin_expected;
ANALYZE fin_users;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT matches(pg_temp.plan_of($$SELECT u.id, r.* FROM fin_users u CROSS JOIN LATERAL
                                  recommend(u.id, 5, 'random_encoder') r$$),
               'Gather', 'recommend is parallel safe: a LATERAL batch runs in workers');
SELECT is((SELECT count(*) FROM fin_users u CROSS JOIN LATERAL recommend(u.id, 5, 'random_encoder') r),
          300::bigint, 'the LATERAL batch returns 5 rows for each of 60 users');
RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;

-- the planner knows the row counts of constant arguments, and the work
SELECT matches(pg_temp.plan_of($$SELECT * FROM recommend(1, 7, 'random_decoder')$$),
               'Function Scan on recommend .*rows=7 ', 'EXPLAIN expects k rows from recommend');
SELECT matches(pg_temp.plan_of($$SELECT * FROM recommend_batch(ARRAY[1, 2, 3]::bigint[], 4, 'random_decoder')$$),
               'rows=12 ', 'and users x k rows from recommend_batch');
SELECT matches(pg_temp.plan_of($$SELECT * FROM recommend_from('random_sasrec', ARRAY[1, 2]::bigint[], k => 3)$$),
               'rows=3 ', 'and k rows from recommend_from');
SELECT ok((SELECT substring(pg_temp.plan_of($$SELECT * FROM recommend_batch(
               ARRAY(SELECT 1)::bigint[], 4, 'random_decoder')$$) FROM 'rows=(\d+)')::int = 1000),
          'an array that is not a constant keeps the declared estimate');
SELECT ok((SELECT substring(pg_temp.plan_of($$SELECT * FROM recommend_batch(
               ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]::bigint[], 4, 'random_decoder')$$) FROM 'cost=([0-9]+[.][0-9]+)')::float8
           > 5 * (SELECT substring(pg_temp.plan_of($$SELECT * FROM recommend(1, 4, 'random_decoder')$$)
                  FROM 'cost=([0-9]+[.][0-9]+)')::float8)),
          'a batch of ten users costs about ten single calls');

-- cold start: a null or unknown user gets the answer of an empty history
SELECT results_eq($$SELECT item_id FROM recommend(NULL, 5, 'random_decoder') ORDER BY rank$$,
                  $$SELECT item_id FROM recommend(987654321, 5, 'random_decoder') ORDER BY rank$$,
                  'a null user and a user without events get the same cold-start answer');
SELECT is((SELECT count(*) FROM recommend(NULL, 5, 'random_decoder')), 5::bigint,
          'a cold start still returns k items');

-- ids the model never saw: mapped to its unknown row, counted
SELECT ok((SELECT unknown_inputs FROM pgformer_cache WHERE name = 'random_decoder') > 0,
          'events with unknown item ids were counted in pgformer_cache.unknown_inputs');
SELECT is((SELECT count(*) FROM recommend_from('random_sasrec', ARRAY[-1, -2, -3]::bigint[], NULL, 4)),
          4::bigint, 'a sequence of unknown ids still gets an answer');

-- k
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, 0, 'random_decoder')$$),
          '22023: k must be positive, 0 was given', 'k = 0 is refused');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, -5, 'random_decoder')$$),
          '22023: k must be positive, -5 was given', 'a negative k is refused');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, NULL, 'random_decoder')$$),
          '22004: k must not be null', 'a null k is refused');
SELECT is((SELECT count(*) FROM recommend(NULL, 1000000, 'random_decoder')), 300::bigint,
          'k beyond the catalogue is clamped to its 300 items');
SELECT is((SELECT count(*) FROM recommend(NULL, 1000000, 'random_decoder', false)), 300::bigint,
          'with exclude_seen off as well');
SELECT ok((SELECT count(*) FROM recommend(20, 1000000, 'random_decoder')) < 300,
          'seen items are excluded by default');
SELECT ok(NOT EXISTS (SELECT 1 FROM recommend(20, 1000000, 'random_decoder') r
                      JOIN fin_events e ON e.model = 'random_decoder' AND e.user_id = 20
                                        AND e.item_id = r.item_id),
          'no seen item is recommended');

-- bindings with the wrong columns are refused when bound, naming the expected ones
SELECT matches(pg_temp.error_of($$SELECT pgformer_bind('random_decoder', 'events',
                   'SELECT item_id, model FROM fin_events WHERE user_id = $1')$$),
               '^42804: column 2 \("model"\) of the events query is text, it must be a time',
               'a text time is refused, naming the column');
SELECT matches(pg_temp.error_of($$SELECT pgformer_bind('random_decoder', 'events',
                   'SELECT item_id FROM fin_events WHERE user_id = $1')$$),
               '^42804: the events query returns 1 column, it must return \(item_id integer, ts timestamptz',
               'a single column is refused, naming the expected columns');
SELECT matches(pg_temp.error_of($$SELECT pgformer_bind('random_decoder', 'events',
                   'SELECT item_id, ts FROM fin_events WHERE user_id = $1::text')$$),
               '^42883: operator does not exist: bigint = text',
               'a query that does not fit $1 = the user id is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('random_decoder', 'clicks', 'SELECT 1')$$),
          '22023: a fintrec model has no input role "clicks"', 'an unknown role is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('nope', 'events', 'SELECT 1')$$),
          '42704: model "nope" does not exist', 'binding an unknown model names it');
SELECT is((SELECT count(*) FROM recommend(1, 3, 'random_decoder')), 3::bigint,
          'a refused binding left the old one in place');

-- unbound, wrong architecture, default model, dropped model
SELECT is(pgformer_load('unbound', :'fixtures' || '/random_sasrec.pgf'), 1, 'a model without a binding');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, 3, 'unbound')$$),
          '42704: model "unbound" has no binding for role "events"', 'recommend says the binding is missing');
SELECT is(pgformer_load('tiny_bs', :'fixtures' || '/bs_tiny.pgf'), 1, 'a block_stack model');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, 3, 'tiny_bs')$$),
          '42809: model "tiny_bs" is a block_stack model, this function needs a fintrec model',
          'a model of another architecture is refused');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, 3)$$),
          '22023: no model named and pgformer.default_model is not set', 'no model and no default');
SET LOCAL pgformer.default_model = 'random_decoder';
SELECT results_eq($$SELECT item_id FROM recommend(1, 3)$$,
                  $$SELECT item_id FROM recommend(1, 3, 'random_decoder')$$,
                  'pgformer.default_model names the model when a call does not');
SELECT is(pgformer_drop('random_encoder'), 1, 'a model is dropped');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, 3, 'random_encoder')$$),
          '42704: model "random_encoder" does not exist', 'calling a dropped model names it');
SELECT is((SELECT count(*) FROM pgformer_bindings WHERE model = 'random_encoder'), 0::bigint,
          'dropping a model removes its bindings');

-- the trigger re-ranks a user's rows in the same transaction
CREATE TABLE live_events (user_id bigint, item_id bigint, ts timestamptz DEFAULT now());
CREATE TABLE user_recs (user_id bigint, item_id bigint, score real, rank int);
SELECT lives_ok($$SELECT pgformer_bind('random_sasrec', 'events',
    'SELECT item_id, ts FROM live_events WHERE user_id = $1 ORDER BY ts DESC LIMIT 50')$$,
    'random_sasrec now reads live_events');
CREATE TRIGGER rerank AFTER INSERT ON live_events
    FOR EACH ROW EXECUTE FUNCTION pgformer_rerank('random_sasrec', 'user_recs', 5);
INSERT INTO live_events (user_id, item_id)
    SELECT 77, item_id FROM fin_events WHERE model = 'random_sasrec' AND user_id = 20 LIMIT 3;
SELECT results_eq($$SELECT item_id, rank FROM user_recs WHERE user_id = 77 ORDER BY rank$$,
                  $$SELECT item_id, rank FROM recommend(77, 5, 'random_sasrec') ORDER BY rank$$,
                  'after each insert the user''s rows hold the fresh top 5');
SELECT is((SELECT count(*) FROM user_recs), 5::bigint, 'old rows were replaced, not added to');
CREATE TRIGGER rerank_bad AFTER INSERT ON fin_users
    FOR EACH ROW EXECUTE FUNCTION pgformer_rerank('random_sasrec', 'user_recs');
SELECT is(pg_temp.error_of($$INSERT INTO fin_users VALUES (5)$$),
          '42703: table "fin_users" has no column "user_id" holding the user id',
          'a trigger on a table without the user column says so');

-- a statement-level trigger re-ranks each user of the statement once, in one pass
CREATE TABLE bulk_events (user_id bigint, item_id bigint, ts timestamptz DEFAULT now());
CREATE TABLE bulk_recs (user_id bigint, item_id bigint, score real, rank int);
SELECT pgformer_bind('random_sasrec', 'events',
    'SELECT item_id, ts FROM bulk_events WHERE user_id = $1 ORDER BY ts DESC LIMIT 50') AS b \gset
CREATE TRIGGER bulk_rerank AFTER INSERT ON bulk_events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgformer_rerank('random_sasrec', 'bulk_recs', 5);
INSERT INTO bulk_recs VALUES (3, 1, 0, 1), (999, 1, 0, 1);
INSERT INTO bulk_events (user_id, item_id)
    SELECT CASE WHEN g % 41 = 0 THEN NULL ELSE g % 40 END, e.item_id
    FROM generate_series(1, 2000) g
    JOIN (SELECT row_number() OVER () AS r, item_id FROM fin_events WHERE model = 'random_sasrec') e
      ON e.r = 1 + g % 500;
SELECT is((SELECT count(DISTINCT user_id) FROM bulk_recs WHERE user_id <> 999), 40::bigint,
          'a 2,000-row INSERT re-ranks each of its 40 users (null users skipped)');
SELECT is((SELECT count(*) FROM bulk_recs b WHERE b.user_id <> 999 AND (b.item_id, b.rank) NOT IN
             (SELECT item_id, rank FROM recommend(b.user_id, 5, 'random_sasrec'))), 0::bigint,
          'with the same top 5 that recommend gives');
SELECT is((SELECT count(*) FROM bulk_recs WHERE user_id = 3), 5::bigint,
          'a user''s old rows are replaced, not added to');
SELECT is((SELECT count(*) FROM bulk_recs WHERE user_id = 999), 1::bigint,
          'users the statement did not touch keep their rows');
CREATE TRIGGER bulk_bad AFTER INSERT ON bulk_events
    FOR EACH STATEMENT EXECUTE FUNCTION pgformer_rerank('random_sasrec', 'bulk_recs', 5);
SELECT is(pg_temp.error_of($$INSERT INTO bulk_events VALUES (1, 1)$$),
          '39P01: a FOR EACH STATEMENT pgformer_rerank trigger needs the new rows',
          'a statement-level trigger without a transition table says what to add');
DROP TRIGGER bulk_bad ON bulk_events;

-- a long batch stops at statement_timeout
SET LOCAL statement_timeout = '100ms';
SELECT is(pg_temp.error_of($$SELECT count(*) FROM recommend_batch(
              (SELECT array_agg(g % 60) FROM generate_series(1, 200000) g), 10, 'random_decoder')$$),
          '57014: canceling statement due to statement timeout',
          'statement_timeout cancels a 200,000-user batch');
RESET statement_timeout;

-- as of a time: what happened later never counts, whether the events
-- query filters by its $2 or not
SELECT pgformer_load('asof_dec', :'fixtures' || '/random_decoder.pgf') AS v \gset
CREATE TABLE asof_events AS
    SELECT user_id, item_id, to_timestamp(ts) AS ts FROM fin_events
    WHERE model = 'random_decoder' AND user_id BETWEEN 6 AND 10;
CREATE TABLE asof_at AS SELECT user_id, max(ts) AS at FROM asof_events GROUP BY user_id;
SELECT pgformer_bind('asof_dec', 'events',
    'SELECT item_id, ts FROM asof_events WHERE user_id = $1 ORDER BY ts DESC') AS b \gset
CREATE TABLE asof_before AS
    SELECT a.user_id, array_agg(r.item_id ORDER BY r.rank) AS ids
    FROM asof_at a, recommend(a.user_id, 10, 'asof_dec', true, a.at) r GROUP BY a.user_id;
-- later, each user acts on the three items they were recommended first
INSERT INTO asof_events
    SELECT b.user_id, b.ids[j], a.at + j * interval '1 hour'
    FROM asof_before b JOIN asof_at a USING (user_id), generate_series(1, 3) j;
SELECT is((SELECT count(*) FROM asof_before b JOIN asof_at a USING (user_id)
           WHERE b.ids = (SELECT array_agg(item_id ORDER BY rank)
                          FROM recommend(a.user_id, 10, 'asof_dec', true, a.at))), 5::bigint,
          'events inserted after t do not change the answer as of t');
SELECT is((SELECT count(*) FROM (SELECT r.user_id, array_agg(r.item_id ORDER BY r.rank) AS ids
                                 FROM asof_at a, recommend_batch(ARRAY[a.user_id], 10, 'asof_dec', true, a.at) r
                                 GROUP BY r.user_id) x JOIN asof_before b USING (user_id)
           WHERE x.ids = b.ids), 5::bigint, 'nor the answer of recommend_batch as of t');
SELECT isnt((SELECT array_agg(item_id ORDER BY rank) FROM recommend(6, 10, 'asof_dec')),
            (SELECT ids FROM asof_before WHERE user_id = 6),
            'as of now, the later events count');
SELECT lives_ok($$SELECT pgformer_bind('asof_dec', 'events',
    'SELECT item_id, ts FROM asof_events WHERE user_id = $1 AND ts <= $2 ORDER BY ts DESC')$$,
    'an events query may take the as-of time as $2');
SELECT is((SELECT count(*) FROM asof_before b JOIN asof_at a USING (user_id)
           WHERE b.ids = (SELECT array_agg(item_id ORDER BY rank)
                          FROM recommend(a.user_id, 10, 'asof_dec', true, a.at))), 5::bigint,
          'and answers the same');
SELECT is(pg_temp.error_of($$SELECT * FROM recommend(1, 10, 'asof_dec', true, 'infinity')$$),
          '22023: at must be a finite time', 'an infinite as-of time is refused');

SELECT * FROM finish();
ROLLBACK;
