//! Finding the JPEG images in an MJPEG stream file (concatenated JPEGs, as
//! `ffmpeg -f mjpeg` writes them) without loading the file.
//!
//! The scanner follows the JPEG marker structure instead of searching for the
//! `FF D9` byte pair, so an EXIF thumbnail (a whole JPEG inside an APP1
//! segment) does not end a frame early: segments are skipped by their length,
//! and inside entropy-coded data (where `FF 00` is a stuffed byte and
//! `FF D0..D7` are restart markers) and between frames only an `FF` byte can
//! change anything, so the scan jumps from one `FF` to the next (`memchr`)
//! instead of looking at every byte.

use std::io::{self, Read};

/// Largest frame accepted; a longer one means the file is not MJPEG.
pub const MAX_FRAME_LEN: u64 = 64 * 1024 * 1024;

/// One JPEG image inside a stream file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    /// Byte offset of its `FF D8`.
    pub offset: u64,
    /// Length up to and including its `FF D9`.
    pub len: u32,
}

/// The frames of a stream file and what the scan noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MjpegIndex {
    /// Complete frames, in file order.
    pub frames: Vec<FrameSpan>,
    /// Bytes outside any frame (padding, garbage between frames).
    pub skipped_bytes: u64,
    /// Bytes of an incomplete frame at the end of the file (a cut recording).
    pub truncated_tail: u64,
}

/// Why a stream file could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum MjpegError {
    /// Reading failed.
    #[error("reading the MJPEG stream failed at byte {offset}")]
    Read {
        /// Where.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A frame is implausibly long.
    #[error("the JPEG image starting at byte {offset} is longer than {MAX_FRAME_LEN} bytes")]
    FrameTooLong {
        /// Start of the frame.
        offset: u64,
    },
    /// A segment header is malformed.
    #[error("malformed JPEG segment (marker FF{marker:02X}, length {len}) at byte {offset}")]
    BadSegment {
        /// Where the length field is.
        offset: u64,
        /// The marker.
        marker: u8,
        /// The declared length.
        len: u16,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Looking for `FF D8`; `ff` is whether the previous byte was `FF`.
    SeekSoi { ff: bool },
    /// Expecting a marker (`FF xx`), `ff` as above.
    Marker { ff: bool },
    /// Reading the two length bytes of segment `marker`.
    Length { marker: u8, first: Option<u8> },
    /// Skipping `remaining` bytes of a segment, then continuing in `then`.
    Skip { remaining: u32, entropy_after: bool },
    /// Inside entropy-coded data.
    Entropy { ff: bool },
}

/// Streams `reader` and returns the spans of its complete JPEG images.
pub fn index<R: Read>(mut reader: R) -> Result<MjpegIndex, MjpegError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut state = State::SeekSoi { ff: false };
    let mut pos: u64 = 0;
    let mut frame_start: u64 = 0;
    let mut seek_start: u64 = 0;
    let mut out = MjpegIndex {
        frames: Vec::new(),
        skipped_bytes: 0,
        truncated_tail: 0,
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(MjpegError::Read {
                    offset: pos,
                    source,
                });
            }
        };
        let mut i = 0;
        while i < n {
            if !matches!(state, State::SeekSoi { .. })
                && pos + i as u64 - frame_start > MAX_FRAME_LEN
            {
                return Err(MjpegError::FrameTooLong {
                    offset: frame_start,
                });
            }
            // Where only an FF matters, jump to the next one (or past the buffer).
            if let State::SeekSoi { ff: false } | State::Entropy { ff: false } = state {
                match memchr::memchr(0xFF, &buf[i..n]) {
                    Some(k) => {
                        i += k + 1;
                        state = match state {
                            State::SeekSoi { .. } => State::SeekSoi { ff: true },
                            _ => State::Entropy { ff: true },
                        };
                    }
                    None => i = n,
                }
                continue;
            }
            let b = buf[i];
            let at = pos + i as u64;
            state = match state {
                State::SeekSoi { ff } => {
                    if ff && b == 0xD8 {
                        frame_start = at - 1;
                        out.skipped_bytes += frame_start - seek_start;
                        State::Marker { ff: false }
                    } else {
                        State::SeekSoi { ff: b == 0xFF }
                    }
                }
                State::Marker { ff: false } => {
                    if b == 0xFF {
                        State::Marker { ff: true }
                    } else {
                        // Not a marker where one must be: the frame is corrupt;
                        // drop it and look for the next start.
                        seek_start = frame_start;
                        State::SeekSoi { ff: false }
                    }
                }
                State::Marker { ff: true } => {
                    on_marker(b, at, &mut frame_start, &mut seek_start, &mut out)?
                }
                State::Length {
                    marker,
                    first: None,
                } => State::Length {
                    marker,
                    first: Some(b),
                },
                State::Length {
                    marker,
                    first: Some(hi),
                } => {
                    let len = u16::from_be_bytes([hi, b]);
                    if len < 2 {
                        return Err(MjpegError::BadSegment {
                            offset: at - 1,
                            marker,
                            len,
                        });
                    }
                    let remaining = u32::from(len) - 2;
                    let entropy_after = marker == 0xDA;
                    if remaining == 0 {
                        if entropy_after {
                            State::Entropy { ff: false }
                        } else {
                            State::Marker { ff: false }
                        }
                    } else {
                        State::Skip {
                            remaining,
                            entropy_after,
                        }
                    }
                }
                State::Skip {
                    remaining,
                    entropy_after,
                } => {
                    // Skip as much of the segment as this buffer holds at once.
                    let avail = u32::try_from(n - i).unwrap_or(u32::MAX);
                    let step = remaining.min(avail);
                    i += step as usize;
                    let remaining = remaining - step;
                    state = if remaining > 0 {
                        State::Skip {
                            remaining,
                            entropy_after,
                        }
                    } else if entropy_after {
                        State::Entropy { ff: false }
                    } else {
                        State::Marker { ff: false }
                    };
                    continue;
                }
                State::Entropy { ff: false } => State::Entropy { ff: b == 0xFF },
                State::Entropy { ff: true } => match b {
                    0x00 | 0xD0..=0xD7 => State::Entropy { ff: false },
                    0xFF => State::Entropy { ff: true },
                    // A real marker ends the scan.
                    _ => on_marker(b, at, &mut frame_start, &mut seek_start, &mut out)?,
                },
            };
            i += 1;
        }
        pos += n as u64;
    }
    match state {
        State::SeekSoi { .. } => out.skipped_bytes += pos - seek_start,
        _ => out.truncated_tail = pos - frame_start,
    }
    Ok(out)
}

/// The state after marker code `b` (at byte `at`) inside a frame.
fn on_marker(
    b: u8,
    at: u64,
    frame_start: &mut u64,
    seek_start: &mut u64,
    out: &mut MjpegIndex,
) -> Result<State, MjpegError> {
    Ok(match b {
        0xFF => State::Marker { ff: true },
        0xD9 => {
            let offset = *frame_start;
            let len =
                u32::try_from(at + 1 - offset).map_err(|_| MjpegError::FrameTooLong { offset })?;
            out.frames.push(FrameSpan { offset, len });
            *seek_start = at + 1;
            State::SeekSoi { ff: false }
        }
        0x01 | 0xD0..=0xD7 => State::Marker { ff: false },
        0xD8 => {
            // A new start inside a frame: the previous one was cut short.
            out.skipped_bytes += at - 1 - *frame_start;
            *frame_start = at - 1;
            State::Marker { ff: false }
        }
        marker => State::Length {
            marker,
            first: None,
        },
    })
}

/// Width and height from a JPEG's start-of-frame segment, without decoding.
pub fn dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        // Skip fill bytes before the marker code.
        while *jpeg.get(i)? == 0xFF && *jpeg.get(i + 1)? == 0xFF {
            i += 1;
        }
        if *jpeg.get(i)? != 0xFF {
            return None;
        }
        let marker = *jpeg.get(i + 1)?;
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]));
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([*jpeg.get(i + 5)?, *jpeg.get(i + 6)?]);
            let w = u16::from_be_bytes([*jpeg.get(i + 7)?, *jpeg.get(i + 8)?]);
            return Some((u32::from(w), u32::from(h)));
        }
        if marker == 0xDA || marker == 0xD9 || len < 2 {
            return None;
        }
        i += 2 + len;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A structurally valid tiny JPEG-like frame: SOI, APP0, SOF0 (w x h), SOS
    /// with entropy bytes containing stuffing and a restart marker, EOI.
    pub(crate) fn fake_jpeg(w: u16, h: u16, fill: u8) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x06, b'J', b'F', b'I', b'F']);
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
        v.extend_from_slice(&[fill, 0xFF, 0x00, fill, 0xFF, 0xD3, fill, 0xFF, 0xFF, 0x00]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    /// An APP1 segment that embeds a complete JPEG (an EXIF thumbnail).
    fn with_thumbnail(frame: &[u8]) -> Vec<u8> {
        let thumb = fake_jpeg(2, 2, 7);
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
        v.extend_from_slice(&u16::try_from(thumb.len() + 2).unwrap().to_be_bytes());
        v.extend_from_slice(&thumb);
        v.extend_from_slice(&frame[2..]);
        v
    }

    #[test]
    fn indexes_concatenated_frames() {
        let frames = [
            fake_jpeg(4, 3, 1),
            with_thumbnail(&fake_jpeg(4, 3, 2)),
            fake_jpeg(8, 6, 3),
        ];
        let mut file = Vec::new();
        let mut expect = Vec::new();
        for (k, f) in frames.iter().enumerate() {
            if k == 2 {
                file.extend_from_slice(&[0, 0, 0]); // padding between frames
            }
            expect.push(FrameSpan {
                offset: file.len() as u64,
                len: f.len() as u32,
            });
            file.extend_from_slice(f);
        }
        let idx = index(&file[..]).unwrap();
        assert_eq!(idx.frames, expect);
        assert_eq!(idx.skipped_bytes, 3);
        assert_eq!(idx.truncated_tail, 0);
        // The same through a reader that returns one byte at a time.
        assert_eq!(index(Trickle(&file)).unwrap(), idx);
    }

    /// A reader that returns one byte at a time: every jump of the scan ends at
    /// the buffer's end, so it sees each byte as the byte-by-byte scan did.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *b;
            self.0 = rest;
            Ok(1)
        }
    }

    proptest::proptest! {
        /// The jumping scan finds what the byte-at-a-time scan finds, in files
        /// of frames, cut frames, garbage and runs of FF between them.
        #[test]
        fn jumping_to_the_next_ff_changes_nothing(
            parts in proptest::collection::vec(
                (0u8..4, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
                0..12,
            ),
        ) {
            let mut file = Vec::new();
            for (kind, bytes) in &parts {
                match kind {
                    0 => file.extend_from_slice(&fake_jpeg(4, 3, bytes.first().copied().unwrap_or(1))),
                    1 => {
                        let f = fake_jpeg(8, 6, 2);
                        file.extend_from_slice(&f[..bytes.len().min(f.len())]);
                    }
                    2 => file.extend(bytes.iter().map(|b| if b % 3 == 0 { 0xFF } else { *b })),
                    _ => file.extend_from_slice(bytes),
                }
            }
            let whole = index(&file[..]);
            let trickled = index(Trickle(&file));
            match (whole, trickled) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => proptest::prop_assert!(false, "{a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn reports_truncated_tail() {
        let mut file = fake_jpeg(4, 3, 1);
        let second = fake_jpeg(4, 3, 2);
        file.extend_from_slice(&second[..second.len() - 5]);
        let idx = index(&file[..]).unwrap();
        assert_eq!(idx.frames.len(), 1);
        assert_eq!(idx.truncated_tail, second.len() as u64 - 5);
    }

    #[test]
    fn not_a_stream_has_no_frames() {
        let idx = index(&b"hello world, no jpeg here"[..]).unwrap();
        assert!(idx.frames.is_empty());
        assert_eq!(idx.skipped_bytes, 25);
        let bad = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01];
        assert!(matches!(
            index(&bad[..]),
            Err(MjpegError::BadSegment { len: 1, .. })
        ));
    }

    #[test]
    fn reads_dimensions() {
        assert_eq!(dimensions(&fake_jpeg(640, 480, 0)), Some((640, 480)));
        assert_eq!(
            dimensions(&with_thumbnail(&fake_jpeg(33, 17, 0))),
            Some((33, 17))
        );
        assert_eq!(dimensions(b"nope"), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF]), None);
    }
}
