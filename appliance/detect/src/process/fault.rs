//! Test-only fault commands of the detector child (cargo feature
//! `fault-injection`; never in a shipped image).
//!
//! Before each frame the child looks for a file named [`COMMAND_FILE`] in its
//! scratch directory; when there is one it removes it and obeys its first line:
//!
//! | command          | what the child does                                   |
//! |------------------|-------------------------------------------------------|
//! | `segv`           | raises SIGSEGV (default action: killed by signal 11)  |
//! | `abort`          | `abort()` (SIGABRT)                                   |
//! | `hang`           | sleeps forever (the daemon's deadline kills it)       |
//! | `exit CODE`      | exits with CODE                                       |
//! | `open PATH`      | opens PATH for reading                                |
//! | `write PATH`     | creates PATH and writes a byte                        |
//! | `connect ADDR`   | opens a TCP connection to ADDR (`127.0.0.1:9`)        |
//! | `exec PATH`      | starts the program PATH                               |
//! | `recv-dup`       | peeks (non-blocking) at a duplicate of the control    |
//! |                  | channel: messages on any other descriptor are denied  |
//!
//! A probe (`open`, `write`, `connect`, `exec`) answers the frame with a
//! `Failed` message whose text is `probe <command>: allowed` or
//! `probe <command>: denied: <OS error>`, so a test sees what the sandbox let
//! through; the child goes on. An unknown command is answered the same way.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

/// The command file's name in the child's scratch directory.
pub const COMMAND_FILE: &str = "fault";

/// `recvmsg` with `MSG_PEEK | MSG_DONTWAIT` on a duplicate of the control
/// channel (standard input): harmless when allowed (nothing is taken from the
/// channel; "would block" counts as allowed), `EPERM` under the filter.
fn peek_on_a_duplicate() -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    let dup = std::io::stdin().as_fd().try_clone_to_owned()?;
    let mut space = [std::mem::MaybeUninit::uninit(); 0];
    let mut ancillary = rustix::net::RecvAncillaryBuffer::new(&mut space);
    match rustix::net::recvmsg(
        &dup,
        &mut [],
        &mut ancillary,
        rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
    ) {
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Obeys the command waiting in `scratch`, if any: never returns for a fatal
/// one, returns a probe's result text for the others.
pub(crate) fn obey(scratch: &Path) -> Option<String> {
    let file = scratch.join(COMMAND_FILE);
    let text = std::fs::read_to_string(&file).ok()?;
    // Removed first: a restarted child must not obey it again.
    if let Err(e) = std::fs::remove_file(&file) {
        return Some(format!("fault command {text:?} not removed: {e}"));
    }
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
    let arg = arg.trim();
    tracing::warn!(
        command = line,
        "detector process obeys a fault command (test build)"
    );
    let result = match verb {
        "segv" => {
            super::signals::raise_segv();
            return Some("probe segv: the process survived SIGSEGV".into());
        }
        "abort" => std::process::abort(),
        "hang" => loop {
            #[allow(
                clippy::disallowed_methods,
                reason = "the child's own thread, hanging on purpose"
            )]
            std::thread::sleep(Duration::from_secs(3600));
        },
        "exit" => {
            let code = arg.parse().unwrap_or(1);
            #[allow(clippy::exit, reason = "the exit on command the test asks for")]
            std::process::exit(code)
        }
        "open" => std::fs::File::open(arg).map(drop),
        "write" => std::fs::File::create(arg).and_then(|mut f| f.write_all(b"x")),
        "connect" => arg
            .parse()
            .map_err(std::io::Error::other)
            .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)))
            .map(drop),
        "exec" => std::process::Command::new(arg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| c.wait())
            .map(drop),
        "recv-dup" => peek_on_a_duplicate(),
        _ => Err(std::io::Error::other("unknown fault command")),
    };
    Some(match result {
        Ok(()) => format!("probe {line}: allowed"),
        Err(e) => format!("probe {line}: denied: {e}"),
    })
}
