#!/usr/bin/env bash
# containerd-shim-berth-v2 vs containerd-shim-runc-v2 under the same private
# containerd 1.6:
#   memory:  VmRSS, Pss and threads of each shim of COUNT running `sleep`
#            containers per shim (the shim's cost per running container)
#   latency: `ctr run --rm IMAGE ID true`, one hyperfine run with
#              berth shim + berth-runtime
#              runc shim  + runc          (containerd's default)
#              runc shim  + berth-runtime (--runc-binary: same runtime as
#                                          the first row, so the difference
#                                          between them is the shims')
#
# usage: shim.sh
#
# env:
#   SHIM        our shim binary (default: target/dist/bin/containerd-shim-berth-v2,
#               the static build scripts/build.sh makes)
#   BERTH       berth-runtime (default: target/dist/bin/berth-runtime)
#   RUNC        runc (default: /usr/sbin/runc)
#   COUNT       running containers per shim for the memory table (default 3)
#   RUNS        hyperfine runs per command (default 30); warmup is 3
#   BENCH_WORK  scratch dir (default ${TMPDIR:-/tmp}/berth-bench-shim)
#
# Needs root, containerd + ctr + containerd-shim-runc-v2 (Debian containerd),
# runc, hyperfine, umoci and skopeo (for the image). Timings are never a
# pass/fail test: the script fails only when a command fails.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_DIR=$(dirname "$SELF")
REPO_ROOT=$(dirname "$BENCH_DIR")

SHIM=${SHIM:-$REPO_ROOT/target/dist/bin/containerd-shim-berth-v2}
BERTH=${BERTH:-$REPO_ROOT/target/dist/bin/berth-runtime}
RUNC=${RUNC:-/usr/sbin/runc}
COUNT=${COUNT:-3}
RUNS=${RUNS:-30}
WARMUP=3
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/berth-bench-shim}
NS=berthbench
ID_PREFIX=berthbench-shim-
IMAGE=localhost/busybox:latest
CD=$BENCH_WORK/containerd
SOCK=$CD/containerd.sock

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root"
for bin in /usr/bin/containerd /usr/bin/ctr /usr/bin/containerd-shim-runc-v2 "$RUNC" hyperfine umoci skopeo; do
	command -v "$bin" >/dev/null 2>&1 || die "$bin not found (scripts/install-deps.sh)"
done
[[ -x $SHIM ]] || die "$SHIM not built: cargo build --release -p berth-shim (or the static build, see bench/README.md)"
[[ -x $BERTH ]] || die "$BERTH not built: cargo build --release -p berth-runtime"

CTR=(ctr --address "$SOCK" --namespace "$NS")
CONTAINERD_PID=

cleanup() {
	set +e
	if [[ -S $SOCK && -n $CONTAINERD_PID ]]; then
		for t in $("${CTR[@]}" tasks ls -q 2>/dev/null | grep "^$ID_PREFIX"); do
			"${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1
		done
		for t in $("${CTR[@]}" tasks ls -q 2>/dev/null | grep "^$ID_PREFIX"); do
			for _ in $(seq 50); do
				"${CTR[@]}" tasks rm "$t" >/dev/null 2>&1 && break
				sleep 0.1
			done
		done
		for c in $("${CTR[@]}" containers ls -q 2>/dev/null | grep "^$ID_PREFIX"); do
			"${CTR[@]}" containers rm "$c" >/dev/null 2>&1
		done
	fi
	if [[ -n $CONTAINERD_PID ]] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
		kill -TERM "$CONTAINERD_PID"
		for _ in $(seq 100); do kill -0 "$CONTAINERD_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	# The shims' runtime roots for our namespace (empty once every task is gone).
	rmdir "/run/containerd/berth/$NS" "/run/containerd/runc/$NS" 2>/dev/null
	# Empty cgroups of our containers (ctr puts them at /<namespace>/<id>).
	for h in /sys/fs/cgroup/*/; do
		[[ -d $h$NS ]] && find "$h$NS" -depth -type d -exec rmdir {} + 2>/dev/null
	done
}
trap cleanup EXIT INT TERM

rm -rf "$CD"
mkdir -p "$CD/opt/bin" "$BENCH_WORK/bin"
# The shim finds berth-runtime next to its own (real) path: give it one there.
cp "$SHIM" "$BENCH_WORK/bin/containerd-shim-berth-v2"
ln -sf "$(readlink -f "$BERTH")" "$BENCH_WORK/bin/berth-runtime"
# containerd's opt plugin puts <opt>/bin first on its PATH, where it finds containerd-shim-<name>-v2.
ln -sf "$BENCH_WORK/bin/containerd-shim-berth-v2" "$CD/opt/bin/containerd-shim-berth-v2"
# shellcheck source=../scripts/lib/containerd-config.sh
. "$REPO_ROOT/scripts/lib/containerd-config.sh"
containerd_config "$CD" warn
PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid /usr/bin/containerd --config "$CD/config.toml" \
	>>"$CD/containerd.log" 2>&1 </dev/null &
CONTAINERD_PID=$!
for _ in $(seq 100); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
"${CTR[@]}" version >/dev/null || die "containerd did not start; see $CD/containerd.log"

bash "$REPO_ROOT/integration/fixtures/make-busybox-image.sh" "$BENCH_WORK/image" >/dev/null
"${CTR[@]}" images import "$BENCH_WORK/image/busybox-oci.tar" >/dev/null

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$BENCH_DIR/results/shim-$STAMP
mkdir -p "$OUT"
ln -sfn "shim-$STAMP" "$BENCH_DIR/results/shim-latest"
{
	echo "shim: $SHIM ($(file -b "$SHIM" | cut -d, -f1-2)), berth-runtime: $BERTH"
	echo "containerd $(containerd --version | awk '{print $3}'), runc $("$RUNC" --version | awk 'NR==1{print $3}'), kernel $(uname -r)"
} | tee "$OUT/versions.txt"

# --- memory per running container ------------------------------------------
shim_of() { # ppid of the task's init = its shim (a subreaper)
	local pid
	pid=$("${CTR[@]}" tasks ls | awk -v t="$1" '$1==t{print $2}')
	awk '{print $4}' "/proc/$pid/stat"
}
kb() { awk -v k="$2:" '$1==k{print $2}' "$1"; }

declare -A RUNTIME_OF=([berth]=io.containerd.berth.v2 [runc]=io.containerd.runc.v2)
for shim in berth runc; do
	for i in $(seq "$COUNT"); do
		"${CTR[@]}" run -d --runtime "${RUNTIME_OF[$shim]}" "$IMAGE" "$ID_PREFIX$shim-$i" sleep 3600 >/dev/null
	done
done
# One exec into each, so that the exec path's code and buffers count too.
for shim in berth runc; do
	for i in $(seq "$COUNT"); do
		"${CTR[@]}" tasks exec --exec-id probe "$ID_PREFIX$shim-$i" true
	done
done
sleep 1
{
	echo "| shim (COUNT=$COUNT running \`sleep\` containers each) | pid | VmRSS kB | Pss kB | threads |"
	echo "|---|---|---|---|---|"
	for shim in berth runc; do
		for i in $(seq "$COUNT"); do
			p=$(shim_of "$ID_PREFIX$shim-$i")
			echo "| $(basename "$(readlink "/proc/$p/exe")") #$i | $p | $(kb "/proc/$p/status" VmRSS) | $(kb "/proc/$p/smaps_rollup" Pss) | $(ls "/proc/$p/task" | wc -l) |"
		done
	done
} | tee "$OUT/memory.md"
for shim in berth runc; do
	for i in $(seq "$COUNT"); do "${CTR[@]}" tasks kill -s SIGKILL "$ID_PREFIX$shim-$i" >/dev/null; done
done
for shim in berth runc; do
	for i in $(seq "$COUNT"); do
		for _ in $(seq 50); do "${CTR[@]}" tasks rm "$ID_PREFIX$shim-$i" >/dev/null 2>&1 && break; sleep 0.1; done
		"${CTR[@]}" containers rm "$ID_PREFIX$shim-$i" >/dev/null
	done
done

# --- ctr run --rm latency ----------------------------------------------------
# $$ is the pid of hyperfine's shell for that run: a fresh container id each time.
C="ctr --address $SOCK --namespace $NS run --rm"
# One visible smoke run of each, so a broken configuration fails here, not in hyperfine.
$C --runtime io.containerd.berth.v2 "$IMAGE" "${ID_PREFIX}smoke-b" echo berth shim ok
$C "$IMAGE" "${ID_PREFIX}smoke-r" echo runc shim ok
$C --runc-binary "$BERTH" "$IMAGE" "${ID_PREFIX}smoke-rb" echo runc shim with berth-runtime ok
hyperfine --warmup "$WARMUP" --runs "$RUNS" --shell bash --style basic \
	--export-json "$OUT/latency.json" --export-markdown "$OUT/latency.md" \
	-n 'berth shim + berth-runtime' "$C --runtime io.containerd.berth.v2 $IMAGE ${ID_PREFIX}b\$\$ true" \
	-n 'runc shim + runc' "$C $IMAGE ${ID_PREFIX}r\$\$ true" \
	-n 'runc shim + berth-runtime' "$C --runc-binary $BERTH $IMAGE ${ID_PREFIX}rb\$\$ true" \
	2>&1 | tee "$OUT/latency.txt"

python3 - "$OUT/latency.json" <<'PY' | tee "$OUT/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["mean"]
print(f"{'command':30} {'mean ms':>8} {'± σ':>6} {'median':>8} {'min':>8}   ratio")
for x in r:
    ms = lambda v: f"{v * 1000:8.1f}"
    ratio = "(baseline)" if x is r[0] else f"{x['mean'] / base:.2f}x berth shim"
    print(f"{x['command']:30} {ms(x['mean'])} {x['stddev'] * 1000:6.1f} {ms(x['median'])} {ms(x['min'])}   {ratio}")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.txt"
echo "results: $OUT"
