//! `berth build`'s daemon side: the Dockerfile language and its variable substitution.

pub mod dockerfile;
pub mod shell_lex;
