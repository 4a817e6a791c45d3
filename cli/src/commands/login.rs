//! `berth login` / `berth logout`: System.Login (berthd checks the credentials against the
//! registry and stores them in its auth file, docker's `auths` entry) and System.Logout.

use std::io::{self, BufRead, Read, Write};

use anyhow::{bail, Result};
use berth_proto::system::{LoginRequest, LogoutRequest};

use crate::daemon::{ctx, Berthd};

/// Log in to a registry.
#[derive(clap::Args, Debug, Default)]
pub struct LoginArgs {
    /// Username.
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: a flag shows in the process list and shell history).
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin.
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The registry (`host[:port]`); Docker Hub when omitted.
    server: Option<String>,
}

/// Log out from a registry.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The registry (`host[:port]`); Docker Hub when omitted.
    server: Option<String>,
}

/// Asks for what the flags leave out, then has berthd check and store the credentials.
pub async fn login(berthd: &Berthd, args: &LoginArgs) -> Result<()> {
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stdin = io::stdin();
    let password = match (&args.password, args.password_stdin) {
        (Some(password), _) => Some(password.clone()),
        (None, true) => {
            if args.username.is_none() {
                bail!("Must provide --username with --password-stdin");
            }
            let mut text = String::new();
            stdin.lock().read_to_string(&mut text)?;
            Some(password_from_stdin(&text))
        }
        (None, false) => None,
    };
    let username = match &args.username {
        Some(username) => username.clone(),
        None => prompt(&mut stdin.lock(), "Username: ")?,
    };
    let password = match password {
        Some(password) => password,
        None => prompt(&mut stdin.lock(), "Password: ")?,
    };
    if username.is_empty() || password.is_empty() {
        bail!("Username and password are required");
    }
    let request =
        LoginRequest { server: args.server.clone().unwrap_or_default(), username, password, ..Default::default() };
    berthd.system().login(ctx(), &request).await?;
    println!("Login Succeeded");
    Ok(())
}

/// Removes the stored credentials, saying whether there were any, as docker does.
pub async fn logout(berthd: &Berthd, args: &LogoutArgs) -> Result<()> {
    let request = LogoutRequest { server: args.server.clone().unwrap_or_default(), ..Default::default() };
    let response = berthd.system().logout(ctx(), &request).await?;
    let shown = args.server.clone().unwrap_or(response.registry);
    if response.removed {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(())
}

/// The password piped in: its trailing line break (and a Windows one) is not part of it.
fn password_from_stdin(text: &str) -> String {
    text.trim_end_matches('\n').trim_end_matches('\r').to_string()
}

/// Prints `question` on stderr and reads one line.
fn prompt(input: &mut impl BufRead, question: &str) -> Result<String> {
    eprint!("{question}");
    io::stderr().flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(answer.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piped_passwords_lose_only_their_line_break() {
        assert_eq!(password_from_stdin("s3cret\n"), "s3cret");
        assert_eq!(password_from_stdin("s3cret\r\n"), "s3cret");
        assert_eq!(password_from_stdin(" spaced \n"), " spaced ");
    }

    #[test]
    fn prompts_read_one_line() {
        let mut input = io::Cursor::new("alice\nrest\n");
        assert_eq!(prompt(&mut input, "").unwrap(), "alice");
        assert_eq!(prompt(&mut input, "").unwrap(), "rest");
    }
}
