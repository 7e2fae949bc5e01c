/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the configuration loader: arbitrary bytes go to
 * rg_conf_load_string (up to the first NUL, as a C string) and the
 * result, if any, is freed. Finds crashes, leaks (ASan) and undefined
 * behaviour (UBSan) in the INI reader (lib/conf_read.c), the value
 * parsers and the [domain]/[backend] resolution. Seeds:
 * test/fuzz/corpus/conf/.
 *
 * clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ilib lib/rg_error.c lib/rg_time.c lib/log.c lib/conf.c \
 *     lib/conf_read.c lib/conf_value.c lib/conf_section.c lib/conf_keys.c \
 *     test/fuzz/fuzz_conf.c -o fuzz_conf -lpthread
 * ./fuzz_conf -max_total_time=60 test/fuzz/corpus/conf
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_error	 err;
	struct rg_conf	*c;
	char		*text;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	c = rg_conf_load_string(text, "fuzz.conf", &err);
	if (c != NULL) {
		/* Exercise the read side too. */
		(void)rg_conf_policy_for(c, "example.com");
		(void)rg_conf_backend(c, "local");
		rg_conf_unref(rg_conf_ref(c));
		rg_conf_unref(c);
	}
	free(text);
	return 0;
}
