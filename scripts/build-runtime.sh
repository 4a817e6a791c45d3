#!/usr/bin/env bash
# Builds the release berth-runtime as it ships and prints its path. Used by scripts/build.sh (for
# target/dist/bin) and scripts/test.sh (whose runtime suites run again against this binary).
#
# The runtime is linked statically against musl, without PIE, when the toolchain has the musl
# target (scripts/install-deps.sh adds it with rustup): every create, run and exec executes it
# twice (the second time from a read-only view of itself, see runtime/src/clone_binary.rs), and a
# musl binary starts in ~0.3 ms where a glibc one, static or not, spends ~0.5 ms more probing the
# CPU (cpuid, which traps to the hypervisor on a VM) and a dynamic one also relocating itself. Its
# allocator is dlmalloc (runtime/src/main.rs): musl's own maps and unmaps memory for ~250 of the
# ~1300 system calls of a `run`. Without the musl target it falls back, with a warning, to
# a static glibc binary (runs everywhere, ~0.5 ms slower per exec). BERTH_STATIC_PIE=1 builds
# either as a static PIE.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $host ]] || { echo "${0##*/}: cannot tell the host target from rustc -vV" >&2; exit 1; }
target=${host%-gnu}-musl
if [[ $host != *-linux-gnu || ! -d $(rustc --print sysroot)/lib/rustlib/$target/lib ]]; then
	echo "${0##*/}: warning: Rust target $target is not installed (rustup target add $target):" \
		"building berth-runtime against static glibc, ~0.5 ms slower per command" >&2
	target=$host
fi
relocation=static
[[ ${BERTH_STATIC_PIE:-0} == 1 ]] && relocation=pie
# With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=$relocation" \
	cargo build --release --locked -p berth-runtime --target "$target" --target-dir target/static >&2
echo "$PWD/target/static/$target/release/berth-runtime"
