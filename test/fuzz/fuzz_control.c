/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the control protocol parser (lib/ctlproto.c):
 * whatever bytes reach the control socket.
 *
 * Invariants checked with abort(): a parsed request has a known command,
 * its argument count fits the command, every argument and the --client
 * value are non-empty, hold no TAB, LF or NUL, and point into the
 * request's own buffer; the same line parses again to the same request;
 * rg_json_str writes a string with no raw control byte. Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_arg(const struct rg_ctl_req *r, const char *a)
{
	if (a == NULL || a[0] == '\0' || strpbrk(a, "\t\n") != NULL)
		abort();
	if (a < r->buf || a >= r->buf + sizeof(r->buf))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rg_ctl_req r, r2;
	char		 why[256], *json = NULL;
	size_t		 jlen = 0;
	FILE		*f;

	if (rg_ctl_parse((const char *)data, size, &r, why, sizeof(why)) != 0) {
		if (why[0] == '\0' || strlen(why) >= sizeof(why))
			abort();
		return 0;
	}
	if (r.cmd > RG_CTL_RELOAD || r.nargs > RG_CTL_ARGS_MAX)
		abort();
	if ((r.cmd == RG_CTL_EXPLAIN || r.cmd == RG_CTL_UNBLOCK) && r.nargs != 1)
		abort();
	if (r.cmd == RG_CTL_FLUSH && r.nargs == 0)
		abort();
	if ((r.cmd == RG_CTL_STATUS || r.cmd == RG_CTL_BLOCKS ||
	    r.cmd == RG_CTL_RELOAD || r.cmd == RG_CTL_FLUSH_ALL) && r.nargs != 0)
		abort();
	for (size_t i = 0; i < r.nargs; i++)
		check_arg(&r, r.args[i]);
	if (r.client != NULL)
		check_arg(&r, r.client);
	if (rg_ctl_parse((const char *)data, size, &r2, why, sizeof(why)) != 0 ||
	    r2.cmd != r.cmd || r2.nargs != r.nargs || r2.json != r.json)
		abort();
	if ((f = open_memstream(&json, &jlen)) == NULL)
		return 0;
	for (size_t i = 0; i < r.nargs; i++)
		rg_json_str(f, r.args[i]);
	(void)fclose(f);
	for (size_t i = 0; i < jlen; i++)
		if ((unsigned char)json[i] < 0x20)
			abort();
	free(json);
	return 0;
}
