#!/usr/bin/env bash
# berth's networking side by side with docker's (and podman's, for start latency), in one run,
# inside a network namespace made for it: every bridge, iptables rule and sysctl the engines set
# lives there and goes with it.
#   latency:    `berth run --rm IMAGE true` on the default bridge vs `docker run --rm` (docker0,
#               dockerd's defaults) and `podman run --rm --network bridge` (netavark), one
#               hyperfine run
#   throughput: iperf3 TCP, DURATION seconds each: host → container through a published port on
#               127.0.0.1 and on the namespace's own address, and container → container on the
#               default bridge; berth vs docker (the same iperf3 binary, the host's, bind-mounted
#               into a busybox container)
#
# usage: network.sh
#
# env:
#   BIN         berth's binaries (default: target/dist/bin from scripts/build.sh)
#   RUNS        hyperfine runs (default 30); warmup 3
#   DURATION    seconds per iperf3 measurement (default 5)
#   BENCH_WORK  scratch dir (default ${TMPDIR:-/tmp}/berth-bench-network)
#
# Needs root, hyperfine, iperf3, umoci and skopeo, docker.io and podman (private instances started
# by this crate's `peer-engines --networked`). Timings are never a pass/fail test: the script
# fails only when a command fails. Nothing is sent past the namespace.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_DIR=$(dirname "$SELF")
REPO_ROOT=$(dirname "$BENCH_DIR")
BIN=${BIN:-$REPO_ROOT/target/dist/bin}
RUNS=${RUNS:-30}
DURATION=${DURATION:-5}
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/berth-bench-network}
IMAGE=localhost/busybox:latest
NETNS=berthbench-net
BD=$BENCH_WORK/berthd
# The namespace's "host address", as a host's own address on its uplink: on one end of a veth pair
# whose other end stays in the namespace (not a dummy link: this kernel may lack the driver).
HOST_ADDR=10.254.0.1
# The host's iperf3 and its libraries, read-only, in a busybox container.
IPERF_MOUNTS="-v /usr:/usr:ro -v /usr/lib:/lib:ro -v /usr/lib64:/lib64:ro"

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root"
for bin in hyperfine iperf3 umoci skopeo ip nsenter; do
	command -v "$bin" >/dev/null 2>&1 || die "$bin not found (scripts/install-deps.sh)"
done
for b in berthd berth containerd-shim-berth-v2 berth-runtime; do
	[[ -x $BIN/$b ]] || die "$BIN/$b not built: bash scripts/build.sh"
done

in_ns() {
	nsenter "--net=/run/netns/$NETNS" "$@"
}
BERTH=("$BIN/berth" -H "unix://$BD/state/berthd.sock")
BERTHD_PID=

# shellcheck source=lib/teardown.sh
. "$BENCH_DIR/lib/teardown.sh"
cleanup() {
	set +e
	stop_peer_engines
	stop_berthd
	findmnt -rn -o TARGET | grep -F "$BENCH_WORK/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
	ip netns del "$NETNS" 2>/dev/null
	rm -rf "$BENCH_WORK"
}
trap cleanup EXIT INT TERM

ip netns del "$NETNS" 2>/dev/null || true
rm -rf "$BENCH_WORK"
mkdir -p "$BD"
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
ip -n "$NETNS" link add uplink0 type veth peer name uplink1
ip -n "$NETNS" addr add "$HOST_ADDR/24" dev uplink0
ip -n "$NETNS" link set uplink0 up
ip -n "$NETNS" link set uplink1 up
bash "$REPO_ROOT/integration/fixtures/make-busybox-image.sh" "$BENCH_WORK/image" >/dev/null

(cd "$REPO_ROOT" && cargo build --release --quiet -p berth-bench --bin peer-engines)
# docker first: it takes 172.17.0.0/16 as it always does, berthd then picks its next free subnet.
coproc PEER { in_ns "$REPO_ROOT/target/release/peer-engines" --networked "$BENCH_WORK/peers" "$BENCH_WORK/image/busybox-docker.tar" 2>"$BENCH_WORK/peers.log"; }
PEER_PID=$PEER_PID
PEER_IN=${PEER[1]}
DOCKER= PODMAN_CMD=
while IFS= read -r line <&"${PEER[0]}"; do
	case $line in
	docker=*) DOCKER=${line#docker=} ;;
	podman=*) PODMAN_CMD=${line#podman=} ;;
	ready) break ;;
	esac
done
[[ -n $DOCKER && -n $PODMAN_CMD ]] || die "peer-engines did not start docker and podman; see $BENCH_WORK/peers.log"

# nsenter, not the in_ns function: a backgrounded function is a subshell, and $! would be its pid.
nsenter "--net=/run/netns/$NETNS" setsid "$BIN/berthd" --root "$BD/root" --state "$BD/state" --log-level warn \
	>>"$BD/berthd.log" 2>&1 </dev/null &
BERTHD_PID=$!
for _ in $(seq 100); do
	"${BERTH[@]}" version >/dev/null 2>&1 && break
	sleep 0.1
done
"${BERTH[@]}" load -q -i "$BENCH_WORK/image/busybox-docker.tar" >/dev/null

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$BENCH_DIR/results/network-$STAMP
mkdir -p "$OUT"
ln -sfn "network-$STAMP" "$BENCH_DIR/results/network-latest"
echo "$(iperf3 --version | head -1), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/versions.txt"

# --- latency on each engine's default bridge -------------------------------------
"${BERTH[@]}" run --rm "$IMAGE" sh -c 'ip -o -4 addr show eth0 | grep -q inet && echo berth ok'
eval "$DOCKER run --rm $IMAGE sh -c 'ip -o -4 addr show eth0 | grep -q inet && echo docker ok'"
eval "$PODMAN_CMD run --rm --network bridge $IMAGE sh -c 'ip -o -4 addr show eth0 | grep -q inet && echo podman ok'"
hyperfine --warmup 3 --runs "$RUNS" --shell bash --style basic \
	--export-json "$OUT/latency.json" --export-markdown "$OUT/latency.md" \
	-n 'berth run --rm (bridge)' "${BERTH[*]} run --rm $IMAGE true" \
	-n 'docker run --rm (bridge)' "$DOCKER run --rm $IMAGE true" \
	-n 'podman run --rm --network bridge' "$PODMAN_CMD run --rm --network bridge $IMAGE true" 2>&1 | tee "$OUT/latency.txt"

# --- throughput -------------------------------------------------------------------
# $1: engine command line (eval'd); prints "lo_bps addr_bps c2c_bps"
throughput() {
	local engine=$1 port=$2 srv ip lo addr c2c
	srv=$(eval "$engine run -d -p $port:5201 $IPERF_MOUNTS $IMAGE /usr/bin/iperf3 -s")
	ip=$(eval "$engine inspect $srv" | python3 -c 'import json,sys; n=json.load(sys.stdin)[0]["NetworkSettings"]; print(n.get("IPAddress") or next(iter(n["Networks"].values()))["IPAddress"])')
	for _ in $(seq 50); do
		in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
		sleep 0.1
	done
	bps() { python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))'; }
	lo=$(in_ns iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -J | bps)
	addr=$(in_ns iperf3 -c "$HOST_ADDR" -p "$port" -t "$DURATION" -J | bps)
	c2c=$(eval "$engine run --rm $IPERF_MOUNTS $IMAGE /usr/bin/iperf3 -c $ip -p 5201 -t $DURATION -J" | bps)
	eval "$engine rm -f $srv" >/dev/null
	echo "$lo $addr $c2c"
}
read -r b_lo b_addr b_c2c <<<"$(throughput "${BERTH[*]}" 15201)"
read -r d_lo d_addr d_c2c <<<"$(throughput "$DOCKER" 15202)"

python3 - "$OUT/latency.json" "$b_lo" "$b_addr" "$b_c2c" "$d_lo" "$d_addr" "$d_c2c" "$DURATION" <<'PY' | tee "$OUT/summary.md"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b_lo, b_addr, b_c2c, d_lo, d_addr, d_c2c = (int(x) / 1e9 for x in sys.argv[2:8])
print("| measure | berth | peer | berth / peer |")
print("|---|---|---|---|")
for peer in r[1:]:
    print(f"| `run --rm true` on the default bridge, mean of {len(r[0]['times'])}, vs {peer['command']} | {r[0]['mean']*1000:.1f} ms | {peer['mean']*1000:.1f} ms | {r[0]['mean']/peer['mean']:.2f}× |")
print(f"| TCP host → container, -p on 127.0.0.1, {sys.argv[8]} s (vs docker) | {b_lo:.2f} Gbit/s | {d_lo:.2f} Gbit/s | {b_lo/d_lo:.2f}× |")
print(f"| TCP host → container, -p on the host's address (vs docker) | {b_addr:.2f} Gbit/s | {d_addr:.2f} Gbit/s | {b_addr/d_addr:.2f}× |")
print(f"| TCP container → container, default bridge (vs docker) | {b_c2c:.2f} Gbit/s | {d_c2c:.2f} Gbit/s | {b_c2c/d_c2c:.2f}× |")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.md"
echo "results: $OUT"
