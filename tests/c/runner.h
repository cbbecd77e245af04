/* SPDX-License-Identifier: MIT */
/*
 * A tiny self-written test runner for irqd's C tests.
 *
 *   prog            run every test
 *   prog --list     print the test names, one a line
 *   prog NAME...    run only those tests
 *
 * Prints `ok NAME` or `FAIL NAME: file:line: what` per test, then
 * `N passed, N failed`; exits 1 if any failed.  A test is a void function;
 * CHECK* record the first failure and return from it.  Tests register
 * themselves with TEST(name) (a constructor appends them to the list, so a
 * program may be built from several files).
 */
#ifndef IRQD_TEST_RUNNER_H
#define IRQD_TEST_RUNNER_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct rt_test {
	const char *name;
	void (*fn)(void);
};

void rt_register(const char *name, void (*fn)(void));
/* Records the failure of the running test (first one wins). */
void rt_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rt_failed(void);
int rt_main(int argc, char **argv);
/* Called after every test (cleanup of what a failed test left behind). */
extern void (*rt_after_each)(void);

#define TEST(name)                                                      \
	static void test_##name(void);                                  \
	__attribute__((constructor)) static void reg_##name(void)       \
	{                                                               \
		rt_register(#name, test_##name);                        \
	}                                                               \
	static void test_##name(void)

#define CHECK(cond)                                                     \
	do {                                                            \
		if (!(cond)) {                                          \
			rt_fail(__FILE__, __LINE__, "%s", #cond);       \
			return;                                         \
		}                                                       \
	} while (0)

#define CHECK_MSG(cond, ...)                                            \
	do {                                                            \
		if (!(cond)) {                                          \
			rt_fail(__FILE__, __LINE__, __VA_ARGS__);       \
			return;                                         \
		}                                                       \
	} while (0)

/* Integer equality, printing both sides in hex and decimal. */
#define CHECK_EQ(a, b)                                                              \
	do {                                                                        \
		int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                       \
		if (a_ != b_) {                                                     \
			rt_fail(__FILE__, __LINE__, "%s == %s: 0x%" PRIx64 " (%" PRId64 \
				") != 0x%" PRIx64 " (%" PRId64 ")",                 \
				#a, #b, (uint64_t)a_, a_, (uint64_t)b_, b_);        \
			return;                                                     \
		}                                                                   \
	} while (0)

/* Run a helper that may fail (returns void), and stop if it did. */
#define CALL(expr)                      \
	do {                            \
		expr;                   \
		if (rt_failed())        \
			return;         \
	} while (0)

#endif
