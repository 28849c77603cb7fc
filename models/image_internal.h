/*
 * image_internal.h: what the image files share and nothing outside them
 * sees: allocation through the caller's allocator, and the error
 * convention (a message into err[errlen], a status returned).
 *   image_codec.c   PNG and JPEG into pixels, format sniffing, size limits
 *   image_resize.c  SOLO's resize rule and PIL's bilinear resampler
 *   image.c         normalisation, patchify, settings and the pipeline
 */
#ifndef PGF_IMAGE_INTERNAL_H
#define PGF_IMAGE_INTERNAL_H

#include <stdlib.h>

#include "kernels/runtime.h"
#include "models/image.h"

/* Output rows between two interrupt checks in the pixel loops. */
#define ROWS_PER_INTERRUPT_CHECK 32

/* PGF_IMAGE_ERR_TOO_LARGE with a message when width x height > max_pixels (image_codec.c). */
PgfImageStatus pgf_image_check_size(uint64_t width, uint64_t height, uint64_t max_pixels,
									char *err, size_t errlen);

/* Writes a message into err[errlen] and gives status back (kernels/runtime.h). */
#define set_error(err, errlen, status, ...) (pgf_error((err), (errlen), __VA_ARGS__), (status))

/* size bytes (at least 1) through a, or malloc when a has no allocator */
static inline void *
image_alloc(const PgfImageAllocator *a, size_t size)
{
	if (size == 0)
		size = 1;
	if (a && a->alloc)
		return a->alloc(a->context, size);
	return malloc(size);
}

static inline void
image_free(const PgfImageAllocator *a, void *ptr)
{
	if (!ptr)
		return;
	if (a && a->alloc)
	{
		if (a->free)
			a->free(a->context, ptr);
	}
	else
		free(ptr);
}

#endif							/* PGF_IMAGE_INTERNAL_H */
