-- UniFork image generation (PNG bytes out) and image codes.

-- VOLATILE: without a seed every call draws another image
CREATE FUNCTION generate_image(model text, prompt text, seed bigint DEFAULT NULL,
                               cfg real DEFAULT NULL, temperature real DEFAULT 1,
                               top_k int DEFAULT NULL, top_p real DEFAULT NULL) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pgformer_generate_image'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION generate_image(text, text, bigint, real, real, int, real) IS
    'a PNG drawn for the prompt under classifier-free guidance cfg (NULL: the model''s default); a seed makes it reproducible';

CREATE FUNCTION image_codes(model text, image bytea) RETURNS int[]
    AS 'MODULE_PATHNAME', 'pgformer_image_codes'
    LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION image_codes(text, bytea) IS
    'the residual codes of an image (positions x depth, position-major), for deduplication and search';
