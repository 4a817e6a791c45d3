#!/usr/bin/env bash
# Builds berth's release binaries and gathers them in target/dist/bin (what the main job, the
# benchmarks, scripts/test.sh's second pass and an install use):
#   berthd, berth                   ordinary `cargo build --release` binaries
#   berth-runtime                   static binaries, linked against musl when the toolchain has
#   containerd-shim-berth-v2        the musl target (scripts/install-deps.sh adds it with rustup),
#                                   not PIE. Cargo cannot set crt-static for some packages of a
#                                   workspace, so they are a second build with its own target dir.
#   berth-init                      static, against glibc (a third build): it runs inside
#                                   containers whose images may have no libc at all, and as their
#                                   PID 1 it keeps glibc's behaviour (every signal but 32 and 33
#                                   forwarded, execvp's /bin/sh fallback for scripts without #!),
#                                   which musl does not have.
#
# Why static, and why musl:
# - berth-runtime runs twice per create, run and exec (the second time from a read-only view of
#   itself, see runtime/src/clone_binary.rs). A musl binary starts in ~0.3 ms; a glibc one,
#   static or not, spends ~0.5 ms more probing the CPU's caches with cpuid (which traps to the
#   hypervisor on a VM), and a dynamic one also loads and relocates itself. Its allocator is
#   dlmalloc (runtime/src/main.rs): musl's own maps and unmaps memory for ~250 of the ~1300
#   system calls of a `run`.
# - containerd-shim-berth-v2 runs once per container for the container's whole life: linked
#   against musl it idles at ~1.2 MB RSS, against static glibc ~2.0 MB, dynamic ~3 MB.
# Without the musl target they are linked against static glibc too, with a warning. Non-PIE as
# Debian's containerd, containerd-shim-runc-v2 and runc are (a static PIE relocates itself at
# every start, ≈60 kB more RSS per shim); heap, stack and mmap are still randomised, and
# BERTH_STATIC_PIE=1 makes static PIEs.
# Install with e.g.: install -m 755 target/dist/bin/* /usr/local/bin/
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p berthd -p berth-cli
host=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $host ]] || { echo "${0##*/}: cannot tell the host target from rustc -vV" >&2; exit 1; }
. scripts/lib/musl-target.sh
target=$(musl_target)
if ! target_installed "$target"; then
	[[ -z $target ]] || echo "${0##*/}: warning: Rust target $target is not installed (rustup target add $target):" \
		"berth-runtime and the shim are linked against static glibc instead" >&2
	target=$host
fi
relocation=static
[[ ${BERTH_STATIC_PIE:-0} == 1 ]] && relocation=pie
# With an explicit --target, RUSTFLAGS reach only the target's crates (not build scripts or
# proc macros, which cannot be static).
export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=$relocation"
cargo build --release --locked -p berth-runtime -p berth-shim --target "$target" --target-dir target/static
cargo build --release --locked -p berth-init --target "$host" --target-dir target/static
mkdir -p target/dist/bin
install -m 755 target/release/berthd target/release/berth target/dist/bin/
for b in berth-runtime containerd-shim-berth-v2; do
	install -m 755 "target/static/$target/release/$b" target/dist/bin/
done
install -m 755 "target/static/$host/release/berth-init" target/dist/bin/
echo "built: $(cd target/dist/bin && echo *) in target/dist/bin (runtime and shim: $target)"
