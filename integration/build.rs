//! Builds the seccomp ABI probe (`fixtures/abi-mkdir.c`) as a static binary that the tests
//! embed: the tests then need no C compiler where they run (the cgroup v2 lane runs them in a
//! VM that has none). `cc` and libc6-dev's static libc are what Rust's own linking uses here.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    const SOURCE: &str = "fixtures/abi-mkdir.c";
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let result =
        Command::new(&cc).args(["-static", "-no-pie", "-O2", "-o"]).arg(out.join("abi-mkdir")).arg(SOURCE).output();
    match result {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("{cc} {SOURCE} (needs libc6-dev's static libc): {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("running {cc} for {SOURCE}: {e}"),
    }
}
