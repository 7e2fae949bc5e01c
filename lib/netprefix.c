/* SPDX-License-Identifier: MIT */
/*
 * Network prefixes on raw address bytes. Stateless, thread-safe.
 */
#include <string.h>

#include "netprefix.h"

void
rg_prefix_mask(uint8_t *bytes, size_t len, int prefix)
{
	for (size_t i = 0; i < len; i++) {
		int	bits = prefix - (int)i * 8;

		if (bits >= 8)
			continue;
		bytes[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
	}
}

bool
rg_prefix_equal(const uint8_t *a, const uint8_t *b, int prefix)
{
	size_t	full = prefix > 0 ? (size_t)prefix / 8 : 0;
	int	rest = prefix > 0 ? prefix % 8 : 0;
	uint8_t	mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}
