//! berthd's API: the .proto files in `protos/berth/v1` and the protobuf messages and async ttrpc
//! clients and servers generated from them (ttrpc-codegen, at build time).
//!
//! The services are shaped like containerd's (Content, Images, Snapshots, Events, Version), plus
//! Transfer (pull/push/import/export with streamed progress, as containerd 1.7's) and System
//! (garbage collection, disk usage), Containers, Tasks, Networks and Volumes (docker's local volumes).

// Generated code: not ours to lint.
#![allow(warnings, clippy::all, clippy::undocumented_unsafe_blocks)]

macro_rules! generated {
    ($($name:ident),* $(,)?) => {
        $(
            pub mod $name {
                include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
            }
        )*
    };
}

generated!(
    types,
    version,
    version_ttrpc,
    content,
    content_ttrpc,
    images,
    images_ttrpc,
    snapshots,
    snapshots_ttrpc,
    system,
    system_ttrpc,
    containers,
    containers_ttrpc,
    tasks,
    tasks_ttrpc,
    networks,
    networks_ttrpc,
    volumes,
    volumes_ttrpc,
    build,
    build_ttrpc,
);

pub mod build_options;
pub mod chunks;
pub mod container_config;
pub mod port_spec;
