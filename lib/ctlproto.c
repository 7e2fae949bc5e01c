/* SPDX-License-Identifier: MIT */
/*
 * The control protocol parser (see ctlproto.h). Pure; the fuzz target
 * test/fuzz/fuzz_control.c drives it with arbitrary bytes.
 */
#include <string.h>

#include "ctlproto.h"

static const struct {
	const char	*name;
	enum rg_ctl_cmd	 cmd;
	size_t		 min, max;	/* arguments */
} cmds[] = {
	{ "status", RG_CTL_STATUS, 0, 0 },
	{ "flush", RG_CTL_FLUSH, 1, RG_CTL_ARGS_MAX },
	{ "explain", RG_CTL_EXPLAIN, 1, 3 },
	{ "blocks", RG_CTL_BLOCKS, 0, 0 },
	{ "unblock", RG_CTL_UNBLOCK, 1, 1 },
	{ "reload", RG_CTL_RELOAD, 0, 0 },
};

static int
fail(char *why, size_t wlen, const char *msg)
{
	(void)snprintf(why, wlen, "%s", msg);
	return -1;
}

/* Split buf at TABs into fields; -1 on too many or empty ones. */
static int
split(char *buf, const char **f, size_t *n)
{
	char	*p = buf, *tab;

	*n = 0;
	for (;;) {
		if (*n == RG_CTL_ARGS_MAX + 1)
			return -1;
		f[(*n)++] = p;
		if ((tab = strchr(p, '\t')) == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	for (size_t i = 0; i < *n; i++)
		if (f[i][0] == '\0')
			return -1;
	return 0;
}

/* explain ADDRESS [--client IP], in either order. */
static int
explain_args(struct rg_ctl_req *req, const char **a, size_t n, char *why,
    size_t wlen)
{
	req->nargs = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(a[i], "--client") == 0) {
			if (i + 1 == n || req->client != NULL)
				return fail(why, wlen, "explain: --client "
				    "needs one IP address");
			req->client = a[++i];
		} else if (req->nargs == 0)
			req->args[req->nargs++] = a[i];
		else
			return fail(why, wlen, "explain takes one ADDRESS");
	}
	if (req->nargs != 1)
		return fail(why, wlen, "explain needs an ADDRESS");
	return 0;
}

int
rg_ctl_parse(const char *line, size_t len, struct rg_ctl_req *req,
    char *why, size_t wlen)
{
	const char	*f[RG_CTL_ARGS_MAX + 1];
	size_t		 n, i, c;

	memset(req, 0, sizeof(*req));
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return fail(why, wlen, "empty request");
	if (len > RG_CTL_LINE_MAX)
		return fail(why, wlen, "request too long");
	if (memchr(line, '\0', len) != NULL || memchr(line, '\n', len) != NULL)
		return fail(why, wlen, "NUL or LF inside the request");
	memcpy(req->buf, line, len);
	req->buf[len] = '\0';
	if (split(req->buf, f, &n) == -1)
		return fail(why, wlen, "empty field or too many arguments");
	i = 0;
	if (strcmp(f[0], "json") == 0) {
		req->json = true;
		if (++i == n)
			return fail(why, wlen, "no command");
	}
	for (c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
		if (strcmp(f[i], cmds[c].name) == 0)
			break;
	if (c == sizeof(cmds) / sizeof(cmds[0]))
		return fail(why, wlen, "unknown command (status, flush, "
		    "explain, blocks, unblock, reload)");
	req->cmd = cmds[c].cmd;
	i++;
	if (n - i < cmds[c].min || n - i > cmds[c].max) {
		(void)snprintf(why, wlen, "%s: wrong number of arguments",
		    cmds[c].name);
		return -1;
	}
	if (req->cmd == RG_CTL_EXPLAIN)
		return explain_args(req, f + i, n - i, why, wlen);
	for (; i < n; i++) {
		if (req->cmd == RG_CTL_FLUSH && strcmp(f[i], "--all") == 0) {
			if (n - i != 1 || req->nargs != 0)
				return fail(why, wlen, "flush: --all takes "
				    "no addresses");
			req->cmd = RG_CTL_FLUSH_ALL;
			return 0;
		}
		req->args[req->nargs++] = f[i];
	}
	return 0;
}

void
rg_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}
