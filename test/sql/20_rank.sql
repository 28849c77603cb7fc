-- Hiformer through SQL: score() and score_batch() equal the PyTorch
-- reference (tools/models/hiformer.py via test/gen/hiformer_sql_cases.py) on 2,000
-- candidate rows of a full-rank and a low-rank model, including missing,
-- NaN and out-of-vocabulary values; rank_items reads features through its
-- bindings and agrees with score(); then every bad input of the issue.
\ir helpers.psql
\set rows_csv :fixtures '/hiformer_rows.csv'
BEGIN;
SELECT plan(40);

CREATE TABLE hif_rows (model text, request int, candidate int, features jsonb, probabilities real[]);
COPY hif_rows FROM :'rows_csv' WITH (FORMAT csv, HEADER true);
CREATE TABLE loaded AS
    SELECT m, pgformer_load(m, :'fixtures' || '/' || m || '.pgf') AS version
    FROM unnest(ARRAY['hif_full', 'hif_lowrank']) m;

-- parity
SELECT cmp_ok((SELECT max(abs(score(model, features) - probabilities[1])) FROM hif_rows WHERE model = m),
              '<=', 1e-4::real, format('%s: score() equals PyTorch on %s rows within 1e-4', m,
                                       (SELECT count(*) FROM hif_rows WHERE model = m)))
FROM unnest(ARRAY['hif_full', 'hif_lowrank']) m;
SELECT cmp_ok((SELECT max(abs(score('hif_full', features, 'install') - probabilities[2]))
               FROM hif_rows WHERE model = 'hif_full'),
              '<=', 1e-4::real, 'the second task, by name, equals PyTorch too');
SELECT cmp_ok((SELECT max(abs(s - p)) FROM (
                 SELECT unnest(score_batch('hif_lowrank', array_agg(features ORDER BY request, candidate))) AS s,
                        unnest(array_agg(probabilities[1] ORDER BY request, candidate)) AS p
                 FROM hif_rows WHERE model = 'hif_lowrank') t),
              '<=', 1e-4::real, 'score_batch gives the same probabilities in one call');
SELECT is(score_batch('hif_full', ARRAY['{}', NULL]::jsonb[]) IS NOT NULL, true,
          'score_batch takes empty and null rows');
SELECT is((score_batch('hif_full', ARRAY[NULL]::jsonb[]))[1], NULL::real, 'a null row scores null');
SELECT is(cardinality(score_batch('hif_full', '{}'::jsonb[])), 0, 'no rows, no scores');

-- feature tables and their bindings
CREATE TABLE hif_users (user_id bigint, u_cat int, u_dense float8, u_cat2 int, u_dense2 real);
CREATE TABLE hif_items (item_id bigint, i_cat int, i_genres int[], i_dense float8, i_dense2 numeric);
INSERT INTO hif_users VALUES (1, 2, 0.5, 1, -0.25), (2, NULL, 'NaN', 99, NULL);
INSERT INTO hif_items SELECT g, g % 11, ARRAY[g % 9, (g * 3) % 9], g / 1000.0, (g % 7)::numeric
    FROM generate_series(1, 100000) g;
CREATE INDEX ON hif_items (item_id);
SELECT lives_ok($$SELECT pgformer_bind('hif_full', 'user_features',
    'SELECT u_cat, u_dense, u_cat2, u_dense2 FROM hif_users WHERE user_id = $1')$$,
    'a user_features binding');
SELECT lives_ok($$SELECT pgformer_bind('hif_full', 'item_features',
    'SELECT item_id, i_cat, i_genres, i_dense, i_dense2 FROM hif_items WHERE item_id = ANY ($1)')$$,
    'an item_features binding');
SELECT lives_ok($$SELECT pgformer_bind('hif_full', 'context_features', 'SELECT 3 AS c_cat, 0.5 AS c_dense')$$,
    'a context_features binding');

SELECT is((SELECT count(*) FROM rank_items('hif_full', 1, ARRAY[5, 17, 3, 400]::bigint[])), 4::bigint,
          'rank_items scores every candidate');
SELECT results_eq($$SELECT item_id FROM rank_items('hif_full', 1, ARRAY[5, 17, 3, 400]::bigint[]) ORDER BY rank$$,
                  $$SELECT i.item_id FROM hif_items i, hif_users u WHERE u.user_id = 1 AND i.item_id IN (5, 17, 3, 400)
                    ORDER BY score('hif_full', to_jsonb(u) - 'user_id' || to_jsonb(i) - 'item_id'
                                   || '{"c_cat": 3, "c_dense": 0.5}') DESC$$,
                  'rank_items orders candidates as score() on the joined feature rows does');
SELECT cmp_ok((SELECT max(abs(r.score - score('hif_full', to_jsonb(u) - 'user_id' || to_jsonb(i) - 'item_id'
                                                || '{"c_cat": 3, "c_dense": 0.5}')))
               FROM rank_items('hif_full', 1, ARRAY[5, 17, 3, 400]::bigint[]) r
               JOIN hif_items i ON i.item_id = r.item_id, hif_users u WHERE u.user_id = 1),
              '<=', 1e-5::real, 'with the same probabilities');
SELECT results_eq($$SELECT rank FROM rank_items('hif_full', 1, ARRAY[5, 17, 3, 400]::bigint[]) ORDER BY rank$$,
                  $$VALUES (1), (2), (3), (4)$$, 'ranks run from 1');

-- missing rows and values take the model's defaults and are counted
SELECT is((SELECT unknown_inputs FROM pgformer_cache WHERE name = 'hif_full') IS NOT NULL, true,
          'pgformer_cache tracks unknown inputs');
CREATE TEMP TABLE before AS SELECT unknown_inputs FROM pgformer_cache WHERE name = 'hif_full';
SELECT is((SELECT count(*) FROM rank_items('hif_full', 12345, ARRAY[5, -7, 100001]::bigint[])), 3::bigint,
          'a user without a feature row and items without rows are still scored');
SELECT ok((SELECT c.unknown_inputs - b.unknown_inputs >= 3 FROM pgformer_cache c, before b WHERE c.name = 'hif_full'),
          'the missing user row and item rows were counted');
SELECT is((SELECT count(*) FROM rank_items('hif_full', 2, ARRAY[5]::bigint[])), 1::bigint,
          'NULL and NaN dense values and an out-of-vocabulary category score');
SELECT cmp_ok((SELECT score FROM rank_items('hif_full', 2, ARRAY[5]::bigint[])),
              '=', score('hif_full', (SELECT to_jsonb(i) - 'item_id' FROM hif_items i WHERE item_id = 5)
                                    || '{"u_cat": null, "u_dense": null, "u_cat2": 0, "u_dense2": null,
                                         "c_cat": 3, "c_dense": 0.5}'),
              'NULL and NaN are the defaults and code 99 the unknown row, as in score()');
SELECT is((SELECT count(*) FROM rank_items('hif_full', NULL, ARRAY[5, 6]::bigint[])), 2::bigint,
          'a null user scores with default user features');

-- candidates: empty, null, repeated, many
SELECT is((SELECT count(*) FROM rank_items('hif_full', 1, '{}'::bigint[])), 0::bigint,
          'an empty candidate array gives an empty result');
SELECT is((SELECT count(*) FROM rank_items('hif_full', 1, NULL)), 0::bigint, 'null candidates: empty');
SELECT is((SELECT count(*) FROM rank_items('hif_full', 1, ARRAY[5, NULL, 6]::bigint[])), 2::bigint,
          'null candidates are skipped');
SELECT is((SELECT count(DISTINCT score) FROM rank_items('hif_full', 1, ARRAY[5, 5, 5]::bigint[])), 1::bigint,
          'a repeated candidate gets one score');
SELECT is((SELECT count(*) FROM rank_items('hif_full', 1, (SELECT array_agg(item_id) FROM hif_items))),
          100000::bigint, '100,000 candidates are scored in bounded chunks');
SELECT ok((SELECT bool_and(score BETWEEN 0 AND 1) FROM rank_items('hif_full', 1, ARRAY[1, 2, 3]::bigint[])),
          'scores are probabilities');

-- context jsonb
SELECT is((SELECT count(*) FROM rank_items('hif_full', 1, ARRAY[5]::bigint[], '{"c_cat": 1, "c_dense": 2.5}')),
          1::bigint, 'a context object overrides the context binding');
SELECT is(pg_temp.error_of($$SELECT * FROM rank_items('hif_full', 1, ARRAY[5]::bigint[], '{"c_kat": 1}')$$),
          '42704: context has key "c_kat", which is not a context feature of this model',
          'an unknown context key is named');
SELECT is(pg_temp.error_of($$SELECT * FROM rank_items('hif_full', 1, ARRAY[5]::bigint[], '{"c_dense": "high"}')$$),
          '42804: context key "c_dense" must be a number, not a string', 'a mistyped context value is named');
SELECT is(pg_temp.error_of($$SELECT score('hif_full', '{"i_genres": [1, 2.5]}')$$),
          '42804: features key "i_genres" must be an array of integer codes', 'a bad code list is named');
SELECT is(pg_temp.error_of($$SELECT score('hif_full', '{"nope": 1}')$$),
          '42704: features has key "nope", which is not a feature of this model', 'an unknown feature is named');
SELECT is(pg_temp.error_of($$SELECT score('hif_full', '[1, 2]')$$),
          '22023: features must be a JSON object of feature name -> value', 'features must be an object');
SELECT is(pg_temp.error_of($$SELECT score('hif_full', '{}', 'nope')$$),
          '22023: the model has no task "nope"', 'an unknown task is named');

-- bindings with the wrong columns are refused when bound
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('hif_full', 'user_features',
              'SELECT u_cat, u_dense FROM hif_users WHERE user_id = $1')$$),
          '42703: the user_features query of model "hif_full" lacks the user feature columns u_cat2, u_dense2',
          'missing feature columns are named');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('hif_full', 'user_features',
              'SELECT u_cat, u_dense, u_cat2, u_dense2, 1 AS extra FROM hif_users WHERE user_id = $1')$$),
          '42703: column "extra" of the user_features query is not a user feature of model "hif_full"',
          'an unknown column is named');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('hif_full', 'user_features',
              'SELECT u_cat::text, u_dense, u_cat2, u_dense2 FROM hif_users WHERE user_id = $1')$$),
          '42804: column "u_cat" of the user_features query is text, but feature "u_cat" is categorical (an integer code)',
          'a mistyped column is named');
SELECT is(pg_temp.error_of($$SELECT pgformer_bind('hif_full', 'item_features',
              'SELECT i_cat, i_genres, i_dense, i_dense2 FROM hif_items WHERE item_id = ANY ($1)')$$),
          '42804: the first column of the item_features query must be item_id (an integer)',
          'item rows must say which candidate they describe');
SELECT is(pg_temp.error_of($$SELECT * FROM rank_items('hif_lowrank', 1, ARRAY[1]::bigint[])$$),
          '42704: model "hif_lowrank" has no binding for role "user_features"', 'an unbound model says what to bind');

-- feature queries may take the as-of time: $2 (users, items) or $1 (context)
CREATE TEMP TABLE before_asof AS
    SELECT item_id, score FROM rank_items('hif_full', 1, ARRAY[5, 17, 3, 400]::bigint[]);
SELECT pgformer_bind('hif_full', 'user_features',
    'SELECT u_cat, u_dense, u_cat2, u_dense2 FROM hif_users WHERE user_id = $1 AND $2 <= now()') AS b \gset
SELECT pgformer_bind('hif_full', 'item_features',
    'SELECT item_id, i_cat, i_genres, i_dense, i_dense2 FROM hif_items
     WHERE item_id = ANY ($1) AND $2 <= now()') AS b \gset
SELECT pgformer_bind('hif_full', 'context_features',
    'SELECT 3 AS c_cat, 0.5 AS c_dense WHERE $1 <= now()') AS b \gset
SELECT results_eq($$SELECT item_id, score FROM rank_items('hif_full', 1, ARRAY[5, 17, 3, 400]::bigint[]) ORDER BY item_id$$,
                  $$SELECT item_id, score FROM before_asof ORDER BY item_id$$,
                  'rank_items passes the as-of time to every feature query');

-- a long request stops at statement_timeout
SET LOCAL statement_timeout = '50ms';
SELECT is(pg_temp.error_of($$SELECT count(*) FROM rank_items('hif_full', 1,
              (SELECT array_agg(g % 100000) FROM generate_series(1, 2000000) g))$$),
          '57014: canceling statement due to statement timeout', 'statement_timeout cancels a huge request');
RESET statement_timeout;

SELECT * FROM finish();
ROLLBACK;
