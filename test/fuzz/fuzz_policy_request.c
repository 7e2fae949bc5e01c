/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the Postfix policy request parser
 * (milter/policy_request.c): any byte string must give an end within the
 * input or 0; a parsed request's values must lie inside the buffer and
 * be NUL-terminated there; the recipient's external form and the
 * session key must fit or say they do not. Build and run (see
 * test/fuzz/README.md for the CMake way):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Imilter \
 *       milter/policy_request.c test/fuzz/fuzz_policy_request.c \
 *       -o fuzz_policy_request
 *   ./fuzz_policy_request -max_total_time=60 test/fuzz/corpus/policy_request
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy_request.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *buf, size_t end, const char *v)
{
	if (v == NULL)
		return;
	if (v < buf || v >= buf + end || memchr(v, '\0', end -
	    (size_t)(v - buf)) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_pf_request	 r;
	char			*buf, why[128], out[600], key[256];
	size_t			 end;

	if (size > RG_PF_REQUEST_MAX)
		return 0;
	/* A heap copy of exactly size bytes, so ASan sees any overread. */
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	end = rg_pf_request_end(buf, size);
	if (end > size || (end > 0 && buf[end - 1] != '\n'))
		abort();
	if (end > 0 && rg_pf_request_parse(buf, end, &r, why,
	    sizeof(why)) == 0) {
		inside(buf, end, r.request);
		inside(buf, end, r.recipient);
		inside(buf, end, r.client_address);
		inside(buf, end, r.instance);
		if (strcmp(r.request, "smtpd_access_policy") != 0)
			abort();
		if (r.recipient != NULL &&
		    rg_pf_recipient_external(r.recipient, out, sizeof(out)) &&
		    memchr(out, '\0', sizeof(out)) == NULL)
			abort();
		if (rg_pf_session_key(&r, key, sizeof(key)) &&
		    memchr(key, '\0', sizeof(key)) == NULL)
			abort();
	}
	free(buf);
	return 0;
}
