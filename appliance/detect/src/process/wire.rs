//! What crosses the boundary between the daemon and its detector child: small
//! JSON messages over a `SOCK_SEQPACKET` socket pair (one message per packet,
//! never split), and the frame slot's memfd passed once with `SCM_RIGHTS`.
//! Frames themselves never cross the socket: they are in the shared slot.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use safe_yolo_domain::{BBox, Detection};
use serde::{Deserialize, Serialize};

use crate::ModelInfo;

/// Largest message either side sends (a frame's detections are far smaller).
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;

/// Daemon to child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to_child", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ToChild {
    /// A new frame slot of `len` bytes: its memfd is attached.
    Slot {
        /// Its length.
        len: usize,
    },
    /// Detect the frame in the slot: `width * height * 3` bytes of packed RGB.
    Frame {
        /// Request number, echoed in the answer.
        seq: u64,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
}

/// Child to daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from_child", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum FromChild {
    /// The model is loaded and verified.
    Loaded {
        /// What was loaded.
        info: ModelInfo,
        /// Its classes, by index.
        classes: Vec<String>,
        /// The sandbox it runs in (`None`: unsandboxed, `detector.sandbox = false`).
        sandbox: Option<crate::process::sandbox::SandboxReport>,
    },
    /// The model could not be loaded; the child exits.
    LoadFailed {
        /// The error with its causes.
        error: String,
    },
    /// Detections of frame `seq`.
    Found {
        /// The request number.
        seq: u64,
        /// What was found.
        found: Vec<WireDetection>,
    },
    /// Frame `seq` could not be detected (the child goes on).
    Failed {
        /// The request number.
        seq: u64,
        /// The error with its causes.
        error: String,
    },
}

/// One detection on the wire (the class name is looked up by index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireDetection {
    /// Class index.
    pub class_id: u32,
    /// Confidence.
    pub score: f32,
    /// Box `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
}

impl From<&Detection> for WireDetection {
    fn from(d: &Detection) -> Self {
        Self {
            class_id: d.class_id,
            score: d.score,
            bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
        }
    }
}

impl WireDetection {
    /// The detection, its class named from `classes`; `None` for an index the
    /// model does not have (a confused child).
    pub(crate) fn into_detection(self, classes: &[std::sync::Arc<str>]) -> Option<Detection> {
        let class_name = classes.get(usize::try_from(self.class_id).ok()?)?.clone();
        let [x1, y1, x2, y2] = self.bbox;
        Some(Detection {
            class_id: self.class_id,
            class_name,
            score: self.score,
            bbox: BBox { x1, y1, x2, y2 },
        })
    }
}

/// Why a message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed (or timed out: `WouldBlock`).
    #[error("detector channel I/O failed")]
    Io(#[from] std::io::Error),
    /// The other side closed the channel (it exited).
    #[error("the other side closed the detector channel")]
    Closed,
    /// A message did not parse or does not fit.
    #[error("malformed detector message: {0}")]
    Malformed(String),
}

/// Sends `msg`, with `fd` attached when given.
pub(crate) fn send<M: Serialize>(
    socket: BorrowedFd<'_>,
    msg: &M,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), WireError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| WireError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::Malformed(format!(
            "{} bytes, more than {MAX_MESSAGE}",
            bytes.len()
        )));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(WireError::Malformed("no room for the descriptor".into()));
        }
    }
    let sent = rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(std::io::Error::from)?;
    if sent != bytes.len() {
        return Err(WireError::Malformed(format!(
            "sent {sent} of {} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

/// Receives one message and the descriptor attached to it, if any. Waits as
/// long as the socket's receive timeout allows (`Io(WouldBlock)` after it).
pub(crate) fn recv<M: for<'de> Deserialize<'de>>(
    socket: impl AsFd,
    buf: &mut Vec<u8>,
) -> Result<(M, Option<OwnedFd>), WireError> {
    buf.resize(MAX_MESSAGE, 0);
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fd = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            fd = fds.next();
        }
    }
    if got.bytes == 0 {
        return Err(WireError::Closed);
    }
    if got.flags.contains(rustix::net::ReturnFlags::TRUNC) {
        return Err(WireError::Malformed("message truncated".into()));
    }
    let msg = serde_json::from_slice(&buf[..got.bytes])
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok((msg, fd))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::process::shm::Shm;

    #[test]
    fn messages_and_a_slot_cross_a_socket_pair() {
        let (a, b) = super::super::channel().unwrap();
        let mut slot = Shm::create(12).unwrap();
        slot.as_mut_slice().unwrap().copy_from_slice(&[9; 12]);
        send(
            a.as_fd(),
            &ToChild::Slot { len: 12 },
            Some(slot.fd().as_fd()),
        )
        .unwrap();
        let mut buf = Vec::new();
        let (msg, fd) = recv::<ToChild>(&b, &mut buf).unwrap();
        assert_eq!(msg, ToChild::Slot { len: 12 });
        let seen = Shm::map(fd.unwrap(), 12, false).unwrap();
        assert_eq!(seen.as_slice(), &[9; 12]);
        send(
            b.as_fd(),
            &FromChild::Found {
                seq: 3,
                found: vec![WireDetection {
                    class_id: 0,
                    score: 0.5,
                    bbox: [1.0, 2.0, 3.0, 4.0],
                }],
            },
            None,
        )
        .unwrap();
        let (msg, fd) = recv::<FromChild>(&a, &mut buf).unwrap();
        assert!(fd.is_none());
        let FromChild::Found { seq, found } = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(seq, 3);
        let classes: Vec<std::sync::Arc<str>> = vec!["person".into()];
        let d = found[0].clone().into_detection(&classes).unwrap();
        assert_eq!((&*d.class_name, d.bbox.x2), ("person", 3.0));
        assert!(
            WireDetection {
                class_id: 7,
                ..found[0].clone()
            }
            .into_detection(&classes)
            .is_none()
        );
        // The other side gone: closed, not a hang.
        drop(b);
        assert!(matches!(
            recv::<FromChild>(&a, &mut buf),
            Err(WireError::Closed)
        ));
    }
}
