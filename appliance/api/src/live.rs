//! The live view: each camera's newest frame as JPEG, shared by every viewer through a
//! `watch` channel.
//!
//! ```text
//! CameraTap.live (watch, newest frame) ──▶ stream task ──▶ watch<Arc<Encoded>> ──▶ viewers
//! ```
//!
//! A camera that delivers JPEG (MJPEG, replays) is streamed as it is: its own bytes are
//! forwarded, nothing is decoded or encoded, and the overlays are drawn by the client
//! from the detections in each frame's message. Only a camera that delivers raw pixels
//! is encoded, at each viewer's requested quality (one encode per frame per quality,
//! shared), and only while someone watches.
//!
//! Nothing queues: the pipeline overwrites its tap, the encoder reads the newest frame
//! when it is free, and each viewer takes the newest encoded frame when it is ready to
//! send. A slow viewer therefore skips frames; it never slows the encoder, the pipeline
//! or the other viewers, and memory per viewer is one frame. An encoder runs only while
//! it has viewers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use safe_yolo_capture::JpegEncoder;
use safe_yolo_domain::{CameraId, ZoneId};
use safe_yolo_pipeline::{CameraTap, CameraTaps, LiveFrame, Scene, SceneSlot};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One encoded frame with its detection message.
#[derive(Debug)]
pub struct Encoded {
    /// The JPEG file.
    pub jpeg: Bytes,
    /// The JSON message sent before the JPEG on the WebSocket.
    pub meta: FrameMessage,
}

/// One detection in a [`FrameMessage`].
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct DetectionMessage {
    /// Class name.
    pub class: String,
    /// Confidence.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
}

/// One confirmed track in a [`FrameMessage`].
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct TrackMessage {
    /// Stable track id (the same person keeps it across frames).
    pub id: u64,
    /// Class name.
    pub class: String,
    /// `[x1, y1, x2, y2]` in frame pixels (a prediction while lost).
    pub bbox: [f32; 4],
    /// Not matched in the last analysed frame.
    pub lost: bool,
}

/// The state of one zone or line in a [`FrameMessage`].
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ZoneMessage {
    /// Zone id.
    pub id: ZoneId,
    /// Track ids inside (areas only).
    pub inside: Vec<u64>,
    /// Crossings A to B since start (lines only).
    pub crossings_a_to_b: u64,
    /// Crossings B to A since start (lines only).
    pub crossings_b_to_a: u64,
    /// An alarm of a rule on this zone is raised.
    pub alarm: bool,
}

/// The per-frame JSON message of the WebSocket.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct FrameMessage {
    /// Always `frame`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Camera.
    pub camera: CameraId,
    /// Frame sequence number.
    pub seq: u64,
    /// Capture time, Unix ms.
    pub captured_at_ms: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Latest detections of the camera.
    pub detections: Vec<DetectionMessage>,
    /// Sequence number of the frame the tracks and zones were computed on
    /// (0 before the first analysed frame; detection and analysis may run on
    /// every Nth frame only).
    pub scene_seq: u64,
    /// Confirmed tracks.
    pub tracks: Vec<TrackMessage>,
    /// Zones and lines of the camera with who is inside and alarm state.
    pub zones: Vec<ZoneMessage>,
    /// Size of the JPEG that follows, in bytes.
    pub jpeg_bytes: usize,
}

type StreamKey = (CameraId, u8);
type Slot = Arc<watch::Sender<Option<Arc<Encoded>>>>;

/// Shared encoders of the live view.
#[derive(Debug)]
pub struct LiveHub {
    taps: CameraTaps,
    default_quality: u8,
    streams: Arc<Mutex<HashMap<StreamKey, Slot>>>,
    encoded: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    counter: Counter,
    shutdown: CancellationToken,
}

/// Most distinct qualities encoded at once for one camera.
pub const MAX_QUALITIES_PER_CAMERA: usize = 3;

impl LiveHub {
    /// A hub over the pipeline's taps.
    pub fn new(taps: CameraTaps, default_quality: u8, shutdown: CancellationToken) -> Self {
        Self {
            taps,
            default_quality,
            streams: Arc::default(),
            encoded: Arc::default(),
            forwarded: Arc::default(),
            counter: Counter::default(),
            shutdown,
        }
    }

    /// Also counts encoded frames in a Prometheus counter.
    pub fn with_counter(mut self, counter: Counter) -> Self {
        self.counter = counter;
        self
    }

    /// The running cameras' taps.
    pub fn taps(&self) -> std::sync::Arc<[CameraTap]> {
        self.taps.current()
    }

    /// The configured default quality.
    pub fn default_quality(&self) -> u8 {
        self.default_quality
    }

    /// Frames encoded so far (all cameras; frames of cameras that deliver raw pixels).
    pub fn encoded_frames(&self) -> u64 {
        self.encoded.load(Ordering::Relaxed)
    }

    /// Frames forwarded as the camera delivered them so far (all cameras; JPEG cameras).
    pub fn forwarded_frames(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Subscribes to a camera's encoded frames at `quality`, starting its encoder if
    /// needed. `Err` names the reason (unknown camera, too many qualities).
    pub fn subscribe(
        &self,
        camera: &CameraId,
        quality: u8,
    ) -> Result<watch::Receiver<Option<Arc<Encoded>>>, String> {
        let tap = self
            .taps
            .get(camera)
            .ok_or_else(|| format!("unknown camera {camera}"))?;
        let mut streams = self.streams.lock();
        let key = (camera.clone(), quality);
        if let Some(slot) = streams.get(&key) {
            // A new viewer is shown the newest encoded frame at once, not the next one:
            // a camera that stopped delivering (offline, or the tap closed) still shows
            // its last picture, and the stream never ends without a frame.
            let mut rx = slot.subscribe();
            rx.mark_changed();
            return Ok(rx);
        }
        if streams.keys().filter(|(c, _)| c == camera).count() >= MAX_QUALITIES_PER_CAMERA {
            return Err(format!(
                "camera {camera} is already streamed at {MAX_QUALITIES_PER_CAMERA} qualities; pick one of those"
            ));
        }
        let encoder = JpegEncoder::new(quality).map_err(|e| e.to_string())?;
        let (tx, rx) = watch::channel(None);
        let slot = Arc::new(tx);
        streams.insert(key.clone(), Arc::clone(&slot));
        let shared = Shared {
            streams: Arc::clone(&self.streams),
            encoded: Arc::clone(&self.encoded),
            forwarded: Arc::clone(&self.forwarded),
            counter: self.counter.clone(),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(encode_loop(
            tap.live.clone(),
            tap.scene.clone(),
            slot,
            encoder,
            key,
            shared,
        ));
        Ok(rx)
    }
}

fn message(f: &LiveFrame, scene: &Scene, jpeg_bytes: usize) -> FrameMessage {
    FrameMessage {
        kind: "frame",
        camera: f.meta.camera.clone(),
        seq: f.meta.seq,
        captured_at_ms: f
            .meta
            .captured_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        width: f.picture.width(),
        height: f.picture.height(),
        detections: f
            .detections
            .iter()
            .map(|d| DetectionMessage {
                class: d.class_name.to_string(),
                score: d.score,
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
            })
            .collect(),
        scene_seq: scene.seq,
        tracks: scene
            .tracks
            .iter()
            .map(|t| TrackMessage {
                id: t.id,
                class: t.class_name.to_string(),
                bbox: [t.bbox.x1, t.bbox.y1, t.bbox.x2, t.bbox.y2],
                lost: t.lost,
            })
            .collect(),
        zones: scene
            .zones
            .iter()
            .map(|z| ZoneMessage {
                id: z.id.clone(),
                inside: z.inside.clone(),
                crossings_a_to_b: z.crossings_a_to_b,
                crossings_b_to_a: z.crossings_b_to_a,
                alarm: z.alarm,
            })
            .collect(),
        jpeg_bytes,
    }
}

/// What every encoder task shares with the hub.
struct Shared {
    streams: Arc<Mutex<HashMap<StreamKey, Slot>>>,
    encoded: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    counter: Counter,
    shutdown: CancellationToken,
}

async fn encode_loop(
    mut live: watch::Receiver<Option<LiveFrame>>,
    scene: SceneSlot,
    slot: Slot,
    mut encoder: JpegEncoder,
    key: StreamKey,
    shared: Shared,
) {
    let Shared {
        streams,
        encoded: counter,
        forwarded,
        counter: metric,
        shutdown,
    } = shared;
    // The frame already in the tap is shown at once.
    live.mark_changed();
    loop {
        tokio::select! {
            // The camera stopped (removed, or restarted with a new source): this
            // stream ends; a new subscription follows the camera's new run.
            changed = live.changed() => if changed.is_err() { break },
            () = slot.closed() => {}
            () = shutdown.cancelled() => break,
        }
        {
            // Checked under the lock so a concurrent subscribe either finds this stream
            // still registered (and keeps it alive) or starts a new one.
            let mut map = streams.lock();
            if slot.receiver_count() == 0 {
                map.remove(&key);
                return;
            }
        }
        let Some(frame) = live.borrow_and_update().clone() else {
            continue;
        };
        if let Some(jpeg) = frame.picture.jpeg() {
            // The camera's own JPEG, byte for byte: no decode, no encode.
            forwarded.fetch_add(1, Ordering::Relaxed);
            let meta = message(&frame, &scene.latest(), jpeg.len());
            slot.send_replace(Some(Arc::new(Encoded {
                jpeg: Bytes::from_owner(Arc::clone(jpeg)),
                meta,
            })));
            continue;
        }
        let job = tokio::task::spawn_blocking(move || {
            let r = frame
                .picture
                .decode()
                .map_err(|e| safe_yolo_domain::error_chain(&e))
                .and_then(|rgb| {
                    encoder
                        .encode(&rgb)
                        .map_err(|e| safe_yolo_domain::error_chain(&e))
                });
            (encoder, frame, r)
        })
        .await;
        let Ok((enc, frame, result)) = job else {
            tracing::error!(camera = %key.0, "live encoder task failed");
            break;
        };
        encoder = enc;
        match result {
            Ok(jpeg) => {
                counter.fetch_add(1, Ordering::Relaxed);
                metric.inc();
                let meta = message(&frame, &scene.latest(), jpeg.len());
                slot.send_replace(Some(Arc::new(Encoded {
                    jpeg: Bytes::from(jpeg),
                    meta,
                })));
            }
            Err(e) => tracing::warn!(camera = %key.0, error = %e, "live frame not encoded"),
        }
    }
    let mut map = streams.lock();
    if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
        map.remove(&key);
    }
}
