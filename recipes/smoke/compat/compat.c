/*
 * The glibc symbols a fortified program needs that musl does not have: the _FORTIFY_SOURCE
 * checked variants of the printf family. Each checks what glibc checks, then calls musl.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void overflow(void)
{
	fputs("*** buffer overflow detected ***: terminated\n", stderr);
	abort();
}

int __vfprintf_chk(FILE *stream, int flag, const char *format, va_list ap)
{
	(void)flag;
	return vfprintf(stream, format, ap);
}

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int n = __vfprintf_chk(stream, flag, format, ap);
	va_end(ap);
	return n;
}

int __vprintf_chk(int flag, const char *format, va_list ap)
{
	return __vfprintf_chk(stdout, flag, format, ap);
}

int __printf_chk(int flag, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int n = __vfprintf_chk(stdout, flag, format, ap);
	va_end(ap);
	return n;
}

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, va_list ap)
{
	(void)flag;
	if (slen < maxlen) {
		overflow();
	}
	return vsnprintf(s, maxlen, format, ap);
}

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int n = __vsnprintf_chk(s, maxlen, flag, slen, format, ap);
	va_end(ap);
	return n;
}
