//! Plant integrations: the store's durable outbox ([`safe_yolo_store::outbox`]) delivered
//! to an MQTT broker and to signed HTTPS webhooks, each in order and at least once.
//!
//! Nothing here is on the safety path. The dispatcher and the store write the outbox
//! entries with their records; the sinks read them on tasks of their own and only ever
//! wait for their own network. A broker that is down, slow or refusing costs the box a
//! bounded backlog in the store, never an alarm.
//!
//! [`Integrations::start`] registers the configured sinks with the store (once it is
//! open: a new sink starts at the head, a removed one loses its cursor), starts one
//! delivery task per sink ([`deliver::run`]) and two followers that turn camera health
//! changes and output changes into outbox entries ([`follow`]).
//!
//! [`LiveIntegrations`] keeps them running across edits of the integration settings:
//! each new configuration stops the running integrations (the MQTT `status` goes
//! `offline`, the Modbus port is released) and starts them again with it, one
//! restart after the other, on the runtime; the caller never waits.
#![forbid(unsafe_code)]

pub mod deliver;
pub mod discovery;
pub mod follow;
pub mod message;
pub mod modbus;
pub mod mqtt;
pub mod mqtt_interlocks;
pub mod tls;
pub mod webhook;

use safe_yolo_alarms::{Dispatcher, Interlocks};
use safe_yolo_config::IntegrationsConfig;
use safe_yolo_outputs::OutputsStatus;
use safe_yolo_pipeline::CameraTaps;
use safe_yolo_store::Storage;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use deliver::{Sink, SinkError};
pub use mqtt::MqttSink;
pub use webhook::WebhookSink;

/// What the integrations follow besides the outbox.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The running cameras (their health).
    pub cameras: CameraTaps,
    /// The outputs' status (which lines an alarm drives).
    pub outputs: watch::Receiver<OutputsStatus>,
    /// The alarms (raised, rules, zones, the acknowledge path), for Modbus.
    pub dispatcher: Dispatcher,
    /// The interlocks their sources (Modbus coils, MQTT topics) set.
    pub interlocks: Interlocks,
}

/// The running integrations.
#[derive(Debug)]
pub struct Integrations {
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What every start of the integrations is given besides their settings.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Names the box in topics and messages.
    pub box_name: String,
    /// The API's address as the plant reaches it (snapshot URLs).
    pub public_url: Option<String>,
    /// The store (the outbox, the cursors, the audit).
    pub storage: Storage,
    /// What they follow besides the outbox.
    pub sources: Sources,
    /// Why the Modbus server does not run, if it does not (read through
    /// [`IntegrationsRestart::modbus_error`]).
    pub modbus_error: std::sync::Arc<watch::Sender<Option<String>>>,
}

impl Integrations {
    /// Starts the configured sinks.
    pub fn start(config: &IntegrationsConfig, wiring: Wiring) -> Self {
        let Wiring {
            box_name,
            public_url,
            storage,
            sources,
            modbus_error,
        } = wiring;
        modbus_error.send_replace(None);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let ids: discovery::IdsFn = {
            let (cameras, dispatcher, outputs) = (
                sources.cameras.clone(),
                sources.dispatcher.clone(),
                sources.outputs.clone(),
            );
            std::sync::Arc::new(move || {
                let mut ids = discovery::DiscoveryIds {
                    cameras: cameras.current().iter().map(|t| t.id.clone()).collect(),
                    zones: dispatcher.zone_ids(),
                    outputs: outputs
                        .borrow()
                        .driver
                        .outputs
                        .iter()
                        .map(|o| o.id.clone())
                        .collect(),
                };
                ids.cameras.sort();
                ids.zones.sort();
                ids
            })
        };
        let mqtt = config
            .mqtt
            .clone()
            .map(|m| MqttSink::new(m, box_name.clone(), public_url.clone()).with_discovery(ids));
        let hooks: Vec<WebhookSink> = config
            .webhooks
            .iter()
            .map(|w| WebhookSink::new(w.clone(), box_name.clone(), public_url.clone()))
            .collect();
        let names: Vec<String> = mqtt
            .iter()
            .map(|_| mqtt::SINK_NAME.to_owned())
            .chain(hooks.iter().map(|h| h.name().to_owned()))
            .collect();
        let any = !names.is_empty();
        {
            let (storage, stop, inner) = (storage.clone(), stop.clone(), tasks.clone());
            tasks.spawn(async move {
                // Registered once the store is open (it may open late).
                let store = loop {
                    if let Some(h) = storage.current() {
                        break h;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        () = stop.cancelled() => return,
                    }
                };
                let n = names.clone();
                if let Err(e) = store.run(move |s| s.register_outbox_sinks(&n)).await {
                    tracing::error!(error = %safe_yolo_domain::error_chain(&e), "cannot register the integrations with the store: they do not deliver");
                    return;
                }
                if let Some(sink) = mqtt {
                    inner.spawn(deliver::run(sink, storage.clone(), stop.clone()));
                }
                for hook in hooks {
                    inner.spawn(deliver::run(hook, storage.clone(), stop.clone()));
                }
            });
        }
        tasks.spawn(sources.interlocks.clone().run_expiry(stop.clone()));
        if let Some(m) = config.mqtt.clone() {
            tasks.spawn(mqtt_interlocks::run(
                m,
                sources.interlocks.clone(),
                storage.clone(),
                stop.clone(),
            ));
        }
        if let Some(cfg) = config.modbus.clone() {
            let state = modbus::PlantState {
                dispatcher: sources.dispatcher.clone(),
                interlocks: sources.interlocks.clone(),
                cameras: sources.cameras.clone(),
                outputs: sources.outputs.clone(),
                storage: storage.clone(),
            };
            let (stop, inner) = (stop.clone(), tasks.clone());
            tasks.spawn(async move {
                if let Err(e) = modbus::start(cfg, state, stop, &inner).await {
                    let why = safe_yolo_domain::error_chain(&e).to_string();
                    tracing::error!(error = %why, "the Modbus server does not run: PLCs cannot read or write the box (alarms and outputs run)");
                    modbus_error.send_replace(Some(why));
                }
            });
        }
        if config.mqtt.is_some() {
            tasks.spawn(follow::zone_counts(
                sources.cameras.clone(),
                sources.dispatcher.clone(),
                storage.clone(),
                stop.clone(),
            ));
        }
        if any {
            tasks.spawn(follow::camera_health(
                sources.cameras,
                storage.clone(),
                stop.clone(),
            ));
            tasks.spawn(follow::outputs(sources.outputs, storage, stop.clone()));
        }
        tasks.close();
        Self { stop, tasks }
    }

    /// Stops every sink (each says goodbye to its broker, briefly) and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }
}

/// The integrations, restarted with new settings while the daemon runs.
#[derive(Debug)]
pub struct LiveIntegrations {
    restarts: IntegrationsRestart,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

/// Asks the running integrations to restart with new settings (cheap to clone).
#[derive(Debug, Clone)]
pub struct IntegrationsRestart(
    tokio::sync::mpsc::UnboundedSender<IntegrationsConfig>,
    watch::Receiver<Option<String>>,
);

impl IntegrationsRestart {
    /// Why the Modbus server of the running settings does not run, if it does not.
    pub fn modbus_error(&self) -> Option<String> {
        self.1.borrow().clone()
    }

    /// Restarts the integrations with `config`, after the restarts asked before it;
    /// returns at once (a call from a blocking thread is fine). A restart asked
    /// after the stop is dropped.
    pub fn restart(&self, config: IntegrationsConfig) {
        if self.0.send(config).is_err() {
            tracing::warn!(
                "the integrations are stopped: their new settings apply at the next start"
            );
        }
    }
}

impl LiveIntegrations {
    /// Starts the integrations of `config` (see [`Integrations::start`]) and a worker
    /// that restarts them on request. Call it on the runtime they run on.
    pub fn start(config: &IntegrationsConfig, wiring: Wiring) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<IntegrationsConfig>();
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        let errors = wiring.modbus_error.subscribe();
        let mut running = Integrations::start(config, wiring.clone());
        let worker = tokio::spawn(async move {
            loop {
                let config = tokio::select! {
                    Some(c) = rx.recv() => c,
                    () = cancelled.cancelled() => break,
                };
                running.stop().await;
                tracing::info!(
                    mqtt = config.mqtt.is_some(),
                    webhooks = config.webhooks.len(),
                    modbus = config.modbus.is_some(),
                    interlocks = config.interlocks.len(),
                    "integrations restarted with new settings"
                );
                running = Integrations::start(&config, wiring.clone());
            }
            running.stop().await;
        });
        Self {
            restarts: IntegrationsRestart(tx, errors),
            stop,
            worker,
        }
    }

    /// The handle that restarts them.
    pub fn restarts(&self) -> IntegrationsRestart {
        self.restarts.clone()
    }

    /// Stops the integrations (a restart under way finishes first) and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.worker.await {
            tracing::error!(error = %e, "the integrations' worker failed");
        }
    }
}

/// Records an audit row for a change a plant system made (best effort: the change
/// took effect; a closed store or a failed write is logged).
#[allow(clippy::too_many_arguments, reason = "the audit row's columns")]
pub(crate) async fn audit(
    storage: &Storage,
    actor: &str,
    source: String,
    action: &str,
    target: String,
    before: Option<String>,
    after: Option<String>,
) {
    let row = safe_yolo_store::NewAudit {
        at: safe_yolo_store::now_ms(),
        actor: actor.to_owned(),
        role: None,
        source: Some(source),
        action: action.to_owned(),
        target,
        before,
        after,
        result: safe_yolo_store::AuditResult::Ok,
    };
    storage.audit_best_effort(row).await;
}
