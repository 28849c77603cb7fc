-- generate_image and image_codes on a random tiny UniFork
-- (test/gen/golden_unifork.py; its pixels are checked against PyTorch by
-- test/shell/unifork_image.sh, the demo model's codes in
-- 41_unifork_quality): a PNG of the model's size, the same seed the same
-- bytes, other seeds other images, codes of the right count and range, and
-- every bad argument or model refused with an SQLSTATE and a message
-- naming what was wrong.
\ir helpers.psql
\set model :fixtures '/unifork_tiny.pgf'
\set broken_codebook :fixtures '/unifork_broken_codebook.pgf'
\set broken_depth :fixtures '/unifork_broken_depth.pgf'
\set broken_levels :fixtures '/unifork_broken_levels.pgf'
\set solo :fixtures '/solo_tiny.pgf'
BEGIN;
SELECT plan(31);

SELECT ok(pgformer_load('uf_tiny', :'model') >= 1, 'the tiny UniFork loads');
SELECT is((SELECT arch FROM pgformer_models WHERE name = 'uf_tiny'), 'unifork', 'as architecture unifork');

CREATE TEMP TABLE img AS SELECT generate_image('uf_tiny', 'a photo of a bag', 7) AS png;
SELECT is(substring((SELECT png FROM img) FROM 1 FOR 8), '\x89504e470d0a1a0a'::bytea,
          'generate_image returns a PNG');
SELECT is(get_byte((SELECT png FROM img), 19) + 256 * get_byte((SELECT png FROM img), 18),
          8, 'of the model''s width (8 pixels)');
SELECT is(get_byte((SELECT png FROM img), 23) + 256 * get_byte((SELECT png FROM img), 22),
          8, 'and height');
SELECT is(get_byte((SELECT png FROM img), 24) * 1000 + get_byte((SELECT png FROM img), 25),
          8002, '8-bit RGB');
SELECT is(generate_image('uf_tiny', 'a photo of a bag', 7), (SELECT png FROM img),
          'the same seed draws the same image, byte for byte');
SELECT isnt(generate_image('uf_tiny', 'a photo of a bag', 8), (SELECT png FROM img),
            'another seed draws another');
SELECT ok((SELECT count(DISTINCT generate_image('uf_tiny', 'a photo of a bag')) FROM generate_series(1, 3)) > 1,
          'without a seed each call draws anew');
SELECT is(generate_image('uf_tiny', 'a photo of a bag', 1, 3, 1, 1),
          generate_image('uf_tiny', 'a photo of a bag', 2, 3, 1, 1),
          'top_k 1 is greedy: the seed does not matter');
SELECT ok(generate_image('uf_tiny', 'a photo of a bag', 7, NULL) IS NOT NULL,
          'cfg NULL takes the model''s default');
SELECT ok(generate_image('uf_tiny', 'a photo of a bag', 7, 0, 0.5, 5, 0.9) IS NOT NULL,
          'cfg 0 (the unconditional row alone), a temperature, top_k and top_p');

-- refused arguments
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', NULL)$$),
          '22004: the prompt of generate_image must not be NULL', 'a NULL prompt');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', '')$$),
          '22023: the prompt of generate_image is empty', 'an empty prompt');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, -1)$$),
          '22023: cfg must be a finite number of at least 0, -1 was given', 'a negative cfg');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, 'NaN')$$),
          '22023: cfg must be a finite number of at least 0, NaN was given', 'a NaN cfg');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, 4, 0)$$),
          '22023: temperature must be a finite number above 0, 0 was given', 'temperature 0');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, 4, 'NaN')$$),
          '22023: temperature must be a finite number above 0, NaN was given', 'a NaN temperature');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, 4, 1, 0)$$),
          '22023: top_k must be positive (or NULL for no cut), 0 was given', 'top_k 0');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, 4, 1, NULL, 0)$$),
          '22023: top_p must be a finite number above 0, 0 was given', 'top_p 0');
SELECT is(pg_temp.error_of($$SELECT generate_image('uf_tiny', 'x', 1, 4, 1, NULL, 1.5)$$),
          '22023: top_p must be in (0, 1], 1.5 was given', 'top_p above 1');
SELECT alike(pg_temp.error_of(format($$SELECT generate_image('uf_tiny', %L)$$, repeat('x', 60))),
            '22023: generate_image: a prompt of 61 tokens and 16 image positions need 77 positions, the model takes at most 64',
            'a prompt longer than the model''s positions');
SELECT ok(pgformer_load('uf_solo', :'solo') >= 1, 'a SOLO model loads');
SELECT alike(pg_temp.error_of($$SELECT generate_image('uf_solo', 'x')$$),
            '%"uf_solo" is a solo model, this function needs a unifork model%',
            'a model of another architecture is refused naming what it is');

-- image codes (the model's encoder reads 16 x 16 images: 16 positions x 2 codes)
SELECT is((SELECT cardinality(c) = 32 AND 0 <= ALL (c) AND 64 > ALL (c)
           FROM (SELECT image_codes('uf_tiny', png) AS c FROM img) x), true,
          'image_codes gives 16 positions x 2 codes of the 64-entry codebook');
SELECT is(image_codes('uf_tiny', NULL), NULL, 'image_codes of NULL is NULL');
SELECT alike(pg_temp.error_of($$SELECT image_codes('uf_tiny', '\x00010203'::bytea)$$),
             '22P03: %', 'bytes that are no image: 22P03');
SELECT alike(pg_temp.error_of($$SELECT image_codes('uf_solo', (SELECT png FROM img))$$),
             '%"uf_solo" is a solo model, this function needs a unifork model%',
             'image_codes refuses a model of another architecture');

-- files whose config does not match their tensors
SELECT alike(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'uf_bad', :'broken_codebook')),
            '22P03: %uf.rq.codebook%', 'a codebook size the tensors do not have: 22P03 naming the tensor');
SELECT alike(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'uf_bad', :'broken_depth')),
            '22P03: %uf.depth.pos_emb_d%', 'a code depth the tensors do not have');
SELECT alike(pg_temp.error_of(format('SELECT pgformer_load(%L, %L)', 'uf_bad', :'broken_levels')),
            '22P03: %uf.vq.decoder.up.2%', 'a decoder level the tensors do not have');

SELECT * FROM finish();
ROLLBACK;
