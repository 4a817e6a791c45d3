#!/usr/bin/env bash
# Builds berth's release binaries and gathers them in target/dist/bin (what the main job, the
# benchmarks and an install use):
#   berthd, berth                   ordinary `cargo build --release` binaries
#   berth-runtime                   static, against musl where the toolchain has it, not PIE: see
#                                   scripts/build-runtime.sh
#   containerd-shim-berth-v2        linked statically and not PIE (see below), as containerd's shims are:
#                                   one runs per container, and glibc's shared libc alone would add
#                                   ~1 MB to its RSS. Cargo cannot set crt-static for one package
#                                   of a workspace, so it is a second build with its own target dir.
#   berth-init                      static too (it runs inside containers whose images may have no
#                                   libc): built in that same second build, found beside berthd
#                                   for `berth run --init`.
# Install with e.g.: install -m 755 target/dist/bin/* /usr/local/bin/
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p berthd -p berth-cli
runtime=$(bash scripts/build-runtime.sh)
host=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $host ]] || { echo "${0##*/}: cannot tell the host target from rustc -vV" >&2; exit 1; }
# With an explicit --target, RUSTFLAGS reach only the target's crates (not build scripts or
# proc macros, which cannot be static).
# Non-PIE by default, as Debian's containerd, containerd-shim-runc-v2 and runc are: a static PIE
# relocates its .data.rel.ro at every start, ≈60 kB more RSS in each shim (one runs per
# container; 2000–2016 kB against 2048–2072 kB here). Heap, stack and mmap are still randomised;
# BERTH_STATIC_PIE=1 keeps the binary's own address random too.
relocation=static
[[ ${BERTH_STATIC_PIE:-0} == 1 ]] && relocation=pie
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=$relocation" \
	cargo build --release --locked -p berth-shim -p berth-init --target "$host" --target-dir target/static
mkdir -p target/dist/bin
install -m 755 "$runtime" target/dist/bin/
for b in berthd berth; do
	if [[ -x target/release/$b ]]; then
		install -m 755 "target/release/$b" target/dist/bin/
	fi
done
for b in containerd-shim-berth-v2 berth-init; do
	install -m 755 "target/static/$host/release/$b" target/dist/bin/
done
echo "built: $(cd target/dist/bin && echo *) in target/dist/bin"
