#!/usr/bin/env bash
# Side-by-side container lifecycle benchmark: berth-runtime vs runc vs crun.
#
# usage: lifecycle.sh [GROUP...]      (default: all groups, in this order)
#
# Each group compares all runtimes in one hyperfine run (same machine load
# for every runtime):
#   lifecycle: R create --bundle B ID && R start ID && R delete --force ID
#   run:       R run --bundle B ID      (foreground: waits for exit, deletes)
#   exec:      R exec ID /bin/true      (into a running `sleep` container,
#              one per runtime, started before and deleted after the group)
#   realistic: as lifecycle, with a memory limit (MEMORY_LIMIT) and berth's
#              default seccomp profile, the same JSON for every runtime
# The containers run /bin/true from a busybox bundle.
#
# env:
#   BERTH         berth-runtime binary (default: target/dist/bin/berth-runtime, from
#                 scripts/build.sh: the static musl binary that ships)
#   PROFILE_TOOL  prints berth's default seccomp profile for a config.json
#                 (default: target/release/default-seccomp-profile, from
#                 `cargo build --release -p berth-bench`); realistic only
#   RUNC, CRUN    peer runtimes        (default: /usr/sbin/runc, /usr/bin/crun)
#   RUNS          measured runs per command (default 30); warmup is 3
#   MEMORY_LIMIT  realistic's linux.resources.memory.limit in bytes
#                 (default 268435456, 256 MiB)
#   RSS_RUNS      creates per runtime for the peak-RSS row printed after the
#                 lifecycle group (GNU time's %M, median; default 10)
#   BENCH_WORK    scratch dir for the bundles and state roots
#                 (default ${TMPDIR:-/tmp}/berth-bench)
#
# Needs root, hyperfine, python3, unshare (util-linux) and GNU time (/usr/bin/time).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_DIR=$(dirname "$SELF")
REPO_ROOT=$(dirname "$BENCH_DIR")

BERTH=${BERTH:-$REPO_ROOT/target/dist/bin/berth-runtime}
PROFILE_TOOL=${PROFILE_TOOL:-$REPO_ROOT/target/release/default-seccomp-profile}
RUNC=${RUNC:-/usr/sbin/runc}
CRUN=${CRUN:-/usr/bin/crun}
RUNS=${RUNS:-30}
MEMORY_LIMIT=${MEMORY_LIMIT:-268435456}
RSS_RUNS=${RSS_RUNS:-10}
WARMUP=3
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/berth-bench}
# /bin/true for lifecycle and run; `sleep` for the exec group's containers;
# /bin/true with a memory limit and the default seccomp profile for realistic.
BUNDLE=$BENCH_WORK/bundle
SLEEP_BUNDLE=$BENCH_WORK/bundle-sleep
REALISTIC_BUNDLE=$BENCH_WORK/bundle-realistic
RESULTS=$BENCH_DIR/results
ALL_GROUPS=(lifecycle run exec realistic)
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
	# cgroups behind, also nested under the runtime's own cgroup; rmdir only
	# succeeds on cgroups without processes. Plain directories that crun
	# leaves in our private tmpfs are skipped.
	local cg
	while IFS= read -r cg; do
		[[ $(stat -f -c %T "$cg") == cgroup* ]] || continue
		rmdir "$cg" 2>/dev/null || echo "warning: could not remove cgroup $cg" >&2
	done < <(find /sys/fs/cgroup -mindepth 2 -maxdepth 6 -type d -name "$ID_PREFIX*" 2>/dev/null)
}

# The container id of runtime $1's long-running container in the exec group.
exec_id() {
	echo "${ID_PREFIX}exec-$1-$$"
}

# One visible try of GROUP with one runtime: hyperfine hides the runtime's
# stderr, so a runtime that cannot do the group is reported here. For exec
# it also starts the container that the measured runs exec into.
# usage: smoke GROUP NAME BIN ROOT; prints what went wrong on failure.
smoke() {
	local group=$1 name=$2 bin=$3 root=$4 id=${ID_PREFIX}smoke-$$ bundle=$BUNDLE
	case $group in
	exec)
		id=$(exec_id "$name")
		# The container's init inherits create's stdio: a file, not this
		# command substitution's pipe, which it would hold open for an hour.
		local log=$STAMP_DIR/exec-$name.create.stderr
		if ! "$bin" --root "$root" create --bundle "$SLEEP_BUNDLE" "$id" </dev/null >/dev/null 2>"$log"; then
			cat "$log"
			return 1
		fi
		"$bin" --root "$root" start "$id" 2>&1 &&
			"$bin" --root "$root" exec "$id" /bin/true </dev/null 2>&1
		return
		;;
	realistic) bundle=$REALISTIC_BUNDLE ;;
	esac
	"$bin" --root "$root" run --bundle "$bundle" "$id" </dev/null 2>&1 && return
	"$bin" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
	return 1
}

# The shell command hyperfine times for one runtime in one group. $r is the
# quoted "BIN --root ROOT"; $RANDOM is expanded by the bash that hyperfine
# starts for each run, giving every run a fresh container id.
# usage: group_command GROUP NAME R
group_command() {
	local group=$1 name=$2 r=$3 new_id="id=$ID_PREFIX\$RANDOM\$RANDOM;" bundle
	case $group in
	lifecycle | realistic)
		bundle=$BUNDLE
		[[ $group == lifecycle ]] || bundle=$REALISTIC_BUNDLE
		bundle=$(printf %q "$bundle")
		echo "$new_id $r create --bundle $bundle \"\$id\" && $r start \"\$id\" && $r delete --force \"\$id\""
		;;
	run) echo "$new_id $r run --bundle $(printf %q "$BUNDLE") \"\$id\"" ;;
	exec) echo "$r exec $(printf %q "$(exec_id "$name")") /bin/true" ;;
	*) die "unknown group $group" ;;
	esac
}

group_title() {
	case $1 in
	lifecycle) echo "create + start + delete --force (/bin/true)" ;;
	run) echo "foreground run (/bin/true)" ;;
	exec) echo "exec /bin/true into a running container" ;;
	realistic) echo "create + start + delete --force (/bin/true), $((MEMORY_LIMIT >> 20)) MiB memory limit, default seccomp profile" ;;
	esac
}

# Smoke-tests every runtime on GROUP, then times those that passed in one
# hyperfine run; berth failing the smoke test aborts, a peer is skipped.
measure_group() {
	local group=$1 entry name bin root out r q_log args=()
	for entry in "${RUNTIMES[@]}"; do
		name=${entry%%=*}
		bin=${entry#*=}
		root=$BENCH_WORK/state/$name
		mkdir -p "$root"
		if ! out=$(smoke "$group" "$name" "$bin" "$root"); then
			[[ $name != berth ]] || die "berth-runtime failed the $group smoke run: $out"
			echo "skipping $name in $group: smoke run failed: $out" >&2
			continue
		fi
		r="$(printf %q "$bin") --root $(printf %q "$root")"
		# stderr goes to a per-runtime log (hyperfine would discard it) so
		# a failing run can be explained afterwards.
		q_log=$(printf %q "$STAMP_DIR/$group-$name.stderr")
		args+=(-n "$name" "{ $(group_command "$group" "$name" "$r"); } 2>>$q_log")
	done

	echo
	echo "== $group: $(group_title "$group") =="
	hyperfine --shell bash --warmup "$WARMUP" --runs "$RUNS" --time-unit millisecond \
		--export-json "$STAMP_DIR/$group.json" --export-markdown "$STAMP_DIR/$group.md" "${args[@]}" ||
		die "hyperfine failed; the runtimes' stderr is in $STAMP_DIR/$group-*.stderr"
	# exec's containers must not keep running through the next group.
	cleanup_containers
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

	local group
	read -ra SELECTED <<<"$BENCH_GROUPS"
	for group in "${SELECTED[@]}"; do
		measure_group "$group"
	done
	if [[ " ${SELECTED[*]} " == *" lifecycle "* ]]; then
		measure_create_rss | tee "$STAMP_DIR/create-rss.txt"
	fi
}

# Peak RSS of the `create` command itself (GNU time's %M: the maximum resident set of the
# process, over its re-execs), median of RSS_RUNS creates per runtime, each deleted after.
measure_create_rss() {
	local entry name bin root i id rss=()
	echo
	echo "== create's peak RSS (kB, median of $RSS_RUNS) =="
	for entry in "${RUNTIMES[@]}"; do
		name=${entry%%=*}
		bin=${entry#*=}
		root=$BENCH_WORK/state/$name
		rss=()
		for ((i = 0; i < RSS_RUNS; i++)); do
			id=${ID_PREFIX}rss-$$-$i
			# time writes to a file: the created init holds create's stdio open until deleted.
			/usr/bin/time -o "$BENCH_WORK/rss" -f %M "$bin" --root "$root" create --bundle "$BUNDLE" "$id" \
				</dev/null >/dev/null 2>&1 || echo "warning: $name create failed" >&2
			rss+=("$(tail -n1 "$BENCH_WORK/rss")")
			"$bin" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
		done
		printf '%-8s %s\n' "$name" "$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
	done
}

# Prints each runtime's mean relative to berth for every group that ran.
print_ratios() {
	local group paths=()
	for group in "${SELECTED[@]}"; do paths+=("$STAMP_DIR/$group.json"); done
	python3 - "${paths[@]}" <<'PY'
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
# Outer stage: checks, bundles, then re-runs this script in a private mount
# namespace and reports.
if [[ ${_BERTH_BENCH_INNER:-} == 1 ]]; then
	inner
	exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (containers with namespaces and cgroups)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got: $RUNS"
[[ $MEMORY_LIMIT =~ ^[1-9][0-9]*$ ]] || die "MEMORY_LIMIT must be a positive number of bytes, got: $MEMORY_LIMIT"
for tool in hyperfine python3 unshare; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps.sh installs it)"
done
SELECTED=("$@")
[[ ${#SELECTED[@]} -gt 0 ]] || SELECTED=("${ALL_GROUPS[@]}")
for group in "${SELECTED[@]}"; do
	[[ " ${ALL_GROUPS[*]} " == *" $group "* ]] || die "unknown group $group (groups: ${ALL_GROUPS[*]})"
done

# Checked here, not in select_runtimes: die in a process substitution would
# not stop the script.
[[ -x $BERTH ]] || die "berth-runtime not found at $BERTH (build it: bash scripts/build.sh, or set BERTH=...)"
mapfile -t RUNTIMES < <(select_runtimes)
[[ ${#RUNTIMES[@]} -gt 1 ]] || echo "note: no peer runtime installed; measuring berth alone" >&2

# Private bundles, so changing their args or config never affects the tests'.
mkdir -p "$BENCH_WORK"
make_bundle() {
	ARGS=$2 "$REPO_ROOT/integration/fixtures/make-busybox-bundle.sh" "$1" >/dev/null
}
make_bundle "$BUNDLE" '["/bin/true"]'
make_bundle "$SLEEP_BUNDLE" '["/bin/sleep", "3600"]'
if [[ " ${SELECTED[*]} " == *" realistic "* ]]; then
	[[ -x $PROFILE_TOOL ]] ||
		die "$PROFILE_TOOL not found (build it: cargo build --release -p berth-bench, or set PROFILE_TOOL=...)"
	make_bundle "$REALISTIC_BUNDLE" '["/bin/true"]'
	# The profile is resolved for the bundle's own bounding set, as the CLI
	# tier will do; every runtime gets this same JSON.
	"$PROFILE_TOOL" "$REALISTIC_BUNDLE/config.json" >"$BENCH_WORK/default-seccomp.json"
	python3 - "$REALISTIC_BUNDLE/config.json" "$BENCH_WORK/default-seccomp.json" "$MEMORY_LIMIT" <<'PY'
import json, sys

config_path, seccomp_path, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = json.load(open(config_path))
config["linux"]["seccomp"] = json.load(open(seccomp_path))
config["linux"]["resources"] = {"memory": {"limit": limit}}
json.dump(config, open(config_path, "w"), indent="\t")
PY
fi

STAMP_DIR=$RESULTS/$(date +%Y%m%d-%H%M%S)
mkdir -p "$STAMP_DIR"
export STAMP_DIR

echo "berth: $BERTH"
for entry in "${RUNTIMES[@]:1}"; do echo "${entry%%=*}: ${entry#*=}"; done
echo "groups: ${SELECTED[*]}   runs: $RUNS (+$WARMUP warmup)   results: $STAMP_DIR"

# --propagation private: the tmpfs mounted inside must never propagate back
# to the host's /sys/fs/cgroup.
_BERTH_BENCH_INNER=1 BENCH_GROUPS="${SELECTED[*]}" BERTH=$BERTH RUNC=$RUNC CRUN=$CRUN RUNS=$RUNS \
	MEMORY_LIMIT=$MEMORY_LIMIT RSS_RUNS=$RSS_RUNS BENCH_WORK=$BENCH_WORK unshare --mount --propagation private -- "$SELF"

print_ratios
ln -sfn "$(basename "$STAMP_DIR")" "$RESULTS/latest"
echo
echo "results: $STAMP_DIR (also $RESULTS/latest)"
