#!/usr/bin/env bash
# The whole stack against containerd's, docker's and podman's, side by side on this machine:
#   latency:     `berth run --rm IMAGE true` (berth → berthd → berth shim → berth-runtime) vs
#                `ctr run --rm IMAGE ID true` (containerd 1.6 → runc shim → runc),
#                `docker run --rm --network none` (dockerd 20.10, runc) and
#                `podman run --rm --network none` (podman 4.3, runc), one hyperfine run; berthd
#                runs with `--bridge none`, so berth's containers get no network either (like
#                ctr's) and nothing is made in the host's namespace (bench/network.sh measures
#                the bridge)
#   concurrency: COUNT `run -d … sleep` started at once, wall time, berth vs ctr
#   memory:      with COUNT running containers, RSS and PSS of the daemon plus all its shims,
#                berth vs containerd
#
# usage: run.sh
#
# env:
#   BIN         berth's binaries (default: target/dist/bin from scripts/build.sh)
#   COUNT       containers for the concurrency and memory rows (default 100)
#   RUNS        hyperfine runs (default 30); warmup 3
#   SETTLE      seconds between the last start and reading the memory (default 10)
#   BENCH_WORK  scratch dir (default ${TMPDIR:-/tmp}/berth-bench-run)
#
# Needs root, containerd + ctr + containerd-shim-runc-v2 + runc (Debian), hyperfine, umoci and
# skopeo, docker.io and podman (private instances, started by this crate's `peer-engines` the way
# the interop tests start them). PEERS=0 leaves docker and podman out. Timings are never a
# pass/fail test: the script fails only when a command fails.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_DIR=$(dirname "$SELF")
REPO_ROOT=$(dirname "$BENCH_DIR")
BIN=${BIN:-$REPO_ROOT/target/dist/bin}
COUNT=${COUNT:-100}
RUNS=${RUNS:-30}
SETTLE=${SETTLE:-10}
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/berth-bench-run}
PEERS=${PEERS:-1}
IMAGE=localhost/busybox:latest
NS=berthbench
CD=$BENCH_WORK/containerd
BD=$BENCH_WORK/berthd

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root"
for bin in /usr/bin/containerd /usr/bin/ctr /usr/bin/containerd-shim-runc-v2 hyperfine umoci skopeo; do
	command -v "$bin" >/dev/null 2>&1 || die "$bin not found (scripts/install-deps.sh)"
done
for b in berthd berth containerd-shim-berth-v2 berth-runtime; do
	[[ -x $BIN/$b ]] || die "$BIN/$b not built: bash scripts/build.sh"
done

BERTH=("$BIN/berth" -H "unix://$BD/state/berthd.sock")
CTR=(ctr --address "$CD/containerd.sock" --namespace "$NS")
CONTAINERD_PID=
BERTHD_PID=

# shellcheck source=lib/teardown.sh
. "$BENCH_DIR/lib/teardown.sh"
cleanup() {
	set +e
	stop_peer_engines
	stop_berthd
	if [[ -n $CONTAINERD_PID ]]; then
		for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
		sleep 1
		for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks rm -f "$t" >/dev/null 2>&1; done
		for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do "${CTR[@]}" containers rm "$c" >/dev/null 2>&1; done
		kill -TERM "$CONTAINERD_PID"
		wait "$CONTAINERD_PID" 2>/dev/null
	fi
	findmnt -rn -o TARGET | grep -F "$BENCH_WORK/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
	for h in /sys/fs/cgroup/*/; do
		[[ -d $h$NS ]] && find "$h$NS" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rmdir "/run/containerd/runc/$NS" 2>/dev/null
	rm -rf "$BENCH_WORK"
}
trap cleanup EXIT INT TERM

rm -rf "$BENCH_WORK"
mkdir -p "$CD" "$BD"
bash "$REPO_ROOT/integration/fixtures/make-busybox-image.sh" "$BENCH_WORK/image" >/dev/null

# shellcheck source=../scripts/lib/containerd-config.sh
. "$REPO_ROOT/scripts/lib/containerd-config.sh"
containerd_config "$CD" warn
PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid /usr/bin/containerd --config "$CD/config.toml" >>"$CD/containerd.log" 2>&1 </dev/null &
CONTAINERD_PID=$!
setsid "$BIN/berthd" --root "$BD/root" --state "$BD/state" --bridge none --log-level warn >>"$BD/berthd.log" 2>&1 </dev/null &
BERTHD_PID=$!
for _ in $(seq 100); do
	"${CTR[@]}" version >/dev/null 2>&1 && "${BERTH[@]}" version >/dev/null 2>&1 && break
	sleep 0.1
done
"${CTR[@]}" images import "$BENCH_WORK/image/busybox-oci.tar" >/dev/null
"${BERTH[@]}" load -q -i "$BENCH_WORK/image/busybox-docker.tar" >/dev/null
DOCKER= PODMAN_CMD=
if [[ $PEERS != 0 ]]; then
	(cd "$REPO_ROOT" && cargo build --release --quiet -p berth-bench --bin peer-engines)
	coproc PEER { "$REPO_ROOT/target/release/peer-engines" "$BENCH_WORK/peers" "$BENCH_WORK/image/busybox-docker.tar" 2>"$BENCH_WORK/peers.log"; }
	PEER_PID=$PEER_PID
	PEER_IN=${PEER[1]}
	while IFS= read -r line <&"${PEER[0]}"; do
		case $line in
		docker=*) DOCKER=${line#docker=} ;;
		podman=*) PODMAN_CMD=${line#podman=} ;;
		ready) break ;;
		esac
	done
	[[ -n $DOCKER && -n $PODMAN_CMD ]] || die "peer-engines did not start docker and podman; see $BENCH_WORK/peers.log"
fi

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$BENCH_DIR/results/run-$STAMP
mkdir -p "$OUT"
ln -sfn "run-$STAMP" "$BENCH_DIR/results/run-latest"
echo "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/versions.txt"

# --- latency ------------------------------------------------------------------
"${BERTH[@]}" run --rm "$IMAGE" echo berth ok
"${CTR[@]}" run --rm "$IMAGE" bench-smoke echo ctr ok
B="${BERTH[*]} run --rm $IMAGE true"
C="${CTR[*]} run --rm $IMAGE bench\$\$ true"
PEER_ROWS=()
if [[ -n $DOCKER ]]; then
	eval "$DOCKER run --rm --network none $IMAGE echo docker ok"
	eval "$PODMAN_CMD run --rm --network none $IMAGE echo podman ok"
	PEER_ROWS=(-n 'docker run --rm --network none' "$DOCKER run --rm --network none $IMAGE true"
		-n 'podman run --rm --network none' "$PODMAN_CMD run --rm --network none $IMAGE true")
fi
hyperfine --warmup 3 --runs "$RUNS" --shell bash --style basic \
	--export-json "$OUT/latency.json" --export-markdown "$OUT/latency.md" \
	-n 'berth run --rm' "$B" -n 'ctr run --rm (runc shim + runc)' "$C" "${PEER_ROWS[@]}" 2>&1 | tee "$OUT/latency.txt"

# --- COUNT concurrent starts, then memory with COUNT running ---------------------
start_all() { # $1: berth|ctr
	local i pids=()
	for i in $(seq "$COUNT"); do
		if [[ $1 == berth ]]; then
			"${BERTH[@]}" run -d "$IMAGE" sleep 3600 >/dev/null &
		else
			"${CTR[@]}" run -d "$IMAGE" "bench-c$i" sleep 3600 >/dev/null &
		fi
		pids+=($!)
	done
	local failed=0
	for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
	((failed == 0)) || die "$failed of $COUNT $1 starts failed"
}
sum_mem() { # pids… → "RSS_kB PSS_kB"
	local rss=0 pss=0 p
	for p in "$@"; do
		rss=$((rss + $(awk '$1=="VmRSS:"{print $2}' "/proc/$p/status")))
		pss=$((pss + $(awk '$1=="Pss:"{print $2}' "/proc/$p/smaps_rollup")))
	done
	echo "$rss $pss"
}
pids_of() { # a command-line pattern → pids
	pgrep -f "$1" | tr '\n' ' '
}

t0=$(date +%s.%N)
start_all berth
t1=$(date +%s.%N)
running=$("${BERTH[@]}" ps -q | wc -l)
# Memory is read once the burst is over (SETTLE seconds, both engines alike): berthd gives its
# freed heap back every 2 s after activity, Go's runtime returns memory lazily too.
sleep "$SETTLE"
read -r b_rss b_pss <<<"$(sum_mem "$BERTHD_PID" $(pids_of "containerd-shim-berth-v2 .*-address $BD/state/berthd.sock"))"
"${BERTH[@]}" ps -aq | xargs -r -n 20 "${BERTH[@]}" rm -f >/dev/null

t2=$(date +%s.%N)
start_all ctr
t3=$(date +%s.%N)
c_running=$("${CTR[@]}" tasks ls -q | wc -l)
sleep "$SETTLE"
read -r c_rss c_pss <<<"$(sum_mem "$CONTAINERD_PID" $(pids_of "containerd-shim-runc-v2 -namespace $NS"))"

python3 - "$COUNT" "$t0" "$t1" "$t2" "$t3" "$running" "$c_running" "$b_rss" "$b_pss" "$c_rss" "$c_pss" "$OUT/latency.json" <<'PY' | tee "$OUT/summary.md"
import json, sys
count, t0, t1, t2, t3 = int(sys.argv[1]), *map(float, sys.argv[2:6])
running, c_running, b_rss, b_pss, c_rss, c_pss = map(int, sys.argv[6:12])
r = json.load(open(sys.argv[12]))["results"]
print("| measure | berth | containerd | berth / containerd |")
print("|---|---|---|---|")
print(f"| `run --rm true`, mean of {len(r[0]['times'])} | {r[0]['mean']*1000:.1f} ms | {r[1]['mean']*1000:.1f} ms | {r[0]['mean']/r[1]['mean']:.2f}× |")
for peer in r[2:]:
    print(f"| vs {peer['command']} | {r[0]['mean']*1000:.1f} ms | {peer['mean']*1000:.1f} ms ({peer['command'].split()[0]}) | {r[0]['mean']/peer['mean']:.2f}× |")
print(f"| {count} concurrent `run -d` ({running} / {c_running} running after) | {t1-t0:.2f} s | {t3-t2:.2f} s | {(t1-t0)/(t3-t2):.2f}× |")
print(f"| RSS, daemon + shims, {count} running | {b_rss/1024:.1f} MiB | {c_rss/1024:.1f} MiB | {b_rss/c_rss:.2f}× |")
print(f"| PSS, daemon + shims, {count} running | {b_pss/1024:.1f} MiB | {c_pss/1024:.1f} MiB | {b_pss/c_pss:.2f}× |")
print(f"| PSS per running container | {b_pss/count:.0f} kB | {c_pss/count:.0f} kB | |")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.md"
echo "results: $OUT"
