/* SPDX-License-Identifier: MIT */
/*
 * Network prefixes on raw address bytes (4 for IPv4, 16 for IPv6): the
 * one place that clears host bits and compares the leading bits, for the
 * configuration's networks (rg_netlist_match), the harvest limiter's
 * client prefixes and its exempt networks.
 *
 * Must not: know address families or parse text (conf.c and
 * harvest_store.c do).
 * Locking: none; pure functions.
 */
#ifndef RG_NETPREFIX_H
#define RG_NETPREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Clear every bit of bytes[0..len) after the first prefix bits (prefix
 * <= 0 clears all, prefix >= 8 * len none).
 */
void	rg_prefix_mask(uint8_t *bytes, size_t len, int prefix);

/*
 * Do a and b agree on their first prefix bits? Both hold at least
 * (prefix + 7) / 8 bytes; prefix 0 matches everything.
 */
bool	rg_prefix_equal(const uint8_t *a, const uint8_t *b, int prefix);

#endif
