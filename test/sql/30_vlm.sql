-- SOLO through SQL: answer(image, 'What is this?') and caption(image) on the
-- 10,000 Fashion-MNIST test images are right exactly as often as PyTorch's
-- greedy decoding of the committed demo model (tools/eval/solo.py), the
-- other functions behave, and every bad input of the issue is refused
-- cleanly.
\ir helpers.psql
\set fashion_csv :fixtures '/fashion_t10k.csv'
\set model :fixtures '/solo_tiny.pgf'
\set images :fixtures '/images'
\set expect :fixtures '/images/broken/EXPECT'
BEGIN;
CREATE TEMP TABLE broken_images (line text);
COPY broken_images FROM :'expect' WITH (FORMAT csv, DELIMITER E'\x1f', QUOTE E'\x1e');
DELETE FROM broken_images WHERE line LIKE '#%' OR line = '';
CREATE TEMP TABLE expect AS
    SELECT m[1] AS file, m[2] AS status, m[3] AS message
    FROM broken_images, regexp_match(line, '^(\S+) (\S+) (.*)$') m;
SELECT plan((SELECT count(*)::int FROM expect) + 22);

CREATE TABLE fashion (idx int, label int, class text, caption text, png bytea);
COPY fashion FROM :'fashion_csv' WITH (FORMAT csv, HEADER true);
SELECT is(pgformer_load('vlm', :'model'), 1, 'the demo SOLO model loads');
-- PyTorch's counts on the same images (tools/eval/solo.py --json)
CREATE TABLE reference AS
    SELECT (r ->> 'images')::int AS n, (r ->> 'answers_right')::bigint AS answers_right,
           (r ->> 'captions_right')::bigint AS captions_right
    FROM (SELECT pg_read_file(:'fixtures' || '/solo_tiny_eval.json')::jsonb AS r) j;
SELECT is((SELECT n FROM reference), 10000, 'PyTorch answered all 10,000 test images');

CREATE TABLE answers AS
    SELECT idx, class, caption AS expected_caption,
           answer('vlm', png, 'What is this?') AS answer,
           caption('vlm', png, 64) AS caption
    FROM fashion WHERE idx < (SELECT n FROM reference);
SELECT is((SELECT count(*) FILTER (WHERE answer = class) FROM answers),
          (SELECT answers_right FROM reference),
          format('answer() is right on %s of 10,000 test images (accuracy %s), as in PyTorch',
                 (SELECT count(*) FILTER (WHERE answer = class) FROM answers),
                 (SELECT round(avg((answer = class)::int), 4) FROM answers)));
SELECT is((SELECT count(*) FILTER (WHERE caption = expected_caption) FROM answers),
          (SELECT captions_right FROM reference),
          format('caption() is right on %s (accuracy %s), as in PyTorch',
                 (SELECT count(*) FILTER (WHERE caption = expected_caption) FROM answers),
                 (SELECT round(avg((caption = expected_caption)::int), 4) FROM answers)));

-- the other functions
SELECT is(cardinality(image_embedding('vlm', (SELECT png FROM fashion WHERE idx = 0))), 128,
          'image_embedding returns d_model values');
SELECT is(image_embedding('vlm', (SELECT png FROM fashion WHERE idx = 0)),
          image_embedding('vlm', (SELECT png FROM fashion WHERE idx = 0)), 'and the same ones every time');
SELECT ok(pg_temp.max_abs_diff(image_embedding('vlm', (SELECT png FROM fashion WHERE idx = 0)),
                               image_embedding('vlm', (SELECT png FROM fashion WHERE idx = 1))) > 0,
          'different images embed differently');
SELECT is(generate_text('vlm', 'Q: ', 10), generate_text('vlm', 'Q: ', 10), 'greedy generation is deterministic');
SELECT is(generate_text('vlm', 'Q: ', 10, 1.0, 0.9, 7), generate_text('vlm', 'Q: ', 10, 1.0, 0.9, 7),
          'sampling with a seed is reproducible');
SELECT is((SELECT provolatile FROM pg_proc WHERE proname = 'generate_text'), 'v',
          'generate_text is VOLATILE (sampling without a seed differs per call)');
SELECT is(caption('vlm', NULL), NULL, 'a null image gives null');
SELECT ok(length(caption('vlm', pg_read_binary_file(:'images' || '/photos/chelsea.png'))) >= 0,
          'a real photo (451 x 300 RGB) is resized and captioned');
SELECT ok(length(answer('vlm', pg_read_binary_file(:'images' || '/photos/rocket.jpg'), 'What is this?')) >= 0,
          'a JPEG photo is answered');

-- bad input
SELECT is(pg_temp.error_of(format('SELECT caption(%L, %L::bytea)', 'vlm', 'hello')),
          '22P03: not a PNG or JPEG image', 'bytes that are no image');
SELECT is(pg_temp.error_of($$SELECT caption('vlm', png, 0) FROM fashion WHERE idx = 0$$),
          '22023: max_tokens must be positive, 0 was given', 'max_tokens = 0 is refused');
SELECT is(pg_temp.error_of($$SELECT caption('vlm', png, -3) FROM fashion WHERE idx = 0$$),
          '22023: max_tokens must be positive, -3 was given', 'a negative max_tokens is refused');
SELECT ok((SELECT length(generate_text('vlm', 'Q: ', 2000000000)) > 0),
          'a huge max_tokens is bounded (by the model''s context)');
SELECT matches(pg_temp.error_of(format('SELECT generate_text(%L, %L)', 'vlm', repeat('word ', 400))),
               '^22023: the prompt has 2001 tokens, the model takes at most', 'a prompt longer than the context is refused, saying so');
SELECT is(pg_temp.error_of($$SELECT generate_text('vlm', 'x', 4, -1)$$),
          '22023: temperature must be 0 (greedy) or positive, -1 was given', 'a negative temperature');
SELECT is(pg_temp.error_of($$SELECT generate_text('vlm', 'x', 4, 1, 0)$$),
          '22023: top_p must be in (0, 1], 0 was given', 'top_p = 0');
SET LOCAL pgformer.max_image_pixels = 100;
SELECT matches(pg_temp.error_of(format('SELECT caption(%L, pg_read_binary_file(%L))', 'vlm',
                                       :'images' || '/photos/chelsea.png')),
               '^54000: the image is 451 x 300 = 135300 pixels, above the limit of 100 pixels',
               'pgformer.max_image_pixels bounds what is decoded');
RESET pgformer.max_image_pixels;
SET LOCAL statement_timeout = '30ms';
SELECT is(pg_temp.error_of($$SELECT count(generate_text('vlm', 'Q: ', 256)) FROM generate_series(1, 1000)$$),
          '57014: canceling statement due to statement timeout', 'statement_timeout stops generation');
RESET statement_timeout;

-- the broken-image corpus (test/fixtures/images/broken/EXPECT): each file is
-- refused with its reason or decoded as expected, and none crashes
SELECT ok(CASE e.status
              WHEN 'ok' THEN r = 'no error'
              WHEN 'any' THEN true     -- either outcome is right; not crashing is the test
              ELSE split_part(r, ': ', 1) = CASE e.status WHEN 'too_large' THEN '54000'
                                                          WHEN 'unsupported' THEN '0A000'
                                                          WHEN 'nomem' THEN '53200'
                                                          ELSE '22P03' END
                   AND (e.message = '-' OR strpos(r, e.message) > 0)
          END, format('%s: %s', e.file, r))
FROM expect e,
     pg_temp.error_of(format('SELECT caption(%L, pg_read_binary_file(%L), 4)', 'vlm',
                             :'images' || '/broken/' || e.file)) r
ORDER BY e.file;

SELECT * FROM finish();
ROLLBACK;
