//! berthd, the manager tier: content store, metadata, overlayfs snapshots, layer apply and
//! registry pull/push, served over ttrpc to the `berth` CLI.

pub mod archive;
pub mod config;
pub mod container;
pub mod content;
pub mod daemon;
pub mod digest;
pub mod events;
pub mod gc;
pub mod image;
pub mod lease;
pub mod meta;
pub mod oci_archive;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod service;
pub mod snapshot;
pub mod task;
