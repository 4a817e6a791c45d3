//! berthd, the manager tier, grouped by concern as containerd groups its plugins:
//!
//! - `store`: the content store, redb metadata, overlayfs snapshots, leases and garbage collection;
//! - `image`: image references and manifests, registry pull/push, layer apply, image archives;
//! - `container`: container records, docker's spec defaults, create;
//! - `network`: network records, pinned network namespaces, CNI attachments, published ports, the
//!   containers' /etc/hosts and resolv.conf, the embedded DNS;
//! - `task`: running containers through their shims (stdio, logs, exec, exits, recovery);
//! - `service`: the ttrpc services, thin adapters over the modules above;
//! - `build`: the Dockerfile language of `berth build`;
//! - `daemon`, `config`, `events`: the process, its settings and its event bus.

pub mod build;
pub mod config;
pub mod container;
pub mod daemon;
pub mod diff;
pub mod events;
pub mod image;
pub mod memory;
pub mod network;
pub mod service;
pub mod store;
pub mod task;
pub mod volume;
