/*
 * utf8.h: strict UTF-8 decoding, shared by the model-file reader (which
 * rejects header strings that are not valid UTF-8) and the tokenizer
 * (which decodes text and model output by code point).
 *
 * Valid means RFC 3629: shortest form only (no overlong encodings), no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no sequence cut
 * short.  Header-only so that the tokenizer's per-character loops inline
 * it.
 */
#ifndef PGF_UTF8_H
#define PGF_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGF_UTF8_INVALID_CP 0xFFFFFFFFu	/* *cp of an invalid sequence */

/*
 * Length of the valid UTF-8 sequence at s[i] (bytes available: n - i,
 * at least 1), its code point in *cp; or, when the sequence is invalid or
 * truncated, the length of its longest valid prefix negated (at least -1)
 * and *cp = PGF_UTF8_INVALID_CP.
 */
static inline int
pgf_utf8_seq(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
	unsigned char c = s[i];
	int			need;
	uint32_t	v;
	unsigned char lo = 0x80,
				hi = 0xBF;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		need = 1;
		v = c & 0x1F;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		need = 2;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0;			/* overlong below U+0800 */
		else if (c == 0xED)
			hi = 0x9F;			/* surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		need = 3;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90;			/* overlong below U+10000 */
		else if (c == 0xF4)
			hi = 0x8F;			/* above U+10FFFF */
	}
	else
	{
		/* continuation bytes, C0/C1 (overlong) and F5..FF */
		*cp = PGF_UTF8_INVALID_CP;
		return -1;
	}
	for (int k = 1; k <= need; k++)
	{
		unsigned char b;

		if (i + k >= n)
		{
			*cp = PGF_UTF8_INVALID_CP;
			return -k;
		}
		b = s[i + k];
		if (b < lo || b > hi)
		{
			*cp = PGF_UTF8_INVALID_CP;
			return -k;
		}
		lo = 0x80;
		hi = 0xBF;
		v = (v << 6) | (b & 0x3F);
	}
	*cp = v;
	return need + 1;
}

typedef enum PgfUtf8Problem
{
	PGF_UTF8_OK = 0,
	PGF_UTF8_BAD,				/* an invalid byte sequence */
	PGF_UTF8_TRUNCATED,			/* a sequence the string ends inside */
	PGF_UTF8_NUL				/* a NUL byte (valid UTF-8, but not in a C
								 * string) */
} PgfUtf8Problem;

/*
 * Checks s[n]: PGF_UTF8_OK, or the first problem, with *at its offset and
 * *len the bytes of the offending sequence up to and including the byte
 * that breaks it (for a truncated one: up to the end of s).
 */
static inline PgfUtf8Problem
pgf_utf8_check(const unsigned char *s, size_t n, size_t *at, size_t *len)
{
	for (size_t i = 0; i < n;)
	{
		uint32_t	cp;
		int			l;

		if (s[i] != 0 && s[i] < 0x80)
		{
			i++;
			continue;
		}
		*at = i;
		*len = 1;
		if (s[i] == 0)
			return PGF_UTF8_NUL;
		l = pgf_utf8_seq(s, n, i, &cp);
		if (l > 0)
		{
			i += (size_t) l;
			continue;
		}
		if (i + (size_t) -l >= n && s[i] >= 0xC2 && s[i] <= 0xF4)
		{
			*len = n - i;
			return PGF_UTF8_TRUNCATED;
		}
		*len = s[i] >= 0xC2 && s[i] <= 0xF4 ? (size_t) -l + 1 : 1;
		return PGF_UTF8_BAD;
	}
	return PGF_UTF8_OK;
}

#endif							/* PGF_UTF8_H */
