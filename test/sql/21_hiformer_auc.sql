-- Quality through SQL: the committed MovieLens Hiformer ranker
-- (demo/models/hiformer_movielens.pgf) scores every held-out rating (the
-- latest 20% of events) from features computed in SQL by its own binding
-- queries (recorded in the file) as of each rating's time, and the AUC of
-- both tasks equals the one PyTorch measured (tools/train/hiformer.py).
\ir helpers.psql
\set csv :fixtures '/movielens.csv'
\set model :fixtures '/hiformer_movielens.pgf'
BEGIN;
SELECT plan(5);

CREATE TEMP TABLE staging (movie_id bigint, title text, year int, genres text,
                           user_id bigint, rating real, ts bigint);
COPY staging FROM :'csv' WITH (FORMAT csv, HEADER true, NULL 'NA');
-- the tables the feature queries read (tools/data/hiformer_features.sql)
CREATE TABLE movies (movieid int PRIMARY KEY, title text, year int, genres text);
CREATE TABLE ratings (userid int, movieid int, rating real, "timestamp" bigint);
INSERT INTO movies SELECT DISTINCT ON (movie_id) movie_id, title, year, genres FROM staging;
INSERT INTO ratings SELECT user_id, movie_id, rating, ts FROM staging;
CREATE INDEX ON ratings (userid);
CREATE INDEX ON ratings (movieid);
CREATE INDEX ON ratings ("timestamp");
ANALYZE movies, ratings;
SELECT is(pgformer_load('ranker', :'model'), 1, 'the demo ranker loads');

-- the binding queries with their "as of" time (and now()) set to a
-- parameter, as tools.data.hiformer_features.as_of does
CREATE FUNCTION pg_temp.as_of(query text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(query, 'SELECT max("timestamp") + 1 AS t FROM ratings', 'SELECT $2::bigint AS t'),
                   'now()', 'to_timestamp($2)')
$$;
DO $$
DECLARE md jsonb := pgformer_metadata('ranker');
BEGIN
    EXECUTE format('CREATE FUNCTION pg_temp.user_at(bigint, bigint) RETURNS jsonb LANGUAGE sql STABLE AS %L',
                   'SELECT to_jsonb(x) FROM (' || pg_temp.as_of(md ->> 'sql.user_features') || ') x');
    EXECUTE format('CREATE FUNCTION pg_temp.item_at(bigint, bigint) RETURNS jsonb LANGUAGE sql STABLE AS %L',
                   'SELECT to_jsonb(x) - ''item_id'' FROM ('
                   || replace(pg_temp.as_of(md ->> 'sql.item_features'), '$1::bigint[]', 'ARRAY[$1]::bigint[]')
                   || ') x');
    EXECUTE format('CREATE FUNCTION pg_temp.context_at(bigint) RETURNS jsonb LANGUAGE sql STABLE AS %L',
                   'SELECT to_jsonb(x) FROM ('
                   || replace(pg_temp.as_of(md ->> 'sql.context_features'), '$2', '$1') || ') x');
END $$;

CREATE TABLE held AS
    SELECT row_number() OVER (ORDER BY "timestamp", userid, movieid) AS n, userid, movieid, rating, "timestamp"
    FROM ratings
    WHERE "timestamp" >= substring(pgformer_metadata('ranker') ->> 'split' FROM 'train before (\d+)')::bigint;
SELECT is((SELECT count(*) FROM held),
          substring(pgformer_metadata('ranker') ->> 'split' FROM 'latest 20% of events \((\d+)\)')::bigint,
          'the held-out events are the ones the model was evaluated on');
CREATE TABLE held_features AS
    SELECT n, coalesce(pg_temp.user_at(userid, "timestamp"), '{}')
              || coalesce(pg_temp.item_at(movieid, "timestamp"), '{}')
              || coalesce(pg_temp.context_at("timestamp"), '{}') AS features
    FROM held;

-- AUC with tied scores counted as half (the Mann-Whitney statistic)
CREATE FUNCTION pg_temp.auc(labels boolean[], scores real[]) RETURNS numeric LANGUAGE sql AS $$
    WITH s AS (SELECT y, p FROM unnest(labels, scores) AS t(y, p)),
         r AS (SELECT y, rank() OVER (ORDER BY p) + (count(*) OVER (PARTITION BY p) - 1) / 2.0 AS rk
               FROM s)
    SELECT round(((SELECT sum(rk) FROM r WHERE y)
                  - (SELECT count(*) FROM r WHERE y) * ((SELECT count(*) FROM r WHERE y) + 1) / 2.0)
                 / ((SELECT count(*) FROM r WHERE y) * (SELECT count(*) FROM r WHERE NOT y)), 4)
$$;
CREATE TABLE held_auc AS
    SELECT pg_temp.auc(array_agg(h.rating >= 4 ORDER BY h.n),
                       score_batch('ranker', array_agg(f.features ORDER BY h.n), 'like')) AS like_auc,
           pg_temp.auc(array_agg(h.rating >= 4.5 ORDER BY h.n),
                       score_batch('ranker', array_agg(f.features ORDER BY h.n), 'love')) AS love_auc
    FROM held h JOIN held_features f USING (n);
SELECT is((SELECT like_auc FROM held_auc), (pgformer_metadata('ranker') ->> 'heldout_auc_like')::numeric,
          format('held-out AUC of "like" through SQL is %s, as in PyTorch', (SELECT like_auc FROM held_auc)));
SELECT is((SELECT love_auc FROM held_auc), (pgformer_metadata('ranker') ->> 'heldout_auc_love')::numeric,
          format('held-out AUC of "love" through SQL is %s, as in PyTorch', (SELECT love_auc FROM held_auc)));
SELECT diag(format('logistic regression on the same features (PyTorch): like %s, love %s',
                   pgformer_metadata('ranker') ->> 'heldout_lr_auc_like',
                   pgformer_metadata('ranker') ->> 'heldout_lr_auc_love'));
SELECT ok((SELECT unknown_inputs FROM pgformer_cache WHERE name = 'ranker') >= 0,
          'missing values of the held-out rows (new users, new items) were counted');

SELECT * FROM finish();
ROLLBACK;
