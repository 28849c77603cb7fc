/*
 * vlm.h: the vision-language SQL functions (vlm.c).
 */
#ifndef PGFORMER_VLM_H
#define PGFORMER_VLM_H

/* pgformer.max_image_pixels: the largest image a call decodes */
extern int	pgformer_max_image_pixels;

#endif							/* PGFORMER_VLM_H */
