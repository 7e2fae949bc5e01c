#!/bin/bash
# SPDX-License-Identifier: MIT
# The attacker's yield of a directory harvest through a real Postfix:
# probe 200 addresses of which 10% exist, in sessions of 10 RCPTs from
# one loopback source, and count how many existing addresses were
# confirmed (a 250 to RCPT). Run once with harvest protection off and
# once with the defaults of rcptgate.conf(5) (max_unknown 5 per 10m, 3 per
# session, block 1h, action tempfail). Each session goes on until the
# server closes it (421), as a harvester's would.
#
# Usage: RCPTGATE=... RCPTGATE_TABLE=... bash test/bench/harvest_yield.sh
: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

PROBES=200
EXISTING=20
SESSION=10

SEEDS=${SEEDS:-5}	# shuffles of the probe order, e.g. SEEDS="1 2 3 4 5"

# order SEED: the address list, every tenth one exists, shuffled by SEED;
# sets probes[] and existing[]
order() {
	local l
	mapfile -t all < <(for ((i = 0; i < PROBES; i++)); do
		if ((i % (PROBES / EXISTING) == 0)); then
			echo "user$i@example.com exists"
		else
			echo "user$i@example.com none"
		fi
	done | "$RG_PY" -c 'import random, sys
lines = sys.stdin.read().splitlines()
random.Random(int(sys.argv[1])).shuffle(lines)
print("\n".join(lines))' "$1")
	existing=()
	probes=()
	for l in "${all[@]}"; do
		probes+=("${l%% *}")
		[[ $l == *exists ]] && existing+=("${l%% *}")
	done
}
order 1
rg_make_table "$T/recipients.db" "${existing[@]}" || exit 1

# run NAME MAX_UNKNOWN PER_SESSION SEED: print the yield line
run() {
	local name=$1 max=$2 per=$3 sock=$T/$1.sock confirmed=0 sent=0
	local answered=0 start end i out
	cat >"$T/$name.conf" <<-EOT
		[milter]
		socket = unix:$sock
		user =
		socket_mode = 0666
		log_level = info

		[policy]
		domains = example.com
		backends = local
		always_accept =

		[backend local]
		type = sqlite
		path = $T/recipients.db

		[harvest]
		max_unknown = $max
		max_unknown_per_session = $per
		window = 10m
		block_time = 1h
		action = tempfail
		state =
		# the probes come from 127.0.0.1, exempt by default
		exempt =
	EOT
	rg_start_rcptgate "$T/$name.conf" || exit 1
	rg_start_postfix "$name" "unix:$sock" || exit 1
	local -n port="PORT_$name"
	order "$4"
	start=$(date +%s.%N)
	for ((i = 0; i < PROBES; i += SESSION)); do
		out=$(rg_rcpt "$port" "${probes[@]:i:SESSION}")
		sent=$((sent + SESSION))
		answered=$((answered + $(grep -c '^[25][0-9][0-9] ' <<<"$out")))
		confirmed=$((confirmed + $(grep -c '^250 ' <<<"$out")))
	done
	end=$(date +%s.%N)
	printf '%-16s seed %-3s confirmed %2d of %d existing; %3d of %d probes got a 250/550 answer; %.1fs\n' \
		"$name" "$4" "$confirmed" "$EXISTING" "$answered" "$PROBES" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
	rg_stop_rcptgate
	rg_stop_postfix "$name"
}

echo "harvest yield: $PROBES probes, $EXISTING existing, sessions of $SESSION, one source"
for seed in $SEEDS; do
	run "off_$seed" 0 0 "$seed"
	run "on_$seed" 5 3 "$seed"
done
