/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the LDIF reader behind "rcptgate-table replace
 * --ldif": a directory export crosses from another zone, so every byte
 * of it is untrusted.
 *
 * The first byte picks the options (include disabled accounts; default
 * or custom attributes); the rest is the file. Invariants checked with
 * abort(): the result is -1 or a count of errors; every error names a
 * line within the input; with no errors every key is a normalised
 * address (rg_table_normalise gives it back unchanged), never a
 * catch-all. Single-threaded by libFuzzer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldif.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static long	maxline;

static void
on_bad(void *arg, const char *name, long line, const char *why)
{
	if (line < 1 || line > maxline || why == NULL || *why == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_ldif_opts	 o = { 0 };
	struct rg_table_keys	 keys = { 0 };
	char			 key[RG_PATH_MAX + 1], why[256];
	FILE			*f;
	long			 n;
	size_t			 i;

	if (size < 1)
		return 0;
	o.include_disabled = data[0] & 1;
	o.attrs = data[0] & 2 ? "mail,proxyAddresses,otherMailbox" : NULL;
	o.warn = on_bad;
	data++;
	size--;
	/* physical lines: at most one per byte, plus the last */
	maxline = (long)size + 1;
	if ((f = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	n = rg_ldif_read(f, "fuzz", &o, &keys, on_bad, NULL);
	fclose(f);
	if (n < -1)
		abort();
	for (i = 0; n == 0 && i < keys.n; i++) {
		if (keys.v[i][0] == '@' ||
		    rg_table_normalise(keys.v[i], key, why, sizeof(why)) != 0 ||
		    strcmp(key, keys.v[i]) != 0)
			abort();
	}
	rg_table_keys_free(&keys);
	return 0;
}
