/* SPDX-License-Identifier: MIT */
/*
 * The INI reader, and pass 1 of loading: text to raw sections, every key
 * kept as text with its line number, every syntax error collected.
 *
 * Why our own reader and not inih: the loader must name the line of
 * every key and every section header (also of a section without keys),
 * report every bad line, not only the first, and tell a continuation
 * line from a repeated key. inih's handler sees none of that (Debian
 * builds it without INI_HANDLER_LINENO and with a 200-byte line limit
 * that splits longer lines silently), so keeping it meant classifying
 * every line a second time, in step with one inih release, around the
 * library. Reading the lines once is smaller and clearer, and leaves no
 * line limit. The syntax is inih's (r55, as Debian builds it), so every
 * file that loaded before loads the same:
 *
 *	- lines end at LF; CR and other white space at either end is
 *	  dropped; a UTF-8 BOM at the very start is skipped;
 *	- a line whose first non-blank character is ';' or '#' is a
 *	  comment, and so is a blank line;
 *	- "[NAME]" is a section header (" ;" may start a comment in it);
 *	- "KEY = VALUE" or "KEY: VALUE" (the first '=' or ':') is a key;
 *	  in a value, ';' after white space starts a comment ('#' does not);
 *	- an indented line after a key continues its value (comments and
 *	  blank lines in between do not end the key; a header does).
 *
 * It must not interpret keys or values (conf.c and conf_keys.c do), nor
 * stop at the first error. Locking: none; a load touches only its own
 * loader.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_int.h"

/* ---- the reader ---- */

/* Start reading text, a C string; the items point into it. */
void
rg_ini_init(struct rg_ini *ini, const char *text)
{
	memset(ini, 0, sizeof(*ini));
	ini->p = text;
	/* A BOM is part of no line. */
	if (strncmp(text, "\xef\xbb\xbf", 3) == 0)
		ini->p += 3;
}

/* The first of chars in [s, end), or a ';' after white space, or end. */
static const char *
find_chars_or_comment(const char *s, const char *end, const char *chars)
{
	bool	was_space = false;

	for (; s < end; s++) {
		if (chars != NULL && strchr(chars, *s) != NULL)
			break;
		if (was_space && *s == ';')
			break;
		was_space = isspace((unsigned char)*s);
	}
	return s;
}

static const char *
rskip(const char *start, const char *end)
{
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	return end;
}

/* The value in [s, end): comment cut first, so "= ;x" is empty. */
static void
item_value(struct rg_ini_item *it, const char *s, const char *end)
{
	end = find_chars_or_comment(s, end, NULL);
	while (s < end && isspace((unsigned char)*s))
		s++;
	end = rskip(s, end);
	it->value = s;
	it->valuelen = (size_t)(end - s);
}

/* start..end is a non-blank line that starts with '['. */
static void
read_header(struct rg_ini *ini, struct rg_ini_item *it, const char *start,
    const char *end)
{
	const char	*rb = find_chars_or_comment(start + 1, end, "]");
	const char	*after;

	if (rb == end || *rb != ']') {
		it->kind = RG_INI_ERROR;
		it->error = "section header without ']'";
		return;
	}
	it->kind = RG_INI_SECTION;
	it->name = start + 1;
	it->namelen = (size_t)(rb - start - 1);
	for (after = rb + 1; after < end && isspace((unsigned char)*after);
	    after++)
		;
	it->trailing = after < end && *after != ';' && *after != '#';
	ini->in_key = false;
}

/* start..end is a non-blank, non-comment line, not a header. */
static void
read_key(struct rg_ini *ini, struct rg_ini_item *it, const char *start,
    const char *end)
{
	const char	*sep = find_chars_or_comment(start, end, "=:");

	if (sep == end || (*sep != '=' && *sep != ':')) {
		it->kind = RG_INI_ERROR;
		it->error = "expected 'key = value', '[section]' or a comment";
		return;
	}
	it->kind = RG_INI_KEY;
	it->name = start;
	it->namelen = (size_t)(rskip(start, sep) - start);
	item_value(it, sep + 1, end);
	/* A key without a name has nothing to continue. */
	ini->in_key = it->namelen > 0;
}

/*
 * The next item, skipping blank and comment lines; RG_INI_END at the end
 * of the text. Never fails and allocates nothing.
 */
void
rg_ini_next(struct rg_ini *ini, struct rg_ini_item *it)
{
	const char	*line, *start, *end, *nl;

	memset(it, 0, sizeof(*it));
	for (;;) {
		if (*ini->p == '\0') {
			it->kind = RG_INI_END;
			it->line = ini->line;
			return;
		}
		line = ini->p;
		nl = strchr(line, '\n');
		end = nl != NULL ? nl : line + strlen(line);
		ini->p = nl != NULL ? nl + 1 : end;
		it->line = ++ini->line;
		end = rskip(line, end);
		for (start = line; start < end &&
		    isspace((unsigned char)*start); start++)
			;
		if (start == end || *start == ';' || *start == '#')
			continue;
		if (ini->in_key && start > line) {
			it->kind = RG_INI_CONT;
			item_value(it, start, end);
		} else if (*start == '[')
			read_header(ini, it, start, end);
		else
			read_key(ini, it, start, end);
		return;
	}
}

/* ---- growing arrays (sections, keys, errors, lists) ---- */

/*
 * Room for one more element in the array at *arrayp (n used of *cap,
 * each size bytes), doubling from first. 0, or -1 when out of memory
 * (the array is then as it was). arrayp is a pointer to the array's
 * pointer, of any element type.
 */
int
rg_conf_grow(void *arrayp, size_t n, size_t *cap, size_t first, size_t size)
{
	void	*old, *grown;
	size_t	 ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? 2 * *cap : first;
	memcpy(&old, arrayp, sizeof(old));
	if ((grown = realloc(old, ncap * size)) == NULL)
		return -1;
	memcpy(arrayp, &grown, sizeof(grown));
	*cap = ncap;
	return 0;
}

/* ---- errors, in line order ---- */

/*
 * Note one error at line: "FILE:LINE: " + the message. Kept until
 * rg_conf_lerr_flush, so both passes' errors reach the user by line.
 */
void
rg_conf_lerr(struct loader *ld, int line, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->nerr++;
	if (rg_conf_grow(&ld->msgs, ld->nmsgs, &ld->capmsgs, 16,
	    sizeof(*ld->msgs)) == -1)
		goto direct;
	if (asprintf(&ld->msgs[ld->nmsgs].text, "%s:%d: %s", ld->file, line,
	    msg) == -1)
		goto direct;
	ld->msgs[ld->nmsgs].line = line;
	ld->msgs[ld->nmsgs].seq = ld->nerr;
	ld->nmsgs++;
	return;
direct:
	/* Out of memory: unsorted beats lost. */
	rg_error_append(ld->err, "%s:%d: %s", ld->file, line, msg);
}

static int
lmsg_cmp(const void *a, const void *b)
{
	const struct lmsg *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand the errors to the caller in file order, whichever pass found them. */
void
rg_conf_lerr_flush(struct loader *ld)
{
	if (ld->nmsgs > 0)
		qsort(ld->msgs, ld->nmsgs, sizeof(*ld->msgs), lmsg_cmp);
	for (size_t i = 0; i < ld->nmsgs; i++) {
		rg_error_append(ld->err, "%s", ld->msgs[i].text);
		free(ld->msgs[i].text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->nmsgs = ld->capmsgs = 0;
}

/* ---- pass 1: items to raw sections ---- */

static struct raw_sec *
sec_add(struct loader *ld, enum sec_kind kind, const char *name,
    const char *label, int line)
{
	struct raw_sec	*s;

	if (rg_conf_grow(&ld->secs, ld->nsecs, &ld->capsecs, 8,
	    sizeof(*ld->secs)) == -1)
		goto oom;
	s = &ld->secs[ld->nsecs];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->line = line;
	s->name = name ? strdup(name) : NULL;
	s->label = strdup(label);
	if ((name != NULL && s->name == NULL) || s->label == NULL) {
		free(s->name);
		free(s->label);
		goto oom;
	}
	ld->nsecs++;
	return s;
oom:
	ld->oom = true;
	return NULL;
}

/* Free the raw sections (what pass 2 did not move into the conf). */
void
rg_conf_read_free(struct loader *ld)
{
	for (size_t i = 0; i < ld->nsecs; i++) {
		struct raw_sec	*s = &ld->secs[i];

		for (size_t j = 0; j < s->n; j++) {
			free(s->kv[j].key);
			free(s->kv[j].value);
		}
		free(s->kv);
		free(s->name);
		free(s->label);
	}
	free(ld->secs);
	ld->secs = NULL;
	ld->nsecs = ld->capsecs = 0;
}

/* [domain NAME] or [backend NAME]: a valid name, not defined before. */
static void
named_header(struct loader *ld, const char *kind, char *name, int line)
{
	char		 label[2 * 512 + 2];
	char		 show[VALUE_SHOW];
	bool		 dom = kind[0] == 'd';
	enum sec_kind	 k = dom ? SK_DOMAIN : SK_BACKEND;

	if (*name == '\0') {
		rg_conf_lerr(ld, line, "[%s]: missing name (write [%s NAME])",
		    kind, kind);
		(void)sec_add(ld, SK_BAD, NULL, kind, line);
		return;
	}
	rg_conf_show(show, sizeof(show), name);
	if (dom ? !rg_conf_norm_domain(name, false) :
	    !rg_conf_valid_name(name)) {
		rg_conf_lerr(ld, line, "[%s %s]: invalid %s name", kind, show,
		    kind);
		(void)sec_add(ld, SK_BAD, NULL, kind, line);
		return;
	}
	for (size_t i = 0; i < ld->nsecs; i++) {
		struct raw_sec *o = &ld->secs[i];

		if (o->kind != k || strcasecmp(o->name, name) != 0)
			continue;
		rg_conf_lerr(ld, line, "[%s %s]: defined twice (first at line "
		    "%d)", kind, name, o->line);
		(void)sec_add(ld, SK_BAD, NULL, kind, line);
		return;
	}
	(void)snprintf(label, sizeof(label), "%s %s", kind, name);
	(void)sec_add(ld, k, name, label, line);
}

/* The kind of a section without a name; SK_BAD if there is none. */
static enum sec_kind
plain_kind(const char *kind)
{
	static const struct {
		const char	*name;
		enum sec_kind	 kind;
	} plain[] = {
		{ "milter", SK_MILTER }, { "policy", SK_POLICY },
		{ "cache", SK_CACHE }, { "harvest", SK_HARVEST },
		{ "postfix_policy", SK_PFPOLICY },
		{ "control", SK_CONTROL }, { "metrics", SK_METRICS },
	};

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (strcmp(kind, plain[i].name) == 0)
			return plain[i].kind;
	return SK_BAD;
}

/* "[KIND]" or "[KIND NAME]": a new raw section, SK_BAD if invalid. */
static void
section_header(struct loader *ld, const struct rg_ini_item *it)
{
	char		 buf[512], *name, *kind, show[VALUE_SHOW];
	size_t		 len = it->namelen;
	enum sec_kind	 k;

	if (it->trailing) {
		rg_conf_lerr(ld, it->line, "text after ']' of a section "
		    "header");
		(void)sec_add(ld, SK_BAD, NULL, "?", it->line);
		return;
	}
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;	/* longer is invalid anyway */
	memcpy(buf, it->name, len);
	buf[len] = '\0';
	buf[rskip(buf, buf + len) - buf] = '\0';
	/* KIND, then NAME after white space: "[ backend  a ]" is fine. */
	for (kind = buf; isspace((unsigned char)*kind); kind++)
		;
	for (name = kind; *name != '\0' && !isspace((unsigned char)*name);
	    name++)
		;
	if (*name != '\0')
		for (*name++ = '\0'; isspace((unsigned char)*name); name++)
			;
	if (strcmp(kind, "domain") == 0 || strcmp(kind, "backend") == 0) {
		named_header(ld, kind, name, it->line);
		return;
	}
	if ((k = plain_kind(kind)) == SK_BAD) {
		rg_conf_show(show, sizeof(show), kind);
		rg_conf_lerr(ld, it->line, "[%s]: unknown section (milter, "
		    "policy, domain NAME, backend NAME, cache, harvest, control "
		    "or metrics)",
		    show);
		(void)sec_add(ld, SK_BAD, NULL, "?", it->line);
	} else if (*name != '\0') {
		rg_conf_lerr(ld, it->line, "[%s]: this section takes no name",
		    kind);
		(void)sec_add(ld, SK_BAD, NULL, kind, it->line);
	} else
		(void)sec_add(ld, k, NULL, kind, it->line);
}

/* A key, raw, into the last section (one before any [section]). */
static void
add_key(struct loader *ld, const struct rg_ini_item *it)
{
	struct raw_sec	*s;
	struct rg_kv	*kv;

	if (ld->nsecs == 0 && sec_add(ld, SK_NONE, NULL, "", 0) == NULL)
		return;
	s = &ld->secs[ld->nsecs - 1];
	if (rg_conf_grow(&s->kv, s->n, &s->cap, 8, sizeof(*s->kv)) == -1) {
		ld->oom = true;
		return;
	}
	kv = &s->kv[s->n];
	kv->key = strndup(it->name, it->namelen);
	kv->value = strndup(it->value, it->valuelen);
	kv->line = it->line;
	if (kv->key == NULL || kv->value == NULL) {
		free(kv->key);
		free(kv->value);
		ld->oom = true;
		return;
	}
	s->n++;
}

/* A continuation line: " " + its text onto the last key's value. */
static void
continue_key(struct loader *ld, const struct rg_ini_item *it)
{
	struct raw_sec	*s;
	struct rg_kv	*kv;
	size_t		 old;
	char		*nv;

	if (ld->nsecs == 0 || (s = &ld->secs[ld->nsecs - 1])->n == 0 ||
	    it->valuelen == 0)
		return;		/* its key was lost to an out of memory */
	kv = &s->kv[s->n - 1];
	old = strlen(kv->value);
	if ((nv = realloc(kv->value, old + it->valuelen + 2)) == NULL) {
		ld->oom = true;
		return;
	}
	if (old > 0)
		nv[old++] = ' ';
	memcpy(nv + old, it->value, it->valuelen);
	nv[old + it->valuelen] = '\0';
	kv->value = nv;
}

/*
 * Pass 1: read text into ld's raw sections, noting each syntax error.
 * Returns 0, or -1 when out of memory (ld->oom is then set too).
 */
int
rg_conf_read(struct loader *ld, const char *text)
{
	struct rg_ini		ini;
	struct rg_ini_item	it;

	rg_ini_init(&ini, text);
	for (rg_ini_next(&ini, &it); it.kind != RG_INI_END && !ld->oom;
	    rg_ini_next(&ini, &it)) {
		switch (it.kind) {
		case RG_INI_SECTION:
			section_header(ld, &it);
			break;
		case RG_INI_KEY:
			add_key(ld, &it);
			break;
		case RG_INI_CONT:
			continue_key(ld, &it);
			break;
		case RG_INI_ERROR:
			rg_conf_lerr(ld, it.line, "%s", it.error);
			break;
		case RG_INI_END:
			break;
		}
	}
	return ld->oom ? -1 : 0;
}
