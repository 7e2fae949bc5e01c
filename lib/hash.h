/* SPDX-License-Identifier: MIT */
/*
 * The keyed hash for tables whose keys an attacker chooses (recipient
 * addresses in the cache, client prefixes in the harvest limiter), so a
 * flood of chosen keys cannot pile into one bucket. Pure, thread-safe.
 */
#ifndef RG_HASH_H
#define RG_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A random key for rg_siphash24 (getrandom; a weaker per-process key,
 * with a warning, if the kernel has no entropy to give). */
void		rg_hash_key_init(uint64_t key[2]);

/* SipHash-2-4 (Aumasson, Bernstein) of data, 64-bit output. */
uint64_t	rg_siphash24(const uint64_t key[2], const void *data, size_t len);

#endif
