//! Reading secrets and confirmations from the user: API keys come from stdin or a
//! no-echo prompt on the terminal, never from argv (which `ps` and shell history show).

use crate::error::{Code, Error, Result};
use crate::vault::SecretString;
use std::io::{BufRead, IsTerminal, Read, Write};
use zeroize::Zeroizing;

/// The most a secret on stdin may be; more is certainly not an API key.
const MAX_STDIN_SECRET: u64 = 64 * 1024;

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Read a secret from stdin (all of it; surrounding whitespace and the final newline
/// are dropped). Empty input is an error: `--api-key-stdin` promised a key.
pub fn secret_from_stdin(what: &str) -> Result<SecretString> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(MAX_STDIN_SECRET + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_STDIN_SECRET {
        return Err(Error::invalid(format!(
            "{what} on stdin is longer than {MAX_STDIN_SECRET} bytes"
        )));
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| Error::invalid(format!("{what} on stdin is not UTF-8 text")))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(format!(
            "no {what} on stdin (pipe it in, e.g. `pbpaste | switchyard … --api-key-stdin`)"
        )));
    }
    Ok(SecretString::new(trimmed.to_string()))
}

/// Ask for a secret on the terminal with echo off. `Ok(None)` when the user just
/// pressed Enter.
pub fn secret_from_tty(prompt: &str) -> Result<Option<SecretString>> {
    let mut err = std::io::stderr();
    write!(err, "{prompt}: ")?;
    err.flush()?;
    let line = {
        let _guard = EchoOff::new()?;
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    writeln!(err)?;
    let t = line.trim();
    Ok((!t.is_empty()).then(|| SecretString::new(t.to_string())))
}

/// Ask a yes/no question on the terminal; anything but `y`/`yes` is no.
pub fn confirm(question: &str) -> Result<bool> {
    let mut err = std::io::stderr();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// A confirmation for a destructive or security-relevant action: `--yes`, or a TTY
/// answer; without either, `confirmation_required` instead of guessing.
pub fn require_confirmation(yes: bool, question: &str, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !stdin_is_tty() {
        return Err(Error::new(
            Code::ConfirmationRequired,
            format!("{what} needs confirmation: run it on a terminal, or pass --yes"),
        ));
    }
    if confirm(question)? {
        Ok(())
    } else {
        Err(Error::new(
            Code::Cancelled,
            format!("{what}: not confirmed"),
        ))
    }
}

/// Terminal echo off for stdin until drop (termios). A no-op when stdin is not a TTY.
struct EchoOff {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl EchoOff {
    #[cfg(unix)]
    fn new() -> Result<Self> {
        // SAFETY: termios calls on fd 0 with a zeroed, then kernel-filled struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return Ok(EchoOff { saved: None });
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                return Err(Error::new(
                    Code::Io,
                    "cannot turn off terminal echo; pipe the key in with --api-key-stdin instead",
                ));
            }
            Ok(EchoOff { saved: Some(saved) })
        }
    }

    #[cfg(not(unix))]
    fn new() -> Result<Self> {
        Err(Error::new(
            Code::Io,
            "no hidden prompt on this platform; pipe the key in with --api-key-stdin",
        ))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = self.saved {
            // SAFETY: restoring the attributes read in `new` on the same fd.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved);
            }
        }
    }
}
