-- The vision-language demo: a SOLO model (raw image patches straight into
-- a decoder) captions and answers questions about photos kept in a table.
--   psql -v model=solo.pgf -v photos=DIR -v fashion=fashion_t10k.csv -f demo/vlm.sql
\set QUIET 1
\pset footer off
SELECT pgformer_load('vlm', :'model') AS version;
SELECT name, version, arch, params, bytes, (pgformer_metadata('vlm') ->> 'trained_by') AS trained_by
FROM pgformer_models WHERE name = 'vlm';

CREATE TABLE photos (name text PRIMARY KEY, truth text, image bytea);
INSERT INTO photos VALUES
    ('astronaut.png', 'Color image of the astronaut Eileen Collins.', pg_read_binary_file(:'photos' || '/astronaut.png')),
    ('chelsea.png', 'Chelsea the cat.', pg_read_binary_file(:'photos' || '/chelsea.png')),
    ('coffee.png', 'Coffee cup.', pg_read_binary_file(:'photos' || '/coffee.png')),
    ('rocket.jpg', 'Launch photo of DSCOVR on Falcon 9 by SpaceX.', pg_read_binary_file(:'photos' || '/rocket.jpg')),
    ('camera.png', 'Gray-level "camera" image.', pg_read_binary_file(:'photos' || '/camera.png'));

\echo '== caption() and answer() on photos from python3-skimage (the model only ever saw 28 x 28 clothing images)'
SELECT name, truth, caption('vlm', image) AS caption, answer('vlm', image, 'What is this?') AS answer
FROM photos ORDER BY name;

\echo '== what it was trained for: Fashion-MNIST test images'
CREATE TEMP TABLE fashion (idx int, label int, class text, caption text, png bytea);
COPY fashion FROM :'fashion' WITH (FORMAT csv, HEADER true);
SELECT idx, class AS truth, answer('vlm', png, 'What is this?') AS answer, caption('vlm', png) AS caption
FROM fashion WHERE idx < 8 ORDER BY idx;
\timing on
SELECT round(avg((answer('vlm', png, 'What is this?') = class)::int), 3) AS accuracy_on_200
FROM fashion WHERE idx < 200;
\timing off

\echo '== image_embedding(): which photos look alike (cosine similarity)'
CREATE TEMP TABLE embeddings AS SELECT name, image_embedding('vlm', image) AS e FROM photos;
SELECT a.name, b.name AS nearest, round(s::numeric, 3) AS cosine
FROM embeddings a CROSS JOIN LATERAL (
    SELECT b.name, (SELECT sum(x * y) / sqrt(sum(x * x) * sum(y * y)) FROM unnest(a.e, b.e) AS t(x, y)) AS s
    FROM embeddings b WHERE b.name <> a.name ORDER BY 2 DESC LIMIT 1) b
ORDER BY a.name;

\echo '== generate_text(): greedy, then sampled with a seed'
SELECT generate_text('vlm', 'What is the capital of France?', 24) AS greedy;
SELECT generate_text('vlm', 'Write one sentence about the sea.', 32, temperature => 0.8, top_p => 0.95, seed => 7) AS sampled;
