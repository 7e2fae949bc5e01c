/* SPDX-License-Identifier: MIT */
/*
 * The keyed hash shared by the cache and the harvest limiter (hash.h).
 * No state: the key lives with each table.
 */
#include <stdint.h>
#include <sys/random.h>

#include "hash.h"
#include "log.h"
#include "rg_time.h"

void
rg_hash_key_init(uint64_t key[2])
{
	if (getrandom(key, 2 * sizeof(key[0]), GRND_NONBLOCK) ==
	    (ssize_t)(2 * sizeof(key[0])))
		return;
	/* no entropy yet: degrade, still keyed per process */
	rg_warn("getrandom");
	key[0] = rg_now_ms() ^ (uint64_t)(uintptr_t)key;
	key[1] = (uint64_t)(uintptr_t)&key ^ 0x9e3779b97f4a7c15ULL;
}

/* SipHash-2-4 (Aumasson, Bernstein), 64-bit output. */
#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

static uint64_t
load64le(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t
rg_siphash24(const uint64_t k[2], const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t	v0 = 0x736f6d6570736575ULL ^ k[0];
	uint64_t	v1 = 0x646f72616e646f6dULL ^ k[1];
	uint64_t	v2 = 0x6c7967656e657261ULL ^ k[0];
	uint64_t	v3 = 0x7465646279746573ULL ^ k[1];
	uint64_t	m, b = (uint64_t)len << 56;
	size_t		i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = load64le(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (m = 0; left > 0; left--)
		m |= (uint64_t)p[i + left - 1] << (8 * (left - 1));
	b |= m;
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}
