#!/usr/bin/env bash
# Side-by-side container lifecycle benchmark: berth-runtime vs runc vs crun.
#
# Two hyperfine groups, each comparing all runtimes in one hyperfine run
# (same machine load for every runtime):
#   lifecycle: R create --bundle B ID && R start ID && R delete --force ID
#   run:       R run --bundle B ID      (foreground: waits for exit, deletes)
# The container runs /bin/true from a busybox bundle.
#
# env:
#   BERTH       berth-runtime binary (default: target/release/berth-runtime)
#   RUNC, CRUN  peer runtimes        (default: /usr/sbin/runc, /usr/bin/crun)
#   RUNS        measured runs per command (default 30); warmup is 3
#   BENCH_WORK  scratch dir for the bundle and state roots
#               (default ${TMPDIR:-/tmp}/berth-bench)
#
# Needs root, hyperfine, python3 and unshare (util-linux).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_DIR=$(dirname "$SELF")
REPO_ROOT=$(dirname "$BENCH_DIR")

BERTH=${BERTH:-$REPO_ROOT/target/release/berth-runtime}
RUNC=${RUNC:-/usr/sbin/runc}
CRUN=${CRUN:-/usr/bin/crun}
RUNS=${RUNS:-30}
WARMUP=3
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/berth-bench}
BUNDLE=$BENCH_WORK/bundle
RESULTS=$BENCH_DIR/results
# Every container this script creates has this id prefix, so cleanup can
# find leftovers without touching anything else in the state roots.
ID_PREFIX=berthbench-
UNIFIED=/sys/fs/cgroup/unified

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# Runtimes to benchmark, as "name=binary" lines, berth first. Peers that are
# not installed are skipped (with a message) instead of failing the run.
select_runtimes() {
	echo "berth=$BERTH"
	local name bin
	for name in runc crun; do
		if [[ $name == runc ]]; then bin=$RUNC; else bin=$CRUN; fi
		if [[ -x $bin ]]; then
			echo "$name=$bin"
		else
			echo "skipping $name: $bin not installed (apt-get install $name)" >&2
		fi
	done
}

# Remove leftover benchmark containers from every state root. Goes by the
# state directories rather than `R list`, which needs no particular list
# output format from berth-runtime.
cleanup_containers() {
	local entry name bin root dir
	for entry in "${RUNTIMES[@]}"; do
		name=${entry%%=*}
		bin=${entry#*=}
		root=$BENCH_WORK/state/$name
		[[ -d $root ]] || continue
		for dir in "$root/$ID_PREFIX"*; do
			[[ -e $dir ]] || continue
			"$bin" --root "$root" delete --force "${dir##*/}" >/dev/null 2>&1 || true
			if [[ -e $dir ]]; then
				echo "warning: $name could not delete ${dir##*/} (state left in $dir)" >&2
			fi
		done
	done
	# A runtime that fails half-way through create can leave its (empty)
	# cgroups behind; rmdir only succeeds on cgroups without processes.
	# Plain directories that crun leaves in our private tmpfs are skipped.
	local cg
	for cg in /sys/fs/cgroup/*/"$ID_PREFIX"*; do
		[[ -d $cg && $(stat -f -c %T "$cg") == cgroup* ]] || continue
		rmdir "$cg" 2>/dev/null || echo "warning: could not remove cgroup $cg" >&2
	done
}

# ---------------------------------------------------------------------------
# Inner stage: runs inside the private mount namespace set up by the outer
# stage, so the tmpfs over the cgroup2 mount is invisible to the host.
inner() {
	mapfile -t RUNTIMES < <(select_runtimes 2>/dev/null)
	trap cleanup_containers EXIT
	trap 'exit 130' INT TERM

	# crun 1.8 refuses cgroup v1/v2 "hybrid" hosts when the cgroup2 mount
	# lists any controller. Hiding that mount gives all three runtimes the
	# same pure-v1 view; the mount dies with this namespace. No size limit:
	# crun still creates per-container directories in it (from the "0::"
	# line of /proc/self/cgroup).
	if [[ $(stat -f -c %T "$UNIFIED" 2>/dev/null || true) == cgroup2fs ]]; then
		mount -t tmpfs -o mode=0755 tmpfs "$UNIFIED"
		echo "hybrid cgroup host: hid $UNIFIED (cgroup2) under an empty tmpfs in a private mount namespace; host mounts unchanged"
	fi

	local entry name bin root ok=() out
	for entry in "${RUNTIMES[@]}"; do
		name=${entry%%=*}
		bin=${entry#*=}
		root=$BENCH_WORK/state/$name
		mkdir -p "$root"
		# One visible run first: hyperfine hides the runtime's stderr, so a
		# broken runtime is reported here (berth aborts, a peer is skipped).
		if out=$("$bin" --root "$root" run --bundle "$BUNDLE" "${ID_PREFIX}smoke-$$" 2>&1); then
			ok+=("$entry")
		else
			"$bin" --root "$root" delete --force "${ID_PREFIX}smoke-$$" >/dev/null 2>&1 || true
			[[ $name != berth ]] || die "berth-runtime failed the smoke run: $out"
			echo "skipping $name: smoke run failed: $out" >&2
		fi
	done

	local lifecycle_args=() run_args=() r q_bin q_root q_bundle q_log
	for entry in "${ok[@]}"; do
		name=${entry%%=*}
		bin=${entry#*=}
		root=$BENCH_WORK/state/$name
		q_bin=$(printf %q "$bin")
		q_root=$(printf %q "$root")
		q_bundle=$(printf %q "$BUNDLE")
		r="$q_bin --root $q_root"
		# $RANDOM is expanded by the bash that hyperfine starts for each run,
		# giving every run a fresh container id.
		# stderr goes to a per-runtime log (hyperfine would discard it) so
		# a failing run can be explained afterwards.
		q_log=$(printf %q "$STAMP_DIR/lifecycle-$name.stderr")
		lifecycle_args+=(-n "$name" "id=$ID_PREFIX\$RANDOM\$RANDOM; { $r create --bundle $q_bundle \"\$id\" && $r start \"\$id\" && $r delete --force \"\$id\"; } 2>>$q_log")
		q_log=$(printf %q "$STAMP_DIR/run-$name.stderr")
		run_args+=(-n "$name" "id=$ID_PREFIX\$RANDOM\$RANDOM; $r run --bundle $q_bundle \"\$id\" 2>>$q_log")
	done

	local common=(--shell bash --warmup "$WARMUP" --runs "$RUNS" --time-unit millisecond)
	echo
	echo "== lifecycle: create + start + delete --force (/bin/true) =="
	hyperfine "${common[@]}" --export-json "$STAMP_DIR/lifecycle.json" \
		--export-markdown "$STAMP_DIR/lifecycle.md" "${lifecycle_args[@]}" ||
		die "hyperfine failed; the runtimes' stderr is in $STAMP_DIR/lifecycle-*.stderr"
	echo
	echo "== run: foreground run (/bin/true) =="
	hyperfine "${common[@]}" --export-json "$STAMP_DIR/run.json" \
		--export-markdown "$STAMP_DIR/run.md" "${run_args[@]}" ||
		die "hyperfine failed; the runtimes' stderr is in $STAMP_DIR/run-*.stderr"
}

# Print each runtime's mean relative to berth for both groups.
print_ratios() {
	python3 - "$STAMP_DIR/lifecycle.json" "$STAMP_DIR/run.json" <<'PY'
import json, os, sys

print()
print("ratios (mean time relative to berth; > 1x means berth is faster)")
print(f"{'group':<10} {'runtime':<8} {'mean ms':>9} {'± σ':>7} {'median':>8} {'min':>8}   ratio")
for path in sys.argv[1:]:
    group = os.path.basename(path).removesuffix(".json")
    results = {r["command"]: r for r in json.load(open(path))["results"]}
    base = results["berth"]["mean"]
    for name, r in results.items():
        ratio = "(baseline)" if name == "berth" else f"{name}/berth = {r['mean'] / base:.2f}x"
        print(f"{group:<10} {name:<8} {r['mean'] * 1e3:9.2f} {r['stddev'] * 1e3:7.2f} "
              f"{r['median'] * 1e3:8.2f} {r['min'] * 1e3:8.2f}   {ratio}")
PY
}

# ---------------------------------------------------------------------------
# Outer stage: checks, bundle, then re-runs this script in a private mount
# namespace and reports.
if [[ ${_BERTH_BENCH_INNER:-} == 1 ]]; then
	inner
	exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (containers with namespaces and cgroups)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got: $RUNS"
for tool in hyperfine python3 unshare; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps.sh installs it)"
done

# Checked here, not in select_runtimes: die in a process substitution would
# not stop the script.
[[ -x $BERTH ]] || die "berth-runtime not found at $BERTH (build it: cargo build --release, or set BERTH=...)"
mapfile -t RUNTIMES < <(select_runtimes)
[[ ${#RUNTIMES[@]} -gt 1 ]] || echo "note: no peer runtime installed; measuring berth alone" >&2

# A private bundle, so setting args to /bin/true never affects the tests'.
mkdir -p "$BENCH_WORK"
ARGS='["/bin/true"]' "$REPO_ROOT/integration/fixtures/make-busybox-bundle.sh" "$BUNDLE" >/dev/null

STAMP_DIR=$RESULTS/$(date +%Y%m%d-%H%M%S)
mkdir -p "$STAMP_DIR"
export STAMP_DIR

echo "berth: $BERTH"
for entry in "${RUNTIMES[@]:1}"; do echo "${entry%%=*}: ${entry#*=}"; done
echo "bundle: $BUNDLE   runs: $RUNS (+$WARMUP warmup)   results: $STAMP_DIR"

# --propagation private: the tmpfs mounted inside must never propagate back
# to the host's /sys/fs/cgroup.
_BERTH_BENCH_INNER=1 BERTH=$BERTH RUNC=$RUNC CRUN=$CRUN RUNS=$RUNS BENCH_WORK=$BENCH_WORK \
	unshare --mount --propagation private -- "$SELF"

print_ratios
ln -sfn "$(basename "$STAMP_DIR")" "$RESULTS/latest"
echo
echo "results: $STAMP_DIR (also $RESULTS/latest)"
