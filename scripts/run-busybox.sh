#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what is needed, build berth, make
# the busybox bundle and run a container from it with berth-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "${0##*/}: run as root (containers need namespaces and cgroups)" >&2; exit 1; }
bash scripts/install-deps.sh >/dev/null
cargo build --release --locked -p berth-runtime
bundle=${BUNDLE:-/tmp/berth-busybox}
ARGS='["sh","-c","echo \"hello from a berth container: hostname=$(hostname) pid=$$ uid=$(id -u)\"; grep -E \"^(CapEff|NoNewPrivs)\" /proc/self/status"]' \
	bash integration/fixtures/make-busybox-bundle.sh "$bundle" >/dev/null
exec ./target/release/berth-runtime run --bundle "$bundle" "busybox-$$"
