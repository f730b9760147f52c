/*
 * The glibc program loader's stand-in: the kernel runs it as the interpreter of a program
 * linked against glibc (PT_INTERP /lib64/ld-linux-x86-64.so.2). It re-executes the program
 * through musl's dynamic linker with the compatibility library preloaded, the way gcompat's
 * loader does. Linked -static: musl 1.2.3's -static-pie loader crashes as an interpreter.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LINKER_PATH
#error "LINKER_PATH: where musl's dynamic linker is installed"
#endif
#ifndef LIBCOMPAT_PATH
#error "LIBCOMPAT_PATH: where the compatibility library is installed"
#endif

int main(int argc, char *argv[])
{
	char target[PATH_MAX];
	ssize_t length = readlink("/proc/self/exe", target, sizeof(target) - 1);
	if (length < 0) {
		fprintf(stderr, "loader: cannot read /proc/self/exe: %s\n", strerror(errno));
		return 127;
	}
	target[length] = '\0';

	char **args = calloc((size_t)argc + 7, sizeof(char *));
	if (args == NULL) {
		return 127;
	}
	int n = 0;
	args[n++] = LINKER_PATH;
	args[n++] = "--argv0";
	args[n++] = argc > 0 ? argv[0] : target;
	args[n++] = "--preload";
	args[n++] = LIBCOMPAT_PATH;
	args[n++] = "--";
	args[n++] = target;
	for (int i = 1; i < argc; i++) {
		args[n++] = argv[i];
	}
	args[n] = NULL;
	execv(LINKER_PATH, args);
	fprintf(stderr, "loader: cannot run %s: %s\n", LINKER_PATH, strerror(errno));
	return 127;
}
