/* SPDX-License-Identifier: MIT */
/*
 * lib/backend/table.c: input line parsing (plain, CSV, quoted CSV, Postfix map,
 * comments, malformed lines with their numbers) and the replace / add /
 * remove / list operations on real SQLite files in a temporary directory.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cmocka.h>

#include "table.h"

static char	dir[64];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int
setup(void **state)
{
	umask(022);	/* the mode checks below assume it */
	strcpy(dir, "/tmp/rg-table-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_parse_line(void **state)
{
	static const struct {
		const char		*line;
		enum rg_table_line	 want;
		const char		*key;	/* KEY: the key; BAD: in why */
	} cases[] = {
		/* skipped */
		{ "",					RG_TABLE_SKIP, NULL },
		{ "   \t \r\n",				RG_TABLE_SKIP, NULL },
		{ "# a comment",			RG_TABLE_SKIP, NULL },
		{ "   # indented comment, x@y.z",	RG_TABLE_SKIP, NULL },
		/* plain */
		{ "alice@example.com",			RG_TABLE_KEY,
		  "alice@example.com" },
		{ "Alice@Example.COM\n",		RG_TABLE_KEY,
		  "alice@example.com" },
		{ "  bob@example.com  \r\n",		RG_TABLE_KEY,
		  "bob@example.com" },
		{ "<carol@example.com>",		RG_TABLE_KEY,
		  "carol@example.com" },
		{ "dave@example.com.",			RG_TABLE_KEY,
		  "dave@example.com" },
		{ "@Example.NET",			RG_TABLE_KEY,
		  "@example.net" },
		/* CSV */
		{ "erin@example.com,Erin Smith,Sales",	RG_TABLE_KEY,
		  "erin@example.com" },
		{ "frank@example.com , x",		RG_TABLE_KEY,
		  "frank@example.com" },
		{ "\"grace@example.com\",\"Grace, G.\"",	RG_TABLE_KEY,
		  "grace@example.com" },
		{ "\"@example.org\",catch-all",		RG_TABLE_KEY,
		  "@example.org" },
		{ "\"\"\"h i\"\"@example.com\",x",	RG_TABLE_KEY,
		  "\"h i\"@example.com" },
		/* Postfix map */
		{ "ivan@example.com OK",		RG_TABLE_KEY,
		  "ivan@example.com" },
		{ "judy@example.com\tjudy@internal.example",	RG_TABLE_KEY,
		  "judy@example.com" },
		{ "@example.info\tOK",			RG_TABLE_KEY,
		  "@example.info" },
		{ "\"k l\"@example.com OK",		RG_TABLE_KEY,
		  "\"k l\"@example.com" },
		/* malformed */
		{ "address,name",			RG_TABLE_BAD,
		  "'address': not an address" },
		{ "example.com OK",			RG_TABLE_BAD,
		  "not an address" },
		{ "bob@",				RG_TABLE_BAD,
		  "not an address" },
		{ "@",					RG_TABLE_BAD,
		  "without a domain" },
		{ "@a@b.com",				RG_TABLE_BAD,
		  "not a catch-all" },
		{ ",x@y.com",				RG_TABLE_BAD,
		  "empty first field" },
		{ "\"unterminated@example.com,x",	RG_TABLE_BAD,
		  "unterminated quote" },
		{ "\"a@b.com\"x,y",			RG_TABLE_BAD,
		  "after the closing quote" },
		{ "a..b@example.com",			RG_TABLE_BAD,
		  "not an address" },
		{ "x\x01y@example.com",			RG_TABLE_BAD,
		  "\\x01" },	/* escaped in the message */
		{ "<>",					RG_TABLE_BAD,
		  "empty address" },
		/* an '@' only in an ESMTP parameter: no address (was "bob") */
		{ "\"bob X=a@b.com\",1",			RG_TABLE_BAD,
		  "not an address" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaa@example.com",			RG_TABLE_BAD,
		  "too long" },	/* 65-octet local part */
	};
	char	key[RG_PATH_MAX + 1], why[256];
	size_t	i;
	enum rg_table_line r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		key[0] = '\0';
		r = rg_table_parse_line(cases[i].line, key, why, sizeof(why));
		if (r != cases[i].want)
			fail_msg("case %zu '%s': got %d want %d (%s)", i,
			    cases[i].line, r, cases[i].want, why);
		if (r == RG_TABLE_KEY && strcmp(key, cases[i].key) != 0)
			fail_msg("case %zu '%s': key '%s' want '%s'", i,
			    cases[i].line, key, cases[i].key);
		if (r == RG_TABLE_BAD && strstr(why, cases[i].key) == NULL)
			fail_msg("case %zu '%s': why '%s' lacks '%s'", i,
			    cases[i].line, why, cases[i].key);
	}
}

/* Collects "NAME:LINE: WHY\n" for each bad line. */
struct badbuf {
	char	text[4096];
	int	n;
};

static void
collect(void *arg, const char *name, long line, const char *why)
{
	struct badbuf	*b = arg;
	size_t		 used = strlen(b->text);

	snprintf(b->text + used, sizeof(b->text) - used, "%s:%ld: %s\n",
	    name, line, why);
	b->n++;
}

static long
read_text(const char *text, size_t len, struct rg_table_keys *keys,
    struct badbuf *bad)
{
	FILE	*in;
	long	 n;

	in = fmemopen((void *)text, len, "r");
	assert_non_null(in);
	memset(bad, 0, sizeof(*bad));
	n = rg_table_read(in, "list.txt", keys, collect, bad);
	fclose(in);
	return n;
}

static void
test_read(void **state)
{
	static const char good[] =
	    "\xef\xbb\xbf# exported 2024-01-01\n"
	    "alice@example.com\n"
	    "\n"
	    "Bob@Example.com,Bob\n"
	    "@example.net OK\r\n"
	    "alice@example.com\n";	/* duplicates are harmless */
	static const char bad[] =
	    "alice@example.com\n"
	    "nonsense\n"
	    "bob@example.com\n"
	    "\"open@example.com\n"
	    "# fine\n"
	    "x@\n";
	static const char nul[] = "a@example.com\nb\0@example.com\n";
	struct rg_table_keys	keys = { 0 };
	struct badbuf		b;

	assert_int_equal(read_text(good, sizeof(good) - 1, &keys, &b), 0);
	assert_int_equal(keys.n, 4);
	assert_string_equal(keys.v[0], "alice@example.com");
	assert_string_equal(keys.v[1], "bob@example.com");
	assert_string_equal(keys.v[2], "@example.net");
	rg_table_keys_free(&keys);

	/* Every bad line, with its number. */
	assert_int_equal(read_text(bad, sizeof(bad) - 1, &keys, &b), 3);
	assert_int_equal(b.n, 3);
	assert_non_null(strstr(b.text, "list.txt:2: 'nonsense'"));
	assert_non_null(strstr(b.text, "list.txt:4: unterminated quote"));
	assert_non_null(strstr(b.text, "list.txt:6: 'x@'"));
	assert_null(strstr(b.text, "list.txt:1:"));
	rg_table_keys_free(&keys);

	assert_int_equal(read_text(nul, sizeof(nul) - 1, &keys, &b), 1);
	assert_non_null(strstr(b.text, "list.txt:2: NUL byte"));
	rg_table_keys_free(&keys);
	rg_table_keys_free(NULL);
}

static void
keys_of(struct rg_table_keys *k, const char *const *v)
{
	memset(k, 0, sizeof(*k));
	while (v[k->n] != NULL)
		k->n++;
	k->v = (char **)v;
	k->cap = k->n;
}

/* The application_id in db's header (bytes 68-71, big-endian). */
static uint32_t
app_id(const char *db)
{
	unsigned char	 h[100];
	FILE		*f = fopen(db, "rb");

	assert_non_null(f);
	assert_int_equal(fread(h, 1, sizeof(h), f), sizeof(h));
	fclose(f);
	return (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 |
	    (uint32_t)h[70] << 8 | h[71];
}

/* list output of db into buf. */
static int
list(const char *db, char *buf, size_t len)
{
	FILE	*out;
	char	 err[512];
	int	 ex;

	memset(buf, 0, len);
	out = fmemopen(buf, len, "w");
	assert_non_null(out);
	ex = rg_table_list(db, out, err, sizeof(err));
	fclose(out);
	return ex;
}

static void
test_operations(void **state)
{
	static const char *const first[] = { "carol@example.com",
		"alice@example.com", "@example.net", NULL };
	static const char *const more[] = { "bob@example.com",
		"alice@example.com", NULL };
	static const char *const gone[] = { "alice@example.com",
		"nobody@example.com", NULL };
	struct rg_table_keys	 k;
	struct stat		 st;
	char			 db[128], err[512], buf[1024];
	size_t			 removed;

	snprintf(db, sizeof(db), "%s/r.db", dir);
	assert_int_equal(list(db, buf, sizeof(buf)), EX_NOINPUT);
	keys_of(&k, gone);
	assert_int_equal(rg_table_remove(db, &k, &removed, err, sizeof(err)),
	    EX_NOINPUT);

	/* replace creates, 0644 under the default umask. */
	keys_of(&k, first);
	assert_int_equal(rg_table_replace(db, &k, RG_TABLE_FORCE, err,
	    sizeof(err)), 0);
	assert_int_equal(list(db, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "@example.net\nalice@example.com\n"
	    "carol@example.com\n");
	assert_int_equal(stat(db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644 & ~(mode_t)022);

	/* replace keeps the mode of the file it replaces. */
	assert_int_equal(chmod(db, 0640), 0);
	keys_of(&k, more);
	assert_int_equal(rg_table_replace(db, &k, RG_TABLE_FORCE, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(list(db, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "alice@example.com\nbob@example.com\n");

	/* add is idempotent; remove counts rows. */
	keys_of(&k, first);
	assert_int_equal(rg_table_add(db, &k, err, sizeof(err)), 0);
	assert_int_equal(rg_table_add(db, &k, err, sizeof(err)), 0);
	keys_of(&k, gone);
	assert_int_equal(rg_table_remove(db, &k, &removed, err, sizeof(err)),
	    0);
	assert_int_equal(removed, 1);
	assert_int_equal(list(db, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "@example.net\nbob@example.com\n"
	    "carol@example.com\n");

	/* add and remove never write the live file: a new inode each
	 * time, carrying the mark that lets the daemon read it unlocked. */
	{
		struct stat	before;

		assert_int_equal(stat(db, &before), 0);
		keys_of(&k, gone);
		assert_int_equal(rg_table_add(db, &k, err, sizeof(err)), 0);
		assert_int_equal(stat(db, &st), 0);
		assert_true(st.st_ino != before.st_ino);
		assert_int_equal(st.st_mode & 0777, 0640);
		assert_int_equal(app_id(db), RG_TABLE_APPLICATION_ID);
		before = st;
		assert_int_equal(rg_table_remove(db, &k, &removed, err,
		    sizeof(err)), 0);
		assert_int_equal(removed, 2);
		assert_int_equal(stat(db, &st), 0);
		assert_true(st.st_ino != before.st_ino);
		assert_int_equal(app_id(db), RG_TABLE_APPLICATION_ID);
		assert_int_equal(list(db, buf, sizeof(buf)), 0);
		assert_string_equal(buf, "@example.net\nbob@example.com\n"
		    "carol@example.com\n");
	}

	/* add creates a missing database. */
	snprintf(db, sizeof(db), "%s/new.db", dir);
	keys_of(&k, more);
	assert_int_equal(rg_table_add(db, &k, err, sizeof(err)), 0);
	assert_int_equal(list(db, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "alice@example.com\nbob@example.com\n");

	/* No temporary files are left behind. */
	snprintf(buf, sizeof(buf), "ls -a %s | grep -q '^\\.r\\.db\\.'", dir);
	assert_int_not_equal(system(buf), 0);

	/* A directory that does not exist: cannot create. */
	snprintf(db, sizeof(db), "%s/nosuch/r.db", dir);
	assert_int_equal(rg_table_replace(db, &k, RG_TABLE_FORCE, err,
	    sizeof(err)),
	    EX_CANTCREAT);
	assert_non_null(strstr(err, "nosuch"));
	/* A file that is not a database. */
	snprintf(db, sizeof(db), "%s/text.db", dir);
	{
		FILE	*f = fopen(db, "w");

		assert_non_null(f);
		for (int i = 0; i < 100; i++)
			fputs("not a database, just text\n", f);
		fclose(f);
	}
	assert_int_equal(list(db, buf, sizeof(buf)), EX_DATAERR);
	assert_int_equal(rg_table_add(db, &k, err, sizeof(err)), EX_DATAERR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_operations),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
