#!/usr/bin/env bash
# `berth build` side by side with docker 20.10's classic builder (DOCKER_BUILDKIT=0), in one run,
# on the same 10-step Dockerfile and the same 50 MiB context:
#   cold:    `build --no-cache` (every step runs again; the base image is already loaded)
#   cached:  the same build again without --no-cache (every step a cache hit)
# All four builds are timed in one loop of RUNS rounds (after a warmup round), berth and docker
# alternating within each round, and every cached build is checked to take its 9 steps from the
# cache. Before that, one traced cold and
# one traced cached build per engine time each step (time between the `Step N/10` lines the
# classic builder's output and berth's both print), and the images both engines built are checked
# to hold the same files.
#
# usage: build.sh
#
# env:
#   BIN         berth's binaries (default: target/dist/bin from scripts/build.sh)
#   RUNS        timed rounds (default 20), after one warmup round
#   CONTEXT_MB  size of the random part of the build context in MiB (default 50: 10 files)
#   BENCH_WORK  scratch dir (default ${TMPDIR:-/tmp}/berth-bench-build)
#
# berthd runs with `--bridge none` and dockerd (started by this crate's `peer-engines`, as in
# run.sh) with `--bridge=none`, so both builds get `--network none`: RUN steps need no network.
# Needs root, GNU time (/usr/bin/time), umoci and skopeo, python3, docker.io (and podman, which peer-engines
# starts too). Timings are never a pass/fail test: the script fails only when a command fails.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_DIR=$(dirname "$SELF")
REPO_ROOT=$(dirname "$BENCH_DIR")
BIN=${BIN:-$REPO_ROOT/target/dist/bin}
RUNS=${RUNS:-20}
CONTEXT_MB=${CONTEXT_MB:-50}
# A build that fails ends the run unless ATTEMPTS > 1 (then it is logged and run again).
ATTEMPTS=${ATTEMPTS:-1}
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/berth-bench-build}
IMAGE=localhost/busybox:latest
BD=$BENCH_WORK/berthd
CTX=$BENCH_WORK/context

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root"
for bin in /usr/bin/time umoci skopeo python3; do
	command -v "$bin" >/dev/null 2>&1 || die "$bin not found (scripts/install-deps.sh)"
done
for b in berthd berth containerd-shim-berth-v2 berth-runtime; do
	[[ -x $BIN/$b ]] || die "$BIN/$b not built: bash scripts/build.sh"
done

BERTH=("$BIN/berth" -H "unix://$BD/state/berthd.sock")
BERTHD_PID=

# shellcheck source=lib/teardown.sh
. "$BENCH_DIR/lib/teardown.sh"
cleanup() {
	set +e
	stop_peer_engines
	stop_berthd
	findmnt -rn -o TARGET | grep -F "$BENCH_WORK/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$BENCH_WORK"
}
trap cleanup EXIT INT TERM

rm -rf "$BENCH_WORK"
mkdir -p "$BD" "$CTX/ctx/big" "$CTX/ctx/small"
bash "$REPO_ROOT/integration/fixtures/make-busybox-image.sh" "$BENCH_WORK/image" >/dev/null

# --- the context: CONTEXT_MB MiB of random bytes (fixed seed) in 10 files, 100 small text files -
python3 - "$CTX/ctx" "$CONTEXT_MB" <<'PY'
import random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261203)
for i in range(10):
    with open(f"{root}/big/r{i:02d}.bin", "wb") as f:
        f.write(rng.randbytes(mb * 1024 * 1024 // 10))
for i in range(100):
    with open(f"{root}/small/s{i:03d}.txt", "w") as f:
        f.write(f"small file {i}\n" * (i + 1))
PY
# 10 steps: FROM, 3 config steps, 4 RUNs that write files, COPY of the context, CMD.
cat >"$CTX/Dockerfile" <<EOF
FROM $IMAGE
ENV BENCH=build APP_HOME=/app
LABEL org.berth.bench=build
WORKDIR /app
RUN mkdir -p /data && dd if=/dev/zero of=/data/f1 bs=1M count=5 2>/dev/null
RUN echo "written by a RUN step" > /x && seq 1 20000 > /app/seq.txt
RUN for i in 1 2 3 4 5 6 7 8 9 10; do echo \$i > /data/n\$i; done
COPY ctx/ /ctx/
RUN du -s /ctx > /ctx.du && ls -R /ctx | wc -l > /ctx.count
CMD ["sh"]
EOF

setsid "$BIN/berthd" --root "$BD/root" --state "$BD/state" --bridge none --log-level warn >>"$BD/berthd.log" 2>&1 </dev/null &
BERTHD_PID=$!
for _ in $(seq 100); do
	"${BERTH[@]}" version >/dev/null 2>&1 && break
	sleep 0.1
done
"${BERTH[@]}" load -q -i "$BENCH_WORK/image/busybox-docker.tar" >/dev/null

(cd "$REPO_ROOT" && cargo build --release --quiet -p berth-bench --bin peer-engines)
coproc PEER { "$REPO_ROOT/target/release/peer-engines" "$BENCH_WORK/peers" "$BENCH_WORK/image/busybox-docker.tar" 2>"$BENCH_WORK/peers.log"; }
PEER_PID=$PEER_PID
PEER_IN=${PEER[1]}
DOCKER=
while IFS= read -r line <&"${PEER[0]}"; do
	case $line in
	docker=*) DOCKER=${line#docker=} ;;
	ready) break ;;
	esac
done
[[ -n $DOCKER ]] || die "peer-engines did not start docker; see $BENCH_WORK/peers.log"

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$BENCH_DIR/results/build-$STAMP
mkdir -p "$OUT"
ln -sfn "build-$STAMP" "$BENCH_DIR/results/build-latest"
{
	echo "berth binaries of $(date -u -r "$BIN/berthd" '+%F %T') UTC (HEAD now $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')), $(eval "$DOCKER version --format 'docker {{.Server.Version}} (client {{.Client.Version}})'"), kernel $(uname -r), $(nproc) cores"
	echo "context: $(du -sb "$CTX" | cut -f1) bytes in $(find "$CTX" -type f | wc -l) files; load at start $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/versions.txt"
cp "$CTX/Dockerfile" "$OUT/Dockerfile"

B_BUILD="${BERTH[*]} build --network none"
D_BUILD="DOCKER_BUILDKIT=0 $DOCKER build --network none"

# --- traced builds: per-step times, and the images checked --------------------------
# Prefixes each output line with the time it was read (bash's EPOCHREALTIME: no fork per line),
# after a START line; a step's time is the gap to the next step's line.
traced() { # $1: output file; rest: command line (eval'd). Tried ATTEMPTS times, as the timed builds below.
	local out=$1 attempt
	shift
	for attempt in $(seq "$ATTEMPTS"); do
		echo "$EPOCHREALTIME START" >"$out"
		{ eval "$*" 2>&1 || echo "FAILED: exit $?"; } | while IFS= read -r line; do
			echo "$EPOCHREALTIME $line"
		done >>"$out"
		echo "$EPOCHREALTIME END" >>"$out"
		grep -q '^[0-9.]* FAILED: exit' "$out" || return 0
		{
			echo "traced $*, attempt $attempt failed:"
			cat "$out"
		} >>"$OUT/failures.log"
		echo "  traced build: attempt $attempt failed: $(tail -3 "$out" | head -1)"
	done
	die "$* failed $ATTEMPTS time(s) in a row (see $OUT/failures.log)"
}
: >"$OUT/failures.log"
echo "traced builds (cold, then cached) ..."
traced "$OUT/trace-berth-cold.txt" "$B_BUILD --no-cache -t bench/build:berth $CTX"
traced "$OUT/trace-berth-cached.txt" "$B_BUILD -t bench/build:berth $CTX"
traced "$OUT/trace-docker-cold.txt" "$D_BUILD --no-cache -t bench/build:docker $CTX"
traced "$OUT/trace-docker-cached.txt" "$D_BUILD -t bench/build:docker $CTX"
for f in berth docker; do
	n=$(grep -c -e '---> Using cache' -e '---> CACHED' "$OUT/trace-$f-cached.txt" || true)
	echo "$f cached build: $n steps from the cache"
done

# Same files in both images, and the same as the context.
CHECK='cat /ctx.du /ctx.count; md5sum /ctx/big/* /ctx/small/* /x /app/seq.txt /data/f1 /data/n7 | md5sum'
b_sum=$("${BERTH[@]}" run --rm bench/build:berth sh -c "$CHECK")
d_sum=$(eval "$DOCKER run --rm --network none bench/build:docker sh -c '$CHECK'")
echo "image check berth:  $(echo "$b_sum" | tr '\n' ' ')" | tee "$OUT/check.txt"
echo "image check docker: $(echo "$d_sum" | tr '\n' ' ')" | tee -a "$OUT/check.txt"
[[ $b_sum == "$d_sum" ]] || die "the images differ (see $OUT/check.txt)"

# --- timings ----------------------------------------------------------------------
# A timed loop, not hyperfine: berth and docker alternate within each round (so both see the
# same moments of a shared machine). A failed build ends the run (ATTEMPTS=N runs it again up to
# N times instead, logged in failures.log; a failed attempt's time is not counted).
NAMES=('berth build --no-cache (cold)' 'docker build --no-cache (cold)' 'berth build (cached)' 'docker build (cached)')
CMDS=("$B_BUILD --no-cache -t bench/build:cold $CTX" "$D_BUILD --no-cache -t bench/build:cold $CTX"
	"$B_BUILD -t bench/build:cached $CTX" "$D_BUILD -t bench/build:cached $CTX")
: >"$OUT/times.txt"
timed() { # $1: round (0 = warmup), $2: command index
	local attempt t0 t1 cpu hits log=$BENCH_WORK/build.log
	for attempt in $(seq "$ATTEMPTS"); do
		t0=$EPOCHREALTIME
		if /usr/bin/time -f '%U %S' -o "$BENCH_WORK/cpu" bash -c "${CMDS[$2]}" >"$log" 2>&1; then
			t1=$EPOCHREALTIME
			cpu=$(tail -1 "$BENCH_WORK/cpu")
			hits=$(grep -c -e '---> Using cache' -e '---> CACHED' "$log" || true)
			echo "$1 $2 $t0 $t1 $cpu $hits" >>"$OUT/times.txt"
			return 0
		fi
		{
			echo "round $1, ${NAMES[$2]}, attempt $attempt failed:"
			cat "$log"
		} >>"$OUT/failures.log"
		echo "  ${NAMES[$2]}: attempt $attempt failed: $(tail -1 "$log")"
	done
	die "${NAMES[$2]} failed $ATTEMPTS time(s) in a row (see $OUT/failures.log)"
}
echo "load before the timed builds: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/versions.txt"
for round in $(seq 0 "$RUNS"); do
	for i in 0 1 2 3; do timed "$round" "$i"; done
	echo "round $round/$RUNS done (load $(cut -d' ' -f1 /proc/loadavg))"
done
echo "load after the timed builds: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/versions.txt"

python3 - "$OUT" "${NAMES[@]}" <<'PY'
import json, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
rows = [l.split() for l in open(f"{out}/times.txt")]
results = []
for i, name in enumerate(names):
    mine = [r for r in rows if int(r[1]) == i and int(r[0]) > 0]  # round 0 is the warmup
    times = [float(r[3]) - float(r[2]) for r in mine]
    results.append({"command": name, "times": times, "mean": statistics.mean(times),
                    "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
                    "median": statistics.median(times), "min": min(times), "max": max(times),
                    "user": statistics.mean(float(r[4]) for r in mine),
                    "system": statistics.mean(float(r[5]) for r in mine),
                    "cache_hits": sorted({int(r[6]) for r in mine})})
json.dump({"results": results}, open(f"{out}/build.json", "w"), indent=1)
PY
failed=$(grep -c 'attempt [0-9]* failed:' "$OUT/failures.log" || true)
echo "failed attempts (run again, not timed): $failed" | tee "$OUT/failures.txt"

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, re, sys
out = sys.argv[1]
r = json.load(open(f"{out}/build.json"))["results"]
print("| build | berth mean ± σ (median, min) | docker 20.10 classic mean ± σ (median, min) | berth / docker, mean (median) | issue's target |")
print("|---|---|---|---|---|")
for (b, d, what, target) in ((r[0], r[1], "cold (`--no-cache`)", "≤ 0.5×"), (r[2], r[3], "fully cached", "≤ 0.2×")):
    cell = lambda x: f"{x['mean']:.2f} ± {x['stddev']:.2f} s ({x['median']:.2f}, {x['min']:.2f})"
    print(f"| {what}, {len(b['times'])} runs | {cell(b)} | {cell(d)} | {b['mean']/d['mean']:.2f}× ({b['median']/d['median']:.2f}×) | {target} |")
print()
print("CPU time of the client process (user + system, mean; the daemons' is not in it): " + ", ".join(
    f"{x['command']} {x['user']*1000:.0f} + {x['system']*1000:.0f} ms" for x in r) + ".")
print("Steps from the cache per build: " + ", ".join(f"{x['command']} {x['cache_hits']}" for x in r) + ".")

def steps(path):
    """[(label, seconds)]: context upload (start → Step 1), each step (its line → the next), end."""
    marks = []
    # Only \n ends a line: docker's "Sending build context" line holds carriage returns.
    for line in open(path, newline="\n"):
        t, _, text = line.rstrip("\r\n").partition(" ")
        if text == "START":
            start = float(t)
            continue
        t = float(t) - start
        m = re.match(r"Step (\d+)/\d+ : (.*)", text)
        if m:
            marks.append((f"{m.group(1)} {m.group(2)[:48]}", t))
        elif text == "END":
            end = t
    rows = [("context → Step 1", marks[0][1])]
    for i, (label, t) in enumerate(marks):
        rows.append((label, (marks[i + 1][1] if i + 1 < len(marks) else end) - t))
    rows.append(("total", end))
    return rows

print()
print("Per step, one traced build each (s; the last step includes writing the image and tagging):")
print()
print("| step | berth cold | docker cold | berth cached | docker cached |")
print("|---|---|---|---|---|")
cols = [steps(f"{out}/trace-{e}-{k}.txt") for k in ("cold", "cached") for e in ("berth", "docker")]
for i, (label, _) in enumerate(cols[0]):
    vals = " | ".join(f"{c[i][1]:.2f}" if i < len(c) else "?" for c in cols)
    print(f"| {label.replace('|', '/')} | {vals} |")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.md"
echo "results: $OUT"
