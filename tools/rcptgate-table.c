/* SPDX-License-Identifier: MIT */
/*
 * rcptgate-table: keep the default SQLite recipient table.
 *
 *	rcptgate-table [-d DB] [-f] replace FILE|-
 *	rcptgate-table [-d DB] [-f] replace --ldif [--ldif-attrs LIST]
 *	    [--ldif-include-disabled] FILE|-
 *	rcptgate-table [-d DB] add ADDRESS...
 *	rcptgate-table [-d DB] remove ADDRESS...
 *	rcptgate-table [-d DB] list
 *
 * A thin command line over lib/backend/table.c, which does the parsing and the
 * atomic file operations. Single-threaded. Malformed input is reported
 * line by line and changes nothing (exit EX_DATAERR); so does a replace
 * that would leave the table empty or remove more than half of its
 * rows, unless -f is given. LDIF (lib/backend/ldif.c) goes through the
 * same normalisation and the same refusals; on a terminal a long read
 * shows its progress on stderr, elsewhere it stays quiet.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "ldif.h"
#include "table.h"

static const char *progname = "rcptgate-table";

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-d DB] [-f] replace FILE|-\n"
	    "       %s [-d DB] [-f] replace --ldif [--ldif-attrs LIST]\n"
	    "           [--ldif-include-disabled] FILE|-\n"
	    "       %s [-d DB] add ADDRESS...\n"
	    "       %s [-d DB] remove ADDRESS...\n"
	    "       %s [-d DB] list\n"
	    "DB defaults to %s\n"
	    "-f: replace even with an empty input, or one that removes "
	    "more than half\n    of the rows\n",
	    progname, progname, progname, progname, RG_TABLE_DEFAULT_DB,
	    RG_LDIF_DEFAULT_ATTRS);
	exit(EX_USAGE);
}

static void
report_bad(void *arg, const char *name, long line, const char *why)
{
	fprintf(stderr, "%s:%ld: %s\n", name, line, why);
}

/* Progress on a terminal: at most four updates a second. */
struct progress {
	bool		tty;
	bool		shown;
	struct timespec	last;
};

static void
show_progress(void *arg, long entries, size_t keys)
{
	struct progress	*p = arg;
	struct timespec	 now;

	if (!p->tty)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (p->shown && (now.tv_sec - p->last.tv_sec) * 1000 +
	    (now.tv_nsec - p->last.tv_nsec) / 1000000 < 250)
		return;
	p->last = now;
	p->shown = true;
	fprintf(stderr, "\r%s: %ld entries read, %zu addresses", progname,
	    entries, keys);
}

static void
show_written(void *arg, size_t done, size_t total)
{
	struct progress	*p = arg;
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - p->last.tv_sec) * 1000 +
	    (now.tv_nsec - p->last.tv_nsec) / 1000000 < 250)
		return;
	p->last = now;
	p->shown = true;
	fprintf(stderr, "\r%s: %zu of %zu rows written", progname, done,
	    total);
}

static void
report_warn(void *arg, const char *name, long line, const char *why)
{
	struct progress	*p = arg;

	fprintf(stderr, "%s%s:%ld: %s\n", p->shown ? "\n" : "", name, line,
	    why);
	p->shown = false;
}

/* End a progress line, so what follows starts on a line of its own. */
static void
prog_end(struct rg_ldif_opts *lo)
{
	struct progress	*p = lo != NULL ? lo->arg : NULL;

	if (p != NULL && p->shown) {
		fputc('\n', stderr);
		p->shown = false;
	}
}

static long
read_input(FILE *in, const char *name, struct rg_ldif_opts *lo,
    struct rg_table_keys *keys)
{
	if (lo == NULL)
		return rg_table_read(in, name, keys, report_bad, NULL);
	return rg_ldif_read(in, name, lo, keys, report_bad, NULL);
}

static int
cmd_replace(const char *db, const char *file, int flags,
    struct rg_ldif_opts *lo)
{
	struct rg_table_keys	 keys = { 0 };
	FILE			*in;
	const char		*name;
	char			 errbuf[4096];
	long			 nbad;
	int			 ex, saved;

	if (strcmp(file, "-") == 0) {
		in = stdin;
		name = "(stdin)";
	} else {
		if ((in = fopen(file, "re")) == NULL) {
			saved = errno;
			fprintf(stderr, "%s: %s: %s\n", progname, file,
			    strerror(saved));
			return saved == ENOENT ? EX_NOINPUT : EX_NOPERM;
		}
		name = file;
	}
	nbad = read_input(in, name, lo, &keys);
	saved = errno;
	prog_end(lo);
	if (in != stdin)
		fclose(in);
	if (nbad == -1) {
		fprintf(stderr, "%s: %s: %s\n", progname, name,
		    strerror(saved));
		rg_table_keys_free(&keys);
		return EX_IOERR;
	}
	if (nbad > 0) {
		fprintf(stderr, "%s: %ld malformed line%s in %s; %s not "
		    "changed\n", progname, nbad, nbad == 1 ? "" : "s", name,
		    db);
		rg_table_keys_free(&keys);
		return EX_DATAERR;
	}
	if (lo != NULL && ((struct progress *)lo->arg)->tty) {
		keys.progress = show_written;
		keys.progress_arg = lo->arg;
	}
	ex = rg_table_replace(db, &keys, flags, errbuf, sizeof(errbuf));
	prog_end(lo);
	if (ex != 0)
		fprintf(stderr, "%s: %s\n", progname, errbuf);
	else if (lo != NULL && ((struct progress *)lo->arg)->tty)
		fprintf(stderr, "%s: %zu addresses read, table %s written\n",
		    progname, keys.n, db);
	rg_table_keys_free(&keys);
	return ex;
}

/* Normalise the arguments; every bad one is reported, none is used. */
static int
args_keys(int argc, char **argv, struct rg_table_keys *keys)
{
	char	key[RG_PATH_MAX + 1], why[256];
	int	i, nbad = 0;
	char	**v;

	if ((v = calloc((size_t)argc, sizeof(*v))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EX_OSERR;
	}
	keys->v = v;
	keys->cap = (size_t)argc;
	for (i = 0; i < argc; i++) {
		if (rg_table_normalise(argv[i], key, why, sizeof(why)) == -1) {
			fprintf(stderr, "%s: argument %d: %s\n", progname,
			    i + 1, why);
			nbad++;
			continue;
		}
		if ((keys->v[keys->n] = strdup(key)) == NULL) {
			fprintf(stderr, "%s: out of memory\n", progname);
			return EX_OSERR;
		}
		keys->n++;
	}
	return nbad > 0 ? EX_DATAERR : 0;
}

/* The options before or after the verb: optind, or exit on misuse. */
static int
parse_opts(int argc, char **argv, const char **db, int *flags,
    bool *ldif, struct rg_ldif_opts *lo)
{
	char	why[256];
	int	ch;
	static const struct option longopts[] = {
		{ "ldif",			no_argument,	   NULL, 'L' },
		{ "ldif-attrs",			required_argument, NULL, 'A' },
		{ "ldif-include-disabled",	no_argument,	   NULL, 'D' },
		{ NULL,				0,		   NULL, 0 },
	};

	while ((ch = getopt_long(argc, argv, "d:fh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'L':
			*ldif = true;
			break;
		case 'A':
			if (rg_ldif_check_attrs(optarg, why,
			    sizeof(why)) == -1) {
				fprintf(stderr, "%s: --ldif-attrs: %s\n",
				    progname, why);
				exit(EX_USAGE);
			}
			lo->attrs = optarg;
			break;
		case 'D':
			lo->include_disabled = true;
			break;
		case 'f':
			*flags |= RG_TABLE_FORCE;
			break;
		case 'd':
			if (*optarg == '\0')
				usage();
			*db = optarg;
			break;
		default:
			usage();
		}
	}
	/* LDIF options only with --ldif */
	if ((lo->attrs != NULL || lo->include_disabled) && !*ldif)
		usage();
	return optind;
}

int
main(int argc, char **argv)
{
	struct rg_table_keys	 keys = { 0 };
	const char		*db = RG_TABLE_DEFAULT_DB, *cmd;
	char			 errbuf[4096];
	size_t			 removed = 0;
	int			 ex, flags = 0;
	bool			 ldif = false;
	struct progress		 prog = { .tty = isatty(STDERR_FILENO) };
	struct rg_ldif_opts	 lo = { .warn = report_warn,
				    .progress = show_progress, .arg = &prog };

	optind = parse_opts(argc, argv, &db, &flags, &ldif, &lo);
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	cmd = argv[0];
	argc--;
	argv++;
	/* LDIF is input, and only replace reads input. */
	if (ldif && strcmp(cmd, "replace") != 0)
		usage();

	if (strcmp(cmd, "replace") == 0) {
		if (argc != 1)
			usage();
		return cmd_replace(db, argv[0], flags, ldif ? &lo : NULL);
	}
	if (strcmp(cmd, "list") == 0) {
		if (argc != 0)
			usage();
		ex = rg_table_list(db, stdout, errbuf, sizeof(errbuf));
		if (ex != 0)
			fprintf(stderr, "%s: %s\n", progname, errbuf);
		return ex;
	}
	if (strcmp(cmd, "add") != 0 && strcmp(cmd, "remove") != 0)
		usage();
	if (argc < 1)
		usage();
	if ((ex = args_keys(argc, argv, &keys)) != 0) {
		if (ex == EX_DATAERR)
			fprintf(stderr, "%s: %s not changed\n", progname, db);
		rg_table_keys_free(&keys);
		return ex;
	}
	if (strcmp(cmd, "add") == 0)
		ex = rg_table_add(db, &keys, errbuf, sizeof(errbuf));
	else {
		ex = rg_table_remove(db, &keys, &removed, errbuf,
		    sizeof(errbuf));
		if (ex == 0 && removed < keys.n)
			fprintf(stderr, "%s: %zu of %zu address%s not in the "
			    "table\n", progname, keys.n - removed, keys.n,
			    keys.n == 1 ? "" : "es");
	}
	if (ex != 0)
		fprintf(stderr, "%s: %s\n", progname, errbuf);
	rg_table_keys_free(&keys);
	return ex;
}
