# shellcheck shell=bash
# Sourced by scripts/install-deps.sh, scripts/build.sh and scripts/test.sh: the Rust target that
# berth-runtime and the shim ship for (static musl, see scripts/build.sh).
#
# musl_target: prints the musl twin of the host target (x86_64-unknown-linux-gnu ->
# x86_64-unknown-linux-musl), or nothing on a host that is not *-linux-gnu.
musl_target() {
	local host
	host=$(rustc -vV | sed -n 's/^host: //p')
	[[ $host == *-linux-gnu ]] && echo "${host%-gnu}-musl"
	return 0
}

# target_installed TARGET: true when the toolchain has TARGET's standard library.
target_installed() {
	[[ -n $1 && -d $(rustc --print sysroot)/lib/rustlib/$1/lib ]]
}
