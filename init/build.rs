//! berth-init is bind-mounted into containers whose images may have no libc at all, so the
//! binary is linked statically (a static PIE) even in an ordinary `cargo build --workspace`.
//!
//! Cargo cannot turn on `crt-static` for one package of a workspace, and without it rustc links
//! std's system libraries dynamically (`-Bdynamic -lgcc_s -lm -lc`) whatever `-static-pie` says.
//! So the build script puts linker scripts named like those shared libraries first on the search
//! path, each naming the static archive instead; the result needs no interpreter and no `.so`.

use std::path::PathBuf;

/// `lib<name>.so` stand-ins: the static archives each shared library is replaced by.
const STATIC_STAND_INS: [(&str, &str); 3] =
    [("gcc_s", "INPUT(-lgcc_eh)\n"), ("m", "INPUT(-l:libm.a)\n"), ("c", "GROUP(-l:libc.a -lgcc_eh -l:libgcc.a)\n")];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if !crt_static {
        let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("static-libs");
        std::fs::create_dir_all(&dir).expect("create the stand-in library dir");
        for (name, script) in STATIC_STAND_INS {
            std::fs::write(dir.join(format!("lib{name}.so")), script).expect("write a stand-in linker script");
        }
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-arg-bins=-static-pie");
    }
    // With crt-static (scripts/build.sh) rustc links statically itself: a static PIE, or a static
    // non-PIE binary with `-C relocation-model=static`, which an added -static-pie would break.
}
