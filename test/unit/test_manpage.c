/* SPDX-License-Identifier: MIT */
/*
 * rcptgate.conf(5) against the loader: every key rg_conf_known_keys()
 * lists is documented in its section, every key the man page documents
 * is known, and the same both ways for each backend driver (its key list
 * read from lib/backend/backend_*.c, and each documented key checked to be
 * accepted by the driver's own open()). Not a check of the prose.
 * Single-threaded; reads files under RG_SOURCE_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conf.h"
#include "log.h"

#define MAX_KEYS	256

/* One documented key: "milter.socket", or "backend:ldap.uri". */
struct doc {
	char	*keys[MAX_KEYS];
	size_t	 n;
};

static char *
slurp(const char *rel)
{
	const char	*src = getenv("RG_SOURCE_DIR");
	char		 path[1024];
	FILE		*f;
	char		*buf;
	long		 len;

	if (src == NULL)
		src = ".";
	(void)snprintf(path, sizeof(path), "%s/%s", src, rel);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("%s: %s (set RG_SOURCE_DIR)", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((len = ftell(f)) > 0);
	rewind(f);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	(void)fclose(f);
	return buf;
}

static bool
doc_has(const struct doc *d, const char *key)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->keys[i], key) == 0)
			return true;
	return false;
}

static void
doc_add(struct doc *d, const char *key)
{
	if (doc_has(d, key))
		fail_msg("rcptgate.conf.5 documents %s twice", key);
	assert_true(d->n < MAX_KEYS);
	d->keys[d->n] = strdup(key);
	assert_non_null(d->keys[d->n]);
	d->n++;
}

static void
doc_free(struct doc *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->keys[i]);
	d->n = 0;
}

/*
 * The section a .SS line opens: "milter" for `.SS "[milter]"`,
 * "backend:sqlite" for `.SS "[backend NAME] type = sqlite"`, "backend"
 * for the plain `[backend NAME]`, "" for anything else (no keys).
 */
static void
section_of(const char *line, char *out, size_t len)
{
	const char	*b = strchr(line, '['), *e, *t;

	out[0] = '\0';
	if (b == NULL || (e = strpbrk(b + 1, " ]")) == NULL)
		return;
	if ((size_t)(e - b - 1) >= len)
		return;
	(void)snprintf(out, len, "%.*s", (int)(e - b - 1), b + 1);
	if (strcmp(out, "backend") != 0)
		return;
	if ((t = strstr(line, "type = ")) != NULL) {
		t += strlen("type = ");
		(void)snprintf(out, len, "backend:%.*s",
		    (int)strcspn(t, "\" \n"), t);
	}
}

/*
 * Keys of the man page: the first word of the line after each .TP, with
 * the font macro (.B, .BR) stripped, inside a [section] block.
 */
static void
read_manpage(struct doc *d)
{
	char		*text = slurp("man/rcptgate.conf.5");
	char		 sec[64] = "", key[160];
	bool		 after_tp = false;
	char		*line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, ".SH", 3) == 0) {
			sec[0] = '\0';
		} else if (strncmp(line, ".SS", 3) == 0) {
			section_of(line, sec, sizeof(sec));
		} else if (strcmp(line, ".TP") == 0) {
			after_tp = true;
			continue;
		} else if (after_tp && sec[0] != '\0') {
			const char	*w = line;
			size_t		 n;

			if (strncmp(w, ".BR ", 4) == 0)
				w += 4;
			else if (strncmp(w, ".B ", 3) == 0)
				w += 3;
			n = strcspn(w, " \"");
			if (n == 0 || n > 64)
				fail_msg("rcptgate.conf.5: odd key line '%s'",
				    line);
			(void)snprintf(key, sizeof(key), "%s.%.*s", sec,
			    (int)n, w);
			doc_add(d, key);
		}
		after_tp = false;
	}
	free(text);
}

static const char *const core_sections[] = {
	"milter", "policy", "postfix_policy", "cache", "harvest", "control",
	"metrics"
};

static bool
is_core(const char *key)
{
	for (size_t i = 0; i < sizeof(core_sections) / sizeof(*core_sections);
	    i++) {
		size_t	n = strlen(core_sections[i]);

		if (strncmp(key, core_sections[i], n) == 0 && key[n] == '.')
			return true;
	}
	return false;
}

static void
test_core_keys(void **state)
{
	struct doc		 d = { 0 };
	const char *const	*k;
	size_t			 ncore = 0;

	(void)state;
	read_manpage(&d);
	for (k = rg_conf_known_keys(); *k != NULL; k++)
		if (!doc_has(&d, *k))
			fail_msg("%s is not in rcptgate.conf(5)", *k);
	for (size_t i = 0; i < d.n; i++) {
		bool	known = false;

		if (!is_core(d.keys[i]))
			continue;
		ncore++;
		for (k = rg_conf_known_keys(); *k != NULL; k++)
			known |= strcmp(*k, d.keys[i]) == 0;
		if (!known)
			fail_msg("rcptgate.conf(5) documents %s, which the "
			    "loader does not know", d.keys[i]);
	}
	/* Every documented key belongs to a section the test knows. */
	for (size_t i = 0; i < d.n; i++)
		if (!is_core(d.keys[i]) &&
		    strncmp(d.keys[i], "backend", 7) != 0)
			fail_msg("rcptgate.conf(5): %s in an unknown section",
			    d.keys[i]);
	assert_true(ncore >= 30);
	assert_true(doc_has(&d, "backend.type"));
	doc_free(&d);
}

/*
 * The key list of the driver whose source is lib/backend/FILE: the string
 * literals of its `static const char *const NAME_keys[] = { ... }`,
 * and its `.type = "..."`.
 */
static size_t
driver_keys(const char *file, char *type, size_t tlen, char **keys,
    size_t max)
{
	char		 rel[128];
	char		*text, *p, *end, *t;
	size_t		 n = 0;

	(void)snprintf(rel, sizeof(rel), "lib/backend/%s", file);
	text = slurp(rel);
	t = strstr(text, ".type = \"");
	assert_non_null(t);
	t += strlen(".type = \"");
	(void)snprintf(type, tlen, "%.*s", (int)strcspn(t, "\""), t);
	p = strstr(text, "_keys[] = {");
	if (p == NULL)
		fail_msg("%s: no NAME_keys[] array", rel);
	end = strstr(p, "NULL");
	assert_non_null(end);
	p = strchr(p, '{');
	while ((p = strchr(p, '"')) != NULL && p < end) {
		size_t	len = strcspn(p + 1, "\"");

		assert_true(n < max);
		keys[n] = strndup(p + 1, len);
		assert_non_null(keys[n]);
		n++;
		p += len + 2;
	}
	free(text);
	return n;
}

/*
 * rg_backend_open on a section of just `type` and `key = 1`: the error,
 * if any, must not be the unknown-key one (bad value or missing required
 * keys are fine). Returns true when the driver accepted the key's name.
 */
static bool
driver_accepts(const char *type, const char *key)
{
	struct rg_kv		 kv[2] = {
		{ (char *)"type", (char *)type, 2 },
		{ (char *)key, (char *)"1", 3 },
	};
	struct rg_section	 sec = {
		(char *)"t", "manpage-test", 1, 2, kv
	};
	struct rg_error		 err;
	struct rg_backend	*b;

	rg_error_clear(&err);
	b = rg_backend_open(&sec, &err);
	rg_backend_free(b);
	return strstr(err.msg, "unknown key") == NULL;
}

static void
test_backend_keys(void **state)
{
	static const char *const files[] = {
		"backend_sqlite.c", "backend_ldap.c", "backend_callahead.c"
	};
	struct doc	 d = { 0 };
	char		 type[32], full[160];
	size_t		 ndrivers = 0;

	(void)state;
	read_manpage(&d);
	for (size_t f = 0; f < sizeof(files) / sizeof(*files); f++) {
		char	*keys[64];
		size_t	 n;

		n = driver_keys(files[f], type, sizeof(type), keys, 64);
		assert_true(n >= 2);
		ndrivers++;
		/* Source list -> man page. */
		for (size_t i = 0; i < n; i++) {
			(void)snprintf(full, sizeof(full), "backend:%s.%s",
			    type, keys[i]);
			if (!doc_has(&d, full))
				fail_msg("%s key %s is not in rcptgate.conf(5)"
				    " under [backend NAME] type = %s",
				    files[f], keys[i], type);
			if (!driver_accepts(type, keys[i]))
				fail_msg("driver %s refuses its own key %s",
				    type, keys[i]);
			free(keys[i]);
		}
		/* Man page -> driver. */
		for (size_t i = 0; i < d.n; i++) {
			char	prefix[64];

			(void)snprintf(prefix, sizeof(prefix), "backend:%s.",
			    type);
			if (strncmp(d.keys[i], prefix, strlen(prefix)) != 0)
				continue;
			if (!driver_accepts(type, d.keys[i] + strlen(prefix)))
				fail_msg("rcptgate.conf(5) documents %s, which "
				    "the %s driver does not know", d.keys[i],
				    type);
		}
		/* The check can fail: an invented key is refused. */
		assert_false(driver_accepts(type, "no_such_key"));
	}
	/* Every driver built in has a documented section. */
	for (size_t i = 0; rg_backend_drivers[i] != NULL; i++) {
		bool	found = false;

		(void)snprintf(full, sizeof(full), "backend:%s.",
		    rg_backend_drivers[i]->type);
		for (size_t j = 0; j < d.n; j++)
			found |= strncmp(d.keys[j], full,
			    strlen(full)) == 0;
		if (!found)
			fail_msg("driver %s has no section in rcptgate.conf(5)",
			    rg_backend_drivers[i]->type);
	}
	assert_int_equal(ndrivers, 3);
	doc_free(&d);
}

/* The other pages exist and name the options their programs take. */
static void
test_other_pages(void **state)
{
	static const char *const opts[] = {
		"\\-c", "\\-f", "\\-p", "\\-u", "\\-P", "\\-v", "\\-n",
		"\\-t", "\\-b list", "\\-b unblock", "\\-V", "SIGUSR1",
		"SIGUSR2",
	};
	static const char *const cmds[] = {
		"replace", "add", "remove", "list", "\\-d",
	};
	/* rcptgate-probe's long options (tools/rcptgate-probe.c). */
	static const char *const probe[] = {
		"\\-\\-timeout", "\\-\\-helo", "\\-\\-from",
		"\\-\\-relay\\-domain", "\\-\\-harvest",
		"\\-\\-known", "\\-\\-help", "rcptgate\\-ctl unblock",
	};
	char	*t;

	(void)state;
	t = slurp("man/rcptgate.8");
	assert_non_null(strstr(t, ".TH RCPTGATE 8"));
	for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++)
		if (strstr(t, opts[i]) == NULL)
			fail_msg("rcptgate.8 lacks %s", opts[i]);
	free(t);
	t = slurp("man/rcptgate-table.8");
	assert_non_null(strstr(t, ".TH RCPTGATE\\-TABLE 8"));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(*cmds); i++)
		if (strstr(t, cmds[i]) == NULL)
			fail_msg("rcptgate-table.8 lacks %s", cmds[i]);
	free(t);
	t = slurp("man/rcptgate-probe.8");
	assert_non_null(strstr(t, ".TH RCPTGATE\\-PROBE 8"));
	for (size_t i = 0; i < sizeof(probe) / sizeof(*probe); i++)
		if (strstr(t, probe[i]) == NULL)
			fail_msg("rcptgate-probe.8 lacks %s", probe[i]);
	free(t);
}

/* The value of the first line of text that starts with key, roff's "\-"
 * read as "-"; NULL if none. Caller frees. */
static char *
line_value(const char *text, const char *key)
{
	const char	*p, *end;
	char		*v, *w;
	size_t		 klen = strlen(key);

	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'),
	    p = p != NULL ? p + 1 : NULL) {
		if (strncmp(p, key, klen) != 0)
			continue;
		end = strchr(p, '\n');
		if (end == NULL)
			end = p + strlen(p);
		v = strndup(p + klen, (size_t)(end - p - klen));
		assert_non_null(v);
		for (w = v; (w = strstr(w, "\\-")) != NULL; )
			memmove(w, w + 1, strlen(w));
		return v;
	}
	return NULL;
}

/*
 * rcptgate(8) quotes the unit's ReadWritePaths= as it is: the page once
 * told operators to add a path the unit already had.
 */
static void
test_unit_paths(void **state)
{
	char	*unit = slurp("packaging/systemd/rcptgate.service");
	char	*man = slurp("man/rcptgate.8");
	char	*u, *m;

	(void)state;
	u = line_value(unit, "ReadWritePaths=");
	m = line_value(man, ".B ReadWritePaths=");
	assert_non_null(u);
	if (m == NULL)
		fail_msg("rcptgate.8 does not quote ReadWritePaths=%s", u);
	assert_string_equal(m, u);
	assert_null(strstr(man, "add it to the unit"));
	free(u);
	free(m);
	free(unit);
	free(man);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core_keys),
		cmocka_unit_test(test_backend_keys),
		cmocka_unit_test(test_other_pages),
		cmocka_unit_test(test_unit_paths),
	};

	rg_log_init("test_manpage", 1, RG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
