/* SPDX-License-Identifier: MIT */
/*
 * A Postfix policy server that decides nothing: every request gets
 * "action=DUNNO". The floor for e2e_postfix.sh's configuration n: what
 * Postfix's policy client and any policy server's exchange cost, before
 * a lookup.
 *
 *   nullpolicy [-t] SOCKET-PATH
 *
 * Default: one thread, epoll over every connection. -t: one thread per
 * connection blocked in recv(2) (rcptgate's model, without its poll(2)).
 * Runs until killed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BUFSZ	16384

struct conn {
	int	fd;
	size_t	len;
	char	buf[BUFSZ];
};

/* Answer every complete request in c->buf; -1 when the peer is gone. */
static int
drain(struct conn *c)
{
	static const char	reply[] = "action=DUNNO\n\n";
	char			*p = c->buf, *end = c->buf + c->len, *nl;

	for (;;) {
		char	*req = p;
		int	 done = 0;

		while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			if (nl == p) {		/* the empty line */
				p = nl + 1;
				done = 1;
				break;
			}
			p = nl + 1;
		}
		if (!done) {
			p = req;
			break;
		}
		if (send(c->fd, reply, sizeof(reply) - 1, MSG_NOSIGNAL) < 0)
			return -1;
	}
	c->len = (size_t)(end - p);
	memmove(c->buf, p, c->len);
	return c->len == BUFSZ ? -1 : 0;
}

static int
readsome(struct conn *c)
{
	ssize_t	n = recv(c->fd, c->buf + c->len, BUFSZ - c->len, 0);

	if (n <= 0)
		return n < 0 && errno == EAGAIN ? 0 : -1;
	c->len += (size_t)n;
	return drain(c);
}

static void *
conn_thread(void *arg)
{
	struct conn	*c = arg;

	while (readsome(c) == 0)
		;
	close(c->fd);
	free(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct epoll_event	 ev, evs[64];
	int			 threads = 0, lfd, ep, i, n;
	const char		*path;

	if (argc == 3 && strcmp(argv[1], "-t") == 0)
		threads = 1;
	else if (argc != 2) {
		fprintf(stderr, "usage: nullpolicy [-t] SOCKET-PATH\n");
		return 2;
	}
	path = argv[argc - 1];
	if (strlen(path) >= sizeof(sun.sun_path))
		return 2;
	strcpy(sun.sun_path, path);
	(void)unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0 || listen(lfd, 256) != 0) {
		perror(path);
		return 1;
	}
	if (threads) {
		pthread_attr_t	attr;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 512 * 1024);
		for (;;) {
			struct conn	*c;
			pthread_t	 t;
			int		 fd = accept(lfd, NULL, NULL);

			if (fd < 0)
				continue;
			if ((c = calloc(1, sizeof(*c))) == NULL) {
				close(fd);
				continue;
			}
			c->fd = fd;
			if (pthread_create(&t, &attr, conn_thread, c) != 0) {
				close(fd);
				free(c);
			}
		}
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 64, -1);
		for (i = 0; i < n; i++) {
			struct conn	*c = evs[i].data.ptr;

			if (c == NULL) {
				int	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);

				if (fd < 0 || (c = calloc(1, sizeof(*c))) == NULL) {
					if (fd >= 0)
						close(fd);
					continue;
				}
				c->fd = fd;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			if (readsome(c) != 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c);
			}
		}
	}
}
