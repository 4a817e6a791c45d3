//! Where berthd keeps things: blobs (content), records (meta, in redb), overlayfs snapshots,
//! leases that protect what a transfer is writing, and garbage collection over all of them.

pub mod content;
pub mod digest;
pub mod gc;
pub mod lease;
pub mod meta;
pub mod snapshot;
