/* SPDX-License-Identifier: MIT */
/*
 * The configuration loader: INI text to an immutable, refcounted struct
 * rg_conf, and the lookups on it (rg_conf_policy_for, rg_conf_backend).
 *
 * Loading runs in two passes. Pass 1 (conf_read.c) reads the lines into
 * raw sections, every key kept as text with its line. Pass 2 (here)
 * interprets them through the declarative key table (conf_keys.c), then
 * resolves [domain] inheritance and backend references. Every problem is
 * collected and handed over in line order, each naming file, line and
 * key, so an operator sees all of them at once; nothing is silently
 * defaulted. [backend NAME] sections stay raw for their drivers.
 *
 * It must not open backends, files other than the config, or sockets.
 * Locking: none. A load touches only its own memory; a loaded conf is
 * never written again, only its refcount (atomic builtins) changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_int.h"

#define CONF_FILE_MAX	(4u << 20)	/* a bigger config is a mistake */

/* ---- pass 2: raw sections to the model ---- */

static void
policy_free(struct rg_policy *p)
{
	rg_list_free(&p->backends);
	free(p->backend_idx);
	p->backend_idx = NULL;
	free(p->subaddress_delimiter);
	p->subaddress_delimiter = NULL;
	rg_list_free(&p->always_accept);
	rg_netlist_free(&p->trusted_networks);
}

static void
conf_free(struct rg_conf *c)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &rg_conf_keys[i];

		if (!k->in_policy)
			rg_conf_field_free(k, rg_conf_field(k, c, NULL));
	}
	policy_free(&c->policy);
	for (size_t i = 0; i < c->ndomains; i++) {
		free(c->domain[i].name);
		policy_free(&c->domain[i].policy);
	}
	free(c->domain);
	for (size_t i = 0; i < c->nbackends; i++) {
		struct rg_section *s = &c->backends[i];

		for (size_t j = 0; j < s->n; j++) {
			free(s->kv[j].key);
			free(s->kv[j].value);
		}
		free(s->kv);
		free(s->name);
	}
	free(c->backends);
	free(c->path);
	free(c);
}

/* Where each key was set: line per key table index, 0 = unset. */
struct seen {
	int	line[NKEYS];
};

static void
interpret_kv(struct loader *ld, struct raw_sec *s, const struct rg_kv *kv,
    struct rg_conf *c, struct rg_policy *pol, struct seen *seen)
{
	const struct key	*k;
	char			 why[512], show[VALUE_SHOW];
	size_t			 idx;

	rg_conf_show(show, sizeof(show), kv->key);
	if (s->kind == SK_NONE) {
		rg_conf_lerr(ld, kv->line, "key '%s': outside of any [section]",
		    show);
		return;
	}
	if (s->kind == SK_DOMAIN && strcmp(kv->key, "domains") == 0) {
		rg_conf_lerr(ld, kv->line, "[%s] key 'domains': not allowed "
		    "in a [domain] section (it is the domain itself)",
		    s->label);
		return;
	}
	if ((k = rg_conf_key_find(s->kind, kv->key)) == NULL) {
		rg_conf_lerr(ld, kv->line, "[%s] key '%s': unknown key",
		    s->label, show);
		return;
	}
	idx = (size_t)(k - rg_conf_keys);
	if (seen->line[idx] != 0) {
		rg_conf_lerr(ld, kv->line, "[%s] key '%s': duplicate key "
		    "(first at line %d)", s->label, show, seen->line[idx]);
		return;
	}
	seen->line[idx] = kv->line;
	if (rg_conf_field_set(k, rg_conf_field(k, c, pol), kv->value, why,
	    sizeof(why)) == -1) {
		/* A hint for the common slip: '#' starts no inline comment. */
		const char *hint = strstr(kv->value, " #") != NULL ||
		    strstr(kv->value, "\t#") != NULL ? " (inline comments "
		    "start with ';', not '#')" : "";

		rg_conf_lerr(ld, kv->line, "[%s] key '%s': %s%s", s->label,
		    show, why, hint);
	}
}

static void
interpret_backend(struct loader *ld, struct raw_sec *s, struct rg_conf *c)
{
	struct rg_section	*b = &c->backends[c->nbackends];
	size_t			 j;

	for (size_t i = 0; i < s->n; i++)
		for (j = 0; j < i; j++)
			if (strcmp(s->kv[i].key, s->kv[j].key) == 0) {
				rg_conf_lerr(ld, s->kv[i].line, "[%s] key "
				    "'%s': duplicate key (first at line %d)",
				    s->label, s->kv[i].key, s->kv[j].line);
				break;
			}
	if (rg_section_get(&(struct rg_section){ .n = s->n, .kv = s->kv },
	    "type", NULL) == NULL)
		rg_conf_lerr(ld, s->line, "[%s]: no 'type' key (sqlite, ldap "
		    "or callahead)", s->label);
	/* Move the raw keys: the driver validates them at open. */
	b->name = s->name;
	s->name = NULL;
	b->file = c->path;
	b->line = s->line;
	b->n = s->n;
	b->kv = s->kv;
	s->kv = NULL;
	s->n = 0;
	c->nbackends++;
}

static size_t
backend_index(const struct rg_conf *c, const char *name)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcasecmp(c->backends[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static int
resolve_backends(struct loader *ld, struct rg_conf *c, struct rg_policy *p,
    const char *label, int line)
{
	if (p->backends.n == 0)
		return 0;
	if ((p->backend_idx = calloc(p->backends.n,
	    sizeof(*p->backend_idx))) == NULL) {
		ld->oom = true;
		return -1;
	}
	for (size_t i = 0; i < p->backends.n; i++) {
		if ((p->backend_idx[i] = backend_index(c,
		    p->backends.v[i])) != SIZE_MAX)
			continue;
		/* line == 0: inherited; reported once at [policy]. */
		if (line != 0)
			rg_conf_lerr(ld, line, "[%s] key 'backends': no "
			    "[backend %s] section", label, p->backends.v[i]);
	}
	return 0;
}

/* Room for every [domain] and [backend], and each domain's seen lines. */
static int
interpret_alloc(struct loader *ld, struct rg_conf *c, struct seen **dseen)
{
	size_t	nd = 0, nb = 0;

	*dseen = NULL;
	for (size_t i = 0; i < ld->nsecs; i++) {
		nd += ld->secs[i].kind == SK_DOMAIN;
		nb += ld->secs[i].kind == SK_BACKEND;
	}
	if ((nd > 0 && ((c->domain = calloc(nd, sizeof(*c->domain))) == NULL ||
	    (*dseen = calloc(nd, sizeof(**dseen))) == NULL)) ||
	    (nb > 0 && (c->backends = calloc(nb,
	    sizeof(*c->backends))) == NULL)) {
		free(*dseen);
		*dseen = NULL;
		ld->oom = true;
		return -1;
	}
	return 0;
}

/* Every raw section into c, in file order. */
static void
interpret_sections(struct loader *ld, struct rg_conf *c, struct seen *global,
    struct seen *dseen)
{
	for (size_t i = 0; i < ld->nsecs; i++) {
		struct raw_sec		*s = &ld->secs[i];
		struct rg_domain_conf	*d;

		switch (s->kind) {
		case SK_BAD:
			continue;
		case SK_BACKEND:
			interpret_backend(ld, s, c);
			continue;
		case SK_DOMAIN:
			d = &c->domain[c->ndomains];
			d->name = s->name;
			s->name = NULL;
			d->line = s->line;
			for (size_t j = 0; j < s->n; j++)
				interpret_kv(ld, s, &s->kv[j], c, &d->policy,
				    &dseen[c->ndomains]);
			c->ndomains++;
			continue;
		default:
			for (size_t j = 0; j < s->n; j++)
				interpret_kv(ld, s, &s->kv[j], c, &c->policy,
				    global);
			continue;
		}
	}
}

/* [policy] may come after [domain]: each domain inherits only now. */
static void
inherit(struct loader *ld, struct rg_conf *c, const struct seen *dseen)
{
	for (size_t i = 0; i < c->ndomains; i++) {
		struct rg_domain_conf *d = &c->domain[i];

		for (size_t k = 0; k < NKEYS; k++) {
			const struct key *key = &rg_conf_keys[k];

			if (!key->in_policy || dseen[i].line[k] != 0)
				continue;
			if (rg_conf_field_copy(key, rg_conf_field(key, c,
			    &d->policy), rg_conf_field(key, c,
			    &c->policy)) == -1)
				ld->oom = true;
		}
	}
}

/* The line where full ("section.key") was set in [policy] etc.; 0: not. */
static int
seen_line(const struct seen *seen, const char *full)
{
	return seen->line[rg_conf_key_by_full(full) - rg_conf_keys];
}

/* What no single key can check: references and keys that must agree. */
static void
cross_check(struct loader *ld, struct rg_conf *c, const struct seen *global,
    const struct seen *dseen)
{
	int	line;

	(void)resolve_backends(ld, c, &c->policy, "policy",
	    seen_line(global, "policy.backends"));
	if (c->domains.n > 0 && c->policy.backends.n == 0)
		rg_conf_lerr(ld, seen_line(global, "policy.domains"),
		    "[policy] key 'domains': domains are checked but "
		    "[policy] has no backends");
	for (size_t i = 0; i < c->ndomains; i++) {
		struct rg_domain_conf	*d = &c->domain[i];
		char			 label[300];

		(void)snprintf(label, sizeof(label), "domain %s", d->name);
		(void)resolve_backends(ld, c, &d->policy, label,
		    seen_line(&dseen[i], "policy.backends"));
		if (d->policy.backends.n == 0)
			rg_conf_lerr(ld, d->line, "[%s]: no backends (set "
			    "backends here or in [policy])", label);
	}
	if (c->socket[0] == '\0' && c->policy_socket[0] == '\0')
		rg_conf_lerr(ld, seen_line(global, "milter.socket"),
		    "[milter] key 'socket': none, and no [postfix_policy] "
		    "socket: the daemon would have no door for the MTA");
	if (c->harvest_tarpit_ms > c->harvest_tarpit_max_ms) {
		if ((line = seen_line(global, "harvest.tarpit")) == 0)
			line = seen_line(global, "harvest.tarpit_max");
		rg_conf_lerr(ld, line, "[harvest] key 'tarpit': longer than "
		    "tarpit_max");
	}
}

/* Pass 2: the raw sections of ld into c. */
static void
interpret(struct loader *ld, struct rg_conf *c)
{
	struct seen	 global;
	struct seen	*dseen;

	memset(&global, 0, sizeof(global));
	if (interpret_alloc(ld, c, &dseen) == -1)
		return;
	interpret_sections(ld, c, &global, dseen);
	c->all_domains = rg_list_contains_ci(&c->domains, "*");
	inherit(ld, c, dseen);
	cross_check(ld, c, &global, dseen);
	free(dseen);
}

/* ---- loading ---- */

static struct rg_conf *
load_text(const char *text, const char *name, struct rg_error *err)
{
	struct loader	 ld;
	struct rg_conf	*c;

	memset(&ld, 0, sizeof(ld));
	ld.file = name;
	ld.err = err;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->path = strdup(name)) == NULL ||
	    rg_conf_apply_defaults(c) == -1) {
		if (c != NULL)
			conf_free(c);
		rg_error_append(err, "%s: out of memory", name);
		return NULL;
	}
	c->refs = 1;
	if (rg_conf_read(&ld, text) == 0)
		interpret(&ld, c);
	rg_conf_read_free(&ld);
	rg_conf_lerr_flush(&ld);
	if (ld.oom) {
		rg_error_append(err, "%s: out of memory", name);
		ld.nerr++;
	}
	if (ld.nerr > 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

/*
 * Clears err, then parses text. Returns a conf with one reference (free
 * with rg_conf_unref) or NULL with all errors, in line order, in err.
 */
struct rg_conf *
rg_conf_load_string(const char *text, const char *name, struct rg_error *err)
{
	rg_error_clear(err);
	return load_text(text != NULL ? text : "", name != NULL ? name :
	    "(string)", err);
}

/*
 * The whole of fd (a regular file of at most CONF_FILE_MAX bytes) as a
 * C string the caller frees, or NULL with the reason in err.
 */
static char *
read_file(int fd, const char *path, struct rg_error *err)
{
	struct stat	 st;
	char		*buf;
	size_t		 got = 0;
	ssize_t		 n;
	int		 saved;

	if (fstat(fd, &st) == -1) {
		saved = errno;
		rg_error_append(err, "%s: cannot stat: %s", path,
		    strerror(saved));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		rg_error_append(err, "%s: not a regular file", path);
		return NULL;
	}
	if ((uint64_t)st.st_size > CONF_FILE_MAX) {
		rg_error_append(err, "%s: larger than %u bytes", path,
		    CONF_FILE_MAX);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		rg_error_append(err, "%s: out of memory", path);
		return NULL;
	}
	/* Read what fstat promised, bounded: a growing file is cut there. */
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			rg_error_append(err, "%s: read: %s", path,
			    strerror(saved));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL) {
		int line = 1;

		for (const char *p = buf; *p != '\0'; p++)
			line += *p == '\n';
		rg_error_append(err, "%s:%d: NUL byte in the file", path,
		    line);
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Reads path (a regular file up to 4 MiB, no NUL bytes; blocks on the
 * read) and parses it as rg_conf_load_string does.
 */
struct rg_conf *
rg_conf_load(const char *path, struct rg_error *err)
{
	struct rg_conf	*c = NULL;
	char		*buf;
	int		 fd, saved;

	rg_error_clear(err);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		rg_error_append(err, "%s: cannot open: %s", path,
		    strerror(saved));
		return NULL;
	}
	if ((buf = read_file(fd, path, err)) != NULL)
		c = load_text(buf, path, err);
	free(buf);
	(void)close(fd);
	return c;
}

/* The defaults with one reference; NULL only when out of memory. */
struct rg_conf *
rg_conf_defaults(void)
{
	return load_text("", "(defaults)", NULL);
}

/* Takes one more reference; any thread, lock-free. Returns c. */
struct rg_conf *
rg_conf_ref(struct rg_conf *c)
{
	if (c != NULL)
		(void)__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

/* Drops one reference; the last one frees everything. */
void
rg_conf_unref(struct rg_conf *c)
{
	if (c == NULL)
		return;
	/* Release our writes; the last one acquires all of them. */
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		conf_free(c);
}

/*
 * Never blocks, allocates nothing; the pointer lives as long as the
 * caller's reference on c.
 */
const struct rg_policy *
rg_conf_policy_for(const struct rg_conf *c, const char *domain)
{
	size_t	dlen;

	if (c == NULL || domain == NULL)
		return NULL;
	for (size_t i = 0; i < c->ndomains; i++)
		if (strcasecmp(c->domain[i].name, domain) == 0)
			return &c->domain[i].policy;
	if (c->all_domains)
		return &c->policy;
	dlen = strlen(domain);
	for (size_t i = 0; i < c->domains.n; i++) {
		const char	*d = c->domains.v[i];
		size_t		 len = strlen(d);

		if (d[0] != '.') {
			if (strcasecmp(d, domain) == 0)
				return &c->policy;
			continue;
		}
		/* ".example.com": strict subdomains, not the parent. */
		if (dlen > len && strcasecmp(domain + dlen - len, d) == 0)
			return &c->policy;
	}
	return NULL;
}

/* Case-insensitive, as [backend] names are unique that way. */
const struct rg_section *
rg_conf_backend(const struct rg_conf *c, const char *name)
{
	size_t	i;

	if (c == NULL || name == NULL)
		return NULL;
	i = backend_index(c, name);
	return i == SIZE_MAX ? NULL : &c->backends[i];
}
