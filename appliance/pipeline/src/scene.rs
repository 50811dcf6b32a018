//! What the analysis made of a camera's latest frame (tracks, zone states),
//! published for the live view, and the switch that turns the PPE model on
//! for the cameras that need it.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use safe_yolo_domain::{BBox, CameraId, ZoneId};

/// One tracked object of a [`Scene`].
#[derive(Debug, Clone, PartialEq)]
pub struct SceneTrack {
    /// Stable track id.
    pub id: u64,
    /// Class name of the detections the track follows.
    pub class_name: Arc<str>,
    /// Box in frame pixels (a prediction while the track is lost).
    pub bbox: BBox,
    /// Not matched in the last analysed frame.
    pub lost: bool,
}

/// One zone or line of a [`Scene`].
#[derive(Debug, Clone, PartialEq)]
pub struct SceneZone {
    /// The zone.
    pub id: ZoneId,
    /// Track ids inside (areas only).
    pub inside: Vec<u64>,
    /// Crossings from side A to side B since the engine started (lines only).
    pub crossings_a_to_b: u64,
    /// Crossings from side B to side A.
    pub crossings_b_to_a: u64,
    /// At least one alarm of a rule on this zone is raised.
    pub alarm: bool,
}

/// The analysis of one camera's latest analysed frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scene {
    /// Sequence number of the frame analysed (0 before the first).
    pub seq: u64,
    /// Confirmed tracks (tentative ones are not shown).
    pub tracks: Vec<SceneTrack>,
    /// Zones and lines of the camera.
    pub zones: Vec<SceneZone>,
}

/// The newest [`Scene`] of a camera: written by the analysis task, read by
/// the live view. Reads and writes swap an `Arc` under a short lock; nobody
/// waits on anybody.
#[derive(Debug, Clone, Default)]
pub struct SceneSlot(Arc<Mutex<Arc<Scene>>>);

impl SceneSlot {
    /// Replaces the scene.
    pub fn publish(&self, scene: Scene) {
        *self.0.lock() = Arc::new(scene);
    }

    /// The newest scene.
    pub fn latest(&self) -> Arc<Scene> {
        Arc::clone(&self.0.lock())
    }
}

/// Which cameras run the PPE model. The analysis task sets it from the rules
/// (cameras with a missing-PPE rule), at start and whenever rules change;
/// detect workers read it per frame. A camera added later finds its setting
/// here by id.
#[derive(Debug, Clone)]
pub struct PpeSwitch {
    on: Arc<RwLock<HashSet<CameraId>>>,
    available: bool,
}

impl PpeSwitch {
    pub(crate) fn new(available: bool) -> Self {
        Self {
            on: Arc::default(),
            available,
        }
    }

    /// Runs the PPE model on exactly the cameras in `wanted` (none without a model).
    pub fn set(&self, wanted: impl IntoIterator<Item = CameraId>) {
        let wanted: HashSet<CameraId> = if self.available {
            wanted.into_iter().collect()
        } else {
            HashSet::new()
        };
        let mut on = self.on.write();
        for id in wanted.symmetric_difference(&on) {
            tracing::info!(camera = %id, ppe = wanted.contains(id), "PPE model switched");
        }
        *on = wanted;
    }

    /// Whether `camera` runs the PPE model.
    pub(crate) fn is_on(&self, camera: &CameraId) -> bool {
        self.on.read().contains(camera)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(s: &str) -> CameraId {
        CameraId::new(s).unwrap()
    }

    #[test]
    fn switch_follows_the_predicate_and_stays_off_without_a_model() {
        let s = PpeSwitch::new(true);
        assert!(!s.is_on(&cam("a")) && !s.is_on(&cam("b")));
        s.set([cam("b")]);
        assert!(!s.is_on(&cam("a")) && s.is_on(&cam("b")));
        // A camera that joins later is switched by id.
        s.set([cam("b"), cam("late")]);
        assert!(s.is_on(&cam("late")));
        s.set([]);
        assert!(!s.is_on(&cam("b")) && !s.is_on(&cam("late")));
        let none = PpeSwitch::new(false);
        none.set([cam("a")]);
        assert!(!none.is_on(&cam("a")), "no model, nothing to run");
    }

    #[test]
    fn slot_hands_out_the_newest_scene() {
        let slot = SceneSlot::default();
        assert_eq!(slot.latest().seq, 0);
        let reader = slot.clone();
        slot.publish(Scene {
            seq: 9,
            ..Scene::default()
        });
        assert_eq!(reader.latest().seq, 9);
    }
}
