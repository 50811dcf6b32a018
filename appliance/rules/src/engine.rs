//! The rule engine: (tracks, zones, time) -> alarm decisions.
//!
//! Pure and infallible once built: every frame of one camera goes through
//! [`RuleEngine::evaluate`], which updates who is in which zone, decides each
//! rule's condition, and runs each rule's alarm state machine (debounce,
//! cooldown, clearing). Time only comes in through [`FrameInput::now`].

use std::sync::Arc;
use std::time::Duration;

use safe_yolo_domain::geometry::Side;
use safe_yolo_domain::{BBox, CameraId, Detection, Line, NormPoint, OutputId, RuleId, ZoneId};

use crate::interlock::InterlockStates;
use crate::ppe::{PpeWindow, Vote, assign_votes};
use crate::schedule::LocalTime;
use crate::spec::{ClearAfter, Crossing, RuleKind, RuleSpec, RulesError, Severity, validate_rule};
use crate::track::{Track, TrackState};
use crate::zone::{Anchor, ZoneShape, ZoneSpec};

pub use safe_yolo_domain::alarm::{CameraHealth, TamperSet};

/// Everything the engine needs about one frame of one camera.
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    /// The camera the frame comes from.
    pub camera: &'a CameraId,
    /// Monotonic time (for example since the engine started); drives dwell,
    /// grace, cooldown and time-based clearing.
    pub now: Duration,
    /// Local weekday and minute of the day, for schedules.
    pub local: LocalTime,
    /// Frame width in pixels (the tracks' coordinate space).
    pub frame_w: f32,
    /// Frame height in pixels.
    pub frame_h: f32,
    /// The tracker's output for this frame (any order).
    pub tracks: &'a [Track],
    /// Detections of the PPE model (head boxes with worn/missing classes), in
    /// the same pixel space; empty when no rule needs them.
    pub ppe: &'a [Detection],
    /// The pipeline's health signal for this camera. When a camera is
    /// offline, the pipeline keeps calling `evaluate` with no tracks.
    pub health: CameraHealth,
    /// The door contact (a debounced GPIO input) is open; `false` on a box
    /// without one.
    pub door_open: bool,
    /// A detector serving this camera is down: its frames are not analysed.
    pub detector_down: bool,
    /// The reasons the camera's tamper check reports for this frame
    /// ([`crate::TamperCheck`]); empty for a frameless input.
    pub tamper: TamperSet,
    /// The interlocks' levels now: a rule whose interlock is disarmed is not
    /// evaluated ([`InterlockStates::EMPTY`]: every rule armed).
    pub interlocks: &'a InterlockStates,
}

pub use safe_yolo_domain::alarm::AlarmDetail;

/// An alarm of one rule, as raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// The rule.
    pub rule: RuleId,
    /// Its camera.
    pub camera: CameraId,
    /// Its zone or line, if any.
    pub zone: Option<ZoneId>,
    /// The track that triggered it (none for occupancy and camera rules).
    pub track: Option<u64>,
    /// The rule's severity.
    pub severity: Severity,
    /// What happened.
    pub detail: AlarmDetail,
    /// When it was raised.
    pub raised_at: Duration,
    /// Outputs to drive while it is raised.
    pub outputs: Arc<[OutputId]>,
}

/// What the engine decided for one rule in one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The alarm starts.
    Raise(Alarm),
    /// The alarm ends (its condition is gone, or the rule was removed).
    Clear {
        /// The alarm as it was raised.
        alarm: Alarm,
        /// When it cleared.
        at: Duration,
    },
}

impl Decision {
    /// The alarm this decision is about.
    pub fn alarm(&self) -> &Alarm {
        match self {
            Decision::Raise(a) | Decision::Clear { alarm: a, .. } => a,
        }
    }

    /// Whether this raises an alarm.
    pub fn is_raise(&self) -> bool {
        matches!(self, Decision::Raise(_))
    }
}

/// Live state of one zone, for the overlays of the live view.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneState {
    /// The zone.
    pub zone: ZoneId,
    /// Ids of the persons inside in the last frame (areas only), by id.
    pub inside: Vec<u64>,
    /// Crossings from side A to side B since the engine started (lines only).
    pub crossings_a_to_b: u64,
    /// Crossings from side B to side A since the engine started.
    pub crossings_b_to_a: u64,
}

impl ZoneState {
    /// Number of persons inside.
    pub fn occupancy(&self) -> usize {
        self.inside.len()
    }
}

// === Regions: who is in which zone ===

/// Side memory of one track against a line, with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct LineMemory {
    /// The side the track is known to be on.
    settled: Option<Side>,
    /// Its last point on that side.
    settled_point: Option<NormPoint>,
    /// Consecutive frames seen on the other side.
    pending: u32,
    /// First point on the other side.
    pending_point: Option<NormPoint>,
}

impl LineMemory {
    /// Observes a new point; returns a confirmed crossing.
    fn observe(&mut self, line: &Line, p: NormPoint, confirm: u32) -> Option<Crossing> {
        let side = line.side(p);
        if side == Side::On {
            return None;
        }
        let Some(settled) = self.settled else {
            self.settled = Some(side);
            self.settled_point = Some(p);
            return None;
        };
        if side == settled {
            self.pending = 0;
            self.pending_point = None;
            self.settled_point = Some(p);
            return None;
        }
        if self.pending == 0 {
            self.pending_point = Some(p);
        }
        self.pending += 1;
        if self.pending < confirm {
            return None;
        }
        let from = self.settled_point.unwrap_or(p);
        let to = self.pending_point.unwrap_or(p);
        self.settled = Some(side);
        self.settled_point = Some(p);
        self.pending = 0;
        self.pending_point = None;
        // Passing around the end of the segment changes the side of the
        // infinite line without crossing the drawn line.
        if !line.crossed_by(from, to) {
            return None;
        }
        Some(if settled == Side::A {
            Crossing::AToB
        } else {
            Crossing::BToA
        })
    }
}

/// One track's record in a region.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Member {
    track: u64,
    /// Tracked in the latest frame (not lost).
    seen: bool,
    bbox: BBox,
    point: NormPoint,
    /// When the track was first seen inside (areas) or in the frame (lines).
    entered_at: Duration,
    /// Frames seen inside since entering.
    inside_frames: u32,
    line: LineMemory,
}

/// What makes two rules share zone membership.
#[derive(Debug, Clone, PartialEq)]
struct RegionKey {
    zone: usize,
    anchor: Anchor,
    class: Arc<str>,
    /// Frames confirming a line crossing (0 for areas).
    confirm: u32,
}

/// Zone membership of one (zone, anchor, class) combination: the tracks
/// inside an area, or every track with its side of a line. Lost tracks keep
/// their record (not `seen`) until the tracker forgets them.
#[derive(Debug)]
struct Region {
    key: RegionKey,
    members: Vec<Member>,
    next: Vec<Member>,
    crossings: Vec<(u64, Crossing)>,
}

impl Region {
    fn new(key: RegionKey) -> Self {
        Self {
            key,
            members: Vec::new(),
            next: Vec::new(),
            crossings: Vec::new(),
        }
    }

    /// Updates membership from tracks visited in id order (`order`).
    fn update(
        &mut self,
        shape: &ZoneShape,
        input: &FrameInput<'_>,
        order: &[usize],
        geometry_ok: bool,
    ) {
        self.next.clear();
        self.crossings.clear();
        let mut old = 0;
        for &ti in order {
            let t = &input.tracks[ti];
            if *t.class_name != *self.key.class {
                continue;
            }
            if self.next.last().is_some_and(|m| m.track == t.id) {
                continue;
            }
            while old < self.members.len() && self.members[old].track < t.id {
                old += 1;
            }
            let prev = self.members.get(old).filter(|m| m.track == t.id).copied();
            if t.state != TrackState::Tracked || !geometry_ok {
                if let Some(mut m) = prev {
                    m.seen = false;
                    self.next.push(m);
                }
                continue;
            }
            let point = self.key.anchor.point(&t.bbox, input.frame_w, input.frame_h);
            let mut m = prev.unwrap_or(Member {
                track: t.id,
                seen: true,
                bbox: t.bbox,
                point,
                entered_at: input.now,
                inside_frames: 0,
                line: LineMemory::default(),
            });
            m.seen = true;
            m.bbox = t.bbox;
            m.point = point;
            match shape {
                ZoneShape::Area(poly) => {
                    if !poly.contains(point) {
                        continue;
                    }
                    m.inside_frames = m.inside_frames.saturating_add(1);
                }
                ZoneShape::Line(line) => {
                    if let Some(c) = m.line.observe(line, point, self.key.confirm.max(1)) {
                        self.crossings.push((t.id, c));
                    }
                }
            }
            self.next.push(m);
        }
        std::mem::swap(&mut self.members, &mut self.next);
    }

    fn seen(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.seen)
    }
}

// === Alarm state machine ===

/// Debounced alarm state of one rule.
#[derive(Debug, Default)]
struct AlarmFsm {
    active: Option<Alarm>,
    last_raise: Option<Duration>,
    false_frames: u32,
    false_since: Option<Duration>,
}

impl AlarmFsm {
    fn step(
        &mut self,
        slot: &RuleSlot,
        cond: Option<(Option<u64>, AlarmDetail)>,
        now: Duration,
        out: &mut Vec<Decision>,
    ) {
        if let Some(alarm) = &self.active {
            if cond.is_some() {
                self.false_frames = 0;
                self.false_since = None;
                return;
            }
            self.false_frames = self.false_frames.saturating_add(1);
            let since = *self.false_since.get_or_insert(now);
            let clear = match slot.spec.clear_after {
                ClearAfter::Frames(n) => self.false_frames >= n,
                ClearAfter::Time(d) => now.saturating_sub(since) >= d,
            };
            if clear {
                out.push(Decision::Clear {
                    alarm: alarm.clone(),
                    at: now,
                });
                self.active = None;
                self.false_frames = 0;
                self.false_since = None;
            }
            return;
        }
        let Some((track, detail)) = cond else { return };
        // Time going backwards (saturating to zero) also blocks a raise.
        if let Some(last) = self.last_raise
            && now.saturating_sub(last) < slot.spec.cooldown
        {
            return;
        }
        let alarm = Alarm {
            rule: slot.spec.id.clone(),
            camera: slot.spec.camera.clone(),
            zone: slot.spec.zone.clone(),
            track,
            severity: slot.spec.severity,
            detail,
            raised_at: now,
            outputs: Arc::clone(&slot.outputs),
        };
        self.last_raise = Some(now);
        self.false_frames = 0;
        self.false_since = None;
        out.push(Decision::Raise(alarm.clone()));
        self.active = Some(alarm);
    }
}

// === Rules ===

/// Per-rule memory beyond the alarm state machine.
#[derive(Debug, Default)]
struct KindState {
    /// Occupancy: consecutive frames over the limit.
    over_frames: u32,
    /// Camera offline: when the camera became unhealthy.
    unhealthy_since: Option<Duration>,
    /// Camera tamper: when a watched reason was first reported.
    tamper_since: Option<Duration>,
    /// Door open: when the door opened.
    door_open_since: Option<Duration>,
    /// Detector fault: when the detector went down.
    detector_down_since: Option<Duration>,
    /// Missing PPE: per track, sorted by id.
    windows: Vec<(u64, PpeWindow)>,
    windows_next: Vec<(u64, PpeWindow)>,
    votes: Vec<(u64, Vote, f32)>,
}

#[derive(Debug)]
struct RuleSlot {
    spec: RuleSpec,
    outputs: Arc<[OutputId]>,
    /// Index of the region in the camera's regions.
    region: Option<usize>,
}

#[derive(Debug)]
struct RuleRun {
    fsm: AlarmFsm,
    kind: KindState,
}

#[derive(Debug)]
struct CameraSlot {
    camera: CameraId,
    regions: Vec<Region>,
    /// Rules of this camera (indices into `RuleEngine::rules`).
    rules: Vec<usize>,
    /// Zones of this camera (indices into `RuleEngine::zones`) with the
    /// region shown in their live state.
    zones: Vec<(usize, usize)>,
    zone_states: Vec<ZoneState>,
    order: Vec<usize>,
}

/// The rule engine for every camera of the appliance.
#[derive(Debug)]
pub struct RuleEngine {
    zones: Vec<ZoneSpec>,
    rules: Vec<RuleSlot>,
    runs: Vec<RuleRun>,
    cameras: Vec<CameraSlot>,
    last_now: Duration,
}

fn region_index(regions: &mut Vec<Region>, key: RegionKey) -> usize {
    if let Some(i) = regions.iter().position(|r| r.key == key) {
        return i;
    }
    regions.push(Region::new(key));
    regions.len() - 1
}

impl RuleEngine {
    /// Validates `rules` against `zones` and builds the engine. Fails on
    /// duplicate ids, a rule whose zone is missing, on another camera or of
    /// the wrong shape, and on thresholds out of range.
    pub fn new(rules: Vec<RuleSpec>, zones: Vec<ZoneSpec>) -> Result<Self, RulesError> {
        for (i, z) in zones.iter().enumerate() {
            if zones[..i].iter().any(|o| o.id == z.id) {
                return Err(RulesError::DuplicateZone { zone: z.id.clone() });
            }
        }
        let mut cameras: Vec<CameraSlot> = Vec::new();
        let camera_index = |cameras: &mut Vec<CameraSlot>, id: &CameraId| -> usize {
            if let Some(i) = cameras.iter().position(|c| &c.camera == id) {
                return i;
            }
            cameras.push(CameraSlot {
                camera: id.clone(),
                regions: Vec::new(),
                rules: Vec::new(),
                zones: Vec::new(),
                zone_states: Vec::new(),
                order: Vec::new(),
            });
            cameras.len() - 1
        };
        let mut slots = Vec::with_capacity(rules.len());
        for (i, spec) in rules.into_iter().enumerate() {
            if slots.iter().any(|s: &RuleSlot| s.spec.id == spec.id) {
                return Err(RulesError::DuplicateRule { rule: spec.id });
            }
            let zone = validate_rule(&spec, &zones)?;
            let ci = camera_index(&mut cameras, &spec.camera);
            let region = match (zone, &spec.kind) {
                (Some(zi), kind)
                    if !matches!(
                        kind,
                        RuleKind::CameraOffline { .. }
                            | RuleKind::CameraTamper { .. }
                            | RuleKind::DoorOpen { .. }
                            | RuleKind::DetectorFault { .. }
                    ) =>
                {
                    let confirm = match kind {
                        RuleKind::LineCrossing { min_frames, .. } => *min_frames,
                        _ => 0,
                    };
                    let key = RegionKey {
                        zone: zi,
                        anchor: spec.anchor,
                        class: Arc::clone(&spec.person_class),
                        confirm,
                    };
                    Some(region_index(&mut cameras[ci].regions, key))
                }
                _ => None,
            };
            cameras[ci].rules.push(i);
            slots.push(RuleSlot {
                outputs: spec.outputs.clone().into(),
                spec,
                region,
            });
        }
        for (zi, z) in zones.iter().enumerate() {
            let ci = camera_index(&mut cameras, &z.camera);
            let cam = &mut cameras[ci];
            let shown = match cam.regions.iter().position(|r| r.key.zone == zi) {
                Some(r) => r,
                None => region_index(
                    &mut cam.regions,
                    RegionKey {
                        zone: zi,
                        anchor: Anchor::Feet,
                        class: Arc::from("person"),
                        confirm: 1,
                    },
                ),
            };
            cam.zones.push((zi, shown));
            cam.zone_states.push(ZoneState {
                zone: z.id.clone(),
                inside: Vec::new(),
                crossings_a_to_b: 0,
                crossings_b_to_a: 0,
            });
        }
        let runs = slots
            .iter()
            .map(|_| RuleRun {
                fsm: AlarmFsm::default(),
                kind: KindState::default(),
            })
            .collect();
        Ok(Self {
            zones,
            rules: slots,
            runs,
            cameras,
            last_now: Duration::ZERO,
        })
    }

    /// Replaces rules and zones at run time. Rules whose spec and zone are
    /// unchanged keep their state (active alarm, cooldown, timers), as does
    /// zone membership of unchanged zones. Returns `Clear` decisions for the
    /// active alarms of rules that were removed or changed. On error the
    /// engine is left as it was.
    pub fn replace(
        &mut self,
        rules: Vec<RuleSpec>,
        zones: Vec<ZoneSpec>,
    ) -> Result<Vec<Decision>, RulesError> {
        let mut new = RuleEngine::new(rules, zones)?;
        new.last_now = self.last_now;
        // Move zone membership of identical regions.
        for cam in &mut new.cameras {
            let Some(old_cam) = self.cameras.iter_mut().find(|c| c.camera == cam.camera) else {
                continue;
            };
            for region in &mut cam.regions {
                let zone = &new.zones[region.key.zone];
                let found = old_cam.regions.iter_mut().find(|r| {
                    self.zones[r.key.zone] == *zone
                        && r.key.anchor == region.key.anchor
                        && r.key.class == region.key.class
                        && r.key.confirm == region.key.confirm
                });
                if let Some(old) = found {
                    std::mem::swap(&mut region.members, &mut old.members);
                }
            }
            for (zs_new, (zi, _)) in cam.zone_states.iter_mut().zip(&cam.zones) {
                let zone = &new.zones[*zi];
                if let Some(pos) = old_cam
                    .zones
                    .iter()
                    .position(|(ozi, _)| self.zones[*ozi] == *zone)
                {
                    let old = &old_cam.zone_states[pos];
                    zs_new.crossings_a_to_b = old.crossings_a_to_b;
                    zs_new.crossings_b_to_a = old.crossings_b_to_a;
                    zs_new.inside.clone_from(&old.inside);
                }
            }
        }
        // Move the state of identical rules; clear the others.
        let mut cleared = Vec::new();
        for (oi, old) in self.rules.iter().enumerate() {
            let old_zone = zone_spec(&self.zones, old.spec.zone.as_ref());
            let same = new.rules.iter().position(|n| {
                n.spec == old.spec && zone_spec(&new.zones, n.spec.zone.as_ref()) == old_zone
            });
            let run = &mut self.runs[oi];
            match same {
                Some(ni) => std::mem::swap(&mut new.runs[ni], run),
                None => {
                    if let Some(alarm) = run.fsm.active.take() {
                        cleared.push(Decision::Clear {
                            alarm,
                            at: self.last_now,
                        });
                    }
                }
            }
        }
        *self = new;
        Ok(cleared)
    }

    /// The rules in force.
    pub fn rules(&self) -> impl Iterator<Item = &RuleSpec> {
        self.rules.iter().map(|r| &r.spec)
    }

    /// The zones in force.
    pub fn zones(&self) -> &[ZoneSpec] {
        &self.zones
    }

    /// Alarms currently raised, of every camera.
    pub fn active_alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.runs.iter().filter_map(|r| r.fsm.active.as_ref())
    }

    /// Live state of the zones of `camera` as of its last frame (empty for
    /// an unknown camera).
    pub fn zone_states(&self, camera: &CameraId) -> &[ZoneState] {
        self.cameras
            .iter()
            .find(|c| &c.camera == camera)
            .map_or(&[], |c| &c.zone_states)
    }

    /// Evaluates one frame of one camera: updates zone membership and every
    /// rule of that camera, and returns the raises and clears. A frame of a
    /// camera without rules or zones returns nothing.
    pub fn evaluate(&mut self, input: &FrameInput<'_>) -> Vec<Decision> {
        let mut out = Vec::new();
        self.last_now = self.last_now.max(input.now);
        let Some(ci) = self.cameras.iter().position(|c| c.camera == *input.camera) else {
            return out;
        };
        let geometry_ok = input.frame_w.is_finite()
            && input.frame_h.is_finite()
            && input.frame_w > 0.0
            && input.frame_h > 0.0;
        let cam = &mut self.cameras[ci];
        cam.order.clear();
        cam.order.extend(0..input.tracks.len());
        cam.order.sort_unstable_by_key(|&i| input.tracks[i].id);
        for region in &mut cam.regions {
            region.update(
                &self.zones[region.key.zone].shape,
                input,
                &cam.order,
                geometry_ok,
            );
        }
        for ((_, shown), state) in cam.zones.iter().zip(&mut cam.zone_states) {
            let region = &cam.regions[*shown];
            state.inside.clear();
            if matches!(self.zones[region.key.zone].shape, ZoneShape::Area(_)) {
                state.inside.extend(region.seen().map(|m| m.track));
            }
            for (_, c) in &region.crossings {
                match c {
                    Crossing::AToB => state.crossings_a_to_b += 1,
                    Crossing::BToA => state.crossings_b_to_a += 1,
                }
            }
        }
        self.step_rules(ci, input, |_| true, &mut out);
        out
    }

    /// Evaluates only the signal rules of `input.camera` (door open,
    /// detector fault: tracks, PPE and geometry are ignored): the analysis
    /// calls it when the door contact or the detector's state changes and on
    /// its ticks, so such an alarm waits for no analysed frame (a blind
    /// camera has none).
    pub fn evaluate_signals(&mut self, input: &FrameInput<'_>) -> Vec<Decision> {
        let mut out = Vec::new();
        self.last_now = self.last_now.max(input.now);
        if let Some(ci) = self.cameras.iter().position(|c| c.camera == *input.camera) {
            self.step_rules(ci, input, RuleKind::is_signal, &mut out);
        }
        out
    }

    /// Steps the alarm state machine of every rule of camera `ci` whose kind
    /// `select` accepts.
    fn step_rules(
        &mut self,
        ci: usize,
        input: &FrameInput<'_>,
        select: impl Fn(&RuleKind) -> bool,
        out: &mut Vec<Decision>,
    ) {
        let cam = &self.cameras[ci];
        for &ri in &cam.rules {
            let slot = &self.rules[ri];
            if !select(&slot.spec.kind) {
                continue;
            }
            let run = &mut self.runs[ri];
            let region = slot.region.map(|r| &cam.regions[r]);
            let raw = condition(slot, &mut run.kind, region, input);
            let scheduled = slot
                .spec
                .schedule
                .as_ref()
                .is_none_or(|s| s.is_active(input.local));
            let armed = input.interlocks.arms(slot.spec.armed_by.as_ref());
            let cond = if scheduled && armed { raw } else { None };
            run.fsm.step(slot, cond, input.now, out);
        }
    }

    /// Whether any rule of `camera` watches a signal (the door contact, the
    /// detector's state).
    pub fn has_signal_rules(&self, camera: &CameraId) -> bool {
        self.rules
            .iter()
            .any(|r| &r.spec.camera == camera && r.spec.kind.is_signal())
    }
}

fn zone_spec<'z>(zones: &'z [ZoneSpec], id: Option<&ZoneId>) -> Option<&'z ZoneSpec> {
    let id = id?;
    zones.iter().find(|z| &z.id == id)
}

/// Updates the rule's own memory and decides whether its condition holds in
/// this frame, returning the triggering track and the alarm detail.
fn condition(
    slot: &RuleSlot,
    state: &mut KindState,
    region: Option<&Region>,
    input: &FrameInput<'_>,
) -> Option<(Option<u64>, AlarmDetail)> {
    let now = input.now;
    match &slot.spec.kind {
        RuleKind::Intrusion { min_frames } => {
            let mut best: Option<&Member> = None;
            for m in region?.seen().filter(|m| m.inside_frames >= *min_frames) {
                if best.is_none_or(|b| m.inside_frames > b.inside_frames) {
                    best = Some(m);
                }
            }
            best.map(|m| (Some(m.track), AlarmDetail::Intrusion))
        }
        RuleKind::Dwell { min_duration } => {
            let mut best: Option<&Member> = None;
            for m in region?
                .seen()
                .filter(|m| now.saturating_sub(m.entered_at) >= *min_duration)
            {
                if best.is_none_or(|b| m.entered_at < b.entered_at) {
                    best = Some(m);
                }
            }
            best.map(|m| {
                (
                    Some(m.track),
                    AlarmDetail::Dwell {
                        inside: now.saturating_sub(m.entered_at),
                    },
                )
            })
        }
        RuleKind::Occupancy {
            max_persons,
            min_frames,
        } => {
            let count = u32::try_from(region?.seen().count()).unwrap_or(u32::MAX);
            if count > *max_persons {
                state.over_frames = state.over_frames.saturating_add(1);
            } else {
                state.over_frames = 0;
            }
            (state.over_frames >= *min_frames).then_some((None, AlarmDetail::Occupancy { count }))
        }
        RuleKind::LineCrossing { direction, .. } => region?
            .crossings
            .iter()
            .find(|(_, c)| direction.matches(*c))
            .map(|(id, c)| (Some(*id), AlarmDetail::LineCrossing { crossing: *c })),
        RuleKind::CameraOffline { min_duration } => {
            if input.health != CameraHealth::Offline {
                state.unhealthy_since = None;
                return None;
            }
            let since = *state.unhealthy_since.get_or_insert(now);
            (now.saturating_sub(since) >= *min_duration).then_some((
                None,
                AlarmDetail::CameraOffline {
                    health: input.health,
                },
            ))
        }
        RuleKind::CameraTamper {
            reasons,
            min_duration,
        } => {
            // An offline camera has no picture to judge.
            let watched = input.tamper.intersection(*reasons);
            let Some(reason) = watched
                .first()
                .filter(|_| input.health != CameraHealth::Offline)
            else {
                state.tamper_since = None;
                return None;
            };
            let since = *state.tamper_since.get_or_insert(now);
            (now.saturating_sub(since) >= *min_duration)
                .then_some((None, AlarmDetail::CameraTamper { reason }))
        }
        RuleKind::DoorOpen { min_duration } => {
            if !input.door_open {
                state.door_open_since = None;
                return None;
            }
            let since = *state.door_open_since.get_or_insert(now);
            (now.saturating_sub(since) >= *min_duration).then_some((None, AlarmDetail::DoorOpen))
        }
        RuleKind::DetectorFault { min_duration } => {
            if !input.detector_down {
                state.detector_down_since = None;
                return None;
            }
            let since = *state.detector_down_since.get_or_insert(now);
            (now.saturating_sub(since) >= *min_duration)
                .then_some((None, AlarmDetail::DetectorFault))
        }
        RuleKind::MissingPpe(spec) => {
            let region = region?;
            assign_votes(
                spec,
                &slot.spec.person_class,
                input.tracks,
                input.ppe,
                &mut state.votes,
            );
            state.windows_next.clear();
            let mut old = 0;
            let mut hit: Option<u64> = None;
            for m in &region.members {
                while old < state.windows.len() && state.windows[old].0 < m.track {
                    old += 1;
                }
                let mut w = state
                    .windows
                    .get(old)
                    .filter(|(id, _)| *id == m.track)
                    .map_or(PpeWindow::default(), |(_, w)| *w);
                if m.seen && now.saturating_sub(m.entered_at) >= spec.grace {
                    let vote = state
                        .votes
                        .binary_search_by_key(&m.track, |v| v.0)
                        .map_or(Vote::Unknown, |i| state.votes[i].1);
                    w.push(vote, spec.window_frames);
                    if hit.is_none() && w.violated(spec.min_frames) {
                        hit = Some(m.track);
                    }
                }
                state.windows_next.push((m.track, w));
            }
            std::mem::swap(&mut state.windows, &mut state.windows_next);
            hit.map(|id| (Some(id), AlarmDetail::MissingPpe))
        }
    }
}
