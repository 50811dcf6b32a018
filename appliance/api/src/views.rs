//! The wire forms of stored records: what the API answers, separate from what
//! the store keeps, so a change of the database's schema never changes the API
//! by accident (the conversion below has to change with it, and the OpenAPI
//! drift test sees the result).

use safe_yolo_domain::alarm::AlarmDetail;
use safe_yolo_domain::{CameraId, RuleId, Severity, ZoneId};
use safe_yolo_store::{AuditRecord, AuditResult, Event, EventState, Snapshot, SnapshotRefusal};
use serde::Serialize;

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EventView {
    /// Strictly increasing id, never reused.
    pub id: u64,
    /// The camera that saw it.
    pub camera: CameraId,
    /// The rule that fired.
    pub rule: RuleId,
    /// The zone or line involved, if any.
    pub zone: Option<ZoneId>,
    /// The tracked person involved, if any.
    pub track: Option<u64>,
    /// The rule's kind, e.g. `intrusion`.
    pub kind: String,
    /// How urgent it is.
    pub severity: Severity,
    /// When the condition started, Unix ms.
    pub started_at: u64,
    /// When the condition ended, Unix ms, if it has.
    pub ended_at: Option<u64>,
    /// Where it is in its life cycle.
    #[serde(flatten)]
    pub state: StateView,
    /// A sentence for people.
    pub message: String,
    /// What the alarm was (absent for events from before schema v3 that
    /// carried none).
    pub details: Option<DetailsView>,
    /// The evidence snapshot.
    pub snapshot: SnapshotView,
    /// When the store committed the event, Unix ms.
    pub recorded_at: u64,
}

/// An event's life-cycle state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum StateView {
    /// Raised and not acknowledged yet.
    Active,
    /// Acknowledged; the condition has not ended yet.
    Acknowledged {
        /// Who acknowledged it.
        by: String,
        /// When, Unix ms.
        at: u64,
    },
    /// Closed (acknowledged and ended, or needing no acknowledgement).
    Cleared {
        /// When, Unix ms.
        at: u64,
        /// Who cleared it (absent when the rules did).
        by: Option<String>,
        /// The acknowledgement before, if any.
        acknowledged: Option<AckView>,
    },
}

/// An acknowledgement.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AckView {
    /// Who.
    pub by: String,
    /// When, Unix ms.
    pub at: u64,
}

/// What the alarm behind an event was.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DetailsView {
    /// The alarm's identity (`<boot_ms>-<seq>`); its outputs are released by it.
    pub alarm_key: String,
    /// The rule kind's facts.
    pub detail: AlarmDetail,
}

/// An event's snapshot.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SnapshotView {
    /// None was taken.
    None,
    /// On disk: `GET /api/v1/events/{id}/snapshot`.
    Stored {
        /// File name.
        file: String,
        /// Size in bytes.
        bytes: u64,
        /// SHA-256, lowercase hex, to verify exported evidence.
        sha256: String,
        /// When it was written, Unix ms.
        written_at: u64,
    },
    /// Taken but not written.
    Refused {
        /// Why.
        reason: SnapshotRefusal,
    },
    /// Written, then removed by retention.
    Pruned {
        /// When, Unix ms.
        at: u64,
        /// Its size.
        bytes: u64,
        /// Its hash.
        sha256: String,
    },
}

/// One page of events.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EventPageView {
    /// The events, in the query's order.
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<u64>,
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditView {
    /// Strictly increasing id.
    pub id: u64,
    /// When, Unix ms.
    pub at: u64,
    /// User name, API key id or `system`.
    pub actor: String,
    /// The actor's role, if authenticated.
    pub role: Option<&'static str>,
    /// Remote address, if any.
    pub source: Option<String>,
    /// What was done, e.g. `settings.put`.
    pub action: String,
    /// What it was done to, e.g. `zone/dock-1`.
    pub target: String,
    /// The state before, summarised.
    pub before: Option<String>,
    /// The state after, summarised.
    pub after: Option<String>,
    /// `ok`, or `denied`/`failed` with the `reason`.
    #[serde(flatten)]
    pub result: AuditResult,
}

/// One page of the audit log.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditPageView {
    /// The rows.
    pub rows: Vec<AuditView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<u64>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            camera: e.camera,
            rule: e.rule,
            zone: e.zone,
            track: e.track,
            kind: e.kind,
            severity: e.severity,
            started_at: e.started_at,
            ended_at: e.ended_at,
            state: e.state.into(),
            message: e.message,
            details: e.details.map(|d| DetailsView {
                alarm_key: d.alarm_key.to_string(),
                detail: d.detail,
            }),
            snapshot: e.snapshot.into(),
            recorded_at: e.recorded_at,
        }
    }
}

impl From<EventState> for StateView {
    fn from(s: EventState) -> Self {
        match s {
            EventState::Active => Self::Active,
            EventState::Acknowledged { by, at } => Self::Acknowledged { by, at },
            EventState::Cleared {
                at,
                by,
                acknowledged,
            } => Self::Cleared {
                at,
                by,
                acknowledged: acknowledged.map(|a| AckView { by: a.by, at: a.at }),
            },
        }
    }
}

impl From<Snapshot> for SnapshotView {
    fn from(s: Snapshot) -> Self {
        match s {
            Snapshot::None => Self::None,
            Snapshot::Stored(r) => Self::Stored {
                file: r.file,
                bytes: r.bytes,
                sha256: r.sha256,
                written_at: r.written_at,
            },
            Snapshot::Refused { reason } => Self::Refused { reason },
            Snapshot::Pruned { at, bytes, sha256 } => Self::Pruned { at, bytes, sha256 },
        }
    }
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            at: r.at,
            actor: r.actor,
            role: r.role.map(crate::auth::role_name),
            source: r.source,
            action: r.action,
            target: r.target,
            before: r.before,
            after: r.after,
            result: r.result,
        }
    }
}

/// A settings document edited through the API, as stored (versioned).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SettingView {
    /// `camera`, `zone`, `line`, `rule`, `output` or `integrations`.
    pub kind: &'static str,
    /// The object's id.
    pub id: String,
    /// Starts at 1 and grows by one on every change; send it back as
    /// `expected_version` to edit without overwriting someone else's change.
    pub version: u64,
    /// The document, as the matching `PUT` accepts it.
    pub doc: serde_json::Value,
    /// When it was last changed, Unix ms.
    pub updated_at: u64,
    /// Who changed it.
    pub updated_by: String,
}

impl From<safe_yolo_store::SettingDoc> for SettingView {
    fn from(d: safe_yolo_store::SettingDoc) -> Self {
        Self {
            kind: d.kind.as_str(),
            id: d.id,
            version: d.version,
            doc: d.doc,
            updated_at: d.updated_at,
            updated_by: d.updated_by,
        }
    }
}

/// One camera's health.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CameraHealthView {
    /// The camera.
    pub id: CameraId,
    /// `starting`, `online` or `offline`.
    pub state: &'static str,
    /// Why it is offline, if it is.
    pub reason: Option<String>,
    /// What its tamper check reports while it delivers frames (frozen,
    /// covered, blinded, defocused, moved); empty when it is watching.
    pub tamper: Vec<safe_yolo_domain::alarm::TamperReason>,
}

impl From<&safe_yolo_pipeline::CameraTap> for CameraHealthView {
    fn from(t: &safe_yolo_pipeline::CameraTap) -> Self {
        let h = t.health.borrow();
        Self {
            id: t.id.clone(),
            state: match h.state {
                safe_yolo_pipeline::CameraState::Starting => "starting",
                safe_yolo_pipeline::CameraState::Online => "online",
                safe_yolo_pipeline::CameraState::Offline => "offline",
            },
            reason: h.reason.clone(),
            tamper: h.tamper.iter().collect(),
        }
    }
}

/// A settings list: the documents the running system uses now, and the edits
/// stored through the API (laid over the configuration file).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SettingsList {
    /// Every object running now, file and edits layered.
    pub running: Vec<RunningDoc>,
    /// The documents stored through the API, with their versions.
    pub edited: Vec<SettingView>,
}

/// A running object's document.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunningDoc {
    /// The object's id.
    pub id: String,
    /// Its document, as the matching `PUT` accepts it.
    pub doc: crate::control::Document,
}

/// The camera list: settings and each camera's health.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CameraList {
    /// The settings.
    #[serde(flatten)]
    pub settings: SettingsList,
    /// Each running camera's health.
    pub health: Vec<CameraHealthView>,
}

/// The V4L2 capture devices present (`GET /api/v1/cameras/discovery`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DiscoveryView {
    /// The video capture devices, in node order.
    pub devices: Vec<DeviceView>,
    /// `/dev/video*` nodes that are no usable capture device (a UVC camera's
    /// metadata node, a codec), with the reason.
    pub skipped: Vec<SkippedNodeView>,
    /// Nodes were left out (too many, or the time budget ran out).
    pub truncated: bool,
}

/// A video capture device.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeviceView {
    /// The path to give as a camera's `source.device`: its `/dev/v4l/by-id/`
    /// link if it has one, else its `/dev/v4l/by-path/` link, else the node.
    pub path: String,
    /// The node (`/dev/video0`).
    pub node: String,
    /// The driver (`uvcvideo`, `vivid`).
    pub driver: String,
    /// The card (the camera's name).
    pub card: String,
    /// The bus (`usb-0000:00:14.0-1`).
    pub bus_info: String,
    /// The running camera that captures from this device, if any (a preview
    /// of it is refused: the device is busy).
    pub in_use_by: Option<CameraId>,
    /// The formats offered.
    pub formats: Vec<FormatView>,
    /// A list was cut at its limit or at the time budget.
    pub truncated: bool,
}

/// A pixel format a device offers.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FormatView {
    /// The V4L2 FourCC (`MJPG`, `YUYV`, `H264`; a big-endian variant ends in `-BE`).
    pub fourcc: String,
    /// The `source.format` that selects it; absent when the appliance cannot
    /// capture this format.
    pub format: Option<safe_yolo_capture::PixelFormat>,
    /// The driver's description (`Motion-JPEG`).
    pub description: String,
    /// The frame sizes, each with its frame rates (empty: the driver lists none).
    pub sizes: Vec<FrameSizeView>,
}

/// A frame size a format is offered at.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FrameSizeView {
    /// One size.
    Discrete {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The frame rates at this size.
        rates: Vec<FrameRateView>,
    },
    /// Any size in a range on a step grid (continuous ranges have step 1).
    Stepwise {
        /// Smallest width.
        min_width: u32,
        /// Largest width.
        max_width: u32,
        /// Width step.
        step_width: u32,
        /// Smallest height.
        min_height: u32,
        /// Largest height.
        max_height: u32,
        /// Height step.
        step_height: u32,
        /// The frame rates at the largest size.
        rates: Vec<FrameRateView>,
    },
}

/// A frame rate offered.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FrameRateView {
    /// One rate.
    Discrete {
        /// Frames per second.
        fps: f32,
    },
    /// Any rate in a range.
    Stepwise {
        /// Lowest rate.
        min_fps: f32,
        /// Highest rate.
        max_fps: f32,
    },
}

/// A `/dev/video*` node that is no usable capture device.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SkippedNodeView {
    /// The node.
    pub node: String,
    /// Why, in words.
    pub reason: String,
}

impl DiscoveryView {
    /// The view of `found`; `in_use` maps a resolved device node to the
    /// running camera that captures from it.
    pub fn new(
        found: safe_yolo_capture::Discovery,
        in_use: &[(CameraId, std::path::PathBuf)],
    ) -> Self {
        use safe_yolo_capture::v4l2::negotiate::{IntervalRange, SizeRange, fps_of};
        let rate = |i: &IntervalRange| match *i {
            IntervalRange::Discrete {
                numerator,
                denominator,
            } => fps_of(numerator, denominator).map(|fps| FrameRateView::Discrete { fps }),
            // The shortest interval is the highest rate.
            IntervalRange::Stepwise { min, max } => {
                match (fps_of(max.0, max.1), fps_of(min.0, min.1)) {
                    (Some(min_fps), Some(max_fps)) => {
                        Some(FrameRateView::Stepwise { min_fps, max_fps })
                    }
                    _ => None,
                }
            }
        };
        let size = |s: &safe_yolo_capture::DiscoveredSize| {
            let rates = s.intervals.iter().filter_map(rate).collect();
            match s.size {
                SizeRange::Discrete { width, height } => FrameSizeView::Discrete {
                    width,
                    height,
                    rates,
                },
                SizeRange::Stepwise {
                    min_width,
                    max_width,
                    step_width,
                    min_height,
                    max_height,
                    step_height,
                } => FrameSizeView::Stepwise {
                    min_width,
                    max_width,
                    step_width,
                    min_height,
                    max_height,
                    step_height,
                    rates,
                },
            }
        };
        Self {
            devices: found
                .devices
                .into_iter()
                .map(|d| DeviceView {
                    path: d.path.display().to_string(),
                    in_use_by: in_use
                        .iter()
                        .find(|(_, node)| *node == d.node)
                        .map(|(camera, _)| camera.clone()),
                    node: d.node.display().to_string(),
                    driver: d.driver,
                    card: d.card,
                    bus_info: d.bus_info,
                    formats: d
                        .formats
                        .iter()
                        .map(|f| FormatView {
                            fourcc: f.fourcc_text(),
                            format: f.format,
                            description: f.description.clone(),
                            sizes: f.sizes.iter().map(size).collect(),
                        })
                        .collect(),
                    truncated: d.truncated,
                })
                .collect(),
            skipped: found
                .skipped
                .into_iter()
                .map(|s| SkippedNodeView {
                    node: s.node.display().to_string(),
                    reason: s.reason,
                })
                .collect(),
            truncated: found.truncated,
        }
    }
}

/// A test message queued for the integrations.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IntegrationTest {
    /// Its outbox position (`null`: no integration is configured, nothing was sent).
    pub outbox_seq: Option<u64>,
}
