//! One file per command: each holds its arguments and a `run` that talks to berthd and prints.

pub mod events;
pub mod images;
pub mod inspect;
pub mod load;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod save;
pub mod system;
pub mod tag;
pub mod version;
