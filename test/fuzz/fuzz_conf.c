/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the configuration loader: arbitrary bytes go to
 * rg_conf_load_string (up to the first NUL, as a C string) and the
 * result, if any, is freed. Finds crashes, leaks (ASan) and undefined
 * behaviour (UBSan) in the INI reader (lib/conf_read.c), the value
 * parsers and the [domain]/[backend] resolution. The same text also goes
 * through the reader alone, which must keep its invariants: lines count
 * up, items point into the text, keys and values carry no surrounding
 * space, and the items written back out one per line read back the same.
 * Seeds: test/fuzz/corpus/conf/.
 *
 * clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ilib lib/rg_error.c lib/rg_time.c lib/log.c lib/conf.c \
 *     lib/conf_read.c lib/conf_value.c lib/conf_section.c lib/conf_keys.c \
 *     test/fuzz/fuzz_conf.c -o fuzz_conf -lpthread
 * ./fuzz_conf -max_total_time=60 test/fuzz/corpus/conf
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conf_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static bool
trimmed(const char *s, size_t len)
{
	return len == 0 || (!isspace((unsigned char)s[0]) &&
	    !isspace((unsigned char)s[len - 1]));
}

/* Check one item against the text; append it, one line, to out. */
static void
check_item(const char *text, size_t tlen, const struct rg_ini_item *it,
    int last, FILE *out)
{
	if (it->line <= last)
		abort();
	if (it->name != NULL && (it->name < text ||
	    it->name + it->namelen > text + tlen))
		abort();
	if (it->value != NULL && (it->value < text ||
	    it->value + it->valuelen > text + tlen))
		abort();
	switch (it->kind) {
	case RG_INI_SECTION:
		(void)fprintf(out, "[%.*s]%s\n", (int)it->namelen, it->name,
		    it->trailing ? " x" : "");
		break;
	case RG_INI_KEY:
		if (!trimmed(it->name, it->namelen) ||
		    !trimmed(it->value, it->valuelen))
			abort();
		(void)fprintf(out, "%.*s=%.*s\n", (int)it->namelen, it->name,
		    (int)it->valuelen, it->value);
		break;
	case RG_INI_CONT:
		if (it->valuelen == 0 || !trimmed(it->value, it->valuelen))
			abort();
		(void)fprintf(out, " %.*s\n", (int)it->valuelen, it->value);
		break;
	case RG_INI_ERROR:
		if (it->error == NULL)
			abort();
		/* The two errors: a header without ']', or no '='. */
		(void)fprintf(out, "%s\n", strncmp(it->error, "section", 7) ==
		    0 ? "[x" : "x");
		break;
	case RG_INI_END:
		break;
	}
}

static bool
same_item(const struct rg_ini_item *a, const struct rg_ini_item *b)
{
	if (a->kind == RG_INI_ERROR)
		return b->kind == RG_INI_ERROR &&
		    strcmp(a->error, b->error) == 0;
	return a->kind == b->kind && a->namelen == b->namelen &&
	    a->valuelen == b->valuelen && a->trailing == b->trailing &&
	    (a->namelen == 0 || memcmp(a->name, b->name, a->namelen) == 0) &&
	    (a->valuelen == 0 ||
	    memcmp(a->value, b->value, a->valuelen) == 0);
}

/* The reader alone: invariants, then a round trip through its output. */
static void
check_reader(const char *text, size_t tlen)
{
	struct rg_ini		 ini, again;
	struct rg_ini_item	 it, it2;
	char			*buf = NULL;
	size_t			 blen = 0;
	FILE			*out = open_memstream(&buf, &blen);
	int			 last = 0;

	if (out == NULL)
		return;
	/* A BOM first, so a key that starts with BOM bytes stays one. */
	(void)fputs("\xef\xbb\xbf", out);
	rg_ini_init(&ini, text);
	for (rg_ini_next(&ini, &it); it.kind != RG_INI_END;
	    rg_ini_next(&ini, &it)) {
		check_item(text, tlen, &it, last, out);
		last = it.line;
	}
	if (fclose(out) != 0)
		abort();
	rg_ini_init(&ini, text);
	rg_ini_init(&again, buf);
	do {
		rg_ini_next(&ini, &it);
		rg_ini_next(&again, &it2);
		if (!same_item(&it, &it2))
			abort();
	} while (it.kind != RG_INI_END);
	free(buf);
}

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
	check_reader(text, strlen(text));
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
