/* SPDX-License-Identifier: MIT */
/*
 * The rg_section_* helpers: what a backend driver uses, at open, on its
 * raw [backend NAME] section (the loader keeps those keys unread, since
 * only the driver knows them). Getters with defaults, typed parsing, the
 * unknown-key check, and one error format naming file, line, section and
 * key, so a driver's complaints read like the loader's.
 *
 * They must not keep state or log: errors go to the caller's rg_error.
 * Locking: none; a section belongs to an immutable conf and is only read.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf_int.h"

/* The first value of key, pointing into sec; NULL when absent. */
const char *
rg_section_get(const struct rg_section *sec, const char *key, int *line)
{
	if (sec == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < sec->n; i++) {
		if (strcmp(sec->kv[i].key, key) != 0)
			continue;
		if (line != NULL)
			*line = sec->kv[i].line;
		return sec->kv[i].value;
	}
	return NULL;
}

/* Appends (never replaces) one line to err, so drivers can report all. */
void
rg_section_error(const struct rg_section *sec, const char *key,
    struct rg_error *err, const char *fmt, ...)
{
	char	 head[RG_NAME_MAX + 256];
	char	 msg[1024];
	va_list	 ap;
	int	 line = sec->line;

	if (key != NULL)
		(void)rg_section_get(sec, key, &line);
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key != NULL)
		(void)snprintf(head, sizeof(head), "[backend %s] key '%s'",
		    sec->name, key);
	else
		(void)snprintf(head, sizeof(head), "[backend %s]", sec->name);
	rg_error_append(err, "%s:%d: %s: %s", sec->file ? sec->file : "-",
	    line, head, msg);
}

/* "invalid WHAT 'VALUE' (HINT)" at key; returns -1. */
static int
bad_value(const struct rg_section *sec, const char *key, const char *v,
    const char *what, const char *hint, struct rg_error *err)
{
	char	show[VALUE_SHOW];

	rg_conf_show(show, sizeof(show), v);
	rg_section_error(sec, key, err, "invalid %s '%s' (%s)", what, show,
	    hint);
	return -1;
}

/* The value, or def when absent; never fails (see conf.h). */
int
rg_section_string(const struct rg_section *sec, const char *key,
    const char *def, const char **out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);

	*out = v != NULL ? v : def;
	return 0;
}

/* A duration in ms, or def when absent; -1 and err when invalid. */
int
rg_section_duration(const struct rg_section *sec, const char *key,
    uint64_t def, uint64_t *out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (rg_parse_duration(v, out) == 0)
		return 0;
	return bad_value(sec, key, v, "duration", "a number with ms, s, m, h "
	    "or d", err);
}

/* A boolean, or def when absent; -1 and err when invalid. */
int
rg_section_bool(const struct rg_section *sec, const char *key, bool def,
    bool *out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (rg_parse_bool(v, out) == 0)
		return 0;
	return bad_value(sec, key, v, "boolean", "yes or no", err);
}

/* A number up to max, or def when absent; -1 and err when invalid. */
int
rg_section_uint(const struct rg_section *sec, const char *key, uint64_t def,
    uint64_t max, uint64_t *out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);
	char		 range[48];

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (rg_parse_uint(v, max, out) == 0)
		return 0;
	(void)snprintf(range, sizeof(range), "0 to %llu",
	    (unsigned long long)max);
	return bad_value(sec, key, v, "number", range, err);
}

/* A list (empty when absent), freed by the caller; -1 out of memory. */
int
rg_section_list(const struct rg_section *sec, const char *key,
    struct rg_list *out, struct rg_error *err)
{
	if (rg_parse_list(rg_section_get(sec, key, NULL), out) == 0)
		return 0;
	rg_section_error(sec, key, err, "out of memory");
	return -1;
}

/* Reports every unknown key (one line each): one run, all fixes. */
int
rg_section_check_keys(const struct rg_section *sec,
    const char *const *allowed, struct rg_error *err)
{
	int	rc = 0;

	for (size_t i = 0; i < sec->n; i++) {
		const char	*k = sec->kv[i].key;
		bool		 ok = strcmp(k, "type") == 0;

		for (size_t j = 0; !ok && allowed != NULL &&
		    allowed[j] != NULL; j++)
			ok = strcmp(k, allowed[j]) == 0;
		if (ok)
			continue;
		rg_error_append(err, "%s:%d: [backend %s] key '%s': unknown "
		    "key for this backend type", sec->file ? sec->file : "-",
		    sec->kv[i].line, sec->name, k);
		rc = -1;
	}
	return rc;
}

