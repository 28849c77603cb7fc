-- SOLO vision-language models (and solo models used as text LLMs).  Images
-- are PNG or JPEG bytes, checked against pgformer.max_image_pixels before
-- decoding.

CREATE FUNCTION caption(model text, image bytea, max_tokens int DEFAULT 32) RETURNS text
    AS 'MODULE_PATHNAME', 'pgformer_caption'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION caption(text, bytea, int) IS
    'a caption of the image (greedy decoding, at most max_tokens tokens)';

CREATE FUNCTION answer(model text, image bytea, question text, max_tokens int DEFAULT 32) RETURNS text
    AS 'MODULE_PATHNAME', 'pgformer_answer'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION answer(text, bytea, text, int) IS
    'the answer to a question about the image (greedy decoding)';

-- VOLATILE: with a temperature and no seed every call samples anew
CREATE FUNCTION generate_text(model text, prompt text, max_tokens int DEFAULT 64,
                              temperature real DEFAULT 0, top_p real DEFAULT 1,
                              seed bigint DEFAULT NULL, top_k int DEFAULT 0) RETURNS text
    AS 'MODULE_PATHNAME', 'pgformer_generate_text'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION generate_text(text, text, int, real, real, bigint, int) IS
    'continues a prompt: greedy at temperature 0, else sampled (top_k, top_p; a seed makes it reproducible)';

CREATE FUNCTION image_embedding(model text, image bytea) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgformer_image_embedding'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION image_embedding(text, bytea) IS
    'the mean final hidden state over the image''s patch tokens';
