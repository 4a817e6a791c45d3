//! One file per command: each holds its arguments and a `run` that talks to berthd and prints.

pub mod attach;
pub mod container;
pub mod events;
pub mod exec;
pub mod images;
pub mod inspect;
pub mod inspect_container;
pub mod kill;
pub mod load;
pub mod logs;
pub mod pause;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod start;
pub mod stop;
pub mod system;
pub mod tag;
pub mod version;
pub mod wait;
