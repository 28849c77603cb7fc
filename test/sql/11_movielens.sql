-- Quality through SQL: the committed MovieLens FinTRec model
-- (demo/models/fintrec_movielens.pgf), asked through recommend() for each
-- user's held-out last rating at its time, reaches the HR@10 and NDCG@10
-- that PyTorch measured for the same model (recorded in the file by
-- tools/train/fintrec.py), and beats the most-popular baseline, also
-- computed in SQL.  Protocol: tools/eval/fintrec.py.
\ir helpers.psql
\set csv :fixtures '/movielens.csv'
\set model :fixtures '/fintrec_movielens.pgf'
BEGIN;
SELECT plan(10);

CREATE TEMP TABLE staging (movie_id bigint, title text, year int, genres text,
                           user_id bigint, rating real, ts bigint);
COPY staging FROM :'csv' WITH (FORMAT csv, HEADER true, NULL 'NA');
-- back = 1: each user's last rating (by time, then movie id), the test
-- target; back = 2: the validation target; back > 2: training data
CREATE TABLE ml_all AS
    SELECT user_id, movie_id, rating, ts,
           row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, movie_id DESC) AS back
    FROM staging;
CREATE TABLE ml_targets AS SELECT user_id, movie_id, ts FROM ml_all WHERE back = 1;
CREATE TABLE ml_ratings AS SELECT user_id, movie_id, rating, ts FROM ml_all WHERE back > 1;
CREATE INDEX ON ml_ratings (user_id, ts DESC, movie_id DESC);
ANALYZE ml_ratings, ml_targets;

SELECT is(pgformer_load('movielens', :'model'), 1, 'the demo model loads');
SELECT lives_ok($$SELECT pgformer_bind('movielens', 'events',
    'SELECT movie_id, ts, (rating * 2)::int FROM ml_ratings
     WHERE user_id = $1 ORDER BY ts DESC, movie_id DESC')$$, 'bound to the history before the target');

CREATE TABLE ml_ranks AS
    SELECT t.user_id, (SELECT r.rank FROM recommend(t.user_id, 10, 'movielens', true, to_timestamp(t.ts)) r
                       WHERE r.item_id = t.movie_id) AS rank
    FROM ml_targets t;
CREATE TABLE ml_metrics AS
    SELECT round(avg((rank IS NOT NULL)::int), 4) AS hr,
           round(avg(coalesce(1 / log(2, rank + 1), 0)), 4) AS ndcg
    FROM ml_ranks;
CREATE TABLE ml_reference AS
    SELECT (metadata ->> 'test_hr@10')::numeric AS hr, (metadata ->> 'test_ndcg@10')::numeric AS ndcg,
           (metadata ->> 'popularity_test_hr@10')::numeric AS pop_hr
    FROM (SELECT pgformer_metadata('movielens') AS metadata) m;

SELECT is((SELECT hr FROM ml_metrics), (SELECT hr FROM ml_reference),
          format('HR@10 through recommend() is %s, as in PyTorch', (SELECT hr FROM ml_metrics)));
SELECT is((SELECT ndcg FROM ml_metrics), (SELECT ndcg FROM ml_reference),
          format('NDCG@10 through recommend() is %s, as in PyTorch', (SELECT ndcg FROM ml_metrics)));

-- most popular in the training data (ties: lower movie id), seen items excluded
CREATE TABLE ml_popular AS
    SELECT movie_id, count(*) AS n FROM ml_all WHERE back > 2 GROUP BY movie_id;
CREATE TABLE ml_pop_ranks AS
    SELECT t.user_id,
           (SELECT rank FROM (
                SELECT p.movie_id, row_number() OVER (ORDER BY p.n DESC, p.movie_id) AS rank
                FROM ml_popular p
                WHERE NOT EXISTS (SELECT 1 FROM ml_ratings r WHERE r.user_id = t.user_id AND r.movie_id = p.movie_id)
                ORDER BY p.n DESC, p.movie_id LIMIT 10) top
            WHERE top.movie_id = t.movie_id) AS rank
    FROM ml_targets t;
SELECT is((SELECT round(avg((rank IS NOT NULL)::int), 4) FROM ml_pop_ranks), (SELECT pop_hr FROM ml_reference),
          format('the most-popular baseline''s HR@10 in SQL is %s, as in PyTorch',
                 (SELECT round(avg((rank IS NOT NULL)::int), 4) FROM ml_pop_ranks)));
SELECT cmp_ok((SELECT hr FROM ml_metrics), '>', (SELECT round(avg((rank IS NOT NULL)::int), 4) FROM ml_pop_ranks),
              'the model beats the most-popular baseline');

-- the encoder variant (bidirectional, pCVR-style) through the same binding
SELECT is(pgformer_load('movielens_enc', :'fixtures' || '/fintrec_movielens_encoder.pgf'), 1,
          'the encoder variant loads');
SELECT lives_ok($$SELECT pgformer_bind('movielens_enc', 'events',
    'SELECT movie_id, ts, (rating * 2)::int FROM ml_ratings
     WHERE user_id = $1 ORDER BY ts DESC, movie_id DESC')$$, 'and is bound the same way');
CREATE TABLE ml_enc AS
    SELECT round(avg((rank IS NOT NULL)::int), 4) AS hr,
           round(avg(coalesce(1 / log(2, rank + 1), 0)), 4) AS ndcg
    FROM (SELECT (SELECT r.rank FROM recommend(t.user_id, 10, 'movielens_enc', true, to_timestamp(t.ts)) r
                  WHERE r.item_id = t.movie_id) AS rank
          FROM ml_targets t) x;
SELECT is((SELECT hr FROM ml_enc), (pgformer_metadata('movielens_enc') ->> 'test_hr@10')::numeric,
          format('encoder HR@10 through recommend() is %s, as in PyTorch', (SELECT hr FROM ml_enc)));
SELECT is((SELECT ndcg FROM ml_enc), (pgformer_metadata('movielens_enc') ->> 'test_ndcg@10')::numeric,
          format('encoder NDCG@10 through recommend() is %s, as in PyTorch', (SELECT ndcg FROM ml_enc)));

-- two stages: the decoder's top 200 re-ranked by the Hiformer ranker, with
-- features from the same history (the ranker's own queries, over views in
-- its table layout) and the context of the target's time.  Reported, not
-- asserted: whether it helps is a property of the models.
CREATE TABLE movies (movieid int PRIMARY KEY, title text, year int, genres text);
INSERT INTO movies SELECT DISTINCT ON (movie_id) movie_id, title, year, genres FROM staging;
CREATE VIEW ratings AS SELECT user_id::int AS userid, movie_id::int AS movieid, rating, ts AS "timestamp"
    FROM ml_ratings;
CREATE INDEX ON ml_ratings (movie_id);
SELECT pgformer_load('ranker', :'fixtures' || '/hiformer_movielens.pgf') AS ranker_version \gset
SELECT count(pgformer_bind('ranker', role, pgformer_metadata('ranker') ->> ('sql.' || role))) AS bound
FROM unnest(ARRAY['user_features', 'item_features']) role \gset
CREATE TABLE ml_two_stage AS
    SELECT round(avg((rank IS NOT NULL)::int), 4) AS hr,
           round(avg(coalesce(1 / log(2, rank + 1), 0)), 4) AS ndcg
    FROM (SELECT (SELECT r.rank FROM recommend(t.user_id, 10, 'movielens', true, to_timestamp(t.ts),
                                               rerank => 'ranker', candidates => 200,
                                               context => jsonb_build_object(
                                                   'ctx_hour', extract(hour FROM to_timestamp(t.ts) AT TIME ZONE 'UTC')::int + 1,
                                                   'ctx_weekday', extract(isodow FROM to_timestamp(t.ts) AT TIME ZONE 'UTC')::int)) r
                  WHERE r.item_id = t.movie_id) AS rank
          FROM ml_targets t) x;
SELECT diag(format('two stages (decoder top 200 re-ranked by the Hiformer): HR@10 %s, NDCG@10 %s; decoder alone: HR@10 %s, NDCG@10 %s',
                   (SELECT hr FROM ml_two_stage), (SELECT ndcg FROM ml_two_stage),
                   (SELECT hr FROM ml_metrics), (SELECT ndcg FROM ml_metrics)));

SELECT * FROM finish();
ROLLBACK;
