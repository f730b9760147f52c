/* A program linked against glibc, fortified, as vendors ship them: printf becomes __printf_chk. */
#include <stdio.h>

int main(int argc, char *argv[])
{
	printf("hello from glibc, %d argument(s), argv[0] %s\n", argc - 1, argv[0]);
	return 0;
}
