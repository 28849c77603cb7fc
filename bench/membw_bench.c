/*
 * membw_bench.c: the memory bandwidth one core reaches reading a buffer far
 * larger than the caches (sum of 512 MiB of floats, best of five), the
 * limit decode speed is measured against in bench/solo_bench.sh.
 *
 *   bench/membw_bench        prints GB/s
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define FLOATS (128u * 1024 * 1024)

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(void)
{
	float	   *buf = malloc(sizeof(float) * FLOATS);
	double		best = 0;
	float		sink = 0;

	if (!buf)
		return 1;
	for (size_t i = 0; i < FLOATS; i++)
		buf[i] = (float) (i & 255);
	for (int r = 0; r < 5; r++)
	{
		float		acc[16] = {0};
		double		t = now();

		for (size_t i = 0; i < FLOATS; i += 16)
			for (int l = 0; l < 16; l++)
				acc[l] += buf[i + l];
		t = now() - t;
		for (int l = 0; l < 16; l++)
			sink += acc[l];
		if (sizeof(float) * FLOATS / t / 1e9 > best)
			best = sizeof(float) * FLOATS / t / 1e9;
	}
	printf("%.2f\n", best + (sink == 1.2345f ? 1e-9 : 0));
	return 0;
}
