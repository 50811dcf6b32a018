//! Replay of recorded footage: a folder of JPEG frames or an MJPEG stream file.
//!
//! Memory stays bounded: a folder is listed (names only) and each frame is
//! read when it is due; an MJPEG file is indexed once (offsets only) and each
//! frame is read from its offset. Replays loop or end, and are paced at the
//! footage's frame rate or delivered as fast as they are asked for.
//!
//! Timestamps are honest: `captured_at` and `since_start` are the moment the
//! frame was delivered (on the monotonic clock, anchored to the wall clock at
//! open), never the time the footage was recorded; the position inside the
//! recording is reported separately as `media_position`.
//!
//! A replay whose footage disappears (file removed, folder emptied, a frame
//! turned into a symlink leading out of the media directory) fails on the next
//! frame, like an unplugged camera.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::frame::{CapturedFrame, Payload, PixelFormat, SourceInfo, SourceKind};
use crate::mjpeg::{self, FrameSpan, MAX_FRAME_LEN, MjpegError};
use crate::sandbox::{Pacing, ReplayKind, ReplaySpec};
use crate::source::{CaptureError, FrameSource};

/// Why a replay could not be opened or could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The folder could not be listed.
    #[error("the folder cannot be listed")]
    ListFolder(#[source] io::Error),
    /// The folder has no frames.
    #[error("the folder holds no JPEG frames (*.jpg, *.jpeg)")]
    EmptyFolder,
    /// The MJPEG file could not be opened.
    #[error("the MJPEG file cannot be opened")]
    OpenFile(#[source] io::Error),
    /// The MJPEG file could not be indexed.
    #[error("the MJPEG file cannot be indexed")]
    Index(#[source] MjpegError),
    /// The MJPEG file holds no complete image.
    #[error("the file holds no complete JPEG image (is it an MJPEG stream?)")]
    NoFrames,
    /// A frame could not be read (removed, unreadable).
    #[error("frame {index} ({path:?}) cannot be read")]
    ReadFrame {
        /// Index of the frame in the recording.
        index: u64,
        /// The file read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A frame file now resolves outside the media directory or is not a file.
    #[error(
        "frame {index} ({path:?}) resolves to {resolved:?}, which is not a file inside the media directory"
    )]
    FrameEscapes {
        /// Index of the frame.
        index: u64,
        /// The frame's path.
        path: PathBuf,
        /// Where it leads.
        resolved: PathBuf,
    },
    /// The MJPEG file was replaced or resized since it was indexed.
    #[error("the MJPEG file changed since it was indexed (was {was_len} bytes, now {now_len})")]
    FileChanged {
        /// Size when indexed.
        was_len: u64,
        /// Size now.
        now_len: u64,
    },
    /// A frame is implausibly large.
    #[error("frame {index} is larger than {MAX_FRAME_LEN} bytes")]
    FrameTooLong {
        /// Index of the frame.
        index: u64,
    },
    /// A frame does not start like a JPEG image.
    #[error("frame {index} ({path:?}) is not a JPEG image")]
    NotJpeg {
        /// Index of the frame.
        index: u64,
        /// Where it was read.
        path: PathBuf,
    },
}

/// The time source of a replay (a fake one in tests, so pacing is checked
/// without real waiting).
pub(crate) trait Clock: Send {
    /// The current monotonic time.
    fn now(&self) -> Instant;
    /// Blocks the capture thread for `d`.
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "replays run on their own capture thread, never on the async runtime"
    )]
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Where the frames of a replay are read from.
trait Store: Send {
    /// Number of frames.
    fn len(&self) -> u64;
    /// Reads frame `index` (`< len`).
    fn read(&mut self, index: u64) -> Result<Vec<u8>, ReplayError>;
}

/// A folder of JPEG files; only the names are held.
struct FolderStore {
    dir: PathBuf,
    media_dir: PathBuf,
    names: Vec<OsString>,
}

impl FolderStore {
    fn open(dir: &Path, media_dir: &Path) -> Result<Self, ReplayError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(ReplayError::ListFolder)? {
            let entry = entry.map_err(ReplayError::ListFolder)?;
            let name = entry.file_name();
            let lower = name.to_string_lossy().to_ascii_lowercase();
            if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Err(ReplayError::EmptyFolder);
        }
        // ffmpeg numbers frames with zero padding, so name order is time order.
        names.sort();
        Ok(Self {
            dir: dir.to_path_buf(),
            media_dir: media_dir.to_path_buf(),
            names,
        })
    }
}

impl Store for FolderStore {
    fn len(&self) -> u64 {
        self.names.len() as u64
    }

    fn read(&mut self, index: u64) -> Result<Vec<u8>, ReplayError> {
        let name = usize::try_from(index)
            .ok()
            .and_then(|i| self.names.get(i))
            .ok_or(ReplayError::EmptyFolder)?;
        let path = self.dir.join(name);
        let read_err = |source| ReplayError::ReadFrame {
            index,
            path: path.clone(),
            source,
        };
        // Checked on every read: a frame swapped for a symlink must not lead out.
        let resolved = path.canonicalize().map_err(read_err)?;
        let meta = std::fs::metadata(&resolved).map_err(read_err)?;
        if !resolved.starts_with(&self.media_dir) || !meta.is_file() {
            return Err(ReplayError::FrameEscapes {
                index,
                path,
                resolved,
            });
        }
        if meta.len() > MAX_FRAME_LEN {
            return Err(ReplayError::FrameTooLong { index });
        }
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        File::open(&resolved)
            .and_then(|f| f.take(MAX_FRAME_LEN + 1).read_to_end(&mut data))
            .map_err(read_err)?;
        if !data.starts_with(&[0xFF, 0xD8]) {
            return Err(ReplayError::NotJpeg { index, path });
        }
        Ok(data)
    }
}

/// An MJPEG stream file, indexed by offsets.
struct MjpegStore {
    path: PathBuf,
    file: File,
    frames: Vec<FrameSpan>,
    file_len: u64,
    inode: (u64, u64),
}

impl MjpegStore {
    fn open(path: &Path) -> Result<Self, ReplayError> {
        let file = File::open(path).map_err(ReplayError::OpenFile)?;
        let meta = file.metadata().map_err(ReplayError::OpenFile)?;
        let index = mjpeg::index(io::BufReader::new(&file)).map_err(ReplayError::Index)?;
        if index.frames.is_empty() {
            return Err(ReplayError::NoFrames);
        }
        if index.skipped_bytes > 0 || index.truncated_tail > 0 {
            tracing::warn!(
                path = %path.display(),
                frames = index.frames.len(),
                skipped_bytes = index.skipped_bytes,
                truncated_tail = index.truncated_tail,
                "MJPEG file has bytes outside complete frames; they are ignored"
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            frames: index.frames,
            file_len: meta.len(),
            inode: (meta.dev(), meta.ino()),
        })
    }
}

impl Store for MjpegStore {
    fn len(&self) -> u64 {
        self.frames.len() as u64
    }

    fn read(&mut self, index: u64) -> Result<Vec<u8>, ReplayError> {
        let read_err = |source| ReplayError::ReadFrame {
            index,
            path: self.path.clone(),
            source,
        };
        // The open descriptor would keep a deleted file readable: look at the
        // path, so a removed or replaced recording surfaces like an unplugged camera.
        let meta = std::fs::metadata(&self.path).map_err(read_err)?;
        if (meta.dev(), meta.ino()) != self.inode || meta.len() != self.file_len {
            return Err(ReplayError::FileChanged {
                was_len: self.file_len,
                now_len: meta.len(),
            });
        }
        let span = usize::try_from(index)
            .ok()
            .and_then(|i| self.frames.get(i))
            .copied()
            .ok_or(ReplayError::NoFrames)?;
        let mut data = vec![0u8; span.len as usize];
        self.file
            .seek(SeekFrom::Start(span.offset))
            .and_then(|_| self.file.read_exact(&mut data))
            .map_err(read_err)?;
        Ok(data)
    }
}

/// A [`FrameSource`] playing recorded footage.
pub struct ReplaySource {
    spec: ReplaySpec,
    store: Box<dyn Store>,
    clock: Box<dyn Clock>,
    info: SourceInfo,
    opened: Instant,
    opened_wall: SystemTime,
    period: Option<Duration>,
    /// Index in the recording of the next frame.
    next_index: u64,
    /// Frames delivered so far (the next sequence number).
    delivered: u64,
    /// Pacing anchor: frame number `.1` was due at `.0`.
    anchor: (Instant, u64),
    ended: bool,
}

impl std::fmt::Debug for ReplaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplaySource")
            .field("path", &self.spec.path)
            .field("next_index", &self.next_index)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl ReplaySource {
    /// Opens validated footage (see [`crate::SourcePolicy::check`]).
    pub fn open(spec: ReplaySpec) -> Result<Self, ReplayError> {
        Self::open_with_clock(spec, Box::new(SystemClock))
    }

    pub(crate) fn open_with_clock(
        spec: ReplaySpec,
        clock: Box<dyn Clock>,
    ) -> Result<Self, ReplayError> {
        let mut store: Box<dyn Store> = match spec.kind {
            ReplayKind::Folder => Box::new(FolderStore::open(&spec.path, &spec.media_dir)?),
            ReplayKind::MjpegFile => Box::new(MjpegStore::open(&spec.path)?),
        };
        let count = store.len();
        let next_index = spec.start_frame % count;
        // The first frame gives the size reported before streaming starts.
        let (width, height) = mjpeg::dimensions(&store.read(next_index)?).unwrap_or((0, 0));
        let kind = match spec.kind {
            ReplayKind::Folder => SourceKind::ReplayFolder {
                path: spec.path.clone(),
            },
            ReplayKind::MjpegFile => SourceKind::ReplayMjpeg {
                path: spec.path.clone(),
            },
        };
        let period = match spec.pacing {
            Pacing::RealTime => Some(Duration::from_secs_f64(1.0 / f64::from(spec.fps))),
            Pacing::AsFastAsPossible => None,
        };
        let info = SourceInfo {
            kind,
            format: PixelFormat::Mjpeg,
            width,
            height,
            fps: period.map(|_| spec.fps),
            frame_count: Some(count),
        };
        tracing::info!(
            path = %spec.path.display(),
            frames = count,
            width,
            height,
            fps = spec.fps,
            looping = spec.looping,
            pacing = ?spec.pacing,
            start_frame = next_index,
            "replay opened"
        );
        let opened = clock.now();
        Ok(Self {
            spec,
            store,
            clock,
            info,
            opened,
            opened_wall: SystemTime::now(),
            period,
            next_index,
            delivered: 0,
            anchor: (opened, 0),
            ended: false,
        })
    }

    /// Waits until the next frame is due; `Err` when that is beyond `timeout`.
    fn pace(&mut self, timeout: Duration) -> Result<(), CaptureError> {
        let Some(period) = self.period else {
            return Ok(());
        };
        let (anchor_at, anchor_seq) = self.anchor;
        let frames = u32::try_from(self.delivered - anchor_seq).unwrap_or(u32::MAX);
        let due = anchor_at + period * frames;
        let now = self.clock.now();
        if due > now {
            let wait = due - now;
            if wait > timeout {
                self.clock.sleep(timeout);
                return Err(CaptureError::Timeout { waited: timeout });
            }
            self.clock.sleep(wait);
        } else if now - due > period {
            // The consumer fell behind by more than a frame: start a new
            // schedule from now instead of bursting to catch up.
            tracing::debug!(
                path = %self.spec.path.display(),
                late_ms = (now - due).as_millis() as u64,
                "replay consumer fell behind; pacing restarts"
            );
            self.anchor = (now, self.delivered);
        }
        Ok(())
    }
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame, CaptureError> {
        if self.ended {
            return Err(CaptureError::Ended);
        }
        let count = self.store.len();
        if self.next_index >= count {
            if self.spec.looping {
                self.next_index = 0;
            } else {
                self.ended = true;
                tracing::info!(path = %self.spec.path.display(), "replay ended");
                return Err(CaptureError::Ended);
            }
        }
        self.pace(timeout)?;
        let index = self.next_index;
        let data = self
            .store
            .read(index)
            .map_err(|source| CaptureError::Replay {
                path: self.spec.path.clone(),
                source,
            })?;
        let since_start = self.clock.now().saturating_duration_since(self.opened);
        let frame = CapturedFrame {
            seq: self.delivered,
            captured_at: self.opened_wall + since_start,
            since_start,
            media_position: Some(Duration::from_secs_f64(
                index as f64 / f64::from(self.spec.fps),
            )),
            payload: Payload::Jpeg(Arc::from(data)),
        };
        self.delivered += 1;
        self.next_index += 1;
        Ok(frame)
    }

    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::sandbox::{SourcePolicy, SourceRequest, SourceSpec};

    /// A clock that only moves when slept on (or advanced by the test).
    #[derive(Clone)]
    struct FakeClock {
        base: Instant,
        nanos: Arc<AtomicU64>,
        slept: Arc<AtomicU64>,
    }

    impl FakeClock {
        fn new() -> Self {
            Self {
                base: Instant::now(),
                nanos: Arc::new(AtomicU64::new(0)),
                slept: Arc::new(AtomicU64::new(0)),
            }
        }
        fn advance(&self, d: Duration) {
            self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        }
        fn slept(&self) -> Duration {
            Duration::from_nanos(self.slept.load(Ordering::SeqCst))
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.base + Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
        }
        fn sleep(&self, d: Duration) {
            self.advance(d);
            self.slept.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    struct Footage {
        _tmp: tempfile::TempDir,
        media: PathBuf,
        frames: Vec<Vec<u8>>,
    }

    /// `media/frames/000{1..=n}.jpg` (plus a non-JPEG file that must be
    /// ignored) and `media/clip.mjpeg` with the same frames concatenated.
    fn footage(n: usize) -> Footage {
        let tmp = tempfile::tempdir().unwrap();
        let media = tmp.path().canonicalize().unwrap().join("media");
        std::fs::create_dir_all(media.join("frames")).unwrap();
        let mut stream = Vec::new();
        let mut frames = Vec::new();
        for k in 0..n {
            let f = crate::mjpeg::tests::fake_jpeg(16, 8, k as u8);
            std::fs::write(media.join(format!("frames/{:04}.jpg", k + 1)), &f).unwrap();
            stream.extend_from_slice(&f);
            frames.push(f);
        }
        std::fs::write(media.join("frames/notes.txt"), b"not a frame").unwrap();
        std::fs::write(media.join("clip.mjpeg"), &stream).unwrap();
        Footage {
            _tmp: tmp,
            media,
            frames,
        }
    }

    fn open(
        f: &Footage,
        path: &str,
        looping: bool,
        pacing: Pacing,
        start_frame: u64,
    ) -> (ReplaySource, FakeClock) {
        let req = SourceRequest::Replay {
            path: path.into(),
            looping,
            pacing,
            fps: 10.0,
            start_frame,
        };
        let SourceSpec::Replay(spec) = SourcePolicy::new(&f.media).check(&req).unwrap() else {
            panic!("not a replay")
        };
        let clock = FakeClock::new();
        let src = ReplaySource::open_with_clock(spec, Box::new(clock.clone())).unwrap();
        (src, clock)
    }

    const T: Duration = Duration::from_secs(2);

    fn payload_bytes(frame: &CapturedFrame) -> &[u8] {
        match &frame.payload {
            Payload::Jpeg(d) => d,
            Payload::Raw { .. } => panic!("replays deliver JPEG"),
        }
    }

    #[test]
    fn folder_and_file_deliver_the_same_frames_in_order() {
        let f = footage(3);
        for path in ["frames", "clip.mjpeg"] {
            let (mut src, _clock) = open(&f, path, false, Pacing::AsFastAsPossible, 0);
            let info = src.info();
            assert_eq!(
                (info.width, info.height, info.frame_count),
                (16, 8, Some(3))
            );
            assert_eq!(info.format, PixelFormat::Mjpeg);
            for (k, want) in f.frames.iter().enumerate() {
                let frame = src.next_frame(T).unwrap();
                assert_eq!(frame.seq, k as u64);
                assert_eq!(payload_bytes(&frame), &want[..], "{path} frame {k}");
            }
            assert!(src.next_frame(T).unwrap_err().is_end());
            assert!(src.next_frame(T).unwrap_err().is_end(), "stays ended");
        }
    }

    #[test]
    fn loops_from_the_start_frame() {
        let f = footage(3);
        for path in ["frames", "clip.mjpeg"] {
            let (mut src, _clock) = open(&f, path, true, Pacing::AsFastAsPossible, 4);
            let mut got = Vec::new();
            for _ in 0..7 {
                let frame = src.next_frame(T).unwrap();
                got.push((frame.seq, frame.media_position.unwrap().as_millis()));
                assert_eq!(
                    payload_bytes(&frame),
                    &f.frames[(got.len() as u64 % 3) as usize][..]
                );
            }
            // Start frame 4 wraps to index 1; positions are index / 10 fps.
            let positions: Vec<_> = got.iter().map(|g| g.1).collect();
            assert_eq!(positions, [100, 200, 0, 100, 200, 0, 100], "{path}");
            let seqs: Vec<_> = got.iter().map(|g| g.0).collect();
            assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6]);
        }
    }

    #[test]
    fn non_looping_start_frame_plays_to_the_end() {
        let f = footage(3);
        let (mut src, _clock) = open(&f, "clip.mjpeg", false, Pacing::AsFastAsPossible, 2);
        assert_eq!(payload_bytes(&src.next_frame(T).unwrap()), &f.frames[2][..]);
        assert!(src.next_frame(T).unwrap_err().is_end());
    }

    #[test]
    fn paced_replay_delivers_on_schedule_with_honest_timestamps() {
        let f = footage(3);
        let (mut src, clock) = open(&f, "frames", true, Pacing::RealTime, 0);
        assert_eq!(src.info().fps, Some(10.0));
        let frames: Vec<_> = (0..5).map(|_| src.next_frame(T).unwrap()).collect();
        for (k, frame) in frames.iter().enumerate() {
            assert_eq!(frame.since_start, Duration::from_millis(100) * k as u32);
            let wall = frame
                .captured_at
                .duration_since(frames[0].captured_at)
                .unwrap();
            assert_eq!(wall, frame.since_start, "wall and monotonic agree");
        }
        assert_eq!(clock.slept(), Duration::from_millis(400));
    }

    #[test]
    fn as_fast_as_possible_never_sleeps() {
        let f = footage(3);
        let (mut src, clock) = open(&f, "clip.mjpeg", true, Pacing::AsFastAsPossible, 0);
        for _ in 0..10 {
            src.next_frame(T).unwrap();
        }
        assert_eq!(clock.slept(), Duration::ZERO);
        assert_eq!(src.info().fps, None);
    }

    #[test]
    fn short_timeout_reports_timeout_then_delivers_on_time() {
        let f = footage(3);
        let (mut src, clock) = open(&f, "frames", true, Pacing::RealTime, 0);
        src.next_frame(T).unwrap();
        let e = src.next_frame(Duration::from_millis(30)).unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert_eq!(e.to_string(), "no frame within 30ms");
        assert_eq!(clock.slept(), Duration::from_millis(30));
        let frame = src.next_frame(T).unwrap();
        assert_eq!(frame.seq, 1);
        assert_eq!(frame.since_start, Duration::from_millis(100));
    }

    #[test]
    fn a_late_consumer_gets_no_burst() {
        let f = footage(3);
        let (mut src, clock) = open(&f, "frames", true, Pacing::RealTime, 0);
        src.next_frame(T).unwrap();
        clock.advance(Duration::from_secs(1));
        let late = src.next_frame(T).unwrap();
        assert_eq!(
            late.since_start,
            Duration::from_secs(1),
            "delivered at once"
        );
        let next = src.next_frame(T).unwrap();
        assert_eq!(
            next.since_start,
            Duration::from_millis(1100),
            "one period later"
        );
    }

    #[test]
    fn removed_footage_surfaces_as_an_error() {
        let f = footage(3);
        let (mut src, _clock) = open(&f, "clip.mjpeg", true, Pacing::AsFastAsPossible, 0);
        src.next_frame(T).unwrap();
        std::fs::remove_file(f.media.join("clip.mjpeg")).unwrap();
        let e = src.next_frame(T).unwrap_err();
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::ReadFrame { index: 1, .. },
                    ..
                }
            ),
            "{e:?}"
        );

        let (mut src, _clock) = open(&f, "frames", true, Pacing::AsFastAsPossible, 0);
        src.next_frame(T).unwrap();
        std::fs::remove_file(f.media.join("frames/0002.jpg")).unwrap();
        let e = src.next_frame(T).unwrap_err();
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::ReadFrame { .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_rewritten_mjpeg_file_is_detected() {
        let f = footage(3);
        let (mut src, _clock) = open(&f, "clip.mjpeg", true, Pacing::AsFastAsPossible, 0);
        std::fs::write(f.media.join("clip.mjpeg"), &f.frames[0]).unwrap();
        let e = src.next_frame(T).unwrap_err();
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::FileChanged { .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_frame_swapped_for_an_escaping_symlink_is_refused() {
        let f = footage(3);
        let outside = f.media.parent().unwrap().join("outside.jpg");
        std::fs::write(&outside, &f.frames[0]).unwrap();
        let (mut src, _clock) = open(&f, "frames", true, Pacing::AsFastAsPossible, 0);
        let victim = f.media.join("frames/0002.jpg");
        std::fs::remove_file(&victim).unwrap();
        std::os::unix::fs::symlink(&outside, &victim).unwrap();
        src.next_frame(T).unwrap();
        let e = src.next_frame(T).unwrap_err();
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::FrameEscapes { index: 1, .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn bad_footage_is_refused_at_open() {
        let f = footage(1);
        std::fs::create_dir(f.media.join("empty")).unwrap();
        std::fs::write(f.media.join("empty/readme.txt"), b"x").unwrap();
        std::fs::write(f.media.join("text.mjpeg"), b"plain text").unwrap();
        std::fs::write(f.media.join("frames/0002.jpg"), b"not a jpeg").unwrap();
        let policy = SourcePolicy::new(&f.media);
        let open_err = |path: &str, start_frame| {
            let req = SourceRequest::Replay {
                path: path.into(),
                looping: true,
                pacing: Pacing::RealTime,
                fps: 10.0,
                start_frame,
            };
            match crate::source::open(&req, &policy) {
                Ok(_) => panic!("{path} opened"),
                Err(e) => e,
            }
        };
        let e = open_err("empty", 0);
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::EmptyFolder,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = open_err("text.mjpeg", 0);
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::NoFrames,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = open_err("frames", 1);
        assert!(
            matches!(
                &e,
                CaptureError::Replay {
                    source: ReplayError::NotJpeg { index: 1, .. },
                    ..
                }
            ),
            "{e:?}"
        );
        let e = open_err("../etc", 0);
        assert!(matches!(&e, CaptureError::Refused(_)), "{e:?}");
    }
}
