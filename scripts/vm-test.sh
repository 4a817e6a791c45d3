#!/usr/bin/env bash
# Runs berth's integration test binaries inside a throw-away qemu VM whose only cgroup hierarchy is
# cgroup v2: the development machines are cgroup v1 hybrids, so this is the v2 lane.
#
#   scripts/vm-test.sh [TEST...] [-- TEST_ARGS...]    (as root)
#   scripts/vm-test.sh --setup                        fetch the kernel only
#
#   TEST       an integration test target (integration/tests/NAME.rs; built here with cargo,
#              together with berth-runtime) or the path of a test binary already built.
#              Default: the suites that matter on v2 (see DEFAULT_TESTS).
#   TEST_ARGS  passed to every test binary (libtest: a name filter, --test-threads=1, ...).
#
# One VM boots and runs the binaries one after the other; their stdout and stderr stream back
# live. Exit status: 0 when every binary passed, else the first failing binary's status; 124
# when the VM timed out, 125 when the VM failed, 2 on bad usage.
#
# The guest: Debian's cloud kernel (linux-image-cloud-amd64's image package, fetched with
# `apt-get download` and unpacked into the cache, never installed), booted under TCG with
# cgroup_no_v1=all; a busybox initramfs (init: integration/vm/init) carrying the test binaries,
# berth-runtime, integration/fixtures and bash at their host paths, plus their shared libraries.
# The tests run as root in the root cgroup with BERTH_REQUIRE_V2=1, so a guest that is not pure
# v2 fails them instead of skipping them.
# Tests that drive a private berthd (their source uses integration/src/engines/berthd.rs) also get
# berthd, berth, containerd-shim-berth-v2 and berth-init from their target dir, beside
# berth-runtime; the busybox image's docker-archive, built on the host with
# integration/fixtures/make-busybox-image.sh (the guest has no umoci or skopeo), whose guest path
# they find in BERTH_IMAGE_ARCHIVE; and the overlay module for berthd's snapshotter.
#
# Environment:
#   BERTH_VM_CACHE     kernel cache (default: <cargo target dir>/vm)
#   BERTH_VM_TIMEOUT   seconds before the whole VM is killed (default 1800)
#   BERTH_VM_TEST_TIMEOUT  seconds one test binary may take in the guest (default 900)
#   BERTH_VM_MEM, BERTH_VM_CPUS   guest RAM in MiB (default 1024) and vCPUs (default 2)
#   BERTH_VM_ACCEL     tcg (default) or kvm where /dev/kvm works
#   BERTH_VM_MODULES   further kernel modules to load in the guest, with their dependencies
#                      (the lane always loads fuse: container_setup opens a device node with
#                      /dev/fuse's numbers; and overlay for berthd's tests)
#   BERTH_IMAGE_ARCHIVE  the busybox docker-archive for berthd's tests (default: built on the
#                      host for each run)
#   BERTH_VM_ENV       names of further host variables to pass into the guest (RUST_BACKTRACE,
#                      RUST_TEST_THREADS, RUST_LOG and BERTH_RUNTIME always are)
#   BERTH_VM_KEEP=1    keep the work dir ($BERTH_VM_CACHE/work/run.*: initramfs, console log)
#   BERTH_RUNTIME      the runtime binary to test (default: berth-runtime beside the test
#                      binaries' deps/ dir, as the tests themselves find it)
set -euo pipefail

DEFAULT_TESTS=(lifecycle container_setup cli resources exec seccomp update_events cgroup_v2 berth_run)
KERNEL_META=linux-image-cloud-amd64

REPO=$(cd "$(dirname "$0")/.." && pwd -P)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
CACHE=${BERTH_VM_CACHE:-$TARGET_DIR/vm}
TIMEOUT=${BERTH_VM_TIMEOUT:-1800}
TEST_TIMEOUT=${BERTH_VM_TEST_TIMEOUT:-900}
MEM=${BERTH_VM_MEM:-1024}
CPUS=${BERTH_VM_CPUS:-2}
ACCEL=${BERTH_VM_ACCEL:-tcg}
MODULES=${BERTH_VM_MODULES:-}
KEEP=${BERTH_VM_KEEP:-0}

log() { echo "[vm-test] $*" >&2; }
die() {
	log "error: $*"
	exit 125
}
usage() {
	sed -n '2,16p' "$0" >&2
	exit 2
}

# ------------------------------------------------------------------------ host checks ----
check_host() {
	[[ $(id -u) == 0 ]] || die "run as root (apt-get download of the kernel, and the tests' expectations)"
	[[ $(uname -m) == x86_64 ]] || die "the VM lane boots an amd64 kernel; this is $(uname -m)"
	command -v qemu-system-x86_64 >/dev/null ||
		die "qemu-system-x86_64 not found: bash scripts/install-deps.sh (package qemu-system-x86)"
	[[ -x /bin/busybox ]] || die "/bin/busybox not found: bash scripts/install-deps.sh (package busybox-static)"
	# busybox is the guest's whole userland: it must not need a loader.
	! ldd /bin/busybox >/dev/null 2>&1 || die "/bin/busybox is dynamically linked; install busybox-static"
	command -v bash >/dev/null || die "bash not found"
	command -v setpriv >/dev/null || die "setpriv not found: bash scripts/install-deps.sh (package util-linux)"
	case $ACCEL in
	tcg) ACCEL_ARGS=(-accel "tcg,thread=multi" -cpu "${BERTH_VM_CPU:-max}") ;;
	kvm) ACCEL_ARGS=(-accel kvm -cpu "${BERTH_VM_CPU:-host}") ;;
	*) die "BERTH_VM_ACCEL must be tcg or kvm, not $ACCEL" ;;
	esac
}

# ----------------------------------------------------------------------------- kernel ----
# Fetches the image package the kernel metapackage depends on and unpacks vmlinuz, its config
# and its modules (lib/modules/<release>) into $CACHE/kernel/<release>; $CACHE/kernel/current
# names the release.
fetch_kernel() {
	local pkg tmp rel moddir
	pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
	if [[ -z $pkg ]]; then
		log "apt does not know $KERNEL_META yet: apt-get update"
		apt-get update >&2 || die "apt-get update failed"
		pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
		[[ -n $pkg ]] || die "apt-cache cannot resolve $KERNEL_META to a kernel image package"
	fi
	log "fetching $pkg (once; unpacked into $CACHE/kernel, not installed)"
	tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
	# apt-get download as root warns that the _apt user cannot write here; the download works.
	if ! (cd "$tmp" && apt-get download "$pkg" >&2 2>"$tmp/apt.err"); then
		cat "$tmp/apt.err" >&2
		rm -rf "$tmp"
		die "apt-get download $pkg failed"
	fi
	dpkg-deb -x "$tmp"/*.deb "$tmp/x" || {
		rm -rf "$tmp"
		die "dpkg-deb -x of $pkg failed"
	}
	moddir=$(find "$tmp/x" -maxdepth 4 -type d -path '*/lib/modules/*' -prune | head -n1)
	rel=${moddir##*/}
	if [[ -z $rel || ! -f $tmp/x/boot/vmlinuz-$rel ]]; then
		rm -rf "$tmp"
		die "$pkg has no /boot/vmlinuz-<release> with matching modules"
	fi
	rm -rf "$CACHE/kernel/$rel"
	mkdir -p "$CACHE/kernel/$rel"
	mv "$tmp/x/boot/vmlinuz-$rel" "$CACHE/kernel/$rel/vmlinuz"
	mv "$tmp/x/boot/config-$rel" "$CACHE/kernel/$rel/config"
	mkdir -p "$CACHE/kernel/$rel/lib/modules"
	mv "$moddir" "$CACHE/kernel/$rel/lib/modules/$rel"
	# The package leaves modules.dep to the depmod of its postinst.
	/bin/busybox depmod -b "$CACHE/kernel/$rel" "$rel" || die "depmod of $rel failed"
	echo "$rel" >"$CACHE/kernel/current.tmp"
	mv "$CACHE/kernel/current.tmp" "$CACHE/kernel/current"
	rm -rf "$tmp"
}

# Sets KERNEL_DIR and KERNEL_RELEASE, fetching the kernel the first time. Concurrent runs wait
# for the one that fetches.
ensure_kernel() {
	mkdir -p "$CACHE/kernel"
	exec 9>"$CACHE/.lock"
	flock 9
	rm -rf "$CACHE"/.fetch.*
	if [[ ! -f $CACHE/kernel/current ]] || [[ ! -f $CACHE/kernel/$(cat "$CACHE/kernel/current")/vmlinuz ]]; then
		fetch_kernel
	fi
	flock -u 9
	exec 9>&-
	KERNEL_RELEASE=$(cat "$CACHE/kernel/current")
	KERNEL_DIR=$CACHE/kernel/$KERNEL_RELEASE
	MODULES_DIR=$KERNEL_DIR/lib/modules/$KERNEL_RELEASE
	grep -qx 'CONFIG_CGROUP_BPF=y' "$KERNEL_DIR/config" || die "kernel $KERNEL_RELEASE lacks cgroup BPF"
}

# ------------------------------------------------------------------------ test binaries ----
# True when integration test NAME drives a private berthd (integration/src/engines/berthd.rs).
needs_berthd() {
	grep -q 'engines::berthd' "$REPO/integration/tests/$1.rs" 2>/dev/null
}

# Resolves TEST arguments to "name path" lines in TESTS. Names are built with cargo (with the
# runtime the tests run); paths are taken as they are. Sets NEED_BERTHD when a test needs berthd.
TESTS=()
NEED_BERTHD=0
resolve_tests() {
	local names=() t line name exe
	for t in "$@"; do
		if [[ $t == */* ]]; then
			[[ -f $t && -x $t ]] || die "test binary $t does not exist or is not executable"
			name=${t##*/}
			TESTS+=("${name%-*} $(readlink -f "$t")")
			if needs_berthd "${name%-*}"; then NEED_BERTHD=1; fi
		else
			[[ -f $REPO/integration/tests/$t.rs ]] || die "no integration test named $t (integration/tests/$t.rs)"
			names+=("$t")
			if needs_berthd "$t"; then NEED_BERTHD=1; fi
		fi
	done
	((${#names[@]})) || return 0
	command -v cargo >/dev/null || die "cargo not found"
	if ((NEED_BERTHD)); then
		# berthd, berth, the shim and berth-init as well, built as scripts/test.sh builds them.
		log "building the workspace's binaries and the test binaries: ${names[*]}"
		(cd "$REPO" && cargo build --workspace --locked) >&2 || die "cargo build --workspace failed"
	else
		log "building berth-runtime and the test binaries: ${names[*]}"
		(cd "$REPO" && cargo build --locked -p berth-runtime) >&2 || die "cargo build -p berth-runtime failed"
	fi
	# The workspace-wide build, as scripts/test.sh makes it: a -p build unifies features
	# differently and would compile a second copy of every binary.
	local json
	json=$(cd "$REPO" && cargo test --workspace --locked --no-run --message-format=json) ||
		die "cargo test --workspace --no-run failed"
	for t in "${names[@]}"; do
		exe=""
		while IFS= read -r line; do
			[[ $line == *'"reason":"compiler-artifact"'* && $line == *"\"src_path\":\"$REPO/integration/tests/$t.rs\""* ]] ||
				continue
			exe=$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' <<<"$line")
		done <<<"$json"
		[[ -n $exe && -x $exe ]] || die "cargo did not report an executable for test $t"
		TESTS+=("$t $exe")
	done
}

# --------------------------------------------------------------------------- initramfs ----
# Copies file $1 to the same path under the staging root $2; ELF files lose their debug info on
# the way (a 50 MB debug runtime would be copied into a memfd at every create under TCG).
stage_file() {
	local src=$1 root=$2
	mkdir -p "$root$(dirname "$src")"
	if [[ $(head -c4 "$src" | od -An -c | tr -d ' ') == '177ELF' ]] && command -v strip >/dev/null; then
		strip --strip-debug -o "$root$src" "$src" || cp -L "$src" "$root$src"
	else
		cp -L "$src" "$root$src"
	fi
}

# Copies the shared libraries of ELF file $1 (as ldd finds them) to their paths under $2.
stage_libs() {
	local file=$1 root=$2 lib
	ldd "$file" >/dev/null 2>&1 || return 0 # static, or not a dynamic executable
	for lib in $(ldd "$file" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
		[[ -e $root$lib ]] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

# MODULE_FILES: the loadable modules BERTH_VM_MODULES names, with their dependencies first, as
# paths relative to the kernel's modules dir (built-in ones need nothing).
MODULE_FILES=()
add_module() {
	local path=$1 deps dep
	[[ " ${MODULE_FILES[*]} " == *" $path "* ]] && return 0
	read -ra deps < <(awk -F: -v p="$path" '$1 == p { print $2; exit }' "$MODULES_DIR/modules.dep") || true
	for dep in "${deps[@]}"; do add_module "$dep"; done
	MODULE_FILES+=("$path")
}
resolve_modules() {
	local m pattern entry
	for m in $MODULES; do
		pattern="/${m//[-_]/[-_]}\.ko(\.[a-z]+)?"
		entry=$(grep -m1 -E "$pattern:" "$MODULES_DIR/modules.dep" || true)
		if [[ -n $entry ]]; then
			add_module "${entry%%:*}"
		elif ! grep -qE "$pattern\$" "$MODULES_DIR/modules.builtin"; then
			die "kernel $KERNEL_RELEASE has no module $m (BERTH_VM_MODULES)"
		fi
	done
}

shquote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# The guest path of the busybox image archive of berthd's tests.
GUEST_IMAGE_ARCHIVE=/etc/vm/busybox-docker.tar

# Stages what the berthd tests need: the daemon, the CLI, the shim and berth-init beside the
# berth-runtime of every such test binary's target dir (where the fixture, berthd and the shim
# look for one another), and the image archive.
stage_berthd() {
	local stage=$1 t name exe dir b archive
	for t in "${TESTS[@]}"; do
		name=${t%% *} exe=${t#* }
		needs_berthd "$name" || continue
		dir=$(dirname "$(dirname "$exe")")
		for b in berthd berth containerd-shim-berth-v2 berth-runtime berth-init; do
			if [[ ! -x $dir/$b ]]; then
				[[ $b == berth-init ]] && continue # optional: only --init needs it
				die "$dir/$b not found: cargo build --workspace"
			fi
			[[ -e $stage$dir/$b ]] || stage_file "$dir/$b" "$stage"
		done
	done
	archive=${BERTH_IMAGE_ARCHIVE:-}
	if [[ -z $archive ]]; then
		log "building the busybox image (integration/fixtures/make-busybox-image.sh)"
		bash "$REPO/integration/fixtures/make-busybox-image.sh" "$WORK/image" >/dev/null 2>"$WORK/image.log" || {
			cat "$WORK/image.log" >&2
			die "make-busybox-image.sh failed (umoci and skopeo: bash scripts/install-deps.sh)"
		}
		archive=$WORK/image/busybox-docker.tar
	fi
	[[ -f $archive ]] || die "image archive $archive not found (BERTH_IMAGE_ARCHIVE)"
	cp "$archive" "$stage$GUEST_IMAGE_ARCHIVE"
	rm -rf "$WORK/image"
}

# Builds $WORK/initrd.cpio for TESTS with TEST_ARGS.
build_initramfs() {
	local stage=$WORK/stage runtime t name exe m v a
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc/vm}
	cp /bin/busybox "$stage/bin/busybox"
	while IFS= read -r a; do
		if [[ -n $a && $a != busybox ]]; then ln -s busybox "$stage/bin/$a"; fi
	done < <(/bin/busybox --list)
	cp "$REPO/integration/vm/init" "$stage/init"
	chmod 755 "$stage/init"
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$stage/etc/passwd"
	printf '%s\n' 'root:x:0:' 'tty:x:5:' 'nogroup:x:65534:' >"$stage/etc/group"
	printf '%s\n' '127.0.0.1 localhost berth-vm' '::1 localhost' >"$stage/etc/hosts"

	: >"$stage/etc/vm/tests"
	for t in "${TESTS[@]}"; do
		name=${t%% *} exe=${t#* }
		stage_file "$exe" "$stage"
		echo "$name $exe" >>"$stage/etc/vm/tests"
	done
	# The runtime where the tests look for it: $BERTH_RUNTIME, else beside their deps/ dir.
	exe=${TESTS[0]#* }
	runtime=${BERTH_RUNTIME:-$(dirname "$(dirname "$exe")")/berth-runtime}
	[[ -x $runtime ]] || die "runtime $runtime not found: cargo build -p berth-runtime, or set BERTH_RUNTIME"
	stage_file "$(readlink -f "$runtime")" "$stage"
	[[ $(readlink -f "$runtime") == "$runtime" ]] || stage_file "$runtime" "$stage"
	# Bundle::new runs fixtures/make-busybox-bundle.sh with bash from the source tree.
	mkdir -p "$stage$REPO/integration"
	cp -a "$REPO/integration/fixtures" "$stage$REPO/integration/"
	stage_file "$(command -v bash)" "$stage"
	if ((NEED_BERTHD)); then stage_berthd "$stage"; fi
	while IFS= read -r -d '' a; do stage_libs "$a" "$stage"; done < <(find "$stage" -type f -perm -u+x -print0)

	: >"$stage/etc/vm/modules"
	resolve_modules
	for m in "${MODULE_FILES[@]}"; do
		mkdir -p "$stage/lib/modules/$(dirname "$m")"
		cp "$MODULES_DIR/$m" "$stage/lib/modules/$m"
		echo "/lib/modules/$m" >>"$stage/etc/vm/modules"
	done

	{
		echo "export BERTH_REQUIRE_V2=1 BERTH_VM_TEST_TIMEOUT=$TEST_TIMEOUT"
		if ((NEED_BERTHD)); then echo "export BERTH_IMAGE_ARCHIVE=$GUEST_IMAGE_ARCHIVE"; fi
		for v in RUST_BACKTRACE RUST_TEST_THREADS RUST_LOG BERTH_RUNTIME ${BERTH_VM_ENV:-}; do
			if [[ -n ${!v+x} ]]; then echo "export $v=$(shquote "${!v}")"; fi
		done
	} >"$stage/etc/vm/env"
	for a in "${TEST_ARGS[@]}"; do printf '%s ' "$(shquote "$a")"; done >"$stage/etc/vm/args"
	# cargo runs test binaries in their package's dir.
	echo "$REPO/integration" >"$stage/etc/vm/cwd"

	(cd "$stage" && find . -mindepth 1 | /bin/busybox cpio -o -H newc 2>/dev/null) >"$WORK/initrd.cpio"
	rm -rf "$stage"
}

# -------------------------------------------------------------------------------- boot ----
QEMU_PID=""
READERS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	if [[ -n $QEMU_PID ]]; then
		kill "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	for p in "${READERS[@]}"; do kill "$p" 2>/dev/null || true; done
	if [[ -n ${WORK:-} ]]; then
		if [[ $KEEP == 1 ]]; then
			rm -f "$WORK/pid" "$WORK/out" "$WORK/err"
			log "work dir kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

# Boots the VM and streams the tests' output; sets BOOT_SECONDS and WALL_SECONDS.
boot() {
	mkfifo "$WORK/out" "$WORK/err"
	: >"$WORK/console.log"
	: >"$WORK/status"
	# The readers pass the guest's ttyS1/ttyS2 through as they arrive; they end when qemu closes.
	cat "$WORK/out" &
	READERS+=($!)
	cat "$WORK/err" >&2 &
	READERS+=($!)
	local t0 t1 append
	append="console=ttyS0 loglevel=5 panic=-1 cgroup_no_v1=all ${BERTH_VM_APPEND:-}"
	t0=$(date +%s.%N)
	# timeout is qemu's parent and forwards cleanup's SIGTERM to it; should this script be
	# SIGKILLed, the parent-death signals take timeout and then qemu down too.
	setpriv --pdeathsig KILL timeout -k 10 "$TIMEOUT" setpriv --pdeathsig KILL \
		qemu-system-x86_64 -M pc -nodefaults -no-user-config "${ACCEL_ARGS[@]}" \
		-m "$MEM" -smp "$CPUS" -display none -no-reboot \
		-kernel "$KERNEL_DIR/vmlinuz" -initrd "$WORK/initrd.cpio" -append "$append" \
		-serial "file:$WORK/console.log" -serial "file:$WORK/out" -serial "file:$WORK/err" \
		-serial "file:$WORK/status" </dev/null >"$WORK/qemu.log" 2>&1 &
	QEMU_PID=$!
	local qemu_rc=0
	wait "$QEMU_PID" || qemu_rc=$?
	QEMU_PID=""
	# A reader still blocked in open (qemu died before opening its fifo) gets a writer and EOF.
	: <>"$WORK/out"
	: <>"$WORK/err"
	wait "${READERS[@]}" 2>/dev/null || true
	READERS=()
	t1=$(date +%s.%N)
	WALL_SECONDS=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
	tr -d '\r' <"$WORK/status" >"$WORK/status.txt"
	BOOT_SECONDS=$(sed -n 's/^VM-BOOTED //p' "$WORK/status.txt")
	if [[ $qemu_rc == 124 || $qemu_rc == 137 ]]; then
		report_results
		log "TIMEOUT: the VM ran longer than ${TIMEOUT}s (BERTH_VM_TIMEOUT)$(running_test)"
		console_tail
		exit 124
	fi
	if grep -q '^VM-ERROR' "$WORK/status.txt"; then
		log "the guest failed to set up: $(sed -n 's/^VM-ERROR //p' "$WORK/status.txt")"
		console_tail
		exit 125
	fi
	if ! grep -qx VM-DONE "$WORK/status.txt"; then
		report_results
		log "the VM stopped before the tests finished (qemu exit $qemu_rc)$(running_test): $(cat "$WORK/qemu.log")"
		console_tail
		exit 125
	fi
	# Kernel trouble the tests may not have noticed (loglevel=5: the console gets warnings and worse).
	if grep -qE 'BUG:|Oops|WARNING:|Kernel panic' "$WORK/console.log"; then
		log "the guest kernel reported problems:"
		grep -E -A3 'BUG:|Oops|WARNING:|Kernel panic' "$WORK/console.log" | head -n 40 >&2
	fi
}

# ", while running NAME" for the binary that began but did not finish, if any.
running_test() {
	local name
	name=$(awk '$1 == "VM-BEGIN" { n = $2 } $1 == "VM-RESULT" { n = "" } END { print n }' "$WORK/status.txt")
	if [[ -n $name ]]; then echo ", while running $name"; fi
}

console_tail() {
	if [[ -s $WORK/console.log ]]; then
		log "kernel console tail (BERTH_VM_APPEND=loglevel=7 for all of it):"
		tail -n 30 "$WORK/console.log" >&2
	else
		log "the kernel console is empty: the kernel did not get going" \
			"(too little BERTH_VM_MEM=$MEM for kernel and initramfs?)"
	fi
}

# Prints one line per test binary that finished and sets FIRST_FAILURE.
FIRST_FAILURE=0
report_results() {
	local name rc secs verdict
	while read -r _ name rc secs; do
		case $rc in
		0) verdict=ok ;;
		137) verdict="KILLED (SIGKILL; BERTH_VM_TEST_TIMEOUT=${TEST_TIMEOUT}s?)" ;;
		*) verdict="FAILED (exit $rc)" ;;
		esac
		log "$(printf '%-16s %-8s %s' "$name" "${secs}s" "$verdict")"
		if [[ $rc != 0 && $FIRST_FAILURE == 0 ]]; then FIRST_FAILURE=$rc; fi
	done < <(grep '^VM-RESULT ' "$WORK/status.txt" 2>/dev/null || true)
}

# -------------------------------------------------------------------------------- main ----
SETUP_ONLY=0
ARGS=()
TEST_ARGS=()
while (($#)); do
	case $1 in
	--setup) SETUP_ONLY=1 ;;
	-h | --help) usage ;;
	--)
		shift
		TEST_ARGS=("$@")
		break
		;;
	-*) usage ;;
	*) ARGS+=("$1") ;;
	esac
	shift
done
((${#ARGS[@]})) || ARGS=("${DEFAULT_TESTS[@]}")

check_host
ensure_kernel
if ((SETUP_ONLY)); then
	log "kernel $KERNEL_RELEASE ready in $KERNEL_DIR"
	exit 0
fi
resolve_tests "${ARGS[@]}"
# The modules the suites need: container_setup opens a device node with /dev/fuse's numbers
# (ENODEV without the driver); berthd's snapshotter mounts overlayfs.
LANE_MODULES=(fuse)
if ((NEED_BERTHD)); then LANE_MODULES+=(overlay); fi
for m in "${LANE_MODULES[@]}"; do
	if [[ " $MODULES " != *" $m "* ]]; then MODULES="$MODULES $m"; fi
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Work dirs of runs that died without cleaning up (SIGKILL) go first; kept ones have no pid file.
mkdir -p "$CACHE/work"
for stale in "$CACHE"/work/run.*; do
	if [[ -f $stale/pid ]] && ! kill -0 "$(cat "$stale/pid")" 2>/dev/null; then rm -rf "$stale"; fi
done
WORK=$(mktemp -d "$CACHE/work/run.XXXXXX")
echo $$ >"$WORK/pid"
T0=$(date +%s.%N)
build_initramfs
log "booting kernel $KERNEL_RELEASE ($ACCEL, ${MEM} MiB, $CPUS vCPUs, cgroup_no_v1=all)," \
	"initramfs $(du -m "$WORK/initrd.cpio" | cut -f1) MB"
boot
report_results
LANE_SECONDS=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $T0 }")
log "kernel $KERNEL_RELEASE: guest booted in ${BOOT_SECONDS}s, VM ran ${WALL_SECONDS}s, lane took ${LANE_SECONDS}s"
exit "$FIRST_FAILURE"
