# shellcheck shell=bash
# Sourced by the scripts that start a private containerd 1.6 (scripts/run-busybox.sh,
# bench/shim.sh, bench/pull.sh).
#
# containerd_config DIR [LEVEL]: writes DIR/config.toml with root, state, the gRPC socket
# (DIR/containerd.sock) and the opt plugin's directory (instead of /opt/containerd) all under
# DIR; the CRI plugin is off and no TCP, debug or metrics listener is opened. LEVEL is the log
# level (default info).
containerd_config() {
	local dir=$1 level=${2:-info}
	cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
  level = "$level"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
EOF
}
