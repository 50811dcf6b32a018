//! `safe-yolo run`: start every subsystem, report READY, run until a signal,
//! then stop in the order that keeps the plant safe.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use safe_yolo_config::Config;
use safe_yolo_detect::{DetectError, LoadOptions};
use safe_yolo_pipeline::{DetectorFactory, Detectors, Pipeline};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio_util::sync::CancellationToken;

use safe_yolo_alarms::{Analysis, AnalysisInputs, Dispatcher, DispatcherConfig, InputRouting};
use safe_yolo_api::{ApiDeps, ApiSettings};

use crate::settings::{Layered, LiveSettings};

use crate::lifecycle::{self, Notifier};
use crate::stack::{Bound, Stack};
use crate::wiring;

/// Loads the configuration and runs the daemon until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = match safe_yolo_config::load(config_path, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            for p in e.problems() {
                tracing::error!(key = %p.path, reason = %p.reason, "configuration problem");
            }
            return Err(anyhow::Error::new(e).context(
                "refusing to start: fix the configuration (see `safe-yolo check-config`)",
            ));
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config_path.display(),
        cameras = config.cameras.len(),
        rules = config.rules.len(),
        "safe-yolo starting"
    );
    prepare_dirs(&config)?;
    // The file itself, as the base the API's edits are layered over.
    let file_text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let base_dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
    // Blocking pools are bounded (tokio's default is 512 threads each): the
    // unit's TasksMax is sized from these (README, "Resource budgets").
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .thread_name("safe-yolo-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The HTTPS API and live view run on a runtime of their own at a lower
    // CPU priority: a flood of requests slows the viewers, not the alarms.
    let api_nice = config.system.api_nice;
    let api_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("safe-yolo-api")
        .on_thread_start(move || {
            if let Err(e) = safe_yolo_pipeline::priority::set_thread_nice(api_nice) {
                tracing::warn!(error = %e, "API thread keeps the default priority");
            }
        })
        .enable_all()
        .build()
        .context("cannot start the API runtime")?;
    let config_file =
        std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let result = runtime.block_on(run_async(Boot {
        config,
        file_text,
        base_dir,
        config_path: config_file,
        api_runtime: api_runtime.handle().clone(),
    }));
    api_runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Creates the state directory (private to the daemon's user) and the
/// directory of the simulated-output log.
fn prepare_dirs(config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let state = &config.storage.state_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .with_context(|| format!("cannot create the state directory {}", state.display()))?;
    let mode = std::fs::metadata(state)
        .with_context(|| format!("cannot read {}", state.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %state.display(), mode = format!("{:o}", mode & 0o777), "state directory is readable by others");
    }
    if let Some(log) = &config.outputs.sim_log
        && let Some(parent) = log.parent()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(())
}

/// What [`run`] hands the async part: the validated configuration and the
/// file it came from (the base the API's edits are layered over).
struct Boot {
    config: Config,
    file_text: String,
    base_dir: PathBuf,
    config_path: PathBuf,
    api_runtime: tokio::runtime::Handle,
}

/// Starts the appliance, reports READY, runs until SIGTERM/SIGINT, then
/// unwinds what started (a failed start unwinds the same way).
async fn run_async(boot: Boot) -> anyhow::Result<()> {
    let notifier = Notifier::from_env();
    // Start listening for signals first: a SIGTERM during start-up must
    // still lead to an orderly stop.
    let signal = tokio::spawn(lifecycle::termination_signal());
    let budget = boot.config.system.shutdown_timeout;
    let shutdown = CancellationToken::new();
    let mut stack = Stack::new();
    let result = match start(boot, &notifier, &shutdown, &mut stack).await {
        Ok(status) => {
            notifier.ready(&status);
            tracing::info!(%status, "safe-yolo ready");
            match signal.await {
                Ok(Ok(which)) => {
                    tracing::info!(signal = which, "shutting down");
                    Ok(())
                }
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("cannot install signal handlers")),
                Err(e) => Err(anyhow::Error::new(e).context("signal task failed")),
            }
        }
        Err(e) => Err(e),
    };
    notifier.stopping();
    shutdown.cancel();
    let late: Vec<&str> = stack
        .unwind(budget)
        .await
        .into_iter()
        .filter(|s| !s.in_time)
        .map(|s| s.name)
        .collect();
    if late.is_empty() {
        tracing::info!("safe-yolo stopped");
    } else {
        tracing::warn!(?late, "safe-yolo stopped; these did not stop in time");
    }
    result
}

/// How long the store may take to commit what is queued at shutdown, besides
/// the shutdown budget.
const STORE_CLOSE: Duration = Duration::from_secs(2);
/// How long open API connections get to close.
const API_CLOSE: Duration = Duration::from_secs(1);

/// Starts every subsystem in order, pushing each one's stop on `stack` as it
/// runs. Returns the status line READY reports.
async fn start(
    boot: Boot,
    notifier: &Notifier,
    shutdown: &CancellationToken,
    stack: &mut Stack,
) -> anyhow::Result<String> {
    let Boot {
        config,
        file_text,
        base_dir,
        config_path,
        api_runtime,
    } = boot;
    let liveness = Liveness::new();
    let metrics = Metrics::new();
    let board = check_board(&config).await?;
    // One capture sandbox (with the board's video decoders) for the pipeline and
    // the API's previews.
    let policy = wiring::source_policy(&config, board.as_ref());

    // Outputs first, so every line is in its safe state before anything can
    // raise an alarm; they stop last, whatever else is slow.
    let outputs = wiring::start_outputs(&config, &metrics)
        .await
        .context("cannot start the outputs")?;
    let lines = outputs.handle().clone();
    let health = outputs.health_callback();
    stack.push("outputs", Bound::Always, outputs.shutdown());

    // Storage degrades, the safety path does not: an unavailable store is no
    // reason to stop (its events wait in memory until it opens).
    let store = wiring::start_store(&config, &metrics).await;
    // The file with the edits stored through the API: cameras, zones and rules
    // start as the operator left them.
    let (layered, config) = layer_stored_edits(
        &store,
        LiveSettingsBase {
            file_text,
            base_dir,
            config,
        },
    )
    .await;
    let dispatcher = Dispatcher::new(
        store.clone(),
        lines.clone(),
        DispatcherConfig::from_config(&config),
        metrics.clone(),
    );
    stack.push(
        "store",
        Bound::Own(STORE_CLOSE),
        close_store(store.clone(), dispatcher.clone()),
    );

    let budget = config.system.shutdown_timeout;
    // Detector processes down now (crashed, restarting): while any is, the box
    // is blind and says so on the healthy line.
    let (detectors_down, down) = tokio::sync::watch::channel(0usize);
    let (pipeline, detected) = start_pipeline(
        &config,
        policy.clone(),
        &liveness,
        &metrics,
        &detectors_down,
        shutdown,
    )
    .await?;
    let taps = pipeline.taps();
    let ppe = pipeline.ppe_switch();
    let cameras = pipeline.cameras();
    stack.push("pipeline", Bound::Budget, async move {
        let stuck = pipeline
            .stop(budget.saturating_sub(Duration::from_millis(500)))
            .await;
        if !stuck.is_empty() {
            tracing::warn!(threads = ?stuck, "pipeline threads did not stop in time");
        }
    });
    // Without a camera the box runs (API, web UI, output tests) but guards
    // nothing: the healthy line stays off so a PLC sees "not guarding". This
    // follows cameras added and removed through the API.
    let watched = taps.current().len();
    follow_guarding(&lines, &metrics, watched, 0)
        .await
        .context("cannot start the outputs")?;
    stack.push_task(
        "guarding",
        tokio::spawn(keep_following_guarding(
            taps.clone(),
            down.clone(),
            lines.clone(),
            metrics.clone(),
        )),
    );

    // Interlocks start unknown (armed) at every start: their sources say them again.
    let interlocks = safe_yolo_alarms::Interlocks::new(&config.integrations.interlocks);
    let inputs = InputRouting::start(
        &lines,
        dispatcher.clone(),
        interlocks.clone(),
        store.clone(),
    );
    let door = inputs.door();
    stack.push("inputs", Bound::Budget, inputs.stop());
    let analysis = Analysis::start(
        config.rule_specs(),
        config.zone_specs(),
        AnalysisInputs {
            frames: detected,
            taps: taps.clone(),
            ppe,
            door,
            detectors_down: down,
            tracker: tracker_settings(&config)?,
            interlocks: interlocks.watch(),
        },
        dispatcher.clone(),
        &liveness,
        &metrics,
        shutdown.clone(),
    )
    .context("cannot start the rules")?;
    let rules = analysis.control();
    stack.push("analysis", Bound::Budget, analysis.stop());

    // Plant integrations read the outbox on tasks of their own: nothing above
    // waits for them, and they stop before the store closes.
    let integrations = safe_yolo_integrations::LiveIntegrations::start(
        &config.integrations,
        safe_yolo_integrations::Wiring {
            box_name: wiring::box_name(&config),
            public_url: config.integrations.public_url.clone(),
            storage: store.clone(),
            sources: safe_yolo_integrations::Sources {
                cameras: taps.clone(),
                outputs: lines.watch_status(),
                dispatcher: dispatcher.clone(),
                interlocks: interlocks.clone(),
            },
            modbus_error: Arc::new(tokio::sync::watch::Sender::new(None)),
        },
    );
    let plant = crate::settings::Plant {
        interlocks: interlocks.clone(),
        integrations: integrations.restarts(),
    };
    stack.push("integrations", Bound::Budget, integrations.stop());

    let live = LiveSettings::new(layered, rules, dispatcher.clone(), cameras.clone(), plant);
    let deps = ApiDeps {
        store,
        alarms: dispatcher,
        outputs: lines,
        cameras: taps,
        metrics: metrics.clone(),
        control: Arc::new(live),
        source_policy: policy.clone(),
        sources: wiring::camera_sources(policy),
        interlocks,
    };
    let mut api = api_runtime
        .spawn(safe_yolo_api::serve(
            api_settings(&config, config_path),
            deps,
            shutdown.clone(),
        ))
        .await
        .context("API start-up panicked")?
        // Configuration and state-directory problems (key, certificate, an address
        // this host cannot bind) stop the start; a busy port does not (retried).
        .context("cannot start the HTTPS API")?;
    // A busy port does not stop the box: the API listens once it is free.
    let rules_running = config.rules.len();
    let api_port = config.api.bind.port();
    let status_line = move |https: Option<std::net::SocketAddr>| {
        let api_at = https.map_or_else(
            || format!("API not listening yet (port {api_port} busy; retrying)"),
            |a| format!("https://{a}"),
        );
        match (watched, https) {
            (0, Some(_)) => format!("NOT GUARDING: no camera configured; add one at {api_at}"),
            (0, None) => format!("NOT GUARDING: no camera configured; {api_at}"),
            _ => format!("running: {watched} camera(s), {rules_running} rule(s), {api_at}"),
        }
    };
    if let Some(addr) = api.https_addr {
        tracing::info!(https = %addr, redirect = ?api.http_redirect_addr, "HTTPS API listening");
    }
    let status = status_line(api.https_addr);
    if !api.pending.is_empty() {
        let ports: Vec<u16> = api.pending.iter().map(std::net::SocketAddr::port).collect();
        tracing::warn!(
            ?ports,
            "API not listening yet: ports busy, retried in the background; cameras, rules and outputs run meanwhile"
        );
    }
    if let Some(late) = api.late_https.take() {
        let notifier = notifier.clone();
        stack.push_task(
            "api-status",
            tokio::spawn(async move {
                if let Ok(addr) = late.await {
                    tracing::info!(https = %addr, "HTTPS API listening (its port was busy at start)");
                    notifier.status(&status_line(Some(addr)));
                }
            }),
        );
    }
    stack.push("api", Bound::Budget, async move {
        if tokio::time::timeout(API_CLOSE, api.join()).await.is_err() {
            tracing::warn!("API connections did not close in time");
        }
    });

    stack.push_task(
        "monitor",
        tokio::spawn(lifecycle::monitor(
            notifier.clone(),
            liveness,
            metrics.clone(),
            config.system.stall_timeout,
            health,
            shutdown.clone(),
        )),
    );
    stack.push_task("stats", tokio::spawn(log_stats(metrics, cameras)));
    Ok(status)
}

/// The board profile, checked against the hardware actually present: a
/// mismatch of the outputs' GPIO or the accelerator stops the start, a missing
/// camera or thermal zone is logged as a warning (`safe_yolo_board::hardware`).
/// Returns the profile (none when the configuration names no board).
async fn check_board(config: &Config) -> anyhow::Result<Option<safe_yolo_board::profile::Profile>> {
    let Some(board) = config.system.board.clone() else {
        return Ok(None);
    };
    let dir = config.system.board_dir.clone();
    let (profile, report) = tokio::task::spawn_blocking(move || {
        let profile = safe_yolo_board::profile::load_named(&dir, &board)?;
        let report = safe_yolo_board::check_hardware(&profile).map_err(anyhow::Error::new)?;
        anyhow::Ok((profile, report))
    })
    .await
    .context("board check panicked")?
    .context("the board does not match its profile")?;
    // Cameras and thermal zones only warn: one unplugged camera must not take
    // the alarms of the others with it (the pipeline shows it offline).
    for w in &report.warnings {
        tracing::warn!(board = %report.board, key = %w.path, reason = %w.reason, "board profile: not as expected here (the box starts anyway)");
    }
    tracing::info!(board = ?report, "board profile matches the hardware");
    Ok(Some(profile))
}

/// Loads the models and starts the cameras (off the reactor: model loading blocks).
async fn start_pipeline(
    config: &Config,
    policy: safe_yolo_capture::SourcePolicy,
    liveness: &Liveness,
    metrics: &Metrics,
    detectors_down: &tokio::sync::watch::Sender<usize>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(
    Pipeline,
    tokio::sync::mpsc::Receiver<safe_yolo_pipeline::DetectedFrame>,
)> {
    let pipeline_config = wiring::pipeline_config(config, policy);
    let factory = detector_factory(config, metrics, detectors_down);
    let (liveness, metrics, shutdown) = (liveness.clone(), metrics.clone(), shutdown.clone());
    tokio::task::spawn_blocking(move || {
        Pipeline::start(pipeline_config, factory, &liveness, &metrics, shutdown)
    })
    .await
    .context("pipeline start-up panicked")?
    .context("cannot start the pipeline")
}

/// Lets the store commit what is queued, then closes it: the dispatcher's and
/// this handle are the last ones once everything above has stopped.
async fn close_store(store: safe_yolo_store::Storage, dispatcher: Dispatcher) {
    drop(dispatcher);
    store.close().await;
}

/// The file's text and where it lives, for the live settings.
struct LiveSettingsBase {
    file_text: String,
    base_dir: PathBuf,
    config: Config,
}

/// Settings edited through the API, layered over the file: the effective
/// configuration everything starts from.
async fn layer_stored_edits(
    store: &safe_yolo_store::Storage,
    base: LiveSettingsBase,
) -> (Layered, Config) {
    // Without the store, or when its settings cannot be read, the file's
    // settings run: the safety path does not wait for storage.
    let stored = match store.current() {
        Some(h) => match h.run(|s| s.list_settings(None)).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(
                    error = %safe_yolo_domain::error_chain(&e),
                    "cannot read the settings stored through the API: the configuration file's cameras, zones and rules run; the edits apply at the next start that reads them"
                );
                Vec::new()
            }
        },
        None => {
            tracing::error!(
                "the store is not available: the cameras, rules and zones edited through the API are not applied, the configuration file's are; they apply at the next start with the store"
            );
            Vec::new()
        }
    };
    let stored: Vec<_> = stored.into_iter().map(|d| (d.kind, d.id, d.doc)).collect();
    let edits = stored.len();
    let (layered, effective) = Layered::new(
        base.file_text,
        base.base_dir,
        std::env::vars().collect(),
        base.config,
        stored,
    );
    if edits > 0 {
        tracing::info!(
            edits,
            cameras = effective.cameras.len(),
            rules = effective.rules.len(),
            zones = effective.zones.len(),
            "settings stored through the API laid over the file"
        );
    }
    (layered, effective)
}

/// Tells the outputs and the metrics whether the box guards: at least one
/// camera watched and every detector process up (a box whose detector is down
/// captures but is blind: the healthy line goes off).
async fn follow_guarding(
    lines: &safe_yolo_outputs::OutputsHandle,
    metrics: &Metrics,
    watched: usize,
    detectors_down: usize,
) -> Result<(), safe_yolo_outputs::OutputsError> {
    metrics
        .cameras_watched
        .set(i64::try_from(watched).unwrap_or(i64::MAX));
    metrics
        .detectors_down
        .set(i64::try_from(detectors_down).unwrap_or(i64::MAX));
    lines.set_guarding(watched > 0 && detectors_down == 0).await
}

/// Follows cameras added and removed at run time, and detector processes going
/// down and coming back (see [`follow_guarding`]).
async fn keep_following_guarding(
    mut taps: safe_yolo_pipeline::CameraTaps,
    mut down: tokio::sync::watch::Receiver<usize>,
    lines: safe_yolo_outputs::OutputsHandle,
    metrics: Metrics,
) {
    let mut watched = taps.current().len();
    let mut down_live = true;
    loop {
        tokio::select! {
            changed = taps.changed() => {
                if !changed {
                    break;
                }
                watched = taps.seen().len();
                if watched == 0 {
                    tracing::warn!("NOT GUARDING: no camera is watched any more");
                }
            }
            changed = down.changed(), if down_live => {
                if changed.is_err() {
                    down_live = false;
                    continue;
                }
            }
        }
        let detectors_down = *down.borrow_and_update();
        if detectors_down > 0 {
            tracing::warn!(
                detectors_down,
                "NOT GUARDING: a detector process is down; the cameras are blind until it restarts"
            );
        }
        if let Err(e) = follow_guarding(&lines, &metrics, watched, detectors_down).await {
            tracing::error!(error = %e, "cannot tell the outputs whether the box guards");
        }
    }
}

/// The API's settings from the configuration.
fn api_settings(config: &Config, config_path: PathBuf) -> ApiSettings {
    let mut api = ApiSettings::new(config.api.clone(), config.storage.state_dir.clone());
    api.model = config.detector.model.display().to_string();
    api.web_ui = config.features.web_ui;
    api.live_stream = config.features.live_stream;
    api.config_path = Some(config_path);
    api.auth.rate_limit = safe_yolo_api::RateLimit {
        per_second: f64::from(config.api.rate_limit_per_s),
        burst: config.api.rate_limit_burst,
    };
    api.auth.hashes.max_concurrent = config.api.max_password_hashes;
    api.modbus = config.integrations.modbus.clone();
    api.interlocks = config.integrations.interlocks.clone();
    api
}

/// How often per-camera throughput is logged.
const STATS_EVERY: Duration = Duration::from_secs(30);

/// Logs each camera's capture and detect rates every [`STATS_EVERY`], for
/// operators reading the journal (the same figures are in `/metrics`), and
/// warns when the detector does not keep up with what a camera asks.
async fn log_stats(metrics: Metrics, cameras: safe_yolo_pipeline::Cameras) {
    let mut last: std::collections::HashMap<String, (u64, u64)> = Default::default();
    let mut ticker = tokio::time::interval(STATS_EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let secs = STATS_EVERY.as_secs_f64();
        let running: Vec<(String, u32)> = cameras
            .specs()
            .iter()
            .map(|c| (c.id.to_string(), c.detect_every))
            .collect();
        last.retain(|id, _| running.iter().any(|(c, _)| c == id));
        for (cam, every) in &running {
            let prev = last.entry(cam.clone()).or_default();
            let captured = metrics
                .frames_captured
                .get_or_create(&Metrics::camera(cam))
                .get();
            let detected = metrics
                .frames_detected
                .get_or_create(&Metrics::camera(cam))
                .get();
            #[allow(
                clippy::cast_precision_loss,
                reason = "frame counts stay far below 2^52"
            )]
            let (capture_fps, detect_fps) = (
                captured.saturating_sub(prev.0) as f64 / secs,
                detected.saturating_sub(prev.1) as f64 / secs,
            );
            tracing::info!(camera = %cam, captured, capture_fps, detected, detect_fps, "pipeline stats");
            // Not in the first window: it includes loading the models.
            if prev.0 > 0
                && let Some(asked) = detector_behind(capture_fps, detect_fps, *every)
            {
                tracing::warn!(
                    camera = %cam,
                    asked_fps = asked,
                    detect_fps,
                    "the detector does not keep up with this camera: its frames wait for a worker (up to a frame interval) and it is detected less often than detect_every asks; raise detect_every, add detect_workers or use a faster backend"
                );
            }
            *prev = (captured, detected);
        }
    }
}

/// The detection rate a camera asks for (`capture_fps / detect_every`) when
/// the detector serves it less than 90 % of that, else `None`.
fn detector_behind(capture_fps: f64, detect_fps: f64, every: u32) -> Option<f64> {
    let asked = capture_fps / f64::from(every.max(1));
    (asked > 0.0 && detect_fps < 0.9 * asked).then_some(asked)
}

/// The tracker settings the person model's manifest calibrates. A manifest
/// that cannot be read leaves the defaults (the detector reports that
/// fault itself and the box stays up); an invalid `[tracking]` section stops
/// the start, naming the field.
fn tracker_settings(config: &Config) -> anyhow::Result<safe_yolo_rules::TrackerConfig> {
    let path = &config.detector.model;
    match safe_yolo_detect::Manifest::from_path(path) {
        Ok(m) => wiring::tracker_config(&m)
            .with_context(|| format!("the [tracking] section of {} is invalid", path.display())),
        Err(e) => {
            tracing::warn!(manifest = %path.display(), error = %e, "default tracker settings");
            Ok(safe_yolo_rules::TrackerConfig::default())
        }
    }
}

/// How long the model may take to load in a detector process.
pub(crate) const MODEL_LOAD: Duration = Duration::from_secs(120);

/// Loads `manifest` with `opts`: in a supervised child process (the default,
/// `detector.isolation = "process"`), or on the calling worker thread.
pub(crate) fn model_loader(
    config: &Config,
    role: &'static str,
    manifest: PathBuf,
    opts: LoadOptions,
    metrics: &Metrics,
    down: &tokio::sync::watch::Sender<usize>,
) -> impl Fn() -> Result<Box<dyn safe_yolo_detect::Detector>, DetectError> + Send + Sync + 'static {
    let isolation = config.detector.isolation;
    // A frame's answer must come well within the stall timeout: the worker's
    // heartbeat waits with it.
    let max_wait = config.system.stall_timeout * 3 / 4;
    let metrics = metrics.clone();
    let down = down.clone();
    let mut sandbox_args: Vec<std::ffi::OsString> = Vec::new();
    if config.detector.sandbox {
        for d in &config.detector.devices {
            sandbox_args.push("--device".into());
            sandbox_args.push(d.clone().into());
        }
    } else {
        sandbox_args.push("--no-sandbox".into());
    }
    let scratch_root = detector_scratch_root();
    move || match isolation {
        safe_yolo_config::Isolation::Thread => safe_yolo_detect::load(&manifest, &opts),
        safe_yolo_config::Isolation::Process => {
            let program = std::env::current_exe().map_err(|source| {
                DetectError::Process(safe_yolo_detect::process::ProcessError::Spawn {
                    program: PathBuf::from("/proc/self/exe"),
                    source,
                })
            })?;
            let options = serde_json::to_string(&opts).map_err(|e| {
                DetectError::Process(safe_yolo_detect::process::ProcessError::Protocol {
                    reason: format!("the load options do not encode: {e}"),
                })
            })?;
            let (m, down) = (metrics.clone(), down.clone());
            let spec = safe_yolo_detect::process::ChildSpec {
                model: role.to_owned(),
                program,
                args: vec![
                    "detector-worker".into(),
                    "--manifest".into(),
                    manifest.clone().into(),
                    "--options".into(),
                    options.into(),
                ]
                .into_iter()
                .chain(sandbox_args.iter().cloned())
                .collect(),
                max_wait,
                load_timeout: MODEL_LOAD,
                scratch_root: scratch_root.clone(),
                events: Arc::new(move |event| match event {
                    // Each detector counts once in the outage, however many
                    // restarts fail during it.
                    safe_yolo_detect::process::ChildEvent::Fault { outage_begins, .. } => {
                        m.detector_faults.inc();
                        if outage_begins {
                            down.send_modify(|n| *n += 1);
                        }
                    }
                    safe_yolo_detect::process::ChildEvent::Recovered { .. } => {
                        down.send_modify(|n| *n = n.saturating_sub(1));
                    }
                }),
            };
            safe_yolo_detect::process::ProcessDetector::start(spec)
                .map(|d| Box::new(d) as Box<dyn safe_yolo_detect::Detector>)
        }
    }
}

/// Where the detector processes' scratch directories go: the service's runtime
/// directory (systemd's `RuntimeDirectory=`, a tmpfs), else the temporary one.
fn detector_scratch_root() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| {
            std::env::split_paths(&dirs)
                .next()
                .filter(|d| d.is_absolute())
        })
        .unwrap_or_else(std::env::temp_dir)
}

fn detector_factory(
    config: &Config,
    metrics: &Metrics,
    down: &tokio::sync::watch::Sender<usize>,
) -> Detectors {
    let opts = crate::detect_cmd::load_options(&config.detector);
    let ppe = config.detector.ppe_model.clone().map(|manifest| {
        // The PPE model keeps its own classes and thresholds: the main
        // detector's class filter and score override are about persons.
        let opts = LoadOptions {
            classes: None,
            score_threshold: None,
            ..crate::detect_cmd::load_options(&config.detector)
        };
        let wanted = ppe_classes(config);
        let load = model_loader(config, "ppe", manifest, opts, metrics, down);
        let factory: DetectorFactory = Arc::new(move || {
            let d = load()?;
            // A missing-PPE rule naming a class the model never outputs
            // would never fire: refuse to start instead.
            let known = &d.info().classes;
            if let Some(name) = wanted.iter().find(|w| !known.iter().any(|k| **k == ***w)) {
                return Err(DetectError::UnknownClass {
                    name: name.clone(),
                    field: "rules.ppe_present_class / rules.ppe_missing_class",
                    known: known.join(", "),
                });
            }
            tracing::info!(model = ?d.info(), "PPE model loaded");
            Ok(d)
        });
        factory
    });
    let load = model_loader(
        config,
        "main",
        config.detector.model.clone(),
        opts,
        metrics,
        down,
    );
    Detectors {
        main: Arc::new(move || {
            let d = load()?;
            tracing::info!(model = ?d.info(), "detector loaded");
            Ok(d)
        }),
        ppe,
    }
}

/// The PPE class names the configured missing-PPE rules rely on.
fn ppe_classes(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .rules
        .iter()
        .filter_map(|r| match &r.kind {
            safe_yolo_config::RuleKind::MissingPpe(p) => Some(
                (p.present_classes.iter().chain(&p.absent_classes))
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::detector_behind;

    #[test]
    fn a_camera_is_behind_below_nine_tenths_of_what_it_asks() {
        // 10 fps, every 2nd frame: 5/s asked.
        assert_eq!(detector_behind(10.0, 5.0, 2), None);
        assert_eq!(detector_behind(10.0, 4.5, 2), None);
        assert_eq!(detector_behind(10.0, 4.4, 2), Some(5.0));
        assert_eq!(detector_behind(10.0, 3.3, 2), Some(5.0));
        // An offline camera asks nothing.
        assert_eq!(detector_behind(0.0, 0.0, 2), None);
        assert_eq!(detector_behind(10.0, 10.0, 1), None);
    }
}
