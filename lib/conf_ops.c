/* SPDX-License-Identifier: MIT */
/*
 * Values of [control] and [metrics] (the key table in conf.c calls
 * rg_conf_ops_check), and the parser of `[metrics] listen` shared with
 * the daemon. Pure; no locks.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "conf.h"

/*
 * "HOST:PORT" with HOST an IPv4 literal or "[IPv6]": the address into
 * ss (AF_INET or AF_INET6, port set). 0 or -1.
 */
int
rg_conf_parse_listen(const char *v, struct sockaddr_storage *ss)
{
	char		 host[64];
	const char	*colon, *h = v;
	size_t		 hl;
	char		*end;
	unsigned long	 port;

	memset(ss, 0, sizeof(*ss));
	if ((colon = strrchr(v, ':')) == NULL || colon == v)
		return -1;
	hl = (size_t)(colon - v);
	if (*h == '[') {
		if (hl < 3 || v[hl - 1] != ']')
			return -1;
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port == 0 || port > 65535)
		return -1;
	if (v[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	}
	return 0;
}

int
rg_conf_ops_check(const char *key, const char *v, char *why, size_t wlen)
{
	struct sockaddr_storage	ss;
	struct sockaddr_un	sun;

	if (v[0] == '\0')
		return 0;
	if (strcmp(key, "control.socket") == 0) {
		if (strncmp(v, "unix:/", 6) != 0 || strlen(v + 5) >=
		    sizeof(sun.sun_path)) {
			(void)snprintf(why, wlen, "expected unix:/ABSOLUTE/PATH "
			    "(at most %zu bytes)", sizeof(sun.sun_path) - 1);
			return -1;
		}
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				(void)snprintf(why, wlen, "no spaces or control "
				    "characters in the path");
				return -1;
			}
		return 0;
	}
	if (strcmp(key, "control.group") == 0) {
		if (strlen(v) > 32 || strspn(v, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(v) ||
		    v[0] == '-') {
			(void)snprintf(why, wlen, "expected a group name");
			return -1;
		}
		return 0;
	}
	if (rg_conf_parse_listen(v, &ss) != 0) {
		(void)snprintf(why, wlen, "expected IPV4:PORT or [IPV6]:PORT, "
		    "e.g. 127.0.0.1:9469");
		return -1;
	}
	return 0;
}
