/* SPDX-License-Identifier: MIT */
/*
 * rcptgate-ctl: talk to the running daemon over its control socket
 * (protocol: lib/ctlproto.h). The socket comes from -s, else from the
 * [control] socket of the configuration (-c, default as the daemon's).
 *
 * Exit: 0 done; 1 the daemon refused the request (bad address, nothing
 * to unblock); 64 bad command line; 69 daemon not running (no socket,
 * refused); 77 no permission on the socket; 78 bad configuration.
 * Every failure is one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "ctlproto.h"

#ifndef RG_DEFAULT_CONF
#define RG_DEFAULT_CONF "/etc/rcptgate/rcptgate.conf"
#endif

static void
usage(void)
{
	fprintf(stderr, "usage: rcptgate-ctl [-c FILE] [-s SOCKET] [--json] "
	    "status | flush ADDRESS... | flush --all |\n"
	    "       explain ADDRESS [--client IP] | blocks | unblock PREFIX | "
	    "reload\n");
	exit(EX_USAGE);
}

static void die(int, const char *, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "rcptgate-ctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* The socket path: -s (with or without unix:), else the config's. */
static char *
socket_path(const char *opt_s, const char *conf_path)
{
	struct rg_conf	*c;
	struct rg_error	 err;
	char		*p, *nl;

	if (opt_s != NULL)
		return strdup(strncmp(opt_s, "unix:", 5) == 0 ? opt_s + 5 :
		    opt_s);
	rg_error_clear(&err);
	if ((c = rg_conf_load(conf_path, &err)) == NULL) {
		if ((nl = strchr(err.msg, '\n')) != NULL)
			*nl = '\0';
		die(EX_CONFIG, "%s", err.msg);
	}
	if (c->control_socket[0] == '\0')
		die(EX_CONFIG, "%s: no [control] socket (the daemon has no "
		    "control socket; or use -s)", conf_path);
	p = strdup(c->control_socket + 5);
	rg_conf_unref(c);
	return p;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, e;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die(EX_USAGE, "%s: socket path too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		die(EX_OSERR, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	e = errno;
	if (e == EACCES || e == EPERM)
		die(EX_NOPERM, "%s: permission denied (run as root or as a "
		    "member of the socket's group, [control] group)", path);
	if (e == ENOENT || e == ECONNREFUSED)
		die(EX_UNAVAILABLE, "%s: rcptgate is not running (%s)", path,
		    strerror(e));
	die(EX_UNAVAILABLE, "%s: %s", path, strerror(e));
}

/* argv -> one TAB-separated request line; checked with the parser. */
static char *
build_request(int json, int argc, char **argv)
{
	static char		 line[RG_CTL_LINE_MAX + 2];
	static struct rg_ctl_req req;
	char			 why[256];
	size_t			 len = 0;

	if (json)
		len = (size_t)snprintf(line, sizeof(line), "json");
	for (int i = 0; i < argc; i++) {
		if (strchr(argv[i], '\t') != NULL || strchr(argv[i], '\n'))
			die(EX_USAGE, "%s: TAB or newline in an argument",
			    argv[i]);
		if (argv[i][0] == '\0')
			die(EX_USAGE, "empty argument");
		len += (size_t)snprintf(line + len, len < sizeof(line) ?
		    sizeof(line) - len : 0, "%s%s", len ? "\t" : "", argv[i]);
		if (len >= RG_CTL_LINE_MAX)
			die(EX_USAGE, "request too long");
	}
	if (rg_ctl_parse(line, len, &req, why, sizeof(why)) != 0)
		die(EX_USAGE, "%s (see rcptgate-ctl(8))", why);
	line[len++] = '\n';
	line[len] = '\0';
	return line;
}

static int
exchange(int fd, const char *req)
{
	char	buf[8192], first[4200];
	size_t	flen = 0;
	ssize_t	n;
	int	in_first = 1;

	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		die(EX_UNAVAILABLE, "cannot send the request: %s",
		    strerror(errno));
	(void)shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		char	*p = buf, *nl;
		size_t	 k = (size_t)n;

		if (in_first) {
			nl = memchr(buf, '\n', k);
			size_t take = nl ? (size_t)(nl - buf) : k;

			if (flen + take >= sizeof(first))
				die(EX_PROTOCOL, "bad reply from the "
				    "daemon");
			memcpy(first + flen, buf, take);
			flen += take;
			if (nl == NULL)
				continue;
			first[flen] = '\0';
			in_first = 0;
			if (strncmp(first, "error\t", 6) == 0)
				die(1, "%s", first + 6);
			if (strcmp(first, "ok") != 0)
				die(EX_PROTOCOL, "bad reply from the "
				    "daemon");
			p = nl + 1;
			k -= take + 1;
		}
		fwrite(p, 1, k, stdout);
	}
	if (in_first)
		die(EX_UNAVAILABLE, "the daemon closed the connection without "
		    "a reply");
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*conf = RG_DEFAULT_CONF, *sock = NULL;
	int		 c, json = 0, fd, rc;
	char		*path, *req;

	/* "+": stop at the command, so flush --all and explain --client
	 * are the command's own options */
	while ((c = getopt_long(argc, argv, "+c:s:jh", lopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && strcmp(argv[argc - 1], "--json") == 0) {
		json = 1;	/* also accepted after the command */
		argc--;
	}
	if (argc == 0)
		usage();
	req = build_request(json, argc, argv);
	path = socket_path(sock, conf);
	fd = connect_to(path);
	free(path);
	rc = exchange(fd, req);
	(void)close(fd);
	return rc;
}
