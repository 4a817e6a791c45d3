#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs every berth test: unit tests, the
# integration tests that run real containers, and the cgroup-dependent ones again on cgroup v2 in
# a VM. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "${0##*/}: run as root (the integration tests create real containers)" >&2; exit 1; }
bash scripts/install-deps.sh
if cargo fmt --version >/dev/null 2>&1; then
	cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
	cargo clippy --workspace --all-targets --locked -- -D warnings
	# The runtime and the shim ship as musl binaries (scripts/build.sh): their musl-only code too.
	. scripts/lib/musl-target.sh
	musl=$(musl_target)
	if target_installed "$musl"; then
		cargo clippy -p berth-runtime -p berth-shim --target "$musl" --locked -- -D warnings
	fi
fi
# The integration tests run the real binaries: cargo test alone does not build them.
cargo build --workspace --locked
cargo test --workspace --locked
# The main job (README's first command): builds the release binaries as they ship (static, musl:
# scripts/build.sh) and runs a container through berth, berthd, the shim and the runtime.
bash scripts/run-busybox.sh
# Those shipped binaries are not the debug builds the suites above ran: the runtime's own suites,
# the engines' and the shim's under containerd run again against them.
BERTH_RUNTIME=$PWD/target/dist/bin/berth-runtime cargo test -p berth-integration --locked \
	--test lifecycle --test container_setup --test process --test security --test exec --test seccomp \
	--test seccomp_default --test resources --test hooks --test update_events --test bad_input \
	--test interop_containerd --test interop_docker --test interop_podman --test shim_containerd
# The cgroup v2 lane: the suites that depend on the cgroup layout, plus cgroup_v2 and berth_run
# (berthd, its shim and the runtime), inside a qemu VM booted in the unified hierarchy (the host's
# cgroups may well be v1), with the runtime that ships. BERTH_VM_LANE=0 skips it.
if [[ ${BERTH_VM_LANE:-1} != 0 ]]; then
	BERTH_RUNTIME=$PWD/target/dist/bin/berth-runtime bash scripts/vm-test.sh
else
	echo "${0##*/}: BERTH_VM_LANE=0: cgroup v2 lane skipped" >&2
fi
