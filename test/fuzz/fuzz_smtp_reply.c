/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for rg_smtp_reply_parse (lib/backend/smtp_client.c): any byte
 * string must give -1, 0 or a length within the input, and a parsed
 * reply must be self-consistent. Build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib -Ilib/backend \
 *       lib/backend/smtp_client.c lib/rg_time.c lib/rg_error.c \
 *       test/fuzz/fuzz_smtp_reply.c -o fuzz_smtp_reply
 *   ./fuzz_smtp_reply -max_total_time=60 test/fuzz/corpus/smtp_reply
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_client.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_smtp_reply	r;
	/* A heap copy of exactly size bytes, so ASan sees any overread. */
	char			*buf = malloc(size ? size : 1);
	long			 n;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	n = rg_smtp_reply_parse(buf, size, &r);
	if (n < -1 || n > (long)size)
		abort();
	if (n > 0) {
		if (r.code < 200 || r.code > 599 || r.nlines == 0)
			abort();
		if (buf[n - 1] != '\n')
			abort();
		if (memchr(r.text, '\0', sizeof(r.text)) == NULL)
			abort();
		if (r.enh[0] != 0 && r.enh[0] != r.code / 100)
			abort();
		/* The parse of the reply alone must agree. */
		{
			struct rg_smtp_reply	r2;

			if (rg_smtp_reply_parse(buf, (size_t)n, &r2) != n ||
			    r2.code != r.code)
				abort();
		}
	}
	free(buf);
	return 0;
}
