//! One camera's tamper check, stepped by the detect worker with the pixels it
//! already decoded (the check itself, pure, is `rules::tamper`).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use safe_yolo_domain::alarm::TamperSet;
use safe_yolo_domain::{CameraId, Named as _, RgbFrame};
use safe_yolo_rules::{Luma, TamperCheck, TamperConfig};
use tokio::sync::watch;

use crate::camera::{CameraHealth, CameraState};

/// A camera's tamper check and where its reasons are published (the camera's
/// health watch). Frames of a camera reach the detect workers one at a time
/// (exclusive lanes), so the lock is never contended.
#[derive(Debug)]
pub(crate) struct TamperSlot {
    camera: CameraId,
    check: Mutex<TamperCheck>,
    health: Arc<watch::Sender<CameraHealth>>,
    epoch: Instant,
}

impl TamperSlot {
    pub(crate) fn new(
        camera: CameraId,
        config: TamperConfig,
        health: Arc<watch::Sender<CameraHealth>>,
    ) -> Self {
        Self {
            camera,
            check: Mutex::new(TamperCheck::new(config)),
            health,
            epoch: Instant::now(),
        }
    }

    /// Steps the check with a decoded frame captured at `captured_at`; returns
    /// the reasons reported, also published on the camera's health (unless it
    /// is offline: an offline camera is not judged).
    pub(crate) fn step(&self, frame: &RgbFrame, captured_at: SystemTime) -> TamperSet {
        let luma = Luma::from_rgb(frame);
        let now = self.epoch.elapsed();
        let (reasons, measures) = self.check.lock().step(luma, captured_at, now);
        self.health.send_if_modified(|h| {
            if h.state == CameraState::Offline || h.tamper == reasons {
                return false;
            }
            if reasons.is_empty() {
                tracing::info!(camera = %self.camera, "camera no longer tampered with");
            } else {
                let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
                tracing::warn!(camera = %self.camera, ?reasons, ?measures, "camera tampered with");
            }
            h.tamper = reasons;
            true
        });
        reasons
    }
}
