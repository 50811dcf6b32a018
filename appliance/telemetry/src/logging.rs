//! Logging set-up.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where and how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Journald when stderr is the journal (systemd sets `JOURNAL_STREAM`),
    /// otherwise text.
    Auto,
    /// Human-readable lines on stderr (colour on a terminal).
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// The systemd journal, with structured fields.
    Journald,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter expression is invalid.
    #[error("invalid log filter {filter:?}")]
    Filter {
        /// The expression.
        filter: String,
        /// Parser error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The journald socket could not be opened.
    #[error("cannot connect to the systemd journal")]
    Journald(#[source] std::io::Error),
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet(#[source] tracing_subscriber::util::TryInitError),
}

/// Whether stderr is connected to the journal: systemd sets
/// `JOURNAL_STREAM=<dev>:<inode>` of the stream it gave us, and it is only
/// ours if stderr still is that stream.
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax
/// (e.g. `info,safe_yolo_pipeline=debug`).
pub fn init(format: LogFormat, filter: &str) -> Result<LogFormat, LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let format = match format {
        LogFormat::Auto => {
            if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
                LogFormat::Journald
            } else {
                LogFormat::Text
            }
        }
        f => f,
    };
    let registry = tracing_subscriber::registry().with(env_filter);
    match format {
        LogFormat::Journald => {
            let layer = tracing_journald::layer()
                .map_err(LoggingError::Journald)?
                .with_syslog_identifier("safe-yolo".to_owned());
            registry.with(layer).try_init()
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text | LogFormat::Auto => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(ansi)
                        .with_writer(std::io::stderr),
                )
                .try_init()
        }
    }
    .map_err(LoggingError::AlreadySet)?;
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_match_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:1")));
        let meta = std::fs::metadata("/proc/self/fd/2").unwrap();
        let mine = format!("{}:{}", meta.dev(), meta.ino());
        assert!(stderr_is_journal(Some(&mine)));
    }
}
