//! One camera's tamper check, stepped by the detect worker with the pixels it
//! already decoded (the check itself, pure, is `rules::tamper`).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use safe_yolo_domain::alarm::TamperSet;
use safe_yolo_domain::{CameraId, Named as _, RgbFrame};
use safe_yolo_rules::{Luma, TamperCheck, TamperConfig, TamperMeasures};
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
        self.publish(reasons, Some(&measures));
        reasons
    }

    /// Learns the reference picture and sharpness again (`TamperCheck::relearn`)
    /// and publishes the reasons left.
    pub(crate) fn relearn(&self) {
        let reasons = {
            let mut check = self.check.lock();
            check.relearn();
            check.reasons()
        };
        tracing::info!(camera = %self.camera, "camera tamper check: learning its view again");
        self.publish(reasons, None);
    }

    /// Publishes `reasons` on the camera's health (unless it is offline: an
    /// offline camera is not judged), logging a change.
    fn publish(&self, reasons: TamperSet, measures: Option<&TamperMeasures>) {
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
    }
}

/// What the control plane may do with a camera's tamper check: learn its
/// view again after it was changed on purpose.
#[derive(Debug, Clone)]
pub struct TamperHandle(Arc<TamperSlot>);

impl TamperHandle {
    pub(crate) fn new(slot: Arc<TamperSlot>) -> Self {
        Self(slot)
    }

    /// A check of its own, published nowhere (a fixed set of taps: tests and
    /// consumers without a pipeline).
    pub fn standalone(camera: CameraId, config: TamperConfig) -> Self {
        let (health, _) = watch::channel(CameraHealth {
            state: CameraState::Starting,
            since: SystemTime::now(),
            reason: None,
            tamper: TamperSet::EMPTY,
        });
        Self::new(Arc::new(TamperSlot::new(camera, config, Arc::new(health))))
    }

    /// Relearns the camera's reference picture.
    pub fn relearn(&self) {
        self.0.relearn();
    }
}
