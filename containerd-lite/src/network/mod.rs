//! Container networking: published ports, the generated /etc files and the embedded DNS.

pub mod dns;
pub mod etc_files;
pub mod ports;
