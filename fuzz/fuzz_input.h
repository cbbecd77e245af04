/* SPDX-License-Identifier: MIT */
/*
 * The input reader and failure macro shared by the libFuzzer targets that
 * decode their input as a stream of operations (fuzz_core.c, fuzz_ring.c).
 * Define FUZZ_NAME (the target's name, a string literal) before including.
 */
#ifndef IRQD_FUZZ_INPUT_H
#define IRQD_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FAIL(...)                                               \
	do {                                                    \
		fprintf(stderr, FUZZ_NAME ": " __VA_ARGS__);    \
		fprintf(stderr, "\n");                          \
		abort();                                        \
	} while (0)

struct in {
	const uint8_t *p;
	size_t n;
};

/* The next `bytes` input bytes, little-endian; zeros once it runs out. */
static inline uint64_t take(struct in *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++) {
		uint64_t b = 0;
		if (in->n) {
			b = *in->p++;
			in->n--;
		}
		v |= b << (8 * i);
	}
	return v;
}

#endif
