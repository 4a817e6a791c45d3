//! Generates the protobuf messages and async ttrpc clients/servers from protos/berth/v1.

use std::fs;
use std::path::PathBuf;

use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

const PROTOS: &[&str] = &[
    "protos/berth/v1/types.proto",
    "protos/berth/v1/version.proto",
    "protos/berth/v1/content.proto",
    "protos/berth/v1/images.proto",
    "protos/berth/v1/snapshots.proto",
    "protos/berth/v1/system.proto",
    "protos/berth/v1/containers.proto",
    "protos/berth/v1/tasks.proto",
    "protos/berth/v1/volumes.proto",
    "protos/berth/v1/networks.proto",
    "protos/berth/v1/build.proto",
];

fn main() {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    Codegen::new()
        .inputs(PROTOS)
        .include("protos")
        .rust_protobuf()
        .rust_protobuf_customize(ProtobufCustomize::default().gen_mod_rs(false))
        .customize(Customize { async_all: true, ..Default::default() })
        .out_dir(&out)
        .run()
        .expect("generating berthd's ttrpc code");
    // `include!` cannot take files with inner attributes or inner doc comments: drop them.
    for entry in fs::read_dir(&out).expect("reading OUT_DIR") {
        let path = entry.expect("reading OUT_DIR").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).expect("reading generated code");
            let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("#!") && !l.starts_with("//!")).collect();
            fs::write(&path, kept.join("\n")).expect("writing generated code");
        }
    }
}
