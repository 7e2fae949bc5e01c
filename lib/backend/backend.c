/* SPDX-License-Identifier: MIT */
/*
 * The backend registry, the surrogate and the dispatch helpers.
 *
 * rg_backend_open() finds the driver named by a section's "type" key in
 * rg_backend_drivers[] and lets it read the rest of the section. A driver
 * that is configured right but cannot run now (open() returns -2) gets a
 * surrogate: the backend stays in the configuration, every lookup
 * tempfails (never a reject) and says why in a rate-limited log line, as
 * Postfix's surrogate dict does. A driver's failed lookups are warned
 * about here too, at most once a minute per backend. This file holds no
 * lock: each rate limit is an atomic word and a counter; the drivers
 * handle their own concurrency.
 * It must not cache and must not know any driver's internals.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_stats.h"
#include "log.h"
#include "rg_time.h"

/*
 * The drivers built in, one line each. A driver that is not listed here
 * but named in known_types[] below gets a "not available in this
 * build" error instead of "unknown type".
 */
const struct rg_backend_ops *const rg_backend_drivers[] = {
	&rg_backend_sqlite_ops,
	&rg_backend_ldap_ops,
	&rg_backend_callahead_ops,
	NULL
};

/* One extra driver for unit tests (rg_backend_set_test_driver). */
static const struct rg_backend_ops *test_driver;

/* Types the project knows of, built in or not. */
static const char *const known_types[] = { "sqlite", "ldap", "callahead",
	NULL };

/* Surrogate and failure warnings: one per backend per this many ms. */
#define SURROGATE_LOG_MS	60000

/* The surrogate's state, in b->priv (the failed driver left it unused). */
struct surrogate {
	_Atomic uint64_t	next_log_ms;	/* rg_now_ms() of next line */
	_Atomic uint64_t	suppressed;	/* lookups not logged since */
	int64_t			since;		/* wall-clock s of the open */
};

const char *
rg_result_str(enum rg_result r)
{
	switch (r) {
	case RG_FOUND:
		return "found";
	case RG_NOTFOUND:
		return "notfound";
	case RG_TEMPFAIL:
		return "tempfail";
	case RG_CONFIG:
		return "config";
	}
	return "invalid";
}

static const struct rg_backend_ops *
driver_find(const char *type)
{
	size_t	i;

	for (i = 0; rg_backend_drivers[i] != NULL; i++)
		if (strcmp(rg_backend_drivers[i]->type, type) == 0)
			return rg_backend_drivers[i];
	if (test_driver != NULL && strcmp(test_driver->type, type) == 0)
		return test_driver;
	return NULL;
}

void
rg_backend_set_test_driver(const struct rg_backend_ops *ops)
{
	test_driver = ops;
}

/* "sqlite, ldap": the built-in types, for error messages. */
static void
driver_names(char *buf, size_t len)
{
	size_t	i, used = 0;
	int	n;

	buf[0] = '\0';
	for (i = 0; rg_backend_drivers[i] != NULL && used < len; i++) {
		n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
		    rg_backend_drivers[i]->type);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int
type_is_known(const char *type)
{
	size_t	i;

	for (i = 0; known_types[i] != NULL; i++)
		if (strcmp(known_types[i], type) == 0)
			return 1;
	return 0;
}

/*
 * Open the driver named by sec's "type". Returns a backend (a surrogate
 * if the driver could not run now) or NULL with err set. The caller owns
 * the result and frees it with rg_backend_free. Does not block on the
 * network (drivers connect lazily); may read a local file.
 */
struct rg_backend *
rg_backend_open(const struct rg_section *sec, struct rg_error *err)
{
	const struct rg_backend_ops	*ops;
	struct rg_backend		*b;
	struct surrogate		*s;
	const char			*type;
	char				 names[256];
	int				 rc;

	type = rg_section_get(sec, "type", NULL);
	driver_names(names, sizeof(names));
	if (type == NULL || *type == '\0') {
		rg_section_error(sec, "type", err,
		    "missing; built-in types: %s", names);
		return NULL;
	}
	if ((ops = driver_find(type)) == NULL) {
		if (type_is_known(type))
			rg_section_error(sec, "type", err,
			    "'%s' is not available in this build", type);
		else
			rg_section_error(sec, "type", err,
			    "unknown type '%s'; built-in types: %s", type,
			    names);
		return NULL;
	}
	if (strlen(sec->name) >= sizeof(b->name)) {
		rg_section_error(sec, "type", err,
		    "backend name longer than %d characters", RG_NAME_MAX - 1);
		return NULL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		rg_error_set(err, "%s:%d: [backend %s]: out of memory",
		    sec->file, sec->line, sec->name);
		return NULL;
	}
	b->ops = ops;
	memcpy(b->name, sec->name, strlen(sec->name) + 1);

	rc = ops->open(b, sec, err);
	if (rc == 0)
		return b;
	if (rc != -2) {
		free(b);
		return NULL;
	}

	/* Configured right but cannot run: keep it as a surrogate. */
	b->priv = NULL;
	b->surrogate_reason = strdup(err != NULL && err->msg[0] != '\0' ?
	    err->msg : "driver could not start");
	s = calloc(1, sizeof(*s));
	if (b->surrogate_reason == NULL || s == NULL) {
		free(b->surrogate_reason);
		free(s);
		free(b);
		rg_error_set(err, "%s:%d: [backend %s]: out of memory",
		    sec->file, sec->line, sec->name);
		return NULL;
	}
	s->since = (int64_t)(rg_wall_ms() / 1000);
	b->priv = s;
	rg_warnx("backend %s (%s) unavailable, every lookup tempfails: %s",
	    b->name, ops->type, b->surrogate_reason);
	return b;
}

/* Free a backend from rg_backend_open. NULL allowed. No lookup may run. */
void
rg_backend_free(struct rg_backend *b)
{
	if (b == NULL)
		return;
	if (b->surrogate_reason != NULL) {
		free(b->priv);
		free(b->surrogate_reason);
	} else if (b->ops != NULL && b->ops->close != NULL)
		b->ops->close(b);
	free(b);
}

/* One tempfail from a surrogate; logs at most once a minute. */
static enum rg_result
surrogate_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	struct surrogate	*s = b->priv;
	uint64_t		 now, next, skipped;

	rg_error_set(err, "backend %s unavailable: %s", b->name,
	    b->surrogate_reason);
	if (s == NULL)
		return RG_TEMPFAIL;
	now = rg_now_ms();
	next = atomic_load(&s->next_log_ms);
	if (now < next ||
	    !atomic_compare_exchange_strong(&s->next_log_ms, &next,
	    now + SURROGATE_LOG_MS)) {
		atomic_fetch_add(&s->suppressed, 1);
		return RG_TEMPFAIL;
	}
	skipped = atomic_exchange(&s->suppressed, 0);
	rg_warnx("backend %s unavailable, lookup tempfails: %s "
	    "(%llu more lookups since the last message)", b->name,
	    b->surrogate_reason, (unsigned long long)skipped);
	return RG_TEMPFAIL;
}

/*
 * Warn about a failed lookup, at most once a minute per backend: during
 * an outage every recipient fails, and one line per failure would bury
 * the verdicts (each of which names its own reason).
 */
static void
fail_warn(struct rg_backend *b, const struct rg_query *q, enum rg_result r,
    const struct rg_error *err)
{
	char		 key[128], why[256];
	uint64_t	 now, next, skipped;

	now = rg_now_ms();
	next = atomic_load(&b->fail_next_log_ms);
	if (now < next ||
	    !atomic_compare_exchange_strong(&b->fail_next_log_ms, &next,
	    now + SURROGATE_LOG_MS)) {
		atomic_fetch_add(&b->fail_suppressed, 1);
		return;
	}
	skipped = atomic_exchange(&b->fail_suppressed, 0);
	/* the error may quote a server's reply: escape it like the key */
	rg_log_escape(key, sizeof(key), q->key != NULL ? q->key : "");
	rg_log_escape(why, sizeof(why), err != NULL && err->msg[0] != '\0' ?
	    err->msg : rg_result_str(r));
	rg_warnx("backend %s: lookup of <%s> failed: %s (%llu more failures "
	    "not logged since the last message)", b->name, key, why,
	    (unsigned long long)skipped);
}

/*
 * One lookup through b's driver, or the surrogate. Returns the driver's
 * result; RG_TEMPFAIL when the deadline has already passed. Blocks at
 * most until q->deadline_ms (the driver's promise).
 */
enum rg_result
rg_backend_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	enum rg_result	r;
	uint64_t	t0 = rg_bstat_now_us();

	if (b->surrogate_reason != NULL) {
		r = surrogate_lookup(b, q, err);
		rg_bstat_note(b->name, b->ops->type, r, rg_bstat_now_us() - t0);
		return r;
	}
	if (q->deadline_ms != 0 && rg_now_ms() >= q->deadline_ms) {
		rg_error_set(err, "backend %s: deadline passed before lookup",
		    b->name);
		return RG_TEMPFAIL;
	}
	r = b->ops->lookup(b, q, err);
	/* counters for metrics and `rcptgate-ctl status` (backend_stats.c) */
	rg_bstat_note(b->name, b->ops->type, r, rg_bstat_now_us() - t0);
	if (r == RG_TEMPFAIL || r == RG_CONFIG)
		fail_warn(b, q, r, err);
	return r;
}

/* The driver's data generation; 0 if it has none or is a surrogate. */
uint64_t
rg_backend_generation(struct rg_backend *b)
{
	if (b->surrogate_reason != NULL || b->ops->generation == NULL)
		return 0;
	return b->ops->generation(b);
}

/* Worst-case ms of one lookup; 0 if the driver does not say. */
uint64_t
rg_backend_worst_case_ms(struct rg_backend *b)
{
	if (b->surrogate_reason != NULL || b->ops->worst_case_ms == NULL)
		return 0;
	return b->ops->worst_case_ms(b);
}

/*
 * The live check for `rcptgate -n`: 0 if usable, -1 with err set. A
 * surrogate fails with its reason. warn may get warnings either way.
 * Blocks as long as the driver's check (a connect, a bind).
 */
int
rg_backend_check(struct rg_backend *b, struct rg_error *err,
    struct rg_error *warn)
{
	if (b->surrogate_reason != NULL) {
		rg_error_set(err, "backend %s unavailable: %s", b->name,
		    b->surrogate_reason);
		return -1;
	}
	if (b->ops->check == NULL)
		return 0;
	return b->ops->check(b, err, warn);
}

/*
 * Counters for SIGUSR2 into buf (always NUL-terminated; empty if the
 * driver keeps none). A surrogate says "unavailable" and never reaches
 * the driver, whose priv it does not have. Never blocks.
 */
void
rg_backend_stats(struct rg_backend *b, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	if (b->surrogate_reason != NULL) {
		snprintf(buf, len, "unavailable");
		return;
	}
	if (b->ops->stats != NULL)
		b->ops->stats(b, buf, len);
}

/* The driver's type name ("sqlite"), a surrogate's too. Never NULL. */
const char *
rg_backend_type(const struct rg_backend *b)
{
	return b->ops != NULL && b->ops->type != NULL ? b->ops->type : "?";
}

/*
 * Each target's recorded state (see backend.h). A surrogate answers for
 * its driver, whose priv it does not have. Never blocks on a backend.
 */
size_t
rg_backend_targets(struct rg_backend *b, struct rg_target_state *out,
    size_t max)
{
	const struct surrogate	*s;

	if (max == 0)
		return 0;
	if (b->surrogate_reason != NULL) {
		/* the driver never ran: the backend itself is the target */
		s = b->priv;
		(void)snprintf(out->target, sizeof(out->target), "%s",
		    b->name);
		out->up = 0;
		out->since = s != NULL ? s->since : 0;
		rg_log_escape(out->error, sizeof(out->error),
		    b->surrogate_reason);
		return 1;
	}
	if (b->ops->targets == NULL)
		return 0;
	return b->ops->targets(b, out, max);
}
