//! Live view endpoints: MJPEG, WebSocket tickets and the WebSocket.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use safe_yolo_domain::CameraId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::Principal;
use crate::error::HttpError;
use crate::live::Encoded;
use crate::state::AppState;

/// Query string of the MJPEG stream.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MjpegParams {
    /// JPEG quality 10..=95 (default from the config) of a camera that delivers raw
    /// pixels; a JPEG camera's stream is its own JPEG, whatever the quality.
    quality: Option<u8>,
    /// Frame-rate cap 1..=30 (default 10).
    fps: Option<u32>,
    /// A single-use ticket, for players that cannot send headers (consumed by the gate).
    #[allow(
        dead_code,
        reason = "read by the route gate, declared so it is not an unknown field"
    )]
    ticket: Option<String>,
}

const BOUNDARY: &str = "safeyoloframe";

fn check_quality(q: u8) -> Result<u8, String> {
    if (10..=95).contains(&q) {
        Ok(q)
    } else {
        Err("quality must be between 10 and 95".into())
    }
}

fn check_fps(f: u32) -> Result<u32, String> {
    if (1..=30).contains(&f) {
        Ok(f)
    } else {
        Err("fps must be between 1 and 30".into())
    }
}

/// The live view is switched off (`features.live_stream = false`): its routes
/// answer 404, as if they did not exist.
fn live_off(s: &AppState) -> Result<(), HttpError> {
    if s.settings.live_stream {
        Ok(())
    } else {
        Err(HttpError::not_found(
            "the live view (disabled by features.live_stream)".to_owned(),
        ))
    }
}

pub(crate) async fn mjpeg(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    q: Result<Query<MjpegParams>, QueryRejection>,
) -> Result<Response, HttpError> {
    live_off(&s)?;
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| HttpError::bad_request("query", e.body_text()))?;
    let camera = CameraId::new(camera).map_err(|e| HttpError::bad_request("id", e.to_string()))?;
    let quality = check_quality(q.quality.unwrap_or(s.live.default_quality()))
        .map_err(|m| HttpError::bad_request("quality", m))?;
    let fps = check_fps(q.fps.unwrap_or(10)).map_err(|m| HttpError::bad_request("fps", m))?;
    let rx = s
        .live
        .subscribe(&camera, quality)
        .map_err(HttpError::not_found)?;
    let period = Duration::from_millis(1000 / u64::from(fps));
    // The viewer gauge is part of the stream's state: it drops with the connection.
    let viewer = crate::metrics::ViewerGuard::new(&s.api_metrics.live_viewers);
    let reauth = Reauth::new(&s, p);
    let stream = futures_util::stream::unfold(
        (rx, None::<Instant>, viewer, reauth),
        move |(mut rx, due, viewer, mut reauth)| async move {
            if let Some(due) = due {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    _ = reauth.ended() => return None,
                }
            }
            let frame = tokio::select! {
                f = next_frame(&mut rx) => f?,
                _ = reauth.ended() => return None,
            };
            let head = format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                frame.jpeg.len()
            );
            let mut part = Vec::with_capacity(head.len() + frame.jpeg.len() + 2);
            part.extend_from_slice(head.as_bytes());
            part.extend_from_slice(&frame.jpeg);
            part.extend_from_slice(b"\r\n");
            Some((
                Ok::<_, std::io::Error>(Bytes::from(part)),
                (rx, Some(Instant::now() + period), viewer, reauth),
            ))
        },
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// How often an open stream re-checks its credential when nothing revoked one.
const REAUTH_EVERY: Duration = Duration::from_secs(5);

/// Re-authorises an open live stream: at once when the API signals that a
/// credential may have been revoked, and every [`REAUTH_EVERY`] (an expired
/// session, a change made while the store was away). A stream is one request, so
/// without this a logout, a disabled user, a changed password, a revoked API key
/// or a rotated JWT key would leave it running.
///
/// The checks run in a task of their own, never inside the stream's `select!`:
/// a check that takes longer than a frame period (a loaded box, a slow store)
/// would otherwise be cancelled by every frame and never finish. Dropping the
/// `Reauth` (the stream ended) stops the task.
struct Reauth {
    verdict: watch::Receiver<Option<String>>,
    checker: tokio::task::JoinHandle<()>,
}

impl Drop for Reauth {
    fn drop(&mut self) {
        self.checker.abort();
    }
}

impl Reauth {
    fn new(s: &AppState, p: Principal) -> Self {
        let (tx, verdict) = watch::channel(None);
        let checker = Checker {
            jwt_generation: s.keys.generation(),
            revocations: s.revocations.subscribe(),
            s: s.clone(),
            p,
        };
        let checker = tokio::spawn(async move {
            let reason = checker.run().await;
            // The stream may be gone already: nobody to tell.
            let _ = tx.send(Some(reason));
        });
        Self { verdict, checker }
    }

    /// Resolves when the stream's credential is no longer valid, with the reason.
    /// Cancel-safe (it only waits for the checker's verdict).
    async fn ended(&mut self) -> String {
        let verdict = self
            .verdict
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.clone().unwrap_or_default());
        match verdict {
            Ok(reason) => reason,
            // The checker ended without a verdict (the API is going away): the
            // shutdown token ends the stream.
            Err(_) => std::future::pending().await,
        }
    }
}

/// The checks of one stream's credential (see [`Reauth`]).
struct Checker {
    s: AppState,
    p: Principal,
    jwt_generation: u64,
    revocations: watch::Receiver<u64>,
}

impl Checker {
    /// Checks on every revocation signal and every [`REAUTH_EVERY`]; returns the
    /// reason the credential is no longer valid.
    async fn run(mut self) -> String {
        let mut tick = tokio::time::interval(REAUTH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        loop {
            tokio::select! {
                r = self.revocations.changed() => {
                    if r.is_err() {
                        // The API is going away; the shutdown token ends the stream.
                        std::future::pending::<()>().await;
                    }
                }
                _ = tick.tick() => {}
            }
            let reason = if crate::auth::session_based(&self.p)
                && self.s.keys.generation() != self.jwt_generation
            {
                Some("the JWT signing key was rotated".to_owned())
            } else {
                match self.s.store() {
                    Ok(store) => match crate::auth::still_valid(&store, &self.p).await {
                        Ok(()) => None,
                        Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => {
                            Some(e.message)
                        }
                        // The store is away: the stream goes on until it can be checked.
                        Err(_) => None,
                    },
                    Err(_) => None,
                }
            };
            if let Some(r) = reason {
                self.s.api_metrics.streams_revoked.inc();
                tracing::info!(actor = %self.p.actor, reason = %r, "live stream ended: its credential is no longer valid");
                return r;
            }
        }
    }
}

/// Waits for the next encoded frame (the newest one); `None` when the stream ended.
async fn next_frame(rx: &mut watch::Receiver<Option<Arc<Encoded>>>) -> Option<Arc<Encoded>> {
    loop {
        rx.changed().await.ok()?;
        if let Some(f) = rx.borrow_and_update().clone() {
            return Some(f);
        }
    }
}

/// A single-use ticket for a WebSocket or MJPEG viewer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Ticket {
    /// Pass as `?ticket=` once.
    ticket: String,
    /// It expires this many seconds after it was minted.
    expires_in_s: u64,
}

pub(crate) async fn ticket(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<axum::Json<Ticket>, HttpError> {
    live_off(&s)?;
    let ttl = s.settings.auth.ticket_ttl;
    let ticket = s.tickets.mint(&p, ttl)?;
    Ok(axum::Json(Ticket {
        ticket,
        expires_in_s: ttl.as_secs(),
    }))
}

pub(crate) async fn ws(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(e) = live_off(&s) {
        return e.into_response();
    }
    // Commands are small JSON texts: a frame or message over 4 KiB is refused
    // before it is buffered (tungstenite's default would take 16 MiB frames).
    upgrade
        .max_frame_size(MAX_COMMAND_BYTES)
        .max_message_size(MAX_COMMAND_BYTES)
        .on_upgrade(move |socket| run(s, p, socket))
}

/// Commands a WebSocket client may send (JSON text messages).
#[derive(Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "LiveCommand")]
pub enum Command {
    /// Start (or switch to) a camera.
    Subscribe {
        /// The camera.
        #[schemars(with = "String")]
        camera: CameraId,
    },
    /// Stop sending frames.
    Unsubscribe,
    /// JPEG quality 10..=95 (cameras that deliver raw pixels; a JPEG camera is sent as it delivers).
    SetQuality {
        /// The quality.
        quality: u8,
    },
    /// Frame-rate cap 1..=30.
    SetFps {
        /// The rate.
        fps: u32,
    },
}

/// Largest WebSocket frame or message a client may send (a command).
pub(crate) const MAX_COMMAND_BYTES: usize = 4096;

impl Command {
    /// Parses a client's text message and checks its values: what the viewer applies,
    /// or the error message sent back (naming the field).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let cmd: Command = crate::body::parse_json(text.as_bytes()).map_err(|e| {
            let field = e.field.map(|f| format!(" ({f})")).unwrap_or_default();
            format!("invalid command{field}: {}", e.message)
        })?;
        match cmd {
            Command::SetQuality { quality } => check_quality(quality).map(|_| cmd),
            Command::SetFps { fps } => check_fps(fps).map(|_| cmd),
            Command::Subscribe { .. } | Command::Unsubscribe => Ok(cmd),
        }
    }
}

/// Commands allowed per second (burst); more are answered with an error.
const COMMANDS_PER_SECOND: u32 = 10;

struct Viewer {
    camera: Option<CameraId>,
    rx: Option<watch::Receiver<Option<Arc<Encoded>>>>,
    quality: u8,
    fps: u32,
    window: Instant,
    commands: u32,
}

/// Messages the server sends on the live WebSocket as JSON text (the frames
/// themselves are binary messages).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "LiveMessage")]
pub(crate) enum LiveMessage {
    /// A command was applied: the viewer's settings now.
    Ok {
        /// The camera streamed, if any.
        camera: Option<CameraId>,
        /// JPEG quality.
        quality: u8,
        /// Frame-rate cap.
        fps: u32,
    },
    /// A command was refused.
    Error {
        /// Why.
        message: String,
    },
    /// An alarm of the streamed camera changed.
    Alarm {
        /// `raised`, `ended` or `acknowledged`.
        kind: safe_yolo_alarms::NoticeKind,
        /// The stored event.
        event_id: u64,
        /// The rule.
        rule: safe_yolo_domain::RuleId,
        /// The camera.
        camera: CameraId,
        /// The zone or line.
        zone: Option<safe_yolo_domain::ZoneId>,
        /// Severity name.
        severity: &'static str,
        /// When, Unix ms.
        at_ms: u64,
    },
}

impl LiveMessage {
    fn text(&self) -> Message {
        Message::Text(Utf8Bytes::from(
            serde_json::to_string(self).unwrap_or_default(),
        ))
    }
}

fn error_message(msg: &str) -> Message {
    LiveMessage::Error {
        message: msg.to_owned(),
    }
    .text()
}

impl Viewer {
    fn command(&mut self, s: &AppState, text: &str) -> Message {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.commands = 0;
        }
        self.commands += 1;
        if self.commands > COMMANDS_PER_SECOND {
            return error_message("rate limited: at most 10 commands per second");
        }
        let cmd = match Command::parse(text) {
            Ok(c) => c,
            Err(m) => return error_message(&m),
        };
        let before = (self.camera.clone(), self.quality);
        let resubscribe = match cmd {
            Command::Subscribe { camera } => {
                self.camera = Some(camera);
                true
            }
            Command::Unsubscribe => {
                self.camera = None;
                self.rx = None;
                false
            }
            Command::SetQuality { quality } => {
                self.quality = quality;
                true
            }
            Command::SetFps { fps } => {
                self.fps = fps;
                false
            }
        };
        // Subscribing again to the stream already watched keeps it: the newest frame,
        // shown at once to a new subscriber, is not sent twice.
        let unchanged = self.rx.is_some() && before == (self.camera.clone(), self.quality);
        if resubscribe
            && !unchanged
            && let Some(cam) = &self.camera
        {
            match s.live.subscribe(cam, self.quality) {
                Ok(rx) => self.rx = Some(rx),
                Err(m) => {
                    self.camera = None;
                    self.rx = None;
                    return error_message(&m);
                }
            }
        }
        LiveMessage::Ok {
            camera: self.camera.clone(),
            quality: self.quality,
            fps: self.fps,
        }
        .text()
    }
}

async fn run(s: AppState, p: Principal, socket: WebSocket) {
    tracing::debug!(actor = %p.actor, source = %p.source, "live WebSocket opened");
    let (mut sink, mut stream) = socket.split();
    let mut v = Viewer {
        camera: None,
        rx: None,
        quality: s.live.default_quality(),
        fps: 10,
        window: Instant::now(),
        commands: 0,
    };
    let shutdown = s.live_shutdown.clone();
    let _viewer = crate::metrics::ViewerGuard::new(&s.api_metrics.live_viewers);
    let mut alarms = s.alarms.subscribe();
    let mut reauth = Reauth::new(&s, p.clone());
    loop {
        let frame = async {
            match v.rx.as_mut() {
                Some(rx) => next_frame(rx).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = stream.next() => {
                let reply = match msg {
                    Some(Ok(Message::Text(t))) => v.command(&s, t.as_str()),
                    Some(Ok(Message::Binary(_))) => error_message("binary messages are not accepted; send JSON commands"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if sink.send(reply).await.is_err() {
                    break;
                }
            }
            f = frame => {
                let Some(f) = f else {
                    v.rx = None;
                    if sink.send(error_message("the camera stream ended")).await.is_err() {
                        break;
                    }
                    continue;
                };
                let Ok(meta) = serde_json::to_string(&f.meta) else { continue };
                if sink.send(Message::Text(Utf8Bytes::from(meta))).await.is_err()
                    || sink.send(Message::Binary(f.jpeg.clone())).await.is_err()
                {
                    break;
                }
                // The frame-rate cap: frames arriving meanwhile are skipped (newest wins).
                tokio::time::sleep(Duration::from_millis(1000 / u64::from(v.fps))).await;
            }
            n = alarms.recv() => {
                let n = match n {
                    Ok(n) => n,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        alarms = tokio::sync::broadcast::channel(1).1;
                        continue;
                    }
                };
                if v.camera.as_ref() != Some(&n.camera) {
                    continue;
                }
                let msg = LiveMessage::Alarm {
                    kind: n.kind,
                    event_id: n.event_id,
                    rule: n.rule,
                    camera: n.camera,
                    zone: n.zone,
                    severity: n.severity,
                    at_ms: n.at_ms,
                };
                if sink.send(msg.text()).await.is_err() {
                    break;
                }
            }
            reason = reauth.ended() => {
                let _ = sink.send(error_message(&format!("the stream ended: {reason}"))).await;
                let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: axum::extract::ws::close_code::POLICY,
                    reason: Utf8Bytes::from_static("credential no longer valid"),
                }))).await;
                break;
            }
            () = shutdown.cancelled() => break,
        }
    }
    tracing::debug!(actor = %p.actor, "live WebSocket closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_typed() {
        let c: Command =
            crate::body::parse_json(br#"{"type":"subscribe","camera":"gate"}"#).unwrap();
        assert_eq!(
            c,
            Command::Subscribe {
                camera: CameraId::new("gate").unwrap()
            }
        );
        assert!(
            crate::body::parse_json::<Command>(br#"{"type":"subscribe","camera":"Bad Id"}"#)
                .is_err()
        );
        assert!(
            crate::body::parse_json::<Command>(br#"{"type":"set_fps","fps":5,"x":1}"#).is_err()
        );
    }

    #[test]
    fn commands_are_parsed_and_checked_as_the_viewer_applies_them() {
        assert_eq!(
            Command::parse(r#"{"type":"set_quality","quality":70}"#),
            Ok(Command::SetQuality { quality: 70 })
        );
        assert_eq!(
            Command::parse(r#"{"type":"set_fps","fps":31}"#),
            Err("fps must be between 1 and 30".to_owned())
        );
        assert_eq!(
            Command::parse(r#"{"type":"set_quality","quality":9}"#),
            Err("quality must be between 10 and 95".to_owned())
        );
        // An internally tagged enum is buffered before its variant is read, so the
        // path stays at the root; the reason still says what was expected.
        let e = Command::parse(r#"{"type":"set_fps","fps":"x"}"#).unwrap_err();
        assert!(e.starts_with("invalid command"), "{e}");
        assert!(e.contains("expected u32"), "{e}");
        let e = Command::parse(r#"{"type":"set_fps","fps":5,"extra":1}"#).unwrap_err();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }
}
