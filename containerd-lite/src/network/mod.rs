//! Container networking: published ports, the generated /etc files and the embedded DNS.

pub mod ports;
