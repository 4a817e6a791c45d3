//! berth: the docker-like command line client of berthd.
//!
//! Not implemented yet (issue 5); this crate is a placeholder in the workspace and builds no binary.
