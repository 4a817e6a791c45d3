#!/usr/bin/env bash
# Pull + unpack of a multi-layer image from a local registry: berthd (`berth pull`) vs containerd
# 1.6 (`ctr image pull`, which unpacks into its overlayfs snapshotter), side by side in one
# hyperfine run; then the idle RSS of both daemons (freshly started, and after the pulls).
#
# usage: sudo bench/pull.sh
#
# env:
#   RUNS        hyperfine runs per command (default 10; warmup 1)
#   LAYER_MB    size of each of the 4 added layers in MB (default 60: ~200 MB compressed)
#   BIN         directory with berthd and berth (default target/dist/bin, from scripts/build.sh)
#   BENCH_WORK  scratch directory (default /tmp/berth-bench-pull), removed on exit
#
# The image: the busybox OCI image (integration/fixtures/make-busybox-image.sh) plus 4 layers,
# each 4/5 random bytes (incompressible) and 1/5 text, made with umoci and pushed with skopeo to Debian's
# docker-registry on 127.0.0.1. Before each timed pull the image is removed from the daemon
# with synchronous garbage collection, so every run downloads and unpacks everything.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(dirname "$(dirname "$SELF")")
RUNS=${RUNS:-10}
LAYER_MB=${LAYER_MB:-60}
BIN=${BIN:-$REPO_ROOT/target/dist/bin}
BENCH_WORK=${BENCH_WORK:-/tmp/berth-bench-pull}

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}
[[ $(id -u) == 0 ]] || die "run as root"
for b in "$BIN/berthd" "$BIN/berth"; do
	[[ -x $b ]] || die "$b missing: run scripts/build.sh"
done
for c in docker-registry skopeo umoci containerd ctr hyperfine; do
	command -v "$c" >/dev/null || die "$c missing: run scripts/install-deps.sh"
done

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	findmnt -rn -o TARGET | grep -F "$BENCH_WORK/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$BENCH_WORK"
}
trap cleanup EXIT
rm -rf "$BENCH_WORK"
mkdir -p "$BENCH_WORK"
W=$BENCH_WORK

# skopeo as root writes a blob-info cache under /var/lib/containers: keep it off the host.
skopeo_() {
	unshare --mount --propagation private sh -c \
		'mount -t tmpfs -o size=16m berth-bench /var/lib && exec skopeo "$@"' skopeo --tmpdir "$W" "$@"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
pids+=($!)

echo "building the image (4 layers of ${LAYER_MB} MB)..." >&2
bash "$REPO_ROOT/integration/fixtures/make-busybox-image.sh" "$W/bb" >/dev/null
cp -a "$W/bb/oci" "$W/img"
umoci unpack --image "$W/img:latest" "$W/bundle" >/dev/null
random=$((LAYER_MB * 4 / 5))
text=$((LAYER_MB - random))
for i in 1 2 3 4; do
	head -c "${random}M" /dev/urandom >"$W/bundle/rootfs/random-$i.bin"
	# yes ends by SIGPIPE when head has enough; that is not a failure.
	{ yes "berth bench layer $i: some compressible text for the rest of the layer" || true; } |
		head -c "${text}M" >"$W/bundle/rootfs/text-$i.txt"
	umoci repack --image "$W/img:latest" "$W/bundle" >/dev/null
done
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
skopeo_ copy -q --dest-tls-verify=false "oci:$W/img:latest" "docker://127.0.0.1:$port/bench:latest"
IMAGE=127.0.0.1:$port/bench:latest
size=$(du -sm "$W/registry" | cut -f1)
echo "image $IMAGE: $size MB in the registry" >&2

# berthd
mkdir -p "$W/berthd"
"$BIN/berthd" --root "$W/berthd/root" --state "$W/berthd/state" --log-level warn >"$W/berthd.log" 2>&1 &
berthd_pid=$!
pids+=("$berthd_pid")
berth=("$BIN/berth" -H "unix://$W/berthd/state/berthd.sock")
for _ in $(seq 100); do "${berth[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

# containerd (private instance, CRI off)
mkdir -p "$W/containerd"
# shellcheck source=../scripts/lib/containerd-config.sh
. "$REPO_ROOT/scripts/lib/containerd-config.sh"
containerd_config "$W/containerd"
containerd --config "$W/containerd/config.toml" >"$W/containerd.log" 2>&1 &
containerd_pid=$!
pids+=("$containerd_pid")
ctr=(ctr --address "$W/containerd/containerd.sock" --namespace bench)
for _ in $(seq 100); do "${ctr[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
idle_berthd=$(rss "$berthd_pid")
idle_containerd=$(rss "$containerd_pid")

printf -v berth_cmd '%q ' "${berth[@]}"
printf -v ctr_cmd '%q ' "${ctr[@]}"
results=$REPO_ROOT/bench/results/pull-$(date +%Y%m%d-%H%M%S)
mkdir -p "$results"
hyperfine --runs "$RUNS" --warmup 1 --export-json "$results/pull.json" \
	--prepare "$berth_cmd rmi $IMAGE >/dev/null 2>&1; $berth_cmd system prune >/dev/null" \
	-n "berthd: berth pull" "$berth_cmd pull -q $IMAGE" \
	--prepare "$ctr_cmd images rm --sync $IMAGE >/dev/null 2>&1; true" \
	-n "containerd: ctr image pull" "$ctr_cmd image pull --plain-http $IMAGE >/dev/null" |
	tee "$results/hyperfine.txt"

after_berthd=$(rss "$berthd_pid")
after_containerd=$(rss "$containerd_pid")
python3 - "$results/pull.json" "$idle_berthd" "$idle_containerd" "$after_berthd" "$after_containerd" <<'EOF' | tee "$results/summary.md"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b, c = r[0], r[1]
print("| command | mean s | ± σ | median s | min s |")
print("|---|---|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']:.2f} | {x['stddev']:.2f} | {x['median']:.2f} | {x['min']:.2f} |")
print(f"\nberthd / containerd pull time (mean): {b['mean'] / c['mean']:.2f}x")
ib, ic, ab, ac = map(int, sys.argv[2:6])
print(f"idle VmRSS: berthd {ib} kB, containerd {ic} kB ({ib / ic:.2f}x)")
print(f"VmRSS after the pulls: berthd {ab} kB, containerd {ac} kB")
EOF
ln -sfn "$(basename "$results")" "$REPO_ROOT/bench/results/pull-latest"
echo "results: $results" >&2
