-- pgformer_encode runs block_stack models through the mapped weights and
-- the kernels; its output must equal the PyTorch reference
-- (tools/models/block_stack.py) within 1e-4 for every block configuration:
-- pre/post norm, LayerNorm/RMSNorm, GELU (erf, tanh), ReLU, SiLU, SwiGLU,
-- RoPE, grouped-query heads, no output projection, layer sharing and
-- dropping, f32/bf16/f16 weights.  Then the errors a caller can cause.
\ir helpers.psql
\set expected_csv :fixtures '/expected.csv'
BEGIN;
CREATE TEMP TABLE expected (model text, tokens int[], hidden real[]);
COPY expected FROM :'expected_csv' WITH (FORMAT csv, HEADER true);
DELETE FROM expected WHERE model IN ('bs_tiny_v2', 'bs_big');
CREATE TEMP TABLE loaded AS
    SELECT m, pgformer_load(m, :'fixtures' || '/' || m || '.pgf') AS version
    FROM (SELECT DISTINCT model FROM expected) AS t(m);
SELECT plan((SELECT count(*)::int + 14 FROM expected));

SELECT cmp_ok(pg_temp.max_abs_diff(pgformer_encode(model, tokens), hidden), '<=', 1e-4::float8,
              format('%s, %s tokens: equals PyTorch within 1e-4', model, cardinality(tokens)))
FROM expected ORDER BY model, cardinality(tokens);

SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', '{1,100}')$$),
          '22023: token 100 at position 1 is outside the vocabulary [0, 100)',
          'a token outside the vocabulary is refused, naming it');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', '{-1}')$$),
          '22023: token -1 at position 0 is outside the vocabulary [0, 100)',
          'a negative token is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', array_fill(1, ARRAY[65]))$$),
          '22023: 65 tokens given, the model takes 1 to 64',
          'a sequence longer than the learned positions is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', '{}')$$),
          '22023: tokens must not be empty', 'an empty sequence is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', '{1,NULL}')$$),
          '22004: token 2 is null', 'a null token is refused');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', '{{1,2},{3,4}}')$$),
          '2202E: tokens must be a one-dimensional array', 'a matrix of tokens is refused');
SELECT is(pgformer_encode('bs_tiny', NULL), NULL, 'null tokens give null');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('no_such_model', '{1}')$$),
          '42704: model "no_such_model" does not exist', 'an unknown model is named');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode(NULL::text, '{1}')$$), 'no error',
          'a null model name gives null');
SELECT cmp_ok(cardinality(pgformer_encode('bs_llama', array_fill(3, ARRAY[500]))), '=', 64,
              'rotary models take long sequences');

-- the same model in a parallel query gives the same answers
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE TABLE encode_many AS SELECT g, ARRAY[g % 100, (g * 7) % 100] AS tokens FROM generate_series(1, 2000) g;
ANALYZE encode_many;
SELECT matches(pg_temp.plan_of($$SELECT pgformer_encode('bs_tiny', tokens) FROM encode_many$$),
               'Gather', 'pgformer_encode is parallel safe: the scan runs in workers');
SELECT is((SELECT count(DISTINCT pgformer_encode('bs_tiny', tokens)) FROM encode_many), 100::bigint,
          '2000 calls in parallel workers over 100 distinct sequences give 100 distinct answers');
SELECT is(pg_temp.error_of($$SELECT pgformer_drop('bs_tiny')$$), 'no error', 'a model can be dropped');
SELECT is(pg_temp.error_of($$SELECT pgformer_encode('bs_tiny', '{1}')$$),
          '42704: model "bs_tiny" does not exist', 'a dropped model is named in the error');

SELECT * FROM finish();
ROLLBACK;
