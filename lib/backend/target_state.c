/* SPDX-License-Identifier: MIT */
/*
 * Per-target up/down state (see target_state.h). The flag and the time
 * are atomics so the common case, a target that answers and was up
 * already, is one load; only a failure takes the leaf mutex that keeps
 * the error text whole for a reader.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "rg_time.h"
#include "target_state.h"

void
rg_tstate_init(struct rg_tstate *t)
{
	atomic_init(&t->up, -1);
	atomic_init(&t->since, 0);
	pthread_mutex_init(&t->mu, NULL);
	t->error[0] = '\0';
}

void
rg_tstate_destroy(struct rg_tstate *t)
{
	pthread_mutex_destroy(&t->mu);
}

static void
changed(struct rg_tstate *t)
{
	atomic_store(&t->since, (int64_t)(rg_wall_ms() / 1000));
}

void
rg_tstate_up(struct rg_tstate *t)
{
	/* the hot path: a lookup on a target that is up */
	if (atomic_load_explicit(&t->up, memory_order_relaxed) == 1)
		return;
	if (atomic_exchange(&t->up, 1) != 1)
		changed(t);
}

void
rg_tstate_down(struct rg_tstate *t, const char *target, const char *why)
{
	const char	*p = why != NULL ? strstr(why, target) : NULL;
	size_t		 n = strlen(target);

	/* "ldap://h/: connect failed: ..." says the target twice on the
	 * status line: keep what follows its name */
	if (p != NULL && n > 0 && strncmp(p + n, ": ", 2) == 0)
		why = p + n + 2;
	pthread_mutex_lock(&t->mu);
	rg_log_escape(t->error, sizeof(t->error), why != NULL && *why ?
	    why : "failed");
	pthread_mutex_unlock(&t->mu);
	if (atomic_exchange(&t->up, 0) != 0)
		changed(t);
}

void
rg_tstate_read(struct rg_tstate *t, const char *target,
    struct rg_target_state *out)
{
	/* escaped, and marked "..." if cut: never silently short */
	rg_log_escape(out->target, sizeof(out->target), target);
	out->up = atomic_load(&t->up);
	out->since = atomic_load(&t->since);
	out->error[0] = '\0';
	if (out->up != 0)
		return;
	pthread_mutex_lock(&t->mu);
	memcpy(out->error, t->error, sizeof(out->error));
	pthread_mutex_unlock(&t->mu);
}
