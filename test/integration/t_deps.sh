#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/deps.sh as demo.sh runs it, with apt-get, dpkg-query and
# debconf-set-selections replaced by stand-ins on PATH (nothing is
# installed): apt's progress stays in the log, the terminal gets one line
# per step, and a failing apt-get shows the end of the log and fails.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup
if [ "$(id -u)" -ne 0 ]; then
	rg_ok "# skip: deps.sh installs only as root"
	rg_done
fi

mkdir "$T/bin"
# Every package missing; debconf's answers swallowed.
printf '#!/bin/sh\nexit 1\n' >"$T/bin/dpkg-query"
printf '#!/bin/sh\ncat >/dev/null\n' >"$T/bin/debconf-set-selections"
cat >"$T/bin/apt-get" <<'EOT'
#!/bin/sh
for i in 1 2 3; do echo "Unpacking noise-$i (1.0) ..."; done
echo "Setting up noise (1.0) ..."
if [ -n "${FAKE_APT_FAIL:-}" ] && [ "$1" = install ]; then
	echo "E: Unable to locate package no-such-thing" >&2
	exit 100
fi
EOT
chmod 755 "$T/bin"/*

PATH=$T/bin:$PATH RG_DEPS_LOG=$T/deps.log \
    bash "$RG_SOURCE_DIR/scripts/deps.sh" --runtime-only >"$T/out" 2>&1
rc=$?
out=$(cat "$T/out")
rg_expect_eq "install: exit 0" "$rc" 0
rg_expect_match "install: one line naming the count and the log" "$out" \
    "^deps.sh: installing [0-9]+ packages \\(log: $T/deps.log\\)"$'\n'"deps.sh: done: [0-9]+ packages installed$"
rg_expect_eq "install: two lines, no apt progress" "$(wc -l <"$T/out")" 2
rg_check "install: apt's progress is in the log" grep -q 'Unpacking noise-1' "$T/deps.log"

PATH=$T/bin:$PATH RG_DEPS_LOG=$T/deps.log FAKE_APT_FAIL=1 \
    bash "$RG_SOURCE_DIR/scripts/deps.sh" --runtime-only >"$T/out" 2>&1
rc=$?
out=$(cat "$T/out")
rg_check "apt fails: exit non-zero" test "$rc" -ne 0
rg_expect_match "apt fails: its error is shown" "$out" 'E: Unable to locate package no-such-thing'
rg_expect_match "apt fails: says where the log is" "$out" "apt-get failed; the end of $T/deps.log"
rg_done
