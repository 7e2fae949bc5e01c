/* SPDX-License-Identifier: MIT */
/*
 * The call-ahead backend's configuration: reads a [backend] section of
 * type callahead (hosts, port, helo, mail_from, timeouts, limits,
 * accept-all checks) into a struct ca.
 *
 * It must not connect or resolve anything (the hosts are checked for
 * their form only: open() runs at start and at reload).
 *
 * Locking: none; an instance is configured by one thread before use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "callahead_priv.h"

/* A host name or address literal: letters, digits, '.', '-', ':', '_'. */
static bool
host_ok(const char *s, size_t len)
{
	if (len == 0 || len > CA_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char	c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == ':' || c == '_'))
			return false;
	}
	return true;
}

static bool
port_ok(const char *s, size_t len, char out[8])
{
	uint64_t	v;
	char		tmp[8];

	if (len == 0 || len > 5)
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (rg_parse_uint(tmp, 65535, &v) != 0 || v == 0)
		return false;
	snprintf(out, 8, "%u", (unsigned)v);
	return true;
}

/*
 * Split one hosts entry: "host", "host:port", "[v6]", "[v6]:port", or a
 * bare IPv6 literal (two or more colons). 0 or -1 with err set.
 */
static int
parse_host(const struct rg_section *sec, const char *ent, const char *defport,
    struct ca_host *h, struct rg_error *err)
{
	const char	*host = ent, *port = NULL, *p;
	size_t		 hlen;

	if (ent[0] == '[') {
		if ((p = strchr(ent, ']')) == NULL)
			goto bad;
		host = ent + 1;
		hlen = (size_t)(p - host);
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			goto bad;
		if (memchr(host, ':', hlen) == NULL)
			goto bad;
	} else if ((p = strchr(ent, ':')) != NULL &&
	    strchr(p + 1, ':') == NULL) {
		hlen = (size_t)(p - ent);
		port = p + 1;
	} else
		hlen = strlen(ent);
	if (!host_ok(host, hlen))
		goto bad;
	if (port == NULL)
		port = defport;
	if (!port_ok(port, strlen(port), h->port))
		goto bad;
	memcpy(h->host, host, hlen);
	h->host[hlen] = '\0';
	snprintf(h->label, sizeof(h->label), strchr(h->host, ':') != NULL ?
	    "[%s]:%s" : "%s:%s", h->host, h->port);
	return 0;
bad:
	rg_section_error(sec, "hosts", err, "'%s' is not host, host:port, "
	    "[ipv6] or [ipv6]:port", ent);
	return -1;
}

/* port, hosts. */
static int
conf_hosts(struct ca *ca, const struct rg_section *sec, struct rg_error *err)
{
	struct rg_list	 hosts = { 0, NULL };
	const char	*port;
	char		 defport[8];
	int		 rc = -1;

	if (rg_section_string(sec, "port", "25", &port, err) != 0)
		return -1;
	if (!port_ok(port, strlen(port), defport)) {
		rg_section_error(sec, "port", err, "'%s' is not a port", port);
		return -1;
	}
	if (rg_section_list(sec, "hosts", &hosts, err) != 0)
		return -1;
	if (hosts.n == 0) {
		rg_section_error(sec, "hosts", err, "required: the internal "
		    "server(s) to probe");
		goto out;
	}
	if (hosts.n > CA_MAX_HOSTS) {
		rg_section_error(sec, "hosts", err, "at most %d hosts",
		    CA_MAX_HOSTS);
		goto out;
	}
	for (size_t i = 0; i < hosts.n; i++)
		if (parse_host(sec, hosts.v[i], defport, &ca->hosts[i], err)
		    != 0)
			goto out;
	ca->nhosts = hosts.n;
	rc = 0;
out:
	rg_list_free(&hosts);
	return rc;
}

/*
 * helo defaults to the system's host name, like Postfix's myhostname,
 * but only a fully qualified one: internal servers commonly refuse a
 * bare name, and a wrong guess fails every probe.
 */
static int
conf_helo(struct ca *ca, const struct rg_section *sec, struct rg_error *err)
{
	const char	*s;

	if (rg_section_string(sec, "helo", NULL, &s, err) != 0)
		return -1;
	if (s == NULL) {
		if (gethostname(ca->helo, sizeof(ca->helo)) != 0 ||
		    memchr(ca->helo, '\0', sizeof(ca->helo)) == NULL ||
		    strchr(ca->helo, '.') == NULL) {
			ca->helo[sizeof(ca->helo) - 1] = '\0';
			rg_section_error(sec, "helo", err, "not set, and the "
			    "host name '%s' is not fully qualified; set helo",
			    ca->helo);
			return -1;
		}
	} else if ((!host_ok(s, strlen(s)) && !(s[0] == '[' &&
	    s[strlen(s) - 1] == ']' && host_ok(s + 1, strlen(s) - 2)))) {
		rg_section_error(sec, "helo", err, "'%s' is not a host name "
		    "or [address literal]", s);
		return -1;
	} else
		snprintf(ca->helo, sizeof(ca->helo), "%s", s);
	return 0;
}

static int
conf_mail_from(struct ca *ca, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*s;
	size_t		 len;

	if (rg_section_string(sec, "mail_from", "<>", &s, err) != 0)
		return -1;
	len = strlen(s);
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	if (len >= sizeof(ca->mail_from) || !rg_smtp_path_ok(s, len) ||
	    (len > 0 && memchr(s, '@', len) == NULL)) {
		rg_section_error(sec, "mail_from", err, "'%s' is not "
		    "<> or an address", s);
		return -1;
	}
	memcpy(ca->mail_from, s, len);
	ca->mail_from[len] = '\0';
	return 0;
}

/* timeout, max_connections, idle_timeout, accept_all_check,
 * check_domains. */
static int
conf_limits(struct ca *ca, const struct rg_section *sec,
    struct rg_error *err)
{
	uint64_t	v;

	/* 3s: two hosts' worth stays within the default 8s deadline, so
	 * the defaults pass `rcptgate -n` without a warning. */
	if (rg_section_duration(sec, "timeout", CA_DEFAULT_TIMEOUT_MS,
	    &ca->timeout_ms, err) != 0)
		return -1;
	if (ca->timeout_ms == 0) {
		rg_section_error(sec, "timeout", err, "must be more than 0");
		return -1;
	}
	if (rg_section_uint(sec, "max_connections", 4, CA_MAX_CONNECTIONS,
	    &v, err) != 0)
		return -1;
	if (v == 0) {
		rg_section_error(sec, "max_connections", err,
		    "must be 1..%d", CA_MAX_CONNECTIONS);
		return -1;
	}
	ca->max_conn = (unsigned)v;
	if (rg_section_duration(sec, "idle_timeout", 30000, &ca->idle_ms,
	    err) != 0)
		return -1;
	if (rg_section_duration(sec, "accept_all_check", 3600000,
	    &ca->accept_all_ms, err) != 0)
		return -1;
	if (rg_section_list(sec, "check_domains", &ca->check_domains,
	    err) != 0)
		return -1;
	for (size_t i = 0; i < ca->check_domains.n; i++) {
		const char	*d = ca->check_domains.v[i];

		if (!host_ok(d, strlen(d)) || strchr(d, ':') != NULL) {
			rg_section_error(sec, "check_domains", err,
			    "'%s' is not a domain", d);
			return -1;
		}
	}
	return 0;
}

int
rg_ca_parse_keys(struct ca *ca, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*s;

	if (rg_section_string(sec, "starttls", "off", &s, err) != 0)
		return -1;
	if (strcmp(s, "off") != 0 && strcmp(s, "no") != 0) {
		rg_section_error(sec, "starttls", err, "'%s': STARTTLS is not "
		    "built into this rcptgate (no TLS library); use off", s);
		return -1;
	}
	if (conf_hosts(ca, sec, err) != 0 || conf_helo(ca, sec, err) != 0 ||
	    conf_mail_from(ca, sec, err) != 0 ||
	    conf_limits(ca, sec, err) != 0)
		return -1;
	return 0;
}
