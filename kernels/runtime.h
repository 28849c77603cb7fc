/*
 * runtime.h: what the kernels need from whoever hosts them.
 *
 * The host (the PostgreSQL extension, a test, a benchmark) installs hooks:
 *   - pgf_interrupt_hook is called between chunks of long work.  In a
 *     backend it runs CHECK_FOR_INTERRUPTS(), which may longjmp out; that is
 *     safe because kernels hold no resources of their own (all memory is in
 *     the caller's arena, weights are read-only views).
 *   - pgf_fatal_hook reports an internal invariant violation (an arena
 *     sized too small, say) and must not return.
 * The number of BLAS threads is set per process with pgf_set_threads(),
 * which creates any new worker threads with every signal blocked so that no
 * signal meant for the host lands in a BLAS thread.
 */
#ifndef PGF_RUNTIME_H
#define PGF_RUNTIME_H

#include <stdarg.h>
#include <stddef.h>

extern void (*pgf_interrupt_hook) (void);
extern void (*pgf_fatal_hook) (const char *message);

static inline void
pgf_check_interrupts(void)
{
	if (pgf_interrupt_hook)
		pgf_interrupt_hook();
}

/*
 * The one way the C layers report a bad input: the message goes into the
 * caller's buffer err[errlen] (nothing is written when err is NULL or
 * errlen is 0), and the function returns its status code to its caller.
 */
void		pgf_error(char *err, size_t errlen, const char *fmt,...) __attribute__((format(printf, 3, 4)));
void		pgf_verror(char *err, size_t errlen, const char *fmt, va_list args) __attribute__((format(printf, 3, 0)));

/* Reports an internal error through pgf_fatal_hook (or aborts). */
void		pgf_fatal(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));

/* Sets the BLAS thread count for this process (n >= 1). */
void		pgf_set_threads(int n);
int			pgf_get_threads(void);

#endif							/* PGF_RUNTIME_H */
