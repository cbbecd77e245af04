/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the C client's side of a received record
 * (clib/irqd_client.c): the record walker irqd_client_recv_msg() and the
 * ERROR parser irqd_parse_error(), on a record as the daemon (or anything
 * at the other end of the socket) might send it.
 *
 * Checked: every message handed out lies inside the record, is at least a
 * header long and starts 4-byte aligned; an ERROR or DONE is the last
 * message taken from its record; extack text lies inside its message and is
 * NUL-terminated.  The record is copied into a buffer of exactly its size so
 * ASan sees any read past it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irqd/client.h"

#define FAIL(...)                                               \
	do {                                                    \
		fprintf(stderr, "fuzz_client: " __VA_ARGS__);   \
		fprintf(stderr, "\n");                          \
		abort();                                        \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct irqd_client c;
	uint8_t *rec;

	if (size == 0 || size > IRQD_MAX_RECORD)
		return 0;
	rec = malloc(size);
	if (!rec)
		abort();
	memcpy(rec, data, size);
	memset(&c, 0, sizeof(c));
	c.fd = 0;             /* never read: the record is already "received" */
	c.rbuf = rec;
	c.rcap = size;
	c.rlen = size;
	while (c.rpos < c.rlen) {
		struct irqd_msghdr h;
		const uint8_t *p;
		size_t plen, before = c.rpos;
		int r = irqd_client_recv_msg(&c, &h, &p, &plen);

		if (r == -EPROTO) {
			if (c.rpos != c.rlen)
				FAIL("malformed record not dropped");
			break;
		}
		if (r < 0)
			FAIL("recv_msg: %d", r);
		if (before % 4)
			FAIL("message at unaligned offset %zu", before);
		if (p != rec + before + IRQD_NLMSG_HDRLEN || plen + IRQD_NLMSG_HDRLEN != h.len ||
		    before + h.len > size)
			FAIL("message [%zu, +%u) outside the record of %zu", before, h.len, size);
		if (c.rpos <= before)
			FAIL("walker did not advance");
		if ((h.type == IRQD_MSG_ERROR || h.type == IRQD_MSG_DONE) && c.rpos != c.rlen)
			FAIL("ERROR/DONE not treated as the end of its record");
		if (h.type == IRQD_MSG_ERROR) {
			int32_t err;
			struct irqd_msghdr echo;
			const char *text;
			size_t tlen;
			uint32_t off;
			int has_off;

			r = irqd_parse_error(h.flags, p, plen, &err, &echo, &text, &tlen, &off, &has_off);
			if (r < 0 && r != -EPROTO)
				FAIL("parse_error: %d", r);
			if (r == 0 && text) {
				if ((const uint8_t *)text < p || (const uint8_t *)text + tlen >= p + plen)
					FAIL("extack text outside its message");
				if (text[tlen] != '\0' || strlen(text) != tlen)
					FAIL("extack text not NUL-terminated where reported");
			}
		}
	}
	free(rec);
	return 0;
}
