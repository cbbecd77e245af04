/* SPDX-License-Identifier: MIT */
/*
 * Decode the tests/golden .dump records with the C client's own parser
 * (irqd_client_recv_msg's record walker and irqd_parse_error) and print
 * what it found as JSON, one object per message, with the golden files'
 * key names: `header` always; `error`, `msg` and `attrs` for ERROR;
 * `error` for DONE.  tests/test_c_harness.py compares this with the JSON
 * half of each .dump file, so the C client and the Python codec are held
 * to the same vectors.
 *
 *   golden_dump FILE.dump
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irqd/client.h"

static size_t read_hex(FILE *f, uint8_t *out, size_t cap)
{
	char line[4096];
	size_t n = 0;

	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "#: application/json", 19) == 0)
			break;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		for (char *p = line; *p;) {
			char *end;
			unsigned long v;
			if (*p == ':' || *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
				p++;
				continue;
			}
			v = strtoul(p, &end, 16);
			if (end == p || v > 0xFF || n == cap) {
				fprintf(stderr, "bad hex near '%s'\n", p);
				exit(2);
			}
			out[n++] = (uint8_t)v;
			p = end;
		}
	}
	return n;
}

static void put_str(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7F)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	static uint8_t rec[IRQD_MAX_RECORD];
	struct irqd_client c;
	FILE *f;
	size_t n;
	int first = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: golden_dump FILE.dump\n");
		return 2;
	}
	f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	n = read_hex(f, rec, sizeof(rec));
	fclose(f);
	/* a client whose receive buffer already holds the record */
	memset(&c, 0, sizeof(c));
	c.fd = 0;
	c.rbuf = rec;
	c.rcap = sizeof(rec);
	c.rlen = n;
	c.rpos = 0;
	printf("[");
	while (c.rpos < c.rlen) {
		struct irqd_msghdr h;
		const uint8_t *p;
		size_t plen;
		int r = irqd_client_recv_msg(&c, &h, &p, &plen);

		if (r < 0) {
			fprintf(stderr, "record walker: %s\n", strerror(-r));
			return 1;
		}
		printf("%s\n{\"header\": {\"length\": %u, \"type\": %u, \"flags\": %u, \"sequence_number\": %u, \"pid\": %u}",
		       first ? "" : ",", h.len, h.type, h.flags, h.seq, h.pid);
		first = 0;
		if (h.type == IRQD_MSG_ERROR) {
			int32_t err;
			struct irqd_msghdr echo;
			const char *text;
			size_t tlen;
			uint32_t off;
			int has_off;

			r = irqd_parse_error(h.flags, p, plen, &err, &echo, &text, &tlen, &off, &has_off);
			if (r < 0) {
				fprintf(stderr, "ERROR payload: %s\n", strerror(-r));
				return 1;
			}
			printf(", \"error\": %d, \"msg\": {\"len\": %u, \"type\": %u, \"flags\": %u, \"seq\": %u, \"pid\": %u}, \"attrs\": [",
			       err, echo.len, echo.type, echo.flags, echo.seq, echo.pid);
			if (text) {
				printf("[\"NLMSGERR_ATTR_MSG\", ");
				put_str(text, tlen);
				printf("]%s", has_off ? ", " : "");
			}
			if (has_off)
				printf("[\"NLMSGERR_ATTR_OFFS\", %u]", off);
			printf("]");
		} else if (h.type == IRQD_MSG_DONE && plen >= 4) {
			int32_t err;
			memcpy(&err, p, sizeof(err));
			printf(", \"error\": %d", err);
		}
		printf("}");
	}
	printf("]\n");
	return 0;
}
