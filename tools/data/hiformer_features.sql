-- hiformer_features.sql: the feature queries of the MovieLens Hiformer
-- ranker (demo/models/hiformer_movielens.pgf), for the pgformer bindings:
--
--   SELECT pgformer_bind('ranker', 'user_features',    <user_features>);
--   SELECT pgformer_bind('ranker', 'item_features',    <item_features>);
--   SELECT pgformer_bind('ranker', 'context_features', <context_features>);
--
-- user_features takes $1 = the user id and returns exactly one row (also for
-- a user without ratings: counts 0, the rest NULL).  item_features takes
-- $1 = bigint[] of candidate item ids and returns one row per known item;
-- its first column, item_id, says which candidate a row is for (unknown ids
-- return no row: the model then uses its defaults).  context_features takes
-- no parameter and returns one row.  Every other column is a model feature:
-- the column name is the feature name, NULL means missing.  The same queries
-- are stored in the model file's metadata (sql.user_features, ...).
--
-- Tables (MovieLens latest-small, data/movielens.csv split in two):
--   CREATE TABLE movies  (movieid int PRIMARY KEY, title text, year int, genres text);
--   CREATE TABLE ratings (userid int, movieid int, rating real, "timestamp" bigint);
--   CREATE INDEX ON ratings (userid);  CREATE INDEX ON ratings (movieid);
--   CREATE INDEX ON ratings ("timestamp");
-- genres is the '|'-separated MovieLens list, "timestamp" unix seconds.
--
-- Point in time.  Every aggregate reads only the ratings strictly before an
-- "as of" time t, set once per query in the CTE named asof, and nothing
-- else depends on t (there is no "days since" feature: at serving time it
-- would take values the model never saw in training).  Training
-- (tools/data/hiformer_features.py) computes each example's features with t =
-- the example's own timestamp, so these queries run with that t return
-- exactly what the model saw; tools/data/hiformer_features.py --check-sql
-- compares them value by value on held-out events against a live server.
-- Serving uses t = the latest rating + 1 s, i.e. all the data: the
-- features of the newest state, as the model would see them for a rating
-- made right after it.  The context (hour of day and ISO weekday, UTC) is
-- the request time, now(); in training it was the event's time.  To count
-- ratings up to the present on live data, replace the asof CTE's body by
-- SELECT extract(epoch FROM now())::bigint AS t (same features).
--
-- Each query starts at a line "-- name: <binding>" and ends at the next one
-- or at the end of the file (tools/data/hiformer_features.py reads them).

-- name: user_features
WITH asof AS (
    SELECT max("timestamp") + 1 AS t FROM ratings
),
hist AS (
    SELECT r.rating::float8 AS rating,
           (r.rating >= 4)::int::float8 AS liked,
           r."timestamp" AS ts,
           coalesce(string_to_array(m.genres, '|'), '{}') AS genres
    FROM ratings r
    LEFT JOIN movies m ON m.movieid = r.movieid
    WHERE r.userid = $1 AND r."timestamp" < (SELECT t FROM asof)
),
top_genre AS (
    SELECT g.code
    FROM hist h
    CROSS JOIN LATERAL unnest(h.genres) AS hg(name)
    JOIN unnest(ARRAY['Action', 'Adventure', 'Animation', 'Children', 'Comedy',
                      'Crime', 'Documentary', 'Drama', 'Fantasy', 'Film-Noir',
                      'Horror', 'IMAX', 'Musical', 'Mystery', 'Romance', 'Sci-Fi',
                      'Thriller', 'War', 'Western', '(no genres listed)'])
         WITH ORDINALITY AS g(name, code) ON g.name = hg.name
    GROUP BY g.code
    ORDER BY count(*) DESC, g.code
    LIMIT 1
)
SELECT coalesce((SELECT code FROM top_genre), 0)::int AS u_top_genre,
       count(*)::float8 AS u_n_ratings,
       avg(h.rating) AS u_mean_rating,
       stddev_pop(h.rating) AS u_std_rating,
       avg(h.liked) AS u_frac_liked,
       (max(h.ts) - min(h.ts))::float8 / 86400 AS u_days_span,
       avg(('Action' = ANY (h.genres))::int::float8) AS u_share_action,
       avg(('Adventure' = ANY (h.genres))::int::float8) AS u_share_adventure,
       avg(('Animation' = ANY (h.genres))::int::float8) AS u_share_animation,
       avg(('Children' = ANY (h.genres))::int::float8) AS u_share_children,
       avg(('Comedy' = ANY (h.genres))::int::float8) AS u_share_comedy,
       avg(('Crime' = ANY (h.genres))::int::float8) AS u_share_crime,
       avg(('Documentary' = ANY (h.genres))::int::float8) AS u_share_documentary,
       avg(('Drama' = ANY (h.genres))::int::float8) AS u_share_drama,
       avg(('Fantasy' = ANY (h.genres))::int::float8) AS u_share_fantasy,
       avg(('Film-Noir' = ANY (h.genres))::int::float8) AS u_share_film_noir,
       avg(('Horror' = ANY (h.genres))::int::float8) AS u_share_horror,
       avg(('IMAX' = ANY (h.genres))::int::float8) AS u_share_imax,
       avg(('Musical' = ANY (h.genres))::int::float8) AS u_share_musical,
       avg(('Mystery' = ANY (h.genres))::int::float8) AS u_share_mystery,
       avg(('Romance' = ANY (h.genres))::int::float8) AS u_share_romance,
       avg(('Sci-Fi' = ANY (h.genres))::int::float8) AS u_share_sci_fi,
       avg(('Thriller' = ANY (h.genres))::int::float8) AS u_share_thriller,
       avg(('War' = ANY (h.genres))::int::float8) AS u_share_war,
       avg(('Western' = ANY (h.genres))::int::float8) AS u_share_western,
       avg(h.liked) FILTER (WHERE 'Action' = ANY (h.genres)) AS u_like_action,
       avg(h.liked) FILTER (WHERE 'Adventure' = ANY (h.genres)) AS u_like_adventure,
       avg(h.liked) FILTER (WHERE 'Animation' = ANY (h.genres)) AS u_like_animation,
       avg(h.liked) FILTER (WHERE 'Children' = ANY (h.genres)) AS u_like_children,
       avg(h.liked) FILTER (WHERE 'Comedy' = ANY (h.genres)) AS u_like_comedy,
       avg(h.liked) FILTER (WHERE 'Crime' = ANY (h.genres)) AS u_like_crime,
       avg(h.liked) FILTER (WHERE 'Documentary' = ANY (h.genres)) AS u_like_documentary,
       avg(h.liked) FILTER (WHERE 'Drama' = ANY (h.genres)) AS u_like_drama,
       avg(h.liked) FILTER (WHERE 'Fantasy' = ANY (h.genres)) AS u_like_fantasy,
       avg(h.liked) FILTER (WHERE 'Film-Noir' = ANY (h.genres)) AS u_like_film_noir,
       avg(h.liked) FILTER (WHERE 'Horror' = ANY (h.genres)) AS u_like_horror,
       avg(h.liked) FILTER (WHERE 'IMAX' = ANY (h.genres)) AS u_like_imax,
       avg(h.liked) FILTER (WHERE 'Musical' = ANY (h.genres)) AS u_like_musical,
       avg(h.liked) FILTER (WHERE 'Mystery' = ANY (h.genres)) AS u_like_mystery,
       avg(h.liked) FILTER (WHERE 'Romance' = ANY (h.genres)) AS u_like_romance,
       avg(h.liked) FILTER (WHERE 'Sci-Fi' = ANY (h.genres)) AS u_like_sci_fi,
       avg(h.liked) FILTER (WHERE 'Thriller' = ANY (h.genres)) AS u_like_thriller,
       avg(h.liked) FILTER (WHERE 'War' = ANY (h.genres)) AS u_like_war,
       avg(h.liked) FILTER (WHERE 'Western' = ANY (h.genres)) AS u_like_western
FROM hist h;

-- name: item_features
WITH asof AS (
    SELECT max("timestamp") + 1 AS t FROM ratings
),
cand AS (
    SELECT DISTINCT id FROM unnest($1::bigint[]) AS c(id)
)
SELECT m.movieid::bigint AS item_id,
       coalesce(width_bucket(m.year, 1920, 2020, 10) + 1, 0) AS i_year_bucket,
       ARRAY(SELECT coalesce(array_position(
                    ARRAY['Action', 'Adventure', 'Animation', 'Children', 'Comedy',
                          'Crime', 'Documentary', 'Drama', 'Fantasy', 'Film-Noir',
                          'Horror', 'IMAX', 'Musical', 'Mystery', 'Romance', 'Sci-Fi',
                          'Thriller', 'War', 'Western', '(no genres listed)'],
                    g.name), 0)
             FROM unnest(string_to_array(m.genres, '|')) AS g(name)) AS i_genres,
       count(r.rating)::float8 AS i_n_ratings,
       avg(r.rating::float8) AS i_mean_rating,
       avg((r.rating >= 4)::int::float8) AS i_frac_liked,
       m.year::float8 AS i_year
FROM cand
JOIN movies m ON m.movieid = cand.id
LEFT JOIN ratings r ON r.movieid = m.movieid AND r."timestamp" < (SELECT t FROM asof)
GROUP BY m.movieid, m.year, m.genres;

-- name: context_features
SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1 AS ctx_hour,
       extract(isodow FROM now() AT TIME ZONE 'UTC')::int AS ctx_weekday;
