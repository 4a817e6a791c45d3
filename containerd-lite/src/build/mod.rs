//! `berth build`'s daemon side: the Dockerfile language and its variable substitution.

pub mod shell_lex;
