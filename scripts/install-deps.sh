#!/usr/bin/env bash
# Install the Debian packages berth's tests and benchmarks use, then check
# for a Rust toolchain and add its musl target. Idempotent: installs only what is missing and runs
# `apt-get update` only when something has to be installed.
#
#   busybox-static  static busybox for the offline test bundle
#   runc, crun      peer runtimes (conformance comparisons, bench/lifecycle.sh)
#   hyperfine, time benchmarks (time: GNU time for peak RSS)
#   iperf3          bench/network.sh's throughput through published ports and between containers
#   strace          debugging syscalls of the runtime
#   gcc, libc6-dev  integration/build.rs builds a static program that makes i386 and x32 syscalls
#   iproute2        `ip`: berthd removes bridges with it; tests inspect network namespaces
#   containernetworking-plugins
#                   the CNI plugins berthd networks containers with (bridge, host-local,
#                   loopback, portmap) in /usr/lib/cni
#   iptables        berthd's masquerade and isolation rules (and the CNI plugins')
#   util-linux      unshare, nsenter, findmnt, mount
#   python3         JSON checks and bench/lifecycle.sh's ratio table
#   containerd, docker.io, podman
#                   real engines the interop tests drive berth-runtime with
#   skopeo, umoci   build the offline busybox OCI image those engines run
#   docker-registry the OCI registry berthd's pull/push tests run on 127.0.0.1
#   apache2-utils   htpasswd, for the registry instance with basic auth
#   qemu-system-x86 the cgroup v2 VM lane (scripts/vm-test.sh)
#
# With --main, only what the main job (scripts/run-busybox.sh) needs: busybox-static, and umoci
# and skopeo to make the image from it (plus containerd for its TIER=containerd).
set -euo pipefail

PACKAGES=(busybox-static runc crun hyperfine time iperf3 strace gcc libc6-dev iproute2 containernetworking-plugins iptables util-linux python3
	containerd docker.io podman skopeo umoci qemu-system-x86 docker-registry apache2-utils)
if [[ ${1:-} == --main ]]; then
	PACKAGES=(busybox-static skopeo umoci util-linux)
	[[ ${TIER:-berth} == berth ]] && PACKAGES+=(iproute2 containernetworking-plugins iptables)
	[[ ${TIER:-berth} == containerd ]] && PACKAGES+=(containerd)
fi
MIN_RUST=1.90

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

command -v dpkg-query >/dev/null 2>&1 || die "not a Debian/Ubuntu system (no dpkg); install by hand: ${PACKAGES[*]}"

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
	[[ $(id -u) == 0 ]] || die "missing packages (${missing[*]}); run as root to install them"
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
	# Debian's docker-registry package starts a registry on every interface (:5000); the tests
	# start their own on 127.0.0.1, so the packaged service is stopped and left disabled.
	if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
	fi
else
	echo "all packages present: ${PACKAGES[*]}"
fi

# The toolchain is not a Debian package here: bookworm's rustc is too old.
if ! command -v cargo >/dev/null 2>&1; then
	cat >&2 <<EOF
${0##*/}: cargo not found.
berth needs a Rust toolchain, stable >= $MIN_RUST. Install it with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain stable
  . "\$HOME/.cargo/env"
EOF
	exit 1
fi

# Compare "major.minor" numerically; sort -V gets 1.9 < 1.80 right.
have=$(cargo --version | awk '{print $2}')
if [[ $(printf '%s\n' "$MIN_RUST" "${have%-*}" | sort -V | head -n1) != "$MIN_RUST" ]]; then
	die "cargo $have is too old; berth needs Rust stable >= $MIN_RUST (rustup update stable)"
fi
echo "cargo $have OK"

# The shipped berth-runtime, shim and berth-init are static musl binaries (scripts/build.sh);
# rustup adds the target's standard library (musl-tools is not needed: Rust brings its own musl).
# Without rustup, or offline, they are linked against static glibc instead.
. "$(dirname "$0")/lib/musl-target.sh"
musl=$(musl_target)
if [[ -n $musl ]] && ! target_installed "$musl"; then
	if command -v rustup >/dev/null 2>&1 && rustup target add "$musl"; then
		echo "Rust target $musl added"
	else
		echo "${0##*/}: warning: could not add Rust target $musl; scripts/build.sh will link against static glibc" >&2
	fi
fi
