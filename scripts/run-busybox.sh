#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what is needed, build berth, and run
# a container from the bundled busybox image through the highest tier that works today: a private
# containerd 1.6 (Debian's) running it with berth's shim (containerd-shim-berth-v2), which drives
# berth-runtime. The image is an OCI archive made offline from busybox-static.
#
#   TIER=runtime bash scripts/run-busybox.sh    the same container with berth-runtime alone
#
# Everything lives in a temporary directory that is removed on exit (containerd is stopped, its
# snapshots unmounted); the only thing outside it is containerd's shim socket dir
# /run/containerd/s, which containerd empties again.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "${0##*/}: run as root (containers need namespaces and cgroups)" >&2; exit 1; }
bash scripts/install-deps.sh >/dev/null
bash scripts/build.sh >/dev/null

SCRIPT='echo "hello from a berth container: hostname=$(hostname) pid=$$ uid=$(id -u)"; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status'

if [[ ${TIER:-shim} == runtime ]]; then
	bundle=${BUNDLE:-/tmp/berth-busybox}
	ARGS=$(python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$SCRIPT") \
		bash integration/fixtures/make-busybox-bundle.sh "$bundle" >/dev/null
	exec ./target/dist/bin/berth-runtime run --bundle "$bundle" "busybox-$$"
fi

work=$(mktemp -d /tmp/berth-run-busybox.XXXXXX)
containerd_pid=
cleanup() {
	if [[ -n $containerd_pid ]]; then
		kill "$containerd_pid" 2>/dev/null || true
		wait "$containerd_pid" 2>/dev/null || true
	fi
	# Snapshots containerd may still have mounted, deepest first.
	findmnt -rn -o TARGET | grep -F "$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The shim and the runtime it runs by default (berth-runtime beside the shim's own executable).
mkdir -p "$work/bin"
ln -s "$PWD/target/dist/bin/containerd-shim-berth-v2" "$work/bin/"
ln -s "$PWD/target/dist/bin/berth-runtime" "$work/bin/"

bash integration/fixtures/make-busybox-image.sh "$work/image" >/dev/null

. scripts/lib/containerd-config.sh
containerd_config "$work"
PATH="$work/bin:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
ctr=(ctr --address "$work/containerd.sock" --namespace berth)
for _ in $(seq 100); do
	"${ctr[@]}" version >/dev/null 2>&1 && break
	kill -0 "$containerd_pid" 2>/dev/null || { cat "$work/containerd.log" >&2; exit 1; }
	sleep 0.1
done
"${ctr[@]}" images import "$work/image/busybox-oci.tar" >/dev/null
echo "containerd $(containerd --version | awk '{print $3}') → containerd-shim-berth-v2 → berth-runtime:" >&2
set +e
"${ctr[@]}" run --rm --runtime io.containerd.berth.v2 localhost/busybox:latest "busybox-$$" sh -c "$SCRIPT"
code=$?
set -e
exit "$code"
