-- generate_text at the edges of its sampling settings, on the demo SOLO
-- model: a temperature too small to leave any token but the top one, a
-- tiny top_p and top_k 1 are exactly greedy (seeded or not); top_k past
-- the vocabulary is no cut; NaN, infinities and out-of-range values are
-- refused with 22023 and a message saying what was wrong.
\ir helpers.psql
\set model :fixtures '/solo_tiny.pgf'
BEGIN;
SELECT plan(24);

SELECT ok(pgformer_load('gen_edges', :'model') >= 1, 'the demo SOLO model loads');
CREATE TEMP TABLE greedy AS SELECT generate_text('gen_edges', 'Q: ', 10) AS text;
SELECT ok((SELECT length(text) FROM greedy) > 0, 'greedy generation writes something');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 0), (SELECT text FROM greedy),
          'temperature 0 is greedy');

-- greedy limits
SELECT is(generate_text('gen_edges', 'Q: ', 10, 1e-30::real), (SELECT text FROM greedy),
          'temperature 1e-30 generates what temperature 0 does');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 1e-30::real, 1, 7), (SELECT text FROM greedy),
          'and so with a seed');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 1, 1e-30::real, 7), (SELECT text FROM greedy),
          'top_p 1e-30 at temperature 1 keeps only the top token: greedy');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 1, 1e-30::real), (SELECT text FROM greedy),
          'and so without a seed');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 1, 1, 7, 1), (SELECT text FROM greedy),
          'top_k 1 at temperature 1 is greedy');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 5, 0.9::real, NULL, 1), (SELECT text FROM greedy),
          'top_k 1 is greedy at any temperature, without a seed too');

-- top_k past the vocabulary
SELECT ok(generate_text('gen_edges', 'Q: ', 10, 1, 1, 7, 100000) IS NOT NULL,
          'top_k 100000 (past the vocabulary) generates');
SELECT is(generate_text('gen_edges', 'Q: ', 10, 1, 1, 7, 100000),
          generate_text('gen_edges', 'Q: ', 10, 1, 1, 7, 0),
          'top_k past the vocabulary samples as no cut does');

-- refused settings
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 'Infinity'::real)$$),
          '22023: temperature must be a finite number, Infinity was given',
          'an infinite temperature is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, '-Infinity'::real)$$),
          '22023: temperature must be a finite number, -Infinity was given',
          'a temperature of -Infinity is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 'NaN'::real)$$),
          '22023: temperature must be a finite number, NaN was given',
          'a NaN temperature is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 1, 'NaN'::real)$$),
          '22023: top_p must be in (0, 1], NaN was given', 'a NaN top_p is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 1, 0)$$),
          '22023: top_p must be in (0, 1], 0 was given', 'top_p 0 is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 1, 1.5)$$),
          '22023: top_p must be in (0, 1], 1.5 was given', 'top_p 1.5 is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 1, 'Infinity'::real)$$),
          '22023: top_p must be in (0, 1], Infinity was given', 'an infinite top_p is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 4, 1, 1, 7, -1)$$),
          '22023: top_k must be 0 (off) or positive, -1 was given', 'top_k -1 is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', 0)$$),
          '22023: max_tokens must be positive, 0 was given', 'max_tokens 0 is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', -5)$$),
          '22023: max_tokens must be positive, -5 was given', 'a negative max_tokens is refused');
SELECT is(pg_temp.error_of($$SELECT generate_text('gen_edges', 'x', NULL)$$),
          '22004: max_tokens must not be null', 'a null max_tokens is refused');
SELECT is(length(generate_text('gen_edges', 'Q: ', 2147483647)) > 0, true,
          'the largest max_tokens is bounded (by the model''s context)');
SELECT is(generate_text('gen_edges', 'Q: ', 10, NULL), (SELECT text FROM greedy),
          'a null temperature is greedy');

SELECT * FROM finish();
ROLLBACK;
