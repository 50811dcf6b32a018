//! The source sandbox: which paths a camera may be opened from.
//!
//! A camera is either a V4L2 capture node or recorded footage. A V4L2 path is
//! resolved through its symlinks (`/dev/v4l/by-id/...` links are symlinks) and
//! must end at a character device with the V4L2 major number (81); anything
//! else (`/dev/null`, a disk, a regular file) is refused. A replay path must lie
//! inside the configured media directory: `..` components are refused outright
//! and symlinks are resolved before the containment check, so a link cannot
//! lead out. The same check runs at configuration load, through the API, and
//! again on every (re)open.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::frame::PixelFormat;

/// Major device number of V4L2 nodes (`/dev/video*`, Linux `VIDEO_MAJOR`).
pub const V4L2_MAJOR: u32 = 81;

/// Largest frame side a source may request.
pub const MAX_SIDE: u32 = 8192;

/// Highest frame rate a source may request.
pub const MAX_FPS: f32 = 1000.0;

/// How a replay is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Frames are delivered at the configured rate, as a live camera would.
    RealTime,
    /// Frames are delivered as fast as they are asked for.
    AsFastAsPossible,
}

impl safe_yolo_domain::Named for Pacing {
    const WHAT: &'static str = "pace";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("realtime", Self::RealTime),
        ("fast", Self::AsFastAsPossible),
    ];
}
safe_yolo_domain::named_vocabulary!(Pacing);

/// An unvalidated description of a source, as configuration or the API give it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceRequest {
    /// A V4L2 capture device.
    V4l2 {
        /// Device path: `/dev/videoN` or a stable `/dev/v4l/by-id/...` link.
        device: PathBuf,
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
        /// Requested frame rate.
        fps: f32,
        /// Required pixel format, or `None` to let negotiation choose.
        format: Option<PixelFormat>,
    },
    /// Recorded footage: a folder of JPEG frames or a file of concatenated JPEGs.
    Replay {
        /// Path, relative to the media directory or absolute inside it.
        path: PathBuf,
        /// Start again at the end instead of ending.
        looping: bool,
        /// Pacing.
        pacing: Pacing,
        /// Frame rate of the footage (used for pacing and media positions).
        fps: f32,
        /// Index of the first frame to deliver (wraps around the recording).
        start_frame: u64,
    },
    /// An IP camera over RTSP.
    Rtsp(crate::rtsp::RtspRequest),
}

/// A validated V4L2 source.
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Spec {
    /// The path as configured (kept for logs: stable ids are more telling).
    pub configured: PathBuf,
    /// The resolved character-device node.
    pub device: PathBuf,
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested frame rate.
    pub fps: f32,
    /// Required pixel format, if any.
    pub format: Option<PixelFormat>,
}

/// What a replay path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayKind {
    /// A folder of `*.jpg` / `*.jpeg` frames, played in file-name order.
    Folder,
    /// A file of concatenated JPEG images (`ffmpeg -f mjpeg`).
    MjpegFile,
}

/// A validated replay source.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySpec {
    /// Canonical path of the footage.
    pub path: PathBuf,
    /// Canonical media directory it lies in.
    pub media_dir: PathBuf,
    /// Folder or MJPEG file.
    pub kind: ReplayKind,
    /// Start again at the end.
    pub looping: bool,
    /// Pacing.
    pub pacing: Pacing,
    /// Frame rate of the footage.
    pub fps: f32,
    /// First frame to deliver.
    pub start_frame: u64,
}

/// A source that passed the sandbox.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// A V4L2 device.
    V4l2(V4l2Spec),
    /// Recorded footage.
    Replay(ReplaySpec),
    /// An IP camera over RTSP.
    Rtsp(crate::rtsp::RtspSpec),
}

/// Why a source was refused.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A V4L2 path is relative.
    #[error("camera device {path:?} must be an absolute path")]
    DeviceNotAbsolute {
        /// The configured path.
        path: PathBuf,
    },
    /// A V4L2 path does not resolve.
    #[error("camera device {path:?} cannot be resolved")]
    DeviceUnresolvable {
        /// The configured path.
        path: PathBuf,
        /// Why it could not be resolved.
        #[source]
        source: io::Error,
    },
    /// A V4L2 path resolves to something that is not a character device.
    #[error("camera device {path:?} (resolved to {resolved:?}) is not a character device")]
    NotCharDevice {
        /// The configured path.
        path: PathBuf,
        /// Where it leads.
        resolved: PathBuf,
    },
    /// A V4L2 path resolves to a character device of another kind.
    #[error(
        "camera device {path:?} (resolved to {resolved:?}) is character device {major}:{minor}, not a V4L2 device (major {V4L2_MAJOR})"
    )]
    NotVideoDevice {
        /// The configured path.
        path: PathBuf,
        /// Where it leads.
        resolved: PathBuf,
        /// Its major number.
        major: u32,
        /// Its minor number.
        minor: u32,
    },
    /// A replay path has a `..` component.
    #[error("replay path {path:?} contains '..'; give a path inside the media directory")]
    ParentComponent {
        /// The configured path.
        path: PathBuf,
    },
    /// The media directory itself is missing or unreadable.
    #[error("media directory {media_dir:?} is not available")]
    MediaDirUnavailable {
        /// The configured media directory.
        media_dir: PathBuf,
        /// The reason.
        #[source]
        source: io::Error,
    },
    /// A replay path does not resolve.
    #[error("replay path {path:?} cannot be resolved")]
    ReplayUnresolvable {
        /// The path (joined to the media directory when relative).
        path: PathBuf,
        /// The reason.
        #[source]
        source: io::Error,
    },
    /// A replay path leads out of the media directory (absolute elsewhere or a symlink escape).
    #[error(
        "replay path {path:?} resolves to {resolved:?}, outside the media directory {media_dir:?}"
    )]
    OutsideMediaDir {
        /// The configured path.
        path: PathBuf,
        /// Where it leads.
        resolved: PathBuf,
        /// The canonical media directory.
        media_dir: PathBuf,
    },
    /// A replay path names the media directory itself.
    #[error("replay path {path:?} is the media directory itself; name a file or folder inside it")]
    MediaDirItself {
        /// The configured path.
        path: PathBuf,
    },
    /// A replay path is neither a regular file nor a folder.
    #[error(
        "replay path {path:?} (resolved to {resolved:?}) is neither an MJPEG file nor a folder of JPEG frames"
    )]
    NotFileOrFolder {
        /// The configured path.
        path: PathBuf,
        /// Where it leads.
        resolved: PathBuf,
    },
    /// A numeric field is out of range.
    #[error("{field} = {value} is invalid: {reason}")]
    OutOfRange {
        /// The field name (`width`, `fps`...).
        field: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
}

impl SandboxError {
    /// The reason to show an API caller: it names the path the caller gave but
    /// never where a link leads, a device's numbers or the operating system's error
    /// (which would tell whether a file the caller may not read exists: a path
    /// oracle). The journal keeps the whole chain for the administrator.
    pub fn public_message(&self) -> String {
        match self {
            SandboxError::DeviceNotAbsolute { path } => {
                format!("camera device {path:?} must be an absolute path")
            }
            SandboxError::DeviceUnresolvable { path, .. } => {
                format!("camera device {path:?} does not exist or cannot be read")
            }
            SandboxError::NotCharDevice { path, .. }
            | SandboxError::NotVideoDevice { path, .. } => {
                format!("camera device {path:?} is not a V4L2 capture device")
            }
            SandboxError::ParentComponent { .. } | SandboxError::OutOfRange { .. } => {
                self.to_string()
            }
            SandboxError::MediaDirUnavailable { .. } => {
                "the media directory is not available".to_owned()
            }
            SandboxError::ReplayUnresolvable { path, .. }
            | SandboxError::OutsideMediaDir { path, .. } => {
                format!("replay path {path:?} is not a file or folder inside the media directory")
            }
            SandboxError::MediaDirItself { path } => format!(
                "replay path {path:?} is the media directory itself; name a file or folder inside it"
            ),
            SandboxError::NotFileOrFolder { path, .. } => {
                format!("replay path {path:?} is neither an MJPEG file nor a folder of JPEG frames")
            }
        }
    }

    /// The key of the source at fault: `device`, `path`, or the numeric field
    /// (`width`, `height`, `fps`).
    pub fn field(&self) -> &'static str {
        match self {
            SandboxError::DeviceNotAbsolute { .. }
            | SandboxError::DeviceUnresolvable { .. }
            | SandboxError::NotCharDevice { .. }
            | SandboxError::NotVideoDevice { .. } => "device",
            SandboxError::ParentComponent { .. }
            | SandboxError::MediaDirUnavailable { .. }
            | SandboxError::ReplayUnresolvable { .. }
            | SandboxError::OutsideMediaDir { .. }
            | SandboxError::MediaDirItself { .. }
            | SandboxError::NotFileOrFolder { .. } => "path",
            SandboxError::OutOfRange { field, .. } => field,
        }
    }
}

/// The sandbox: where replays may come from. V4L2 devices are checked by type,
/// wherever their node lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePolicy {
    media_dir: PathBuf,
    decoders: Vec<String>,
}

impl SourcePolicy {
    /// A policy whose replays must lie inside `media_dir`. The directory is
    /// resolved at each check, so it may be created after the policy.
    pub fn new(media_dir: impl Into<PathBuf>) -> Self {
        Self {
            media_dir: media_dir.into(),
            decoders: Vec::new(),
        }
    }

    /// The same policy, with the GStreamer video decoders RTSP cameras should use,
    /// best first (the board profile's `video_decoders`; software when empty).
    pub fn with_decoders(mut self, decoders: Vec<String>) -> Self {
        self.decoders = decoders;
        self
    }

    /// The configured media directory.
    pub fn media_dir(&self) -> &Path {
        &self.media_dir
    }

    /// Validates `request`, resolving its paths; the error names the path and the reason.
    pub fn check(&self, request: &SourceRequest) -> Result<SourceSpec, SandboxError> {
        match request {
            SourceRequest::V4l2 {
                device,
                width,
                height,
                fps,
                format,
            } => {
                check_side("width", *width)?;
                check_side("height", *height)?;
                check_fps(*fps)?;
                let resolved = check_device(device)?;
                Ok(SourceSpec::V4l2(V4l2Spec {
                    configured: device.clone(),
                    device: resolved,
                    width: *width,
                    height: *height,
                    fps: *fps,
                    format: *format,
                }))
            }
            SourceRequest::Replay {
                path,
                looping,
                pacing,
                fps,
                start_frame,
            } => {
                check_fps(*fps)?;
                let (resolved, kind, media_dir) = self.check_replay_path(path)?;
                Ok(SourceSpec::Replay(ReplaySpec {
                    path: resolved,
                    media_dir,
                    kind,
                    looping: *looping,
                    pacing: *pacing,
                    fps: *fps,
                    start_frame: *start_frame,
                }))
            }
            SourceRequest::Rtsp(request) => {
                if request.latency > crate::rtsp::MAX_LATENCY {
                    return Err(SandboxError::OutOfRange {
                        field: "latency_ms",
                        value: request.latency.as_millis().to_string(),
                        reason: "at most 5000",
                    });
                }
                if let Some(p) = &request.password_file
                    && !p.is_absolute()
                {
                    return Err(SandboxError::OutOfRange {
                        field: "password_file",
                        value: format!("{p:?}"),
                        reason: "must be an absolute path",
                    });
                }
                Ok(SourceSpec::Rtsp(crate::rtsp::RtspSpec {
                    request: request.clone(),
                    decoders: self.decoders.clone(),
                }))
            }
        }
    }

    fn check_replay_path(
        &self,
        path: &Path,
    ) -> Result<(PathBuf, ReplayKind, PathBuf), SandboxError> {
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(SandboxError::ParentComponent {
                path: path.to_path_buf(),
            });
        }
        let media_dir =
            self.media_dir
                .canonicalize()
                .map_err(|source| SandboxError::MediaDirUnavailable {
                    media_dir: self.media_dir.clone(),
                    source,
                })?;
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.media_dir.join(path)
        };
        let resolved =
            joined
                .canonicalize()
                .map_err(|source| SandboxError::ReplayUnresolvable {
                    path: joined.clone(),
                    source,
                })?;
        let kind = replay_kind_within(path, &resolved, &media_dir)?;
        Ok((resolved, kind, media_dir))
    }
}

/// Checks that canonical `resolved` lies inside canonical `media_dir` and is a
/// file or a folder; `path` is the configured path, for the error.
pub(crate) fn replay_kind_within(
    path: &Path,
    resolved: &Path,
    media_dir: &Path,
) -> Result<ReplayKind, SandboxError> {
    if resolved == media_dir {
        return Err(SandboxError::MediaDirItself {
            path: path.to_path_buf(),
        });
    }
    if !resolved.starts_with(media_dir) {
        return Err(SandboxError::OutsideMediaDir {
            path: path.to_path_buf(),
            resolved: resolved.to_path_buf(),
            media_dir: media_dir.to_path_buf(),
        });
    }
    let meta = std::fs::metadata(resolved).map_err(|source| SandboxError::ReplayUnresolvable {
        path: resolved.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        Ok(ReplayKind::Folder)
    } else if meta.is_file() {
        Ok(ReplayKind::MjpegFile)
    } else {
        Err(SandboxError::NotFileOrFolder {
            path: path.to_path_buf(),
            resolved: resolved.to_path_buf(),
        })
    }
}

/// Resolves a V4L2 device path and checks that it is a video character device.
pub fn check_device(path: &Path) -> Result<PathBuf, SandboxError> {
    if !path.is_absolute() {
        return Err(SandboxError::DeviceNotAbsolute {
            path: path.to_path_buf(),
        });
    }
    let resolved = path
        .canonicalize()
        .map_err(|source| SandboxError::DeviceUnresolvable {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = std::fs::metadata(&resolved).map_err(|source| SandboxError::DeviceUnresolvable {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_char_device() {
        return Err(SandboxError::NotCharDevice {
            path: path.to_path_buf(),
            resolved,
        });
    }
    let (major, minor) = split_dev(meta.rdev());
    if major != V4L2_MAJOR {
        return Err(SandboxError::NotVideoDevice {
            path: path.to_path_buf(),
            resolved,
            major,
            minor,
        });
    }
    Ok(resolved)
}

/// Splits a Linux `dev_t` into (major, minor), as glibc's `major()`/`minor()` do.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    // Both values are masked to 32 bits above.
    (major as u32, minor as u32)
}

fn check_side(field: &'static str, value: u32) -> Result<(), SandboxError> {
    if value == 0 || value > MAX_SIDE {
        return Err(SandboxError::OutOfRange {
            field,
            value: value.to_string(),
            reason: "must be between 1 and 8192 pixels",
        });
    }
    Ok(())
}

fn check_fps(fps: f32) -> Result<(), SandboxError> {
    if !fps.is_finite() || fps <= 0.0 || fps > MAX_FPS {
        return Err(SandboxError::OutOfRange {
            field: "fps",
            value: fps.to_string(),
            reason: "must be a number above 0 and at most 1000",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn replay(path: impl Into<PathBuf>) -> SourceRequest {
        SourceRequest::Replay {
            path: path.into(),
            looping: true,
            pacing: Pacing::RealTime,
            fps: 10.0,
            start_frame: 0,
        }
    }

    fn v4l2(device: &str) -> SourceRequest {
        SourceRequest::V4l2 {
            device: device.into(),
            width: 640,
            height: 480,
            fps: 15.0,
            format: None,
        }
    }

    struct Media {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        media: PathBuf,
    }

    /// `root/media/{clip.mjpeg, frames/0001.jpg, inner -> frames, escape -> ../secret}`
    /// and `root/secret/` outside.
    fn media() -> Media {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let media = root.join("media");
        std::fs::create_dir_all(media.join("frames")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        std::fs::write(root.join("secret/x.mjpeg"), b"\xFF\xD8").unwrap();
        std::fs::write(media.join("clip.mjpeg"), b"\xFF\xD8").unwrap();
        std::fs::write(media.join("frames/0001.jpg"), b"\xFF\xD8").unwrap();
        symlink(media.join("frames"), media.join("inner")).unwrap();
        symlink(root.join("secret"), media.join("escape")).unwrap();
        symlink(root.join("secret/x.mjpeg"), media.join("escape.mjpeg")).unwrap();
        Media {
            _tmp: tmp,
            root,
            media,
        }
    }

    #[test]
    fn accepts_files_and_folders_inside_the_media_dir() {
        let m = media();
        let policy = SourcePolicy::new(&m.media);
        let SourceSpec::Replay(spec) = policy.check(&replay("clip.mjpeg")).unwrap() else {
            panic!("not a replay")
        };
        assert_eq!(spec.kind, ReplayKind::MjpegFile);
        assert_eq!(spec.path, m.media.join("clip.mjpeg"));
        let SourceSpec::Replay(spec) = policy.check(&replay(m.media.join("frames"))).unwrap()
        else {
            panic!("not a replay")
        };
        assert_eq!(spec.kind, ReplayKind::Folder);
        // A symlink that stays inside is fine and is resolved.
        let SourceSpec::Replay(spec) = policy.check(&replay("inner")).unwrap() else {
            panic!("not a replay")
        };
        assert_eq!(spec.path, m.media.join("frames"));
    }

    #[test]
    fn refuses_traversal() {
        let m = media();
        let policy = SourcePolicy::new(&m.media);
        for p in [
            "../secret/x.mjpeg",
            "frames/../clip.mjpeg",
            "frames/../../secret",
        ] {
            let e = policy.check(&replay(p)).unwrap_err();
            assert!(
                matches!(e, SandboxError::ParentComponent { .. }),
                "{p}: {e}"
            );
            assert!(e.to_string().contains("contains '..'"), "{e}");
        }
    }

    #[test]
    fn refuses_symlink_escape_and_absolute_paths_elsewhere() {
        let m = media();
        let policy = SourcePolicy::new(&m.media);
        for p in [
            PathBuf::from("escape"),
            PathBuf::from("escape.mjpeg"),
            m.root.join("secret/x.mjpeg"),
            PathBuf::from("/etc/passwd"),
        ] {
            let e = policy.check(&replay(&p)).unwrap_err();
            assert!(
                matches!(e, SandboxError::OutsideMediaDir { .. }),
                "{p:?}: {e}"
            );
            assert!(e.to_string().contains("outside the media directory"), "{e}");
            assert_eq!(e.field(), "path");
        }
        // The media directory itself is not footage.
        for p in [m.media.clone(), PathBuf::new(), PathBuf::from(".")] {
            let e = policy.check(&replay(&p)).unwrap_err();
            assert!(
                matches!(e, SandboxError::MediaDirItself { .. }),
                "{p:?}: {e}"
            );
        }
    }

    #[test]
    fn refuses_missing_and_special_replay_paths() {
        let m = media();
        let policy = SourcePolicy::new(&m.media);
        let e = policy.check(&replay("nope.mjpeg")).unwrap_err();
        assert!(matches!(e, SandboxError::ReplayUnresolvable { .. }), "{e}");
        assert!(e.to_string().contains("nope.mjpeg"), "{e}");
        // A symlink to a character device inside the media dir is neither file nor folder,
        // but it also resolves outside: either way it is refused.
        symlink("/dev/null", m.media.join("null")).unwrap();
        assert!(policy.check(&replay("null")).is_err());
        let missing = SourcePolicy::new(m.root.join("no-such-dir"));
        let e = missing.check(&replay("clip.mjpeg")).unwrap_err();
        assert!(matches!(e, SandboxError::MediaDirUnavailable { .. }), "{e}");
    }

    #[test]
    fn refuses_non_video_devices() {
        let e = SourcePolicy::new("/nonexistent")
            .check(&v4l2("/dev/null"))
            .unwrap_err();
        match &e {
            SandboxError::NotVideoDevice { major, minor, .. } => {
                assert_eq!((*major, *minor), (1, 3));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(e.to_string().contains("not a V4L2 device"), "{e}");
        assert_eq!(e.field(), "device");

        let m = media();
        let policy = SourcePolicy::new(&m.media);
        let file = m.media.join("clip.mjpeg");
        let e = policy.check(&v4l2(file.to_str().unwrap())).unwrap_err();
        assert!(matches!(e, SandboxError::NotCharDevice { .. }), "{e}");
        let e = policy.check(&v4l2("/dev")).unwrap_err();
        assert!(matches!(e, SandboxError::NotCharDevice { .. }), "{e}");
        // A symlink named like a camera is followed to what it really is.
        symlink("/dev/null", m.root.join("video9")).unwrap();
        let link = m.root.join("video9");
        let e = policy.check(&v4l2(link.to_str().unwrap())).unwrap_err();
        match e {
            SandboxError::NotVideoDevice { resolved, .. } => {
                assert_eq!(resolved, PathBuf::from("/dev/null"));
            }
            other => panic!("unexpected {other}"),
        }
        let e = policy.check(&v4l2("video0")).unwrap_err();
        assert!(matches!(e, SandboxError::DeviceNotAbsolute { .. }), "{e}");
        let e = policy.check(&v4l2("/dev/video-missing")).unwrap_err();
        assert!(matches!(e, SandboxError::DeviceUnresolvable { .. }), "{e}");
    }

    #[test]
    fn splits_device_numbers_like_glibc() {
        // glibc's makedev(), written out independently of split_dev().
        fn makedev(major: u64, minor: u64) -> u64 {
            ((major & 0xffff_f000) << 32)
                | ((major & 0x0fff) << 8)
                | ((minor & 0xffff_ff00) << 12)
                | (minor & 0xff)
        }
        for (major, minor) in [(81, 0), (1, 3), (81, 300), (4096, 1 << 20), (259, 7)] {
            assert_eq!(
                split_dev(makedev(major, minor)),
                (major as u32, minor as u32)
            );
        }
        // /dev/null on every Linux: 1:3 = 0x103.
        assert_eq!(split_dev(0x103), (1, 3));
    }

    #[test]
    fn refuses_bad_numbers() {
        let policy = SourcePolicy::new("/nonexistent");
        let mut req = v4l2("/dev/null");
        if let SourceRequest::V4l2 { width, .. } = &mut req {
            *width = 0;
        }
        let e = policy.check(&req).unwrap_err();
        assert_eq!(
            e.to_string(),
            "width = 0 is invalid: must be between 1 and 8192 pixels"
        );
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY, 5000.0] {
            let req = SourceRequest::Replay {
                path: "x".into(),
                looping: false,
                pacing: Pacing::RealTime,
                fps: bad,
                start_frame: 0,
            };
            let e = policy.check(&req).unwrap_err();
            assert!(
                matches!(e, SandboxError::OutOfRange { field: "fps", .. }),
                "{e}"
            );
        }
    }
}
