//! containerd-shim-berth-v2: one process per container speaking containerd's shim v2 Task API.
//!
//! Not implemented yet (issue 4); this crate is a placeholder in the workspace and builds no binary.
