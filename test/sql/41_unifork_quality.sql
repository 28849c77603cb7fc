-- The demo UniFork (tools/train/unifork.py) through SQL: 1,000
-- generate_image calls, 100 seeds for each of the ten prompts "a photo of
-- a <noun>" (guidance 2, temperature 0.7, top_p 0.9), judged by a classifier that never saw a generated image (the
-- committed SOLO model's answer(image, 'What is this?'), 82 % right on the
-- real Fashion-MNIST test images): at least :min_right of them are the
-- prompted class, every class is drawn recognisably, and the 100 seeds of a
-- prompt give 100 different images.  image_codes of 200 Fashion-MNIST
-- test images equals PyTorch's codes (test/gen/unifork_sql_cases.py), and
-- statement_timeout stops a generation within an image position.
\ir helpers.psql
\set unifork :fixtures '/unifork_fashion.pgf'
\set solo :fixtures '/solo_tiny.pgf'
\set fashion_csv :fixtures '/fashion_t10k.csv'
\set codes_csv :fixtures '/unifork_codes.csv'
\set min_right 0.75
BEGIN;
SELECT plan(8);

SELECT ok(pgformer_load('artist', :'unifork') >= 1, 'the demo UniFork loads');
SELECT ok(pgformer_load('judge', :'solo') >= 1, 'the demo SOLO model loads');
CREATE TEMP TABLE prompts (label int, noun text, class text);
INSERT INTO prompts VALUES
    (0, 'T-shirt', 'T-shirt/top'), (1, 'pair of trousers', 'Trouser'), (2, 'pullover', 'Pullover'),
    (3, 'dress', 'Dress'), (4, 'coat', 'Coat'), (5, 'sandal', 'Sandal'), (6, 'shirt', 'Shirt'),
    (7, 'sneaker', 'Sneaker'), (8, 'bag', 'Bag'), (9, 'ankle boot', 'Ankle boot');
CREATE TEMP TABLE drawn AS
    SELECT label, class, seed, generate_image('artist', 'a photo of a ' || noun, seed, 2, 0.7, NULL, 0.9) AS png
    FROM prompts, generate_series(1, 100) AS seed;
CREATE TEMP TABLE judged AS
    SELECT label, class, seed, png, answer('judge', png, 'What is this?') AS answer FROM drawn;
CREATE TEMP TABLE per_class AS
    SELECT class, avg((answer = class)::int) AS right_share, count(DISTINCT png) AS distinct_images
    FROM judged GROUP BY class;

SELECT cmp_ok((SELECT avg((answer = class)::int) FROM judged)::numeric, '>=', :min_right,
              format('%s of 1,000 generated images are recognised as the prompted class (per class: %s)',
                     (SELECT count(*) FILTER (WHERE answer = class) FROM judged),
                     (SELECT string_agg(class || ' ' || round(right_share, 2), ', ' ORDER BY class)
                      FROM per_class)));
SELECT cmp_ok((SELECT min(right_share) FROM per_class)::numeric, '>=', 0.3::numeric,
              'every class is recognised in at least 30 % of its images');
SELECT is((SELECT min(distinct_images) FROM per_class), 100::bigint,
          'the 100 seeds of each prompt draw 100 different images');

-- image codes through SQL against PyTorch
CREATE TEMP TABLE fashion (idx int, label int, class text, caption text, png bytea);
COPY fashion FROM :'fashion_csv' WITH (FORMAT csv, HEADER true);
CREATE TEMP TABLE ref_codes (idx int, codes int[]);
COPY ref_codes FROM :'codes_csv' WITH (FORMAT csv, HEADER true);
SELECT is((SELECT count(*) FROM ref_codes), 200::bigint, 'PyTorch coded 200 test images');
SELECT is((SELECT count(*) FILTER (WHERE image_codes('artist', f.png) = r.codes)
           FROM ref_codes r JOIN fashion f USING (idx)), 200::bigint,
          'image_codes gives PyTorch''s 64 x 2 codes for every one of them');

-- a statement timeout stops generation (about 20 ms an image) within one image position
SET LOCAL statement_timeout = '15ms';
SELECT is(pg_temp.error_of($$SELECT count(generate_image('artist', 'a photo of a bag', s)) FROM generate_series(1, 20) s$$),
          '57014: canceling statement due to statement timeout', 'statement_timeout cancels a generation');
RESET statement_timeout;

SELECT * FROM finish();
ROLLBACK;
