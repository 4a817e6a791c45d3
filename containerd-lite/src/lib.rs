//! berthd: content store, images, overlayfs snapshots, containers and tasks over ttrpc.
//!
//! Not implemented yet (issue 5); this crate is a placeholder in the workspace and builds no binary.
