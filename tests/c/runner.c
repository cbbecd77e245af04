/* SPDX-License-Identifier: MIT */
#include "runner.h"

#include <stdarg.h>
#include <stdlib.h>

#define RT_MAX 512

static struct rt_test tests[RT_MAX];
static int ntests;
static int cur_failed;
static char cur_msg[1024];

void rt_register(const char *name, void (*fn)(void))
{
	if (ntests == RT_MAX) {
		fprintf(stderr, "runner: too many tests\n");
		abort();
	}
	tests[ntests].name = name;
	tests[ntests].fn = fn;
	ntests++;
}

void rt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (cur_failed)
		return;
	cur_failed = 1;
	n = snprintf(cur_msg, sizeof(cur_msg), "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= sizeof(cur_msg))
		return;
	va_start(ap, fmt);
	vsnprintf(cur_msg + n, sizeof(cur_msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

int rt_failed(void)
{
	return cur_failed;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct rt_test *)a)->name, ((const struct rt_test *)b)->name);
}

void (*rt_after_each)(void);

static void run_one(const struct rt_test *t, int *passed, int *failed)
{
	cur_failed = 0;
	cur_msg[0] = '\0';
	t->fn();
	if (rt_after_each)
		rt_after_each();
	if (cur_failed) {
		printf("FAIL %s: %s\n", t->name, cur_msg);
		(*failed)++;
	} else {
		printf("ok %s\n", t->name);
		(*passed)++;
	}
	fflush(stdout);
}

int rt_main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	/* constructors run in an unspecified order: list in name order */
	qsort(tests, (size_t)ntests, sizeof(tests[0]), cmp_name);
	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (int i = 0; i < ntests; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (argc > 1) {
		for (int a = 1; a < argc; a++) {
			int found = 0;
			for (int i = 0; i < ntests; i++) {
				if (strcmp(argv[a], tests[i].name) == 0) {
					run_one(&tests[i], &passed, &failed);
					found = 1;
				}
			}
			if (!found) {
				printf("FAIL %s: no such test\n", argv[a]);
				failed++;
			}
		}
	} else {
		for (int i = 0; i < ntests; i++)
			run_one(&tests[i], &passed, &failed);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
