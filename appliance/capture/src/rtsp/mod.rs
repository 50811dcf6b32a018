//! IP cameras over RTSP: the address and settings of an RTSP source, and (with the
//! `rtsp` feature) the source itself, a GStreamer pipeline.
//!
//! Why GStreamer (through gstreamer-rs) and not a pure-Rust RTSP client: it is the
//! embedded standard, it is in oe-core, and `decodebin` reaches every target board's
//! hardware decoder (`mppvideodec` on Rockchip, `nvv4l2decoder` on Jetson, VA-API on
//! x86) with libav as the software fallback, for H.264 and H.265 alike. A pure-Rust
//! client (retina) would still need a decoder, and none in Rust does H.265.
//!
//! Credentials never travel in the URL: a URL with a user part is refused, the user
//! name is its own field and the password is read from a file (mode 0600) at every
//! open, so it is in no configuration document, log line, API answer or backup.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "rtsp")]
mod gst_source;
#[cfg(feature = "rtsp")]
pub use gst_source::RtspSource;

/// The longest RTSP URL taken.
pub const MAX_URL_LEN: usize = 1024;

/// The longest password a password file may hold.
pub const MAX_PASSWORD_LEN: usize = 256;

/// The longest user name.
pub const MAX_USERNAME_LEN: usize = 128;

/// Jitter-buffer latency: default and bounds.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(200);
/// The highest jitter-buffer latency taken.
pub const MAX_LATENCY: Duration = Duration::from_secs(5);

/// An `rtsp://` or `rtsps://` URL without credentials: safe to log and to show.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    text: String,
    host_end: usize,
}

impl RtspUrl {
    /// Parses `text`: `rtsp[s]://host[:port][/path][?query]`, printable ASCII, at
    /// most [`MAX_URL_LEN`] bytes, no user part (`user:pass@`). The error says why.
    pub fn parse(text: &str) -> Result<RtspUrl, RtspUrlError> {
        if text.len() > MAX_URL_LEN {
            return Err(RtspUrlError::TooLong { len: text.len() });
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(RtspUrlError::BadCharacter { found: c });
        }
        let rest = ["rtsp://", "rtsps://"]
            .iter()
            .find_map(|scheme| {
                text.get(..scheme.len())
                    .filter(|s| s.eq_ignore_ascii_case(scheme))
                    .map(|_| &text[scheme.len()..])
            })
            .ok_or(RtspUrlError::Scheme)?;
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if authority.contains('@') {
            return Err(RtspUrlError::Credentials);
        }
        if rest.contains('#') {
            return Err(RtspUrlError::Fragment);
        }
        let (host, port) = match authority.strip_prefix('[') {
            // [v6]:port
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or(RtspUrlError::Host)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return Err(RtspUrlError::Host);
        }
        if let Some(p) = port
            && p.parse::<u16>().ok().filter(|p| *p > 0).is_none()
        {
            return Err(RtspUrlError::Port { port: p.to_owned() });
        }
        let scheme_len = text.len() - rest.len();
        Ok(RtspUrl {
            text: text.to_owned(),
            host_end: scheme_len + authority_len,
        })
    }

    /// The whole URL.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `rtsp[s]://host[:port]`: the camera, without the stream's path (for logs that
    /// must not show a path with a token in its query).
    pub fn origin(&self) -> &str {
        &self.text[..self.host_end]
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why an RTSP URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspUrlError {
    /// Longer than [`MAX_URL_LEN`].
    #[error("is {len} bytes long; at most {MAX_URL_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A space or a control or non-ASCII character (percent-encode it).
    #[error("contains {found:?}: percent-encode spaces and non-ASCII characters")]
    BadCharacter {
        /// The character.
        found: char,
    },
    /// Not `rtsp://` or `rtsps://`.
    #[error("must start with rtsp:// or rtsps://")]
    Scheme,
    /// `user:password@` in the URL.
    #[error(
        "must not carry credentials (user:password@): they would show in logs and settings; give `username` and `password` instead"
    )]
    Credentials,
    /// `#fragment`.
    #[error("must not have a #fragment")]
    Fragment,
    /// No host, or a host with characters no host name has.
    #[error("has no valid host")]
    Host,
    /// A port that is not 1-65535.
    #[error("port {port:?} is not 1-65535")]
    Port {
        /// The port as written.
        port: String,
    },
}

/// The lower transport of the RTP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: passes NAT and firewalls, no loss.
    #[default]
    Tcp,
    /// UDP: lower latency on a clean LAN, loses packets under load.
    Udp,
}

impl safe_yolo_domain::Named for RtspTransport {
    const WHAT: &'static str = "RTSP transport";
    const NAMED: &'static [(&'static str, Self)] = &[("tcp", Self::Tcp), ("udp", Self::Udp)];
}
safe_yolo_domain::named_vocabulary!(RtspTransport);

/// An RTSP camera as requested (what the configuration says).
#[derive(Debug, Clone, PartialEq)]
pub struct RtspRequest {
    /// The stream to detect on (a camera's sub-stream, when it has one, is the
    /// cheaper choice: detection runs at the model's size anyway).
    pub url: RtspUrl,
    /// User name, when the camera asks for one.
    pub username: Option<String>,
    /// The file holding the password (its first line), read at every open.
    pub password_file: Option<PathBuf>,
    /// TCP (default) or UDP.
    pub transport: RtspTransport,
    /// Jitter-buffer latency.
    pub latency: Duration,
}

/// An RTSP camera that passed the sandbox: the request and the board's decoders.
#[derive(Debug, Clone, PartialEq)]
pub struct RtspSpec {
    /// The request.
    pub request: RtspRequest,
    /// GStreamer decoder elements preferred, best first (the board profile's); the
    /// software decoders when empty or none is installed.
    pub decoders: Vec<String>,
}

/// Why an RTSP camera cannot deliver frames.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// This build has no RTSP support (the `rtsp` feature is off).
    #[error("this build has no RTSP support (feature `rtsp`)")]
    NotBuilt,
    /// GStreamer could not start or lacks an element.
    #[error("GStreamer: {what}")]
    Gstreamer {
        /// What failed (an element's name, the pipeline's start).
        what: String,
    },
    /// The password file cannot be read.
    #[error("password file {path:?} cannot be read")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The password file holds no usable password.
    #[error("password file {path:?} {why}")]
    BadPasswordFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
    /// The camera refused the credentials (RTSP 401).
    #[error(
        "the camera at {origin} refused the credentials (401 Unauthorized): check username and password"
    )]
    Unauthorized {
        /// `rtsp://host:port`.
        origin: String,
    },
    /// The camera has no such stream (RTSP 404).
    #[error("the camera at {origin} has no stream at that path (404 Not Found)")]
    NotFound {
        /// `rtsp://host:port`.
        origin: String,
    },
    /// The camera cannot be reached, or the connection broke.
    #[error("the camera at {origin} cannot be reached or dropped the connection: {message}")]
    Connection {
        /// `rtsp://host:port`.
        origin: String,
        /// GStreamer's message.
        message: String,
    },
    /// The stream cannot be decoded (an unsupported codec, a decoder error).
    #[error("the stream from {origin} failed: {message}")]
    Stream {
        /// `rtsp://host:port`.
        origin: String,
        /// GStreamer's message.
        message: String,
    },
    /// The camera ended the stream.
    #[error("the camera at {origin} ended the stream")]
    Ended {
        /// `rtsp://host:port`.
        origin: String,
    },
}

/// Reads the first line of a password file, bounded.
pub fn read_password(path: &std::path::Path) -> Result<String, RtspError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| RtspError::PasswordFile {
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_PASSWORD_LEN as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(|source| RtspError::PasswordFile {
            path: path.to_owned(),
            source,
        })?;
    let text = String::from_utf8(bytes).map_err(|_| RtspError::BadPasswordFile {
        path: path.to_owned(),
        why: "is not UTF-8",
    })?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(RtspError::BadPasswordFile {
            path: path.to_owned(),
            why: "is empty",
        });
    }
    if line.len() > MAX_PASSWORD_LEN {
        return Err(RtspError::BadPasswordFile {
            path: path.to_owned(),
            why: "holds a password longer than 256 bytes",
        });
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_keep_credentials_out() {
        let u = RtspUrl::parse("rtsp://10.0.0.5:554/Streaming/Channels/102?tk=1").unwrap();
        assert_eq!(u.origin(), "rtsp://10.0.0.5:554");
        assert_eq!(
            u.as_str(),
            "rtsp://10.0.0.5:554/Streaming/Channels/102?tk=1"
        );
        assert_eq!(
            RtspUrl::parse("RTSPS://cam.plant").unwrap().origin(),
            "RTSPS://cam.plant"
        );
        assert_eq!(
            RtspUrl::parse("rtsp://[fe80::1]:8554/s").unwrap().origin(),
            "rtsp://[fe80::1]:8554"
        );
        for (bad, want) in [
            ("rtsp://admin:secret@10.0.0.5/s", RtspUrlError::Credentials),
            ("rtsp://admin@10.0.0.5/s", RtspUrlError::Credentials),
            ("http://10.0.0.5/s", RtspUrlError::Scheme),
            ("rtsp:///s", RtspUrlError::Host),
            ("rtsp://a b/s", RtspUrlError::BadCharacter { found: ' ' }),
            ("rtsp://cam/s#x", RtspUrlError::Fragment),
            (
                "rtsp://cam:0/s",
                RtspUrlError::Port {
                    port: "0".to_owned(),
                },
            ),
            (
                "rtsp://cam:99999/s",
                RtspUrlError::Port {
                    port: "99999".to_owned(),
                },
            ),
        ] {
            assert_eq!(RtspUrl::parse(bad), Err(want), "{bad}");
        }
        let long = format!("rtsp://cam/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(
            RtspUrl::parse(&long),
            Err(RtspUrlError::TooLong { .. })
        ));
        // The error's text never repeats the credentials it refused.
        let e = RtspUrl::parse("rtsp://admin:hunter2@cam/s").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn password_files_are_bounded_and_first_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            read_password(&p),
            Err(RtspError::BadPasswordFile {
                why: "is empty",
                ..
            })
        ));
        std::fs::write(&p, "x".repeat(MAX_PASSWORD_LEN + 1)).unwrap();
        assert!(matches!(
            read_password(&p),
            Err(RtspError::BadPasswordFile { .. })
        ));
        assert!(matches!(
            read_password(&dir.path().join("none")),
            Err(RtspError::PasswordFile { .. })
        ));
    }
}
