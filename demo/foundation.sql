-- The foundation in one screen: store a model, look inside it, run it, and
-- see the one shared copy of its weights.
\set QUIET 1
\pset footer off
CREATE EXTENSION pgformer;
\set tiny :files '/bs_tiny.pgf'
\echo '== pgformer_load stores a model file as version 1 of a name'
SELECT pgformer_load('tiny', :'tiny') AS version;
\echo '== pgformer_models'
SELECT name, version, arch, params, bytes, current FROM pgformer_models;
\echo '== pgformer_inspect maps the model and lists its tensors (first 8)'
SELECT tensor, shape, dtype, bytes FROM pgformer_inspect('tiny') LIMIT 8;
\echo '== pgformer_encode runs it: the last hidden state of a token sequence (first 6 values)'
SELECT (pgformer_encode('tiny', '{3,14,15,92,65}'))[1:6] AS hidden;
\echo '== pgformer_cache: one materialised file, mapped by this backend'
SELECT name, version, bytes, pins, calls, round(mean_ms::numeric, 3) AS mean_ms, file FROM pgformer_cache;
