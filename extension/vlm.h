/*
 * vlm.h: the vision-language SQL functions (vlm.c).
 */
#ifndef PGFORMER_VLM_H
#define PGFORMER_VLM_H

#include "models/image.h"

/* pgformer.max_image_pixels: the largest image a call decodes */
extern int	pgformer_max_image_pixels;

/* palloc'd memory for the image codec (huge allowed, NULL when out of memory) */
extern const PgfImageAllocator pgformer_image_allocator;

/* v as SQL writes a real: NaN and Infinity by name (palloc'd or static) */
extern const char *pgformer_float_text(float v);

/* ereports an image codec error with the SQLSTATE its status implies */
extern void pgformer_report_image_error(PgfImageStatus status, const char *err) pg_attribute_noreturn();

#endif							/* PGFORMER_VLM_H */
