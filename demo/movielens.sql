-- The MovieLens demo: a FinTRec sequence recommender trained on MovieLens
-- latest-small (tools/train/fintrec.py) recommends the next movies for a
-- few users, in plain SQL, next to what they last watched.
--   psql -v csv=movielens.csv -v model=fintrec_movielens.pgf -f demo/movielens.sql
\set QUIET 1
\pset footer off

CREATE TABLE movies (movie_id bigint PRIMARY KEY, title text NOT NULL, year int, genres text);
CREATE TABLE ratings (user_id bigint NOT NULL, movie_id bigint NOT NULL REFERENCES movies,
                      rating real NOT NULL, ts timestamptz NOT NULL);
CREATE TEMP TABLE staging (movie_id bigint, title text, year int, genres text,
                           user_id bigint, rating real, ts bigint);
COPY staging FROM :'csv' WITH (FORMAT csv, HEADER true, NULL 'NA');
INSERT INTO movies SELECT DISTINCT ON (movie_id) movie_id, coalesce(title, 'movie ' || movie_id), year, genres FROM staging;
INSERT INTO ratings SELECT user_id, movie_id, rating, to_timestamp(ts) FROM staging;
CREATE INDEX ON ratings (user_id, ts DESC);
ANALYZE movies, ratings;
\echo '== MovieLens latest-small, loaded from the r-cran-dslabs package'
SELECT (SELECT count(*) FROM ratings) AS ratings, (SELECT count(DISTINCT user_id) FROM ratings) AS users,
       (SELECT count(*) FROM movies) AS movies;

\echo '== the model: a causal FinTRec decoder with time features and a time-difference attention bias'
SELECT pgformer_load('movielens', :'model') AS version;
SELECT name, version, arch, params, bytes FROM pgformer_models;

-- how the model finds a user's events: newest first, the rating in half
-- stars as the event type
SELECT pgformer_bind('movielens', 'events',
    $$SELECT movie_id, ts, (rating * 2)::int FROM ratings
      WHERE user_id = $1 ORDER BY ts DESC, movie_id DESC LIMIT 200$$) \gset
SET pgformer.default_model = 'movielens';

\echo '== what three users watched last'
SELECT user_id, to_char(ts, 'YYYY-MM-DD') AS watched, rating, title
FROM (SELECT r.*, m.title, row_number() OVER (PARTITION BY r.user_id ORDER BY r.ts DESC, r.movie_id DESC) AS n
      FROM ratings r JOIN movies m USING (movie_id) WHERE r.user_id IN (1, 15, 42)) t
WHERE n <= 4 ORDER BY user_id, ts DESC;

\echo '== SELECT * FROM recommend(user_id): their next ten movies (already-seen movies excluded)'
SELECT u.user_id, r.rank, m.title, m.year, round(r.score::numeric, 2) AS score
FROM (VALUES (1), (15), (42)) AS u(user_id)
CROSS JOIN LATERAL recommend(u.user_id, 10) r
JOIN movies m ON m.movie_id = r.item_id
ORDER BY u.user_id, r.rank;

\echo '== a new user with no history (cold start), and one who just watched three Pixar films'
SELECT r.rank, m.title FROM recommend(NULL, 5) r JOIN movies m ON m.movie_id = r.item_id ORDER BY r.rank;
SELECT r.rank, m.title
FROM recommend_from('movielens', ARRAY[1, 2355, 3114]::bigint[]) r   -- Toy Story, A Bug's Life, Toy Story 2
JOIN movies m ON m.movie_id = r.item_id ORDER BY r.rank LIMIT 5;

\echo '== a trigger keeps user_recs fresh as events arrive'
CREATE TABLE user_recs (user_id bigint, item_id bigint, score real, rank int);
CREATE TRIGGER rerank AFTER INSERT ON ratings
    FOR EACH ROW EXECUTE FUNCTION pgformer_rerank('movielens', 'user_recs', 5);
INSERT INTO ratings VALUES (42, 1, 5.0, now());
SELECT u.rank, m.title FROM user_recs u JOIN movies m ON m.movie_id = u.item_id
WHERE u.user_id = 42 ORDER BY u.rank;

\echo '== batch scoring as plain SQL: every user, one packed pass'
\timing on
SELECT count(*) AS rows, count(DISTINCT user_id) AS users
FROM recommend_batch((SELECT array_agg(DISTINCT user_id) FROM ratings), 10);
\timing off
SELECT name, version, pins, calls, round(mean_ms::numeric, 3) AS mean_ms, unknown_inputs FROM pgformer_cache;
