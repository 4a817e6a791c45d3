//! berthd's API: .proto files and the ttrpc code generated from them.
//!
//! Not implemented yet (issue 5); this crate is a placeholder in the workspace.
