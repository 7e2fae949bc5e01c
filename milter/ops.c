/* SPDX-License-Identifier: MIT */
/*
 * Starting and stopping the operator front doors, so that main.c needs
 * three calls: rg_ops_open (as root, before privileges are dropped),
 * rg_ops_start (once the engine exists, after daemonizing: threads do
 * not survive fork), rg_ops_stop (at shutdown).
 */
#include <string.h>

#include "log.h"
#include "ops.h"

static struct rg_ops_info	info;
static int			ctl_fd = -2;

int
rg_ops_open(const struct rg_conf *c, uid_t uid, struct rg_error *err)
{
	ctl_fd = rg_control_open(c, uid, err);
	return ctl_fd == -1 ? -1 : 0;
}

int
rg_ops_start(struct rg_engine *e, const char *conf_path, const char *sock,
    const char *policy_sock, struct rg_error *err)
{
	struct rg_runtime	*rt = rg_engine_acquire(e);
	int			 rc = 0;

	info.conf_path = conf_path;
	info.milter_socket = sock[0] != '\0' ? sock : "none";
	info.policy_socket = policy_sock[0] != '\0' ? policy_sock : "none";
	info.started = time(NULL);
	info.engine = e;
	if (ctl_fd >= 0) {
		if (rg_control_start(ctl_fd, &info) != 0) {
			rg_error_set(err, "cannot start the control thread");
			rc = -1;
		} else
			rg_info("control socket %s", rt->conf->control_socket);
	}
	if (rc == 0 && rg_metrics_start(rt->conf, &info, err) != 0)
		rc = -1;
	else if (rc == 0 && rt->conf->metrics_listen[0] != '\0')
		rg_info("metrics on http://%s/metrics", rt->conf->metrics_listen);
	rg_runtime_unref(rt);
	return rc;
}

void
rg_ops_stop(const struct rg_conf *c)
{
	rg_metrics_stop();
	if (ctl_fd >= 0)
		rg_control_unlink(c);
}
