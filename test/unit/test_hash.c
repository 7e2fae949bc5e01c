/* SPDX-License-Identifier: MIT */
/*
 * rg_siphash24 against the reference vectors of the SipHash paper
 * (key 00..0f, message 00..n-1), and rg_hash_key_init giving keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hash.h"

static const uint64_t	ref_key[2] = { 0x0706050403020100ULL,
			    0x0f0e0d0c0b0a0908ULL };

static void
test_reference_vectors(void **state)
{
	static const struct {
		size_t		len;
		uint64_t	want;
	} cases[] = {
		{ 0, 0x726fdb47dd0e0e31ULL },
		{ 1, 0x74f839c593dc67fdULL },
		{ 8, 0x93f5f5799a932462ULL },
		{ 15, 0xa129ca6149be45e5ULL },
	};
	unsigned char	msg[64];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(rg_siphash24(ref_key, msg, cases[i].len),
		    cases[i].want);
}

static void
test_keys_differ(void **state)
{
	uint64_t	a[2], b[2];

	(void)state;
	rg_hash_key_init(a);
	rg_hash_key_init(b);
	assert_false(a[0] == b[0] && a[1] == b[1]);
	assert_int_not_equal(rg_siphash24(a, "x@example.com", 13),
	    rg_siphash24(b, "x@example.com", 13));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_vectors),
		cmocka_unit_test(test_keys_differ),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
