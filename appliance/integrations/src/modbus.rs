//! The box as a Modbus TCP server (tokio-modbus) a PLC polls and writes: the register
//! map of [`safe_yolo_config::modbus_map`] (fixed points, then the rules, cameras and
//! zones in the configuration's pinned order or by id).
//!
//! - **Reads** are answered from the box's state now (the dispatcher's raised alarms,
//!   the interlocks, the cameras' health, the zones' counts, the outputs' guarding).
//!   Addresses without a point read 0, so a PLC may read whole blocks.
//! - **Writes** go to coils only: an interlock's coil sets its level
//!   ([`safe_yolo_alarms::Interlocks`]); the acknowledge coil (write 1) acknowledges
//!   every open alarm through the dispatcher's one acknowledge path. Each write that
//!   changes something is audited with the client's address (actor `modbus`).
//!   Writing an address without a writable point is refused (illegal data address).
//! - **Budgets**: only clients in the allow-list are served (Modbus has no
//!   authentication); at most `max_connections` at once; a client silent for
//!   `idle_timeout` is disconnected; a request asks for at most 2000 bits or 125
//!   registers (the protocol's limits); frames are bounded by the codec (260 bytes).
//!
//! Nothing here is on the safety path: the server reads shared state and writes
//! through the same handles as the API.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use safe_yolo_alarms::interlocks::{InterlockLevel, InterlockStates};
use safe_yolo_alarms::{Dispatcher, Interlocks, NoticeKind};
use safe_yolo_config::{
    COIL_ACK_ALL, ModbusConfig, ModbusPoint, ModbusRegister, ModbusTable, modbus_map,
};
use safe_yolo_domain::{CameraId, Named, RuleId, ZoneId};
use safe_yolo_outputs::OutputsStatus;
use safe_yolo_pipeline::{CameraState, CameraTaps};
use safe_yolo_store::{EventQuery, Storage};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// Most bits one request may read (Modbus application protocol, 6.1/6.2).
const MAX_BITS: u16 = 2000;
/// Most registers one request may read (6.4).
const MAX_REGISTERS: u16 = 125;
/// Most coils one request may write (6.11).
const MAX_WRITE_BITS: u16 = 1968;

/// Why the Modbus server cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    /// The listen address cannot be bound.
    #[error("cannot listen for Modbus TCP on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What the server reads and writes.
#[derive(Debug, Clone)]
pub struct PlantState {
    /// Raised alarms, rules, zones; the acknowledge path.
    pub dispatcher: Dispatcher,
    /// The interlocks (levels and coils).
    pub interlocks: Interlocks,
    /// The running cameras (health and scenes).
    pub cameras: CameraTaps,
    /// The outputs (guarding).
    pub outputs: watch::Receiver<OutputsStatus>,
    /// The store (audit rows, the newest event id).
    pub storage: Storage,
}

/// The server's view, shared by its connections.
#[derive(Debug)]
struct Shared {
    cfg: ModbusConfig,
    state: PlantState,
    last_event: AtomicU64,
    connections: AtomicUsize,
}

impl Shared {
    /// The register map and the values of its points, as of now (live rules,
    /// cameras and zones): each source is read once per request.
    fn snapshot(&self) -> (Vec<ModbusRegister>, Snapshot) {
        let s = &self.state;
        let rules = s.dispatcher.rules();
        let taps = s.cameras.current();
        let rule_ids: Vec<RuleId> = rules.iter().map(|(id, _, _)| id.clone()).collect();
        let camera_ids: Vec<CameraId> = taps.iter().map(|t| t.id.clone()).collect();
        let zones = s.dispatcher.zone_ids();
        let map = modbus_map(
            &s.interlocks.specs(),
            &ModbusConfig::order(self.cfg.rules.as_ref(), &rule_ids),
            &ModbusConfig::order(self.cfg.cameras.as_ref(), &camera_ids),
            &ModbusConfig::order(self.cfg.zones.as_ref(), &zones),
        );
        let levels = s.interlocks.watch().borrow().clone();
        let snap = Snapshot {
            guarding: s.outputs.borrow().driver.guarding,
            raised: s.dispatcher.raised_rules().into_iter().collect(),
            armed: rules
                .into_iter()
                .filter(|(_, enabled, by)| *enabled && levels.arms(by.as_ref()))
                .map(|(id, _, _)| id)
                .collect(),
            online: taps
                .iter()
                .filter(|t| t.health.borrow().state == CameraState::Online)
                .map(|t| t.id.clone())
                .collect(),
            zone_counts: s.cameras.zone_counts().into_iter().collect(),
            levels,
            last_event: u32::try_from(self.last_event.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
        };
        (map, snap)
    }

    /// `count` values of `table` from `address` (bits as 0/1).
    fn read(&self, table: ModbusTable, address: u16, count: u16) -> Vec<u32> {
        let (map, snap) = self.snapshot();
        let mut out = vec![0u32; usize::from(count)];
        for r in map.iter().filter(|r| r.table == table) {
            let words: &[u16] = if r.point == ModbusPoint::LastEventId {
                &[0, 1]
            } else {
                &[0]
            };
            for &w in words {
                let a = u32::from(r.address) + u32::from(w);
                let Some(i) = a.checked_sub(u32::from(address)) else {
                    continue;
                };
                let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) else {
                    continue;
                };
                let v = snap.value(&r.point);
                *slot = if r.point == ModbusPoint::LastEventId {
                    if w == 0 { v >> 16 } else { v & 0xffff }
                } else {
                    v
                };
            }
        }
        out
    }
}

/// The box's state for one request.
#[derive(Debug)]
struct Snapshot {
    guarding: bool,
    raised: HashSet<RuleId>,
    armed: HashSet<RuleId>,
    online: HashSet<CameraId>,
    zone_counts: HashMap<ZoneId, u32>,
    levels: InterlockStates,
    last_event: u32,
}

impl Snapshot {
    /// The value of `point` (a bit as 0/1; [`ModbusPoint::LastEventId`] as its
    /// 32-bit value).
    fn value(&self, point: &ModbusPoint) -> u32 {
        match point {
            ModbusPoint::AcknowledgeAll => 0,
            ModbusPoint::Interlock { interlock } => {
                u32::from(self.levels.level(interlock) == InterlockLevel::Armed)
            }
            ModbusPoint::Guarding => u32::from(self.guarding),
            ModbusPoint::AnyAlarm => u32::from(!self.raised.is_empty()),
            ModbusPoint::RuleRaised { rule } => u32::from(self.raised.contains(rule)),
            ModbusPoint::RuleArmed { rule } => u32::from(self.armed.contains(rule)),
            ModbusPoint::CameraOnline { camera } => u32::from(self.online.contains(camera)),
            ModbusPoint::LastEventId => self.last_event,
            ModbusPoint::RaisedCount => u32::try_from(self.raised.len()).unwrap_or(u32::MAX),
            ModbusPoint::ZoneCount { zone } => self.zone_counts.get(zone).copied().unwrap_or(0),
        }
    }
}
/// One client's service.
#[derive(Debug)]
struct Plc {
    shared: Arc<Shared>,
    peer: SocketAddr,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

fn bits(v: &[u32]) -> Vec<bool> {
    v.iter().map(|b| *b != 0).collect()
}

fn words(v: &[u32]) -> Vec<u16> {
    v.iter()
        .map(|w| u16::try_from(*w).unwrap_or(u16::MAX))
        .collect()
}

fn quantity(n: u16, max: u16) -> Result<u16, ExceptionCode> {
    if n == 0 || n > max {
        Err(ExceptionCode::IllegalDataValue)
    } else {
        Ok(n)
    }
}

impl tokio_modbus::server::Service for Plc {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Self::Request) -> Self::Future {
        let unit = req.slave;
        if unit != self.shared.cfg.unit_id && unit != 0 && unit != 255 {
            // Another unit behind a gateway: not us.
            return Box::pin(std::future::ready(Err(ExceptionCode::GatewayTargetDevice)));
        }
        let sh = &self.shared;
        let answer = match req.request {
            Request::ReadCoils(a, n) => quantity(n, MAX_BITS)
                .map(|n| Response::ReadCoils(bits(&sh.read(ModbusTable::Coil, a, n)))),
            Request::ReadDiscreteInputs(a, n) => quantity(n, MAX_BITS).map(|n| {
                Response::ReadDiscreteInputs(bits(&sh.read(ModbusTable::DiscreteInput, a, n)))
            }),
            Request::ReadInputRegisters(a, n) => quantity(n, MAX_REGISTERS).map(|n| {
                Response::ReadInputRegisters(words(&sh.read(ModbusTable::InputRegister, a, n)))
            }),
            Request::WriteSingleCoil(a, v) => {
                let (shared, peer) = (Arc::clone(&self.shared), self.peer);
                return Box::pin(async move {
                    write_coils(&shared, peer, a, &[v]).await?;
                    Ok(Response::WriteSingleCoil(a, v))
                });
            }
            Request::WriteMultipleCoils(a, v) => {
                let n = match u16::try_from(v.len()) {
                    Ok(n) if n > 0 && n <= MAX_WRITE_BITS => n,
                    _ => return Box::pin(std::future::ready(Err(ExceptionCode::IllegalDataValue))),
                };
                let (shared, peer, v) = (Arc::clone(&self.shared), self.peer, v.into_owned());
                return Box::pin(async move {
                    write_coils(&shared, peer, a, &v).await?;
                    Ok(Response::WriteMultipleCoils(a, n))
                });
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        Box::pin(std::future::ready(answer))
    }
}

/// Writes `values` to the coils from `address`: each must be writable.
async fn write_coils(
    sh: &Shared,
    peer: SocketAddr,
    address: u16,
    values: &[bool],
) -> Result<(), ExceptionCode> {
    let mut targets = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let a = u16::try_from(i)
            .ok()
            .and_then(|i| address.checked_add(i))
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        let target = if a == COIL_ACK_ALL {
            None
        } else {
            Some(
                sh.state
                    .interlocks
                    .by_coil(a)
                    .ok_or(ExceptionCode::IllegalDataAddress)?,
            )
        };
        targets.push((target, *v));
    }
    let by = format!("modbus {}", peer.ip());
    for (target, v) in targets {
        match target {
            Some(id) => {
                if let Some(change) = sh.state.interlocks.set(&id, v, &by) {
                    crate::audit(
                        &sh.state.storage,
                        "modbus",
                        peer.ip().to_string(),
                        "interlock.set",
                        format!("interlock/{id}"),
                        Some(change.before.as_str().to_owned()),
                        Some(change.after.as_str().to_owned()),
                    )
                    .await;
                }
            }
            None if v => {
                let n = sh.state.dispatcher.acknowledge_all(&by).await;
                tracing::info!(%peer, events = n, "alarms acknowledged through Modbus");
                crate::audit(
                    &sh.state.storage,
                    "modbus",
                    peer.ip().to_string(),
                    "alarm.acknowledge_all",
                    "alarms".to_owned(),
                    None,
                    Some(format!("{n} acknowledged")),
                )
                .await;
            }
            None => {}
        }
    }
    Ok(())
}

/// A client connection that errors after `idle` without a byte from the client, and
/// frees its connection slot when dropped.
struct Idle {
    inner: TcpStream,
    sleep: Pin<Box<Sleep>>,
    idle: Duration,
    shared: Arc<Shared>,
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "Modbus client idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The running server's address.
#[derive(Debug)]
pub struct ModbusServer {
    /// Where it listens.
    pub local_addr: SocketAddr,
}

/// Binds `cfg.bind` and serves until `stop` (on tasks of `tasks`).
pub async fn start(
    cfg: ModbusConfig,
    state: PlantState,
    stop: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<ModbusServer, ModbusError> {
    let listener = TcpListener::bind(cfg.bind)
        .await
        .map_err(|source| ModbusError::Bind {
            addr: cfg.bind,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ModbusError::Bind {
        addr: cfg.bind,
        source,
    })?;
    let shared = Arc::new(Shared {
        cfg,
        state,
        last_event: AtomicU64::new(0),
        connections: AtomicUsize::new(0),
    });
    tasks.spawn(follow_last_event(Arc::clone(&shared), stop.clone()));
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let sh = Arc::clone(&shared);
    tasks.spawn(async move {
        let on_connected = |stream: TcpStream, peer: SocketAddr| {
            let sh = Arc::clone(&sh);
            async move { Ok(accept(&sh, stream, peer)) }
        };
        let on_error = |e: io::Error| {
            tracing::debug!(error = %e, "Modbus client dropped");
        };
        match server
            .serve_until(&on_connected, on_error, stop.cancelled_owned())
            .await
        {
            Ok(_) => tracing::info!("Modbus server stopped"),
            Err(e) => tracing::error!(error = %e, "Modbus server failed: PLCs cannot read or write the box"),
        }
    });
    tracing::info!(modbus = %local_addr, "Modbus TCP server listening");
    Ok(ModbusServer { local_addr })
}

/// Accepts `peer` if allowed and a slot is free.
fn accept(sh: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> Option<(Plc, Idle)> {
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    if !sh.cfg.allow.iter().any(|n| n.contains(ip)) {
        tracing::warn!(%peer, "Modbus client refused: not in integrations.modbus.allow");
        return None;
    }
    let n = sh.connections.fetch_add(1, Ordering::Relaxed);
    if n >= sh.cfg.max_connections {
        sh.connections.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!(%peer, max = sh.cfg.max_connections, "Modbus client refused: too many connections");
        return None;
    }
    let _ = stream.set_nodelay(true);
    let idle = sh.cfg.idle_timeout;
    let conn = Idle {
        inner: stream,
        sleep: Box::pin(tokio::time::sleep(idle)),
        idle,
        shared: Arc::clone(sh),
    };
    Some((
        Plc {
            shared: Arc::clone(sh),
            peer,
        },
        conn,
    ))
}

/// Keeps the newest event id: from the store at start, then from each raised alarm.
async fn follow_last_event(sh: Arc<Shared>, stop: CancellationToken) {
    let mut notices = sh.state.dispatcher.subscribe();
    let newest = async {
        let store = loop {
            if let Some(s) = sh.state.storage.current() {
                break s;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let q = EventQuery {
            limit: 1,
            ..EventQuery::default()
        };
        match store.run(move |s| s.query_events(&q)).await {
            Ok(page) => {
                if let Some(e) = page.events.first() {
                    sh.last_event.fetch_max(e.id, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %safe_yolo_domain::error_chain(&e), "cannot read the newest event for Modbus")
            }
        }
    };
    tokio::pin!(newest);
    let mut looked = false;
    loop {
        tokio::select! {
            () = &mut newest, if !looked => looked = true,
            n = notices.recv() => match n {
                Ok(n) if n.kind == NoticeKind::Raised => {
                    sh.last_event.fetch_max(n.event_id, Ordering::Relaxed);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            () = stop.cancelled() => return,
        }
    }
}
