/* SPDX-License-Identifier: MIT */
/*
 * rg_prefix_mask and rg_prefix_equal on IPv4 and IPv6 bytes, at byte
 * boundaries, inside a byte, and at the ends (0 and the full length),
 * and rg_mono_timespec against rg_now_ms.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "netprefix.h"
#include "rg_time.h"

static void
test_mask(void **state)
{
	static const struct {
		uint8_t	in[4];
		int	prefix;
		uint8_t	want[4];
	} cases[] = {
		{ { 203, 0, 113, 77 }, 24, { 203, 0, 113, 0 } },
		{ { 203, 0, 113, 77 }, 32, { 203, 0, 113, 77 } },
		{ { 203, 0, 113, 77 }, 0, { 0, 0, 0, 0 } },
		{ { 203, 0, 113, 77 }, -1, { 0, 0, 0, 0 } },
		{ { 203, 0, 113, 77 }, 20, { 203, 0, 112, 0 } },
		{ { 255, 255, 255, 255 }, 1, { 128, 0, 0, 0 } },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t	b[4];

		memcpy(b, cases[i].in, 4);
		rg_prefix_mask(b, 4, cases[i].prefix);
		assert_memory_equal(b, cases[i].want, 4);
	}
}

static void
test_mask_v6(void **state)
{
	uint8_t	b[16], want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56,
	    0x78 };

	(void)state;
	memset(b, 0xff, sizeof(b));
	memcpy(b, want, 8);
	rg_prefix_mask(b, 16, 64);
	assert_memory_equal(b, want, 16);
}

static void
test_equal(void **state)
{
	static const uint8_t	net[4] = { 10, 128, 0, 0 };
	static const struct {
		uint8_t	addr[4];
		int	prefix;
		bool	want;
	} cases[] = {
		{ { 10, 128, 9, 9 }, 16, true },
		{ { 10, 129, 9, 9 }, 16, false },
		{ { 10, 129, 9, 9 }, 9, true },
		{ { 10, 0, 9, 9 }, 9, false },
		{ { 11, 0, 0, 0 }, 0, true },
		{ { 10, 128, 0, 0 }, 32, true },
		{ { 10, 128, 0, 1 }, 32, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(rg_prefix_equal(net, cases[i].addr,
		    cases[i].prefix), cases[i].want);
}

static void
test_mono_timespec(void **state)
{
	struct timespec	ts;
	uint64_t	now = rg_now_ms();

	(void)state;
	rg_mono_timespec(now + 1500, &ts);
	assert_int_equal((uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000, now + 1500);
	assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mask),
		cmocka_unit_test(test_mask_v6),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_mono_timespec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
