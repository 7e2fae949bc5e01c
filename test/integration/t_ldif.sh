#!/bin/bash
# SPDX-License-Identifier: MIT
# rcptgate-table replace --ldif end to end: a real ldapsearch against a
# private slapd (the AD-like fixture plus a folded and a base64 value)
# piped into "replace --ldif -"; an ldifde-style UTF-16LE CRLF export
# with a disabled account, made with iconv; --ldif-attrs,
# --ldif-include-disabled; errors naming the line; the empty and
# more-than-half refusals; usage errors.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

BASE=dc=example,dc=com
db=$T/recipients.db

# table: the table's rows, one line, space separated
table() {
	"$RCPTGATE_TABLE" -d "$db" list | tr '\n' ' ' | sed 's/ $//'
}

# An entry whose mail line ldapsearch folds (ldif_wrap pinned to 40, so
# the test does not hang on the local default) and one whose UTF-8
# value it writes as base64.
long=averyveryverylonglocalpartthatgoespastseventysixcolumns
cat >"$T/extra.ldif" <<EOT
dn: uid=long,ou=people,$BASE
objectClass: inetOrgPerson
objectClass: rgMailRecipient
uid: long
cn: Long
sn: Long
mail: $long@mail.example.com
userAccountControl: 512

dn: uid=jorg,ou=people,$BASE
objectClass: inetOrgPerson
objectClass: rgMailRecipient
uid: jorg
cn: J$(printf '\xc3\xb6')rg
sn: J$(printf '\xc3\xb6')rg
proxyAddresses: SMTP:j$(printf '\xc3\xb6')rg@example.com
EOT

rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" "$T/extra.ldif" || exit 1
rg_slapd_start a || exit 1

ldapsearch -o ldif_wrap=40 -x -H "$SLAPD_URI_a" -D "cn=admin,$BASE" -w admin -b "$BASE" \
    '(objectClass=*)' >"$T/export.ldif" 2>"$T/ldapsearch.err"
rg_expect_eq "ldapsearch exit" "$?" 0
rg_check "ldapsearch folded a line" grep -q '^ ' "$T/export.ldif"
rg_check "ldapsearch wrote a base64 value" grep -q '^proxyAddresses:: ' \
    "$T/export.ldif"

want="alice.smith@example.com alice@example.com"
want="$want $long@mail.example.com bob@example.com"
want="$want carol.white@example.com erin@example.com"
want="$want j$(printf '\xc3\xb6')rg@example.com partner@example.com"
want="$want sales@example.com team@example.com xavier@example.com"

ldapsearch -o ldif_wrap=40 -x -H "$SLAPD_URI_a" -D "cn=admin,$BASE" -w admin -b "$BASE" \
    '(objectClass=*)' 2>/dev/null |
    "$RCPTGATE_TABLE" -d "$db" replace --ldif - 2>"$T/err"
rg_expect_eq "ldapsearch | replace --ldif - exit" "$?" 0
rg_expect_eq "not on a terminal: quiet" "$(cat "$T/err")" ""
rg_expect_eq "table: mail + smtp: values, no X500/SIP, no disabled dave" \
    "$(table)" "$want"

"$RCPTGATE_TABLE" -d "$db" replace --ldif --ldif-include-disabled \
    "$T/export.ldif"
rg_expect_eq "--ldif-include-disabled adds dave" \
    "$(table | tr ' ' '\n' | grep -c '^dave@')" 1

"$RCPTGATE_TABLE" -d "$db" -f replace --ldif --ldif-attrs MAIL \
    "$T/export.ldif"
rg_expect_eq "--ldif-attrs MAIL: mail values only" "$(table)" \
    "alice@example.com $long@mail.example.com bob@example.com erin@example.com sales@example.com xavier@example.com"

# ldifde -u: UTF-16LE with a BOM, CRLF, changetype: add, a disabled user
{
	printf '\xff\xfe'
	printf '%s\r\n' "dn: CN=Ann,OU=Staff,DC=corp,DC=test" \
	    "changetype: add" "mail: ann@corp.test" \
	    "proxyAddresses: SMTP:ann@corp.test" \
	    "proxyAddresses: smtp:a.nn@corp.test" \
	    "proxyAddresses: X400:c=US;a= ;p=Corp;o=Ex;s=Ann;" \
	    "userAccountControl: 66048" "" \
	    "dn: CN=Old,OU=Staff,DC=corp,DC=test" "changetype: add" \
	    "mail: old@corp.test" "userAccountControl: 66050" "" \
	    "dn: CN=Zo$(printf '\xc3\xab'),OU=Staff,DC=corp,DC=test" \
	    "changetype: add" "mail: zoe@corp.te" " st" "" |
	    iconv -f UTF-8 -t UTF-16LE
} >"$T/ldifde.ldf"
"$RCPTGATE_TABLE" -d "$db" -f replace --ldif "$T/ldifde.ldf" 2>"$T/err"
rg_expect_eq "ldifde UTF-16LE CRLF exit" "$?" 0
rg_expect_eq "ldifde: disabled old@ left out" "$(table)" \
    "a.nn@corp.test ann@corp.test zoe@corp.test"
"$RCPTGATE_TABLE" -d "$db" replace --ldif --ldif-include-disabled \
    "$T/ldifde.ldf"
rg_expect_eq "ldifde --ldif-include-disabled" "$(table)" \
    "a.nn@corp.test ann@corp.test old@corp.test zoe@corp.test"

# errors: the line in the file, table untouched
printf 'version: 1\n\ndn: cn=a\nmail: a@corp.test\n\ndn: cn=b\nmail: b@\n corp@test\n' |
    "$RCPTGATE_TABLE" -d "$db" replace --ldif - 2>"$T/err"
rg_expect_eq "bad address: EX_DATAERR" "$?" 65
rg_expect_match "error names line 7" "$(cat "$T/err")" \
    '^\(stdin\):7: .*not an address'
rg_expect_eq "table untouched" "$(table | wc -w)" 4

printf 'dn: cn=a\nmail:< file:///etc/passwd\nmail: a@corp.test\n' |
    "$RCPTGATE_TABLE" -d "$db" -f replace --ldif - 2>"$T/err"
rg_expect_eq "URL value: skipped, rest read" "$?$(table)" "0a@corp.test"
rg_expect_match "URL value: warned with its line" "$(cat "$T/err")" \
    '^\(stdin\):2: warning: .*not fetched'

# the safety rules of every format
printf 'dn: cn=a\ncn: a\n' | "$RCPTGATE_TABLE" -d "$db" replace --ldif - \
    2>"$T/err"
rg_expect_eq "empty result refused" "$?$(table)" "65a@corp.test"
"$RCPTGATE_TABLE" -d "$db" -f replace --ldif "$T/export.ldif"
"$RCPTGATE_TABLE" -d "$db" replace --ldif "$T/ldifde.ldf" 2>"$T/err"
rg_expect_eq "more than half dropped: refused" "$?" 65
"$RCPTGATE_TABLE" -d "$db" -f replace --ldif "$T/ldifde.ldf"
rg_expect_eq "... and done with -f" "$(table | wc -w)" 3

# usage
"$RCPTGATE_TABLE" -d "$db" add --ldif x@y.z 2>/dev/null
rg_expect_eq "--ldif with add: usage" "$?" 64
"$RCPTGATE_TABLE" -d "$db" replace --ldif-attrs mail - </dev/null 2>/dev/null
rg_expect_eq "--ldif-attrs without --ldif: usage" "$?" 64
"$RCPTGATE_TABLE" -d "$db" replace --ldif --ldif-attrs 'ma il' - </dev/null \
    2>/dev/null
rg_expect_eq "bad --ldif-attrs: usage" "$?" 64

rg_slapd_stop a
rg_done
