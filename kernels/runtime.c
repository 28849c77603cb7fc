/*
 * runtime.c: host hooks (interrupts, fatal errors) and BLAS threading.
 */
#include "kernels/runtime.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void		(*pgf_interrupt_hook) (void) = NULL;
void		(*pgf_fatal_hook) (const char *message) = NULL;

void
pgf_verror(char *err, size_t errlen, const char *fmt, va_list args)
{
	if (err && errlen > 0)
		vsnprintf(err, errlen, fmt, args);
}

void
pgf_error(char *err, size_t errlen, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	pgf_verror(err, errlen, fmt, args);
	va_end(args);
}

void
pgf_fatal(const char *fmt,...)
{
	char		message[512];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	if (pgf_fatal_hook)
		pgf_fatal_hook(message);
	fprintf(stderr, "pgformer: fatal: %s\n", message);
	abort();
}

/*
 * OpenBLAS creates missing worker threads inside openblas_set_num_threads;
 * they inherit the calling thread's signal mask, so block everything around
 * the call.
 */
void
pgf_set_threads(int n)
{
	sigset_t	all,
				old;

	if (n < 1)
		n = 1;
	if (n == openblas_get_num_threads())
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	openblas_set_num_threads(n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int
pgf_get_threads(void)
{
	return openblas_get_num_threads();
}
