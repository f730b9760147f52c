/* A program linked against glibc, fortified, as vendors ship them: printf becomes __printf_chk.
 * With KILN_READ set in its environment it also prints that file's first line. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char *argv[])
{
	const char *path = getenv("KILN_READ");
	char line[256];
	FILE *file;

	printf("hello from glibc, %d argument(s), argv[0] %s\n", argc - 1, argv[0]);
	if (path) {
		file = fopen(path, "r");
		if (file && fgets(line, sizeof line, file))
			printf("%s: %s", path, line);
		else
			printf("%s: cannot be read\n", path);
	}
	return 0;
}
