/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for lib/backend/ldap_filter.c: a recipient address from a
 * stranger becomes part of an LDAP search filter.
 *
 * The input (up to its first NUL) is the address. Invariants checked
 * with abort(): expanding the Active Directory template either fails
 * (overflow, reported) or gives exactly the template with the escaped
 * address in both places, which our own RFC 4515 check and libldap's own
 * filter encoder (ldap_pvt_put_filter, the parser ldap_search_ext uses)
 * both accept; the escaped value holds no '*', '(', ')', NUL, control or
 * non-ASCII byte and every '\' starts a \XX escape that decodes back to
 * the input. The input is also fed to rg_ldap_filter_valid as a filter,
 * and whatever it accepts libldap must accept too. Single-threaded.
 *
 * clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ilib -Ilib/backend lib/rg_error.c lib/backend/ldap_filter.c test/fuzz/fuzz_ldap_filter.c \
 *     -o fuzz_ldap_filter -lldap -llber
 * ./fuzz_ldap_filter -max_total_time=60 test/fuzz/corpus/ldap_filter
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lber.h>

#include "ldap_filter.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Exported by libldap (ldap_search_ext's own filter encoder) but not in
 * its public headers; a test may rely on it, the library does not. */
int	ldap_pvt_put_filter(BerElement *, const char *);

#define TMPL	"(|(mail=%s)(proxyAddresses=smtp:%s))"

static int
libldap_accepts(const char *filter)
{
	BerElement	*ber = ber_alloc_t(LBER_USE_DER);
	int		 rc;

	if (ber == NULL)
		abort();
	rc = ldap_pvt_put_filter(ber, filter);
	ber_free(ber, 1);
	return rc == 0;
}

static int
hexval(int c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static void
check_escaped(const char *esc, const char *orig)
{
	size_t	o = 0;

	for (const char *p = esc; *p != '\0'; p++, o++) {
		unsigned char	c = (unsigned char)*p;

		if (c == '*' || c == '(' || c == ')' || c < 0x20 || c >= 0x7f)
			abort();
		if (c == '\\') {
			if (p[1] == '\0' || p[2] == '\0')
				abort();
			c = (unsigned char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		}
		if (c != (unsigned char)orig[o])
			abort();
	}
	if (orig[o] != '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 in[2048], esc[RG_LDAP_FILTER_MAX];
	char		 out[RG_LDAP_FILTER_MAX];
	char		 want[RG_LDAP_FILTER_MAX * 2 + 64];
	struct rg_error	 err;
	const char	*at;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';

	/* the input as a filter: no crash, and no false "valid" */
	if (rg_ldap_filter_valid(in) && !libldap_accepts(in))
		abort();

	rg_error_clear(&err);
	at = strrchr(in, '@');
	if (rg_ldap_filter_expand(TMPL, in, "", at != NULL ? at + 1 : "", out,
	    sizeof(out), &err) == -1) {
		/* only overflow may fail, and it says so */
		if (strlen(in) * 3 * 2 + strlen(TMPL) < sizeof(out) ||
		    err.count != 1 || out[0] != '\0')
			abort();
		return 0;
	}
	if (rg_ldap_escape(in, esc, sizeof(esc), NULL) != 0)
		abort();
	check_escaped(esc, in);
	snprintf(want, sizeof(want), "(|(mail=%s)(proxyAddresses=smtp:%s))",
	    esc, esc);
	if (strcmp(out, want) != 0)
		abort();
	if (!rg_ldap_filter_valid(out) || !libldap_accepts(out))
		abort();
	return 0;
}
