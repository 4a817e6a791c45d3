#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what it needs, build berth, and run
# a container from the bundled busybox image through the whole stack:
#
#   berth (CLI) → berthd → containerd-shim-berth-v2 → berth-runtime
#
# The image is made offline from Debian's busybox-static (umoci + skopeo) and loaded into a
# private berthd (its own root and state in a temporary directory) that runs in a network
# namespace of its own, so the default bridge network it makes (berth0, its iptables chains) is
# never on the host's. The container gets the default bridge, as with docker. Other tiers:
#
#   TIER=containerd bash scripts/run-busybox.sh   a private containerd 1.6 runs it with berth's shim
#   TIER=runtime bash scripts/run-busybox.sh      berth-runtime alone runs it from an OCI bundle
#
# Everything lives in a temporary directory that is removed on exit (the daemon is stopped and
# what it mounted is unmounted). The binaries stay in target/dist/bin (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "${0##*/}: run as root (containers need namespaces and cgroups)" >&2; exit 1; }
TIER=${TIER:-berth}
case $TIER in
berth | containerd | runtime) ;;
*) echo "${0##*/}: unknown TIER=$TIER (berth, containerd or runtime)" >&2; exit 2 ;;
esac
TIER=$TIER bash scripts/install-deps.sh --main >/dev/null
echo "building berth (release; the first build takes a few minutes)..." >&2
mkdir -p target
if ! bash scripts/build.sh >target/run-busybox-build.log 2>&1; then
	tail -n 40 target/run-busybox-build.log >&2
	echo "${0##*/}: the build failed; the whole log is target/run-busybox-build.log" >&2
	exit 1
fi
bin=$PWD/target/dist/bin

SCRIPT='echo "hello from a berth container: hostname=$(hostname) pid=$$ uid=$(id -u)"; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status'
# The bridge only exists at the berthd tier: there the container also shows its network.
[[ $TIER == berth ]] && SCRIPT+='; ip -4 addr show dev eth0 | grep -w inet'

work=$(mktemp -d /tmp/berth-run-busybox.XXXXXX)
daemon_pid=
cleanup() {
	if [[ $TIER == berth && -n $daemon_pid ]]; then
		for id in $("$bin/berth" -H "unix://$work/state/berthd.sock" ps -aq 2>/dev/null); do
			"$bin/berth" -H "unix://$work/state/berthd.sock" rm -f "$id" >/dev/null 2>&1 || true
		done
	fi
	if [[ -n $daemon_pid ]]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	# What a daemon may still have mounted, deepest first.
	findmnt -rn -o TARGET | grep -F "$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [[ $TIER == runtime ]]; then
	ARGS=$(python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$SCRIPT") \
		bash integration/fixtures/make-busybox-bundle.sh "$work/bundle" >/dev/null 2>&1
	echo "berth-runtime:" >&2
	set +e
	"$bin/berth-runtime" run --bundle "$work/bundle" "busybox-$$"
	code=$?
	exit "$code"
fi

bash integration/fixtures/make-busybox-image.sh "$work/image" >/dev/null 2>&1

if [[ $TIER == containerd ]]; then
	# The shim and the runtime it runs by default (berth-runtime beside the shim's own executable).
	mkdir -p "$work/bin"
	ln -s "$bin/containerd-shim-berth-v2" "$bin/berth-runtime" "$work/bin/"
	. scripts/lib/containerd-config.sh
	containerd_config "$work"
	PATH="$work/bin:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
	daemon_pid=$!
	ctr=(ctr --address "$work/containerd.sock" --namespace berth)
	for _ in $(seq 100); do
		"${ctr[@]}" version >/dev/null 2>&1 && break
		kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/containerd.log" >&2; exit 1; }
		sleep 0.1
	done
	"${ctr[@]}" images import "$work/image/busybox-oci.tar" >/dev/null
	echo "containerd $(containerd --version | awk '{print $3}') → containerd-shim-berth-v2 → berth-runtime:" >&2
	set +e
	"${ctr[@]}" run --rm --runtime io.containerd.berth.v2 localhost/busybox:latest "busybox-$$" sh -c "$SCRIPT"
	code=$?
	exit "$code"
fi

# berthd finds the shim beside its own executable, the shim finds berth-runtime beside its own.
# Its network namespace (loopback up) goes when it exits; the socket is a file, reachable from here.
unshare --net -- sh -c 'ip link set lo up && exec "$0" "$@"' \
	"$bin/berthd" --root "$work/root" --state "$work/state" >"$work/berthd.log" 2>&1 &
daemon_pid=$!
berth=("$bin/berth" -H "unix://$work/state/berthd.sock")
for _ in $(seq 100); do
	[[ -S $work/state/berthd.sock ]] && "${berth[@]}" version >/dev/null 2>&1 && break
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/berthd.log" >&2; exit 1; }
	sleep 0.1
done
"${berth[@]}" load -q -i "$work/image/busybox-docker.tar" >/dev/null
echo "berth → berthd → containerd-shim-berth-v2 → berth-runtime:" >&2
set +e
"${berth[@]}" run --rm localhost/busybox:latest sh -c "$SCRIPT"
code=$?
exit "$code"
