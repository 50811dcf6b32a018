//! `safe-yolo bench`: measures the real frame pipeline on the configured
//! cameras with the real detector, without the API, rules or outputs.
//!
//! What runs is what `safe-yolo run` runs (capture, decode, the shared
//! detector pool, bounded drop-oldest queues), plus a viewer on every
//! camera's live stream served by the API's own live hub (the camera's JPEG
//! forwarded, or encoded at quality 75 for a camera that delivers raw
//! pixels; `--no-viewers` leaves them out). The detector is wrapped so its
//! three stages are timed apart: the pipeline's overhead is everything except
//! the inference itself.
//!
//! **The ceiling, in the same run.** Before the cameras start, the configured
//! detector runs alone (`--bare-seconds`, 10 by default): the same workers,
//! threads, model and isolation, each worker detecting a decoded still (the
//! first camera's first frame, decoded as the pipeline decodes it) as fast as
//! it can. `bare_detect_per_s` is what the detector can do on this box; the
//! pipeline's `total.detect_fps` over it says how much of that the cameras get.
//!
//! Figures cover a window that starts after a warm-up: frame rates and drops
//! come from the pipeline's own counters (deltas over the window), stage
//! times and latencies from the frames that came out during the window,
//! memory from `/proc/self/status`, CPU time from `/proc` (per thread, so the
//! detect workers' share is told apart from the rest of the process).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use safe_yolo_api::live::LiveHub;
use safe_yolo_capture::Picture;
use safe_yolo_config::Config;
use safe_yolo_detect::{DetectError, Detector, Manifest, ModelDetector, ModelInfo};
use safe_yolo_domain::{Detection, RgbFrame};
use safe_yolo_pipeline::{DetectedFrame, DetectorFactory, Pipeline, PipelineConfig};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cli::{BenchArgs, LogFormatArg};
use crate::report;

/// JPEG quality the simulated viewers ask for (the API's default; only a
/// camera that delivers raw pixels is encoded).
const STREAM_QUALITY: u8 = 75;

/// Queues whose drops the pipeline counts, per camera.
const DROP_STAGES: [&str; 5] = [
    "raw_queue",
    "decode_error",
    "detect_queue",
    "detect_error",
    "analysis_queue",
];

/// Runs `safe-yolo bench`: exit 0 with the figures printed, 1 when the
/// pipeline cannot run, 2 when the configuration cannot be read.
pub fn run(args: &BenchArgs, log_format: LogFormatArg, log: &str) -> ExitCode {
    if let Err(e) = safe_yolo_telemetry::logging::init(log_format.into(), log) {
        report::fatal(&anyhow::Error::new(e));
        return ExitCode::from(2);
    }
    let config = match safe_yolo_config::load(&args.config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            report::config_error(&e);
            return match e {
                safe_yolo_config::ConfigError::Read { .. } => ExitCode::from(2),
                safe_yolo_config::ConfigError::Invalid { .. } => ExitCode::FAILURE,
            };
        }
    };
    match measure(&args.config, &config, args) {
        Ok(figures) => {
            let text = if args.json {
                format!("{:#}\n", figures.to_json())
            } else {
                figures.to_table()
            };
            print(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report::fatal(&e.context("benchmark failed"));
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, reason = "the command's result, not logging")]
fn print(text: &str) {
    print!("{text}");
}

// === Timed detector ===

/// Stage times of one detector call.
#[derive(Debug, Clone, Copy, Default)]
struct Split {
    preprocess: Duration,
    inference: Duration,
    postprocess: Duration,
}

/// What the timed detectors share with the benchmark.
#[derive(Debug, Default)]
struct DetectorProbe {
    /// Stage times by the address of the frame's pixels. The pipeline moves
    /// the very frame it detected into its `DetectedFrame`, so the address
    /// identifies the frame until that is dropped.
    splits: Mutex<HashMap<usize, Split>>,
    /// The loaded model.
    info: Mutex<Option<ModelInfo>>,
    /// Process RSS right after the last detector was loaded and had run
    /// once (bytes).
    rss_after_load: AtomicU64,
}

/// A [`ModelDetector`] that records how long each of its stages took.
struct TimedDetector {
    inner: ModelDetector,
    probe: Arc<DetectorProbe>,
}

impl Detector for TimedDetector {
    fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<Detection>, DetectError> {
        let t0 = Instant::now();
        self.inner.preprocess(frame)?;
        let t1 = Instant::now();
        let outputs = self.inner.run_backend()?;
        let t2 = Instant::now();
        let detections = self.inner.decode(&outputs)?;
        let t3 = Instant::now();
        let split = Split {
            preprocess: t1 - t0,
            inference: t2 - t1,
            postprocess: t3 - t2,
        };
        self.probe.record(frame, split);
        Ok(detections)
    }

    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }
}

impl DetectorProbe {
    /// Keeps `split` for `frame` until the consumer picks it up.
    fn record(&self, frame: &RgbFrame, split: Split) {
        let mut splits = self.splits.blocking_lock();
        // Frames the pipeline dropped after detection leave their entry
        // behind; keep the map small.
        if splits.len() > 1024 {
            splits.clear();
        }
        splits.insert(frame.data().as_ptr().addr(), split);
    }
}

/// A detector in a child process, timed as a whole (pre-processing, inference,
/// post-processing and the process boundary), recorded as its inference time.
struct TimedProcess {
    inner: Box<dyn Detector>,
    probe: Arc<DetectorProbe>,
}

impl Detector for TimedProcess {
    fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<Detection>, DetectError> {
        let t0 = Instant::now();
        let detections = self.inner.detect(frame)?;
        let split = Split {
            preprocess: Duration::ZERO,
            inference: t0.elapsed(),
            postprocess: Duration::ZERO,
        };
        self.probe.record(frame, split);
        Ok(detections)
    }

    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }
}

/// The detector as `detector.isolation` says: in this process with its stages
/// timed, or in child processes timed as a whole (`inference` then includes
/// the stages and the boundary; compare the sums).
fn timed_factory(config: &Config, probe: &Arc<DetectorProbe>) -> DetectorFactory {
    if config.detector.isolation == safe_yolo_config::Isolation::Process {
        let (down, _) = tokio::sync::watch::channel(0usize);
        let load = crate::run::model_loader(
            config,
            "main",
            config.detector.model.clone(),
            crate::detect_cmd::load_options(&config.detector),
            &Metrics::new(),
            &down,
        );
        let probe = Arc::clone(probe);
        return Arc::new(move || {
            let mut inner = load()?;
            let (w, h) = (inner.info().input_width, inner.info().input_height);
            if let Some(grey) = RgbFrame::new(w, h, vec![114u8; (w as usize) * (h as usize) * 3]) {
                inner.detect(&grey)?;
            }
            *probe.info.blocking_lock() = Some(inner.info().clone());
            probe.rss_after_load.store(rss_bytes(), Ordering::Relaxed);
            Ok(Box::new(TimedProcess {
                inner,
                probe: Arc::clone(&probe),
            }))
        });
    }
    timed_in_process(config, probe)
}

fn timed_in_process(config: &Config, probe: &Arc<DetectorProbe>) -> DetectorFactory {
    let manifest = config.detector.model.clone();
    let opts = crate::detect_cmd::load_options(&config.detector);
    let probe = Arc::clone(probe);
    Arc::new(move || {
        let m = Manifest::from_path(&manifest).map_err(DetectError::Manifest)?;
        let mut inner = safe_yolo_detect::load_manifest(&m, &opts)?;
        tracing::info!(model = ?inner.info(), "detector loaded");
        // One inference on a grey frame first, so the backend's scratch
        // memory counts towards the detector, not the cameras.
        let (w, h) = (inner.info().input_width, inner.info().input_height);
        let pixels = vec![114u8; (w as usize) * (h as usize) * 3];
        if let Some(grey) = RgbFrame::new(w, h, pixels) {
            inner.detect(&grey)?;
        }
        *probe.info.blocking_lock() = Some(inner.info().clone());
        probe.rss_after_load.store(rss_bytes(), Ordering::Relaxed);
        Ok(Box::new(TimedDetector {
            inner,
            probe: Arc::clone(&probe),
        }))
    })
}

// === Pipeline settings (the same as `safe-yolo run`) ===

// === Measurement ===

/// Samples of one camera, taken during the window.
#[derive(Debug, Default, Clone)]
struct Samples {
    decode: Vec<Duration>,
    preprocess: Vec<Duration>,
    inference: Vec<Duration>,
    postprocess: Vec<Duration>,
    latency: Vec<Duration>,
    /// Live frames the camera's viewer got in the window.
    viewed: u64,
}

impl Samples {
    fn extend(&mut self, o: &Samples) {
        self.decode.extend_from_slice(&o.decode);
        self.preprocess.extend_from_slice(&o.preprocess);
        self.inference.extend_from_slice(&o.inference);
        self.postprocess.extend_from_slice(&o.postprocess);
        self.latency.extend_from_slice(&o.latency);
        self.viewed += o.viewed;
    }
}

/// Pipeline counters of one camera at one instant.
#[derive(Debug, Default, Clone)]
struct Counters {
    captured: u64,
    detected: u64,
    dropped: BTreeMap<&'static str, u64>,
}

fn counters(metrics: &Metrics, camera: &str) -> Counters {
    Counters {
        captured: metrics
            .frames_captured
            .get_or_create(&Metrics::camera(camera))
            .get(),
        detected: metrics
            .frames_detected
            .get_or_create(&Metrics::camera(camera))
            .get(),
        dropped: DROP_STAGES
            .iter()
            .map(|s| {
                (
                    *s,
                    metrics
                        .frames_dropped
                        .get_or_create(&Metrics::stage(camera, s))
                        .get(),
                )
            })
            .collect(),
    }
}

/// Resident set size of this process in bytes (0 when unknown).
fn rss_bytes() -> u64 {
    status_kib("VmRSS:").saturating_mul(1024)
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time used so far, in seconds: this process and, apart, its live
/// children (the detector processes), from `/proc` (`utime + stime`, in the
/// kernel's `USER_HZ` = 100 ticks per second).
fn cpu_seconds() -> (f64, f64) {
    const USER_HZ: f64 = 100.0;
    /// `(ppid, utime + stime)` of `/proc/<pid>/stat`.
    fn stat(path: &Path) -> Option<(u32, u64)> {
        let text = std::fs::read_to_string(path).ok()?;
        // Fields after the command name (which may hold spaces): state is 3.
        let rest = text.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ppid = f.get(1)?.parse().ok()?;
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some((ppid, ticks))
    }
    #[allow(clippy::cast_precision_loss, reason = "clock ticks")]
    let secs = |ticks: u64| ticks as f64 / USER_HZ;
    let own = stat(Path::new("/proc/self/stat")).map_or(0, |(_, t)| t);
    let me = std::process::id();
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| stat(&e.path().join("stat")))
        .filter(|(ppid, _)| *ppid == me)
        .map(|(_, t)| t)
        .sum();
    (secs(own), secs(children))
}

/// CPU seconds used so far by the threads of this process whose name starts
/// with `prefix` (`/proc/self/task/*/stat`; threads that ended are not counted,
/// so read it while they run).
fn thread_cpu_seconds(prefix: &str) -> f64 {
    const USER_HZ: f64 = 100.0;
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|text| {
            let (head, rest) = text.rsplit_once(')')?;
            let name = head.split_once('(')?.1;
            if !name.starts_with(prefix) {
                return None;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    #[allow(clippy::cast_precision_loss, reason = "clock ticks")]
    let secs = ticks as f64 / USER_HZ;
    secs
}

/// What the detector alone does on this box.
#[derive(Debug, Clone, Copy, Default)]
struct Bare {
    /// Detections per second, all workers together.
    per_s: f64,
    /// Length of the run.
    secs: f64,
    /// Size of the still the workers detected (as the pipeline decodes it).
    still: (u32, u32),
}

/// Runs the configured detector alone: `workers` threads (at the detect
/// workers' priority), each with its own detector from `factory`, detecting
/// a decoded still for `secs` seconds. The still is the first camera's first
/// frame, decoded at the size the pipeline's workers decode it at.
fn bare_ceiling(
    pipeline: &PipelineConfig,
    factory: &DetectorFactory,
    secs: u64,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Bare> {
    let camera = pipeline
        .cameras
        .first()
        .context("no enabled camera to take a still from")?;
    let mut source = (pipeline.sources)(&camera.source)
        .with_context(|| format!("cannot open camera {}", camera.id))?;
    let captured = source
        .next_frame(Duration::from_secs(10))
        .with_context(|| format!("no frame from camera {}", camera.id))?;
    drop(source);
    let picture = Picture::new(captured.payload).context("cannot read the still")?;
    let workers = pipeline.detect_workers.max(1);
    let barrier = Arc::new(std::sync::Barrier::new(workers + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for worker in 0..workers {
        let (factory, barrier, stop, picture) = (
            Arc::clone(factory),
            Arc::clone(&barrier),
            Arc::clone(&stop),
            picture.clone(),
        );
        let nice = pipeline.detect_nice;
        threads.push(
            std::thread::Builder::new()
                .name(format!("bare-detect-{worker}"))
                .spawn(move || -> anyhow::Result<(u64, (u32, u32))> {
                    if nice > 0 {
                        let _ = safe_yolo_pipeline::priority::set_thread_nice(nice);
                    }
                    let loaded = factory();
                    // Every worker reaches the barrier, loaded or not.
                    barrier.wait();
                    let mut detector = loaded.context("cannot load the detector")?;
                    let (w, h) = detector
                        .info()
                        .min_frame_size(picture.width(), picture.height());
                    let still = picture
                        .decode_at_least(w, h)
                        .context("cannot decode the still")?;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        detector.detect(&still)?;
                        n += 1;
                    }
                    Ok((n, (still.width(), still.height())))
                })
                .context("cannot start a bare detect worker")?,
        );
    }
    barrier.wait();
    let t0 = Instant::now();
    nap(runtime, Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    let mut still = (0, 0);
    for t in threads {
        let (n, size) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a bare detect worker panicked"))??;
        total += n;
        still = size;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "detection counts")]
    let per_s = total as f64 / elapsed.max(1e-9);
    Ok(Bare {
        per_s,
        secs: elapsed,
        still,
    })
}

/// Runs the pipeline and collects the figures.
fn measure(path: &Path, config: &Config, args: &BenchArgs) -> anyhow::Result<Figures> {
    let rss_start = rss_bytes();
    let board = crate::wiring::board_profile(config);
    let policy = crate::wiring::source_policy(config, board.as_ref());
    let pipeline_config = crate::wiring::pipeline_config(config, policy);
    let queue_depths: Vec<usize> = pipeline_config
        .cameras
        .iter()
        .map(|c| c.queue_depth)
        .collect();
    let detect_every: Vec<u32> = pipeline_config
        .cameras
        .iter()
        .map(|c| c.detect_every)
        .collect();
    let workers = pipeline_config.detect_workers;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let bare = if args.bare_seconds > 0 {
        // Its own probe: the bare run's stage times stay out of the pipeline's.
        let bare_factory = timed_factory(config, &Arc::new(DetectorProbe::default()));
        let bare = bare_ceiling(&pipeline_config, &bare_factory, args.bare_seconds, &runtime)
            .context("the bare-detector run failed")?;
        tracing::info!(per_s = bare.per_s, "bare detector measured");
        Some(bare)
    } else {
        None
    };
    let probe = Arc::new(DetectorProbe::default());
    let factory = timed_factory(config, &probe);
    let liveness = Liveness::new();
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let (pipeline, detected) = {
        // The pipeline uses tokio channels: start it inside the runtime.
        let _guard = runtime.enter();
        Pipeline::start(
            pipeline_config,
            factory,
            &liveness,
            &metrics,
            shutdown.clone(),
        )
        .context("cannot start the pipeline")?
    };
    let rss_after_load = probe.rss_after_load.load(Ordering::Relaxed);
    let cameras: Vec<String> = pipeline
        .taps()
        .current()
        .iter()
        .map(|t| t.id.as_str().to_owned())
        .collect();
    let measuring = Arc::new(AtomicBool::new(false));
    let consumer = spawn_consumer(detected, Arc::clone(&probe), Arc::clone(&measuring))?;
    let hub = LiveHub::new(pipeline.taps(), STREAM_QUALITY, shutdown.clone());
    let mut viewers = Vec::new();
    if !args.no_viewers {
        for tap in pipeline.taps().current().iter() {
            let rx = {
                let _guard = runtime.enter();
                hub.subscribe(&tap.id, STREAM_QUALITY)
                    .map_err(|e| anyhow::anyhow!("cannot watch camera {}: {e}", tap.id))?
            };
            viewers.push((
                tap.id.as_str().to_owned(),
                runtime.spawn(view(rx, Arc::clone(&measuring), shutdown.clone())),
            ));
        }
    }

    nap(&runtime, Duration::from_secs(args.warmup));
    let before: Vec<Counters> = cameras.iter().map(|c| counters(&metrics, c)).collect();
    measuring.store(true, Ordering::Relaxed);
    let (encoded_before, forwarded_before) = (hub.encoded_frames(), hub.forwarded_frames());
    let cpu_before = cpu_seconds();
    let detect_cpu_before = thread_cpu_seconds("detect-");
    let started = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let mut rss_peak = 0u64;
    let mut max_depth: Vec<BTreeMap<&'static str, i64>> = vec![BTreeMap::new(); cameras.len()];
    while started.elapsed() < window {
        nap(
            &runtime,
            Duration::from_millis(100).min(window.saturating_sub(started.elapsed())),
        );
        rss_peak = rss_peak.max(rss_bytes());
        for (cam, depths) in cameras.iter().zip(max_depth.iter_mut()) {
            for stage in ["raw_queue", "detect_queue"] {
                let d = metrics
                    .queue_depth
                    .get_or_create(&Metrics::stage(cam, stage))
                    .get();
                let e = depths.entry(stage).or_insert(0);
                *e = (*e).max(d);
            }
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_after = cpu_seconds();
    let detect_cpu_after = thread_cpu_seconds("detect-");
    let (encoded, forwarded) = (
        hub.encoded_frames() - encoded_before,
        hub.forwarded_frames() - forwarded_before,
    );
    let after: Vec<Counters> = cameras.iter().map(|c| counters(&metrics, c)).collect();
    let rss_end = rss_bytes();
    let stuck = runtime.block_on(pipeline.stop(Duration::from_secs(5)));
    if !stuck.is_empty() {
        tracing::warn!(threads = ?stuck, "pipeline threads did not stop in time");
    }
    shutdown.cancel();
    let mut samples: HashMap<String, Samples> = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("the result collector panicked"))?;
    for (cam, handle) in viewers {
        let viewed = runtime
            .block_on(handle)
            .map_err(|_| anyhow::anyhow!("the viewer of {cam} failed"))?;
        samples.entry(cam).or_default().viewed = viewed;
    }

    let secs = elapsed.as_secs_f64();
    let mut rows = Vec::new();
    let mut all = Samples::default();
    let mut total_before = Counters::default();
    let mut total_after = Counters::default();
    for (i, cam) in cameras.iter().enumerate() {
        let s = samples.remove(cam).unwrap_or_default();
        all.extend(&s);
        let (b, a) = (&before[i], &after[i]);
        add_counters(&mut total_before, b);
        add_counters(&mut total_after, a);
        rows.push(Row::new(cam.clone(), &s, b, a, secs));
    }
    let total = Row::new("whole run".into(), &all, &total_before, &total_after, secs);
    let info = probe.info.blocking_lock().clone();
    let n = u64::try_from(cameras.len()).unwrap_or(1).max(1);
    Ok(Figures {
        config: path.display().to_string(),
        model: info,
        threads: config.detector.threads.get(),
        workers,
        detect_every,
        queue_depths,
        max_depth,
        window_s: secs,
        warmup_s: args.warmup,
        rows,
        total,
        rss_start,
        rss_after_load,
        rss_end,
        rss_peak,
        rss_per_camera: rss_peak.max(rss_end).saturating_sub(rss_after_load) / n,
        hwm: status_kib("VmHWM:").saturating_mul(1024),
        cpu_s: (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
        detect_threads_cpu_s: detect_cpu_after - detect_cpu_before,
        in_process_inference_s: if config.detector.isolation == safe_yolo_config::Isolation::Process
        {
            0.0
        } else {
            all.inference.iter().map(Duration::as_secs_f64).sum()
        },
        bare,
        viewers: !args.no_viewers,
        live: (encoded, forwarded),
    })
}

/// Waits on the runtime's timer (the pipeline threads run meanwhile).
fn nap(runtime: &tokio::runtime::Runtime, d: Duration) {
    runtime.block_on(async { tokio::time::sleep(d).await });
}

fn add_counters(total: &mut Counters, c: &Counters) {
    total.captured += c.captured;
    total.detected += c.detected;
    for (k, v) in &c.dropped {
        *total.dropped.entry(k).or_insert(0) += v;
    }
}

/// Drains the detected frames (as the rules would) and keeps their timings.
fn spawn_consumer(
    mut rx: mpsc::Receiver<DetectedFrame>,
    probe: Arc<DetectorProbe>,
    measuring: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<HashMap<String, Samples>>> {
    std::thread::Builder::new()
        .name("bench-collect".into())
        .spawn(move || {
            let mut out: HashMap<String, Samples> = HashMap::new();
            while let Some(f) = rx.blocking_recv() {
                let split = probe
                    .splits
                    .blocking_lock()
                    .remove(&f.frame.data().as_ptr().addr());
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let s = out.entry(f.meta.camera.as_str().to_owned()).or_default();
                s.decode.push(f.times.decode);
                s.latency.push(f.times.capture_to_detected);
                if let Some(split) = split {
                    s.preprocess.push(split.preprocess);
                    s.inference.push(split.inference);
                    s.postprocess.push(split.postprocess);
                }
            }
            out
        })
        .context("cannot start the result collector")
}

/// A viewer of one camera's live stream: takes every frame the hub has for it
/// (as the MJPEG handler does) and counts those of the window.
async fn view(
    mut rx: tokio::sync::watch::Receiver<Option<Arc<safe_yolo_api::live::Encoded>>>,
    measuring: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> u64 {
    let mut n = 0u64;
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return n },
            () = shutdown.cancelled() => return n,
        }
        let got = rx
            .borrow_and_update()
            .as_ref()
            .is_some_and(|e| !e.jpeg.is_empty());
        if got && measuring.load(Ordering::Relaxed) {
            n += 1;
        }
    }
}

// === Figures ===

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (`p` in 0..=100) of `v`, in ms; 0 when empty.
fn percentile_ms(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let n = s.len();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank between 1 and n"
    )]
    let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
    ms(s[rank.min(n) - 1])
}

/// One line of the result table.
#[derive(Debug, Clone)]
struct Row {
    camera: String,
    capture_fps: f64,
    detect_fps: f64,
    /// Live frames the viewer got per second.
    view_fps: f64,
    dropped: BTreeMap<&'static str, u64>,
    decode_ms: f64,
    preprocess_ms: f64,
    postprocess_ms: f64,
    inference_ms: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// Overhead outside inference of one frame that goes through every stage.
    overhead_ms: f64,
    /// The pipeline's timed work of the window (every decoded frame, every
    /// detector call's pre/post-processing) over its inference time.
    cpu_overhead_pct: f64,
}

impl Row {
    fn new(camera: String, s: &Samples, before: &Counters, after: &Counters, secs: f64) -> Self {
        #[allow(clippy::cast_precision_loss, reason = "frame counts")]
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs.max(1e-9);
        let dropped = after
            .dropped
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    v.saturating_sub(before.dropped.get(k).copied().unwrap_or(0)),
                )
            })
            .collect::<BTreeMap<_, _>>();
        let decode_ms = percentile_ms(&s.decode, 50.0);
        let preprocess_ms = percentile_ms(&s.preprocess, 50.0);
        let postprocess_ms = percentile_ms(&s.postprocess, 50.0);
        let inference_ms = percentile_ms(&s.inference, 50.0);
        // Work of the whole window: only detected frames are decoded.
        let sum = |v: &[Duration]| v.iter().map(|d| ms(*d)).sum::<f64>();
        let overhead_total = sum(&s.decode) + sum(&s.preprocess) + sum(&s.postprocess);
        let inference_total = sum(&s.inference);
        Self {
            camera,
            capture_fps: rate(after.captured, before.captured),
            detect_fps: rate(after.detected, before.detected),
            view_fps: rate(s.viewed, 0),
            dropped,
            decode_ms,
            preprocess_ms,
            postprocess_ms,
            inference_ms,
            latency_p50_ms: percentile_ms(&s.latency, 50.0),
            latency_p99_ms: percentile_ms(&s.latency, 99.0),
            overhead_ms: decode_ms + preprocess_ms + postprocess_ms,
            cpu_overhead_pct: if inference_total > 0.0 {
                100.0 * overhead_total / inference_total
            } else {
                0.0
            },
        }
    }

    fn overhead_pct(&self) -> f64 {
        if self.inference_ms > 0.0 {
            100.0 * self.overhead_ms / self.inference_ms
        } else {
            0.0
        }
    }

    fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "camera": self.camera,
            "capture_fps": self.capture_fps,
            "detect_fps": self.detect_fps,
            "view_fps": self.view_fps,
            "dropped": self.dropped,
            "dropped_total": self.dropped_total(),
            "decode_ms": self.decode_ms,
            "preprocess_ms": self.preprocess_ms,
            "postprocess_ms": self.postprocess_ms,
            "overhead_ms": self.overhead_ms,
            "inference_ms": self.inference_ms,
            "overhead_pct_of_inference": self.overhead_pct(),
            "window_overhead_pct_of_inference": self.cpu_overhead_pct,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
        })
    }
}

/// Everything the benchmark measured.
#[derive(Debug)]
struct Figures {
    config: String,
    model: Option<ModelInfo>,
    threads: usize,
    workers: usize,
    detect_every: Vec<u32>,
    queue_depths: Vec<usize>,
    max_depth: Vec<BTreeMap<&'static str, i64>>,
    window_s: f64,
    warmup_s: u64,
    rows: Vec<Row>,
    total: Row,
    rss_start: u64,
    rss_after_load: u64,
    rss_end: u64,
    rss_peak: u64,
    rss_per_camera: u64,
    hwm: u64,
    /// CPU seconds of the window: this process, the detector processes.
    cpu_s: (f64, f64),
    /// CPU seconds of the window in this process's detect worker threads
    /// (decoding the frames they detect, the process boundary, and the
    /// inference itself when it runs in this process).
    detect_threads_cpu_s: f64,
    /// Inference time of the window spent in this process (thread isolation;
    /// 0 when the detector runs in child processes).
    in_process_inference_s: f64,
    /// The detector alone, measured before the cameras started.
    bare: Option<Bare>,
    /// Whether every camera had a viewer.
    viewers: bool,
    /// Live frames of the window encoded, and forwarded as the camera sent them.
    live: (u64, u64),
}

impl Figures {
    /// Frames captured in the window, all cameras.
    fn captured(&self) -> f64 {
        self.total.capture_fps * self.window_s
    }

    /// CPU milliseconds of this process per captured frame, inference left
    /// out: everything the box does for a frame besides running the model
    /// (capture, size, queues, live view; decode and the process boundary for
    /// the detected ones).
    fn cpu_ms_outside_inference_per_frame(&self) -> f64 {
        let n = self.captured();
        if n > 0.0 {
            1000.0 * (self.cpu_s.0 - self.in_process_inference_s).max(0.0) / n
        } else {
            0.0
        }
    }

    /// CPU milliseconds per captured frame outside the detect workers: what a
    /// frame that is not detected costs (capture, size, queues, live view).
    fn cpu_ms_per_undetected_frame(&self) -> f64 {
        let n = self.captured();
        if n > 0.0 {
            1000.0 * (self.cpu_s.0 - self.detect_threads_cpu_s).max(0.0) / n
        } else {
            0.0
        }
    }

    /// The pipeline's detections per second over the bare detector's.
    fn detect_ratio(&self) -> Option<f64> {
        self.bare
            .filter(|b| b.per_s > 0.0)
            .map(|b| self.total.detect_fps / b.per_s)
    }

    /// CPU milliseconds per detected frame (all the box's work of the
    /// window, capture and live view included, over the frames detected).
    fn cpu_ms_per_detection(&self) -> f64 {
        let detected = self.total.detect_fps * self.window_s;
        if detected > 0.0 {
            1000.0 * (self.cpu_s.0 + self.cpu_s.1) / detected
        } else {
            0.0
        }
    }
}

fn mib(b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "memory sizes")]
    let b = b as f64;
    b / (1024.0 * 1024.0)
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    }
}

impl Figures {
    fn to_table(&self) -> String {
        let mut s = String::new();
        let model = self.model.as_ref().map_or_else(
            || "unknown".to_owned(),
            |m| {
                format!(
                    "{} {:?} {}x{} on {:?}",
                    m.name, m.precision, m.input_width, m.input_height, m.backend
                )
            },
        );
        let _ = writeln!(
            s,
            "safe-yolo bench: {} ({} camera(s), profile {}, {} core(s))",
            self.config,
            self.rows.len(),
            profile(),
            std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
        );
        let _ = writeln!(
            s,
            "model {model}, {} thread(s), {} detect worker(s); window {:.1} s after {} s warm-up; {}",
            self.threads,
            self.workers,
            self.window_s,
            self.warmup_s,
            if self.viewers {
                "a live viewer on every camera"
            } else {
                "no live viewer"
            }
        );
        match (self.bare, self.detect_ratio()) {
            (Some(b), Some(ratio)) => {
                let _ = writeln!(
                    s,
                    "ceiling: the detector alone did {:.1} detections/s ({:.1} s on a {}x{} still, same workers and threads); the cameras got {:.1}/s = {:.1}% of it",
                    b.per_s,
                    b.secs,
                    b.still.0,
                    b.still.1,
                    self.total.detect_fps,
                    100.0 * ratio
                );
            }
            _ => {
                let _ = writeln!(s, "ceiling: not measured (--bare-seconds 0)");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<12} {:>7} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>9} {:>8} {:>7} {:>8} {:>8}",
            "camera",
            "cap fps",
            "det fps",
            "view fps",
            "dropped",
            "dec ms",
            "pre ms",
            "post ms",
            "ovh ms",
            "inf ms",
            "ovh %",
            "lat p50",
            "lat p99"
        );
        for r in self.rows.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                s,
                "{:<12} {:>7.1} {:>7.1} {:>8.1} {:>7} {:>7.2} {:>8.2} {:>8.2} {:>9.2} {:>8.1} {:>7.1} {:>8.0} {:>8.0}",
                r.camera,
                r.capture_fps,
                r.detect_fps,
                r.view_fps,
                r.dropped_total(),
                r.decode_ms,
                r.preprocess_ms,
                r.postprocess_ms,
                r.overhead_ms,
                r.inference_ms,
                r.overhead_pct(),
                r.latency_p50_ms,
                r.latency_p99_ms
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "stage times are medians; dec = decode of a detected frame (the only frames decoded); ovh = dec + pre + post; ovh % = ovh / inference"
        );
        let _ = writeln!(
            s,
            "timed pipeline work in the window (decodes, pre- and post-processing) = {:.1}% of the inference time",
            self.total.cpu_overhead_pct
        );
        let _ = writeln!(
            s,
            "live view: {} frames forwarded as the cameras sent them, {} encoded",
            self.live.1, self.live.0
        );
        let drops = self
            .total
            .dropped
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(s, "dropped frames by queue (all cameras): {drops}");
        let depths = self
            .rows
            .iter()
            .zip(&self.max_depth)
            .zip(&self.queue_depths)
            .map(|((r, d), bound)| {
                format!(
                    "{} raw {}/{bound} detect {}/1",
                    r.camera,
                    d.get("raw_queue").copied().unwrap_or(0),
                    d.get("detect_queue").copied().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(s, "deepest queues seen (depth/bound): {depths}");
        let _ = writeln!(
            s,
            "RSS: {:.1} MiB at start, {:.1} MiB with the detector loaded and run once, {:.1} MiB at the end ({:.1} MiB peak in the window, {:.1} MiB high-water mark)",
            mib(self.rss_start),
            mib(self.rss_after_load),
            mib(self.rss_end),
            mib(self.rss_peak),
            mib(self.hwm)
        );
        let _ = writeln!(
            s,
            "RSS per camera: {:.1} MiB ((peak - with detector) / {} cameras)",
            mib(self.rss_per_camera),
            self.rows.len()
        );
        let _ = writeln!(
            s,
            "CPU in the window: {:.2} s in this process ({:.2} s of it in its detect workers), {:.2} s in detector processes; {:.1} ms per detected frame",
            self.cpu_s.0,
            self.detect_threads_cpu_s,
            self.cpu_s.1,
            self.cpu_ms_per_detection()
        );
        let _ = writeln!(
            s,
            "CPU per captured frame: {:.3} ms outside inference, {:.3} ms for a frame that is not detected (outside the detect workers)",
            self.cpu_ms_outside_inference_per_frame(),
            self.cpu_ms_per_undetected_frame()
        );
        s
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "config": self.config,
            "profile": profile(),
            "cores": std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get),
            "model": self.model.as_ref().map(|m| serde_json::json!({
                "name": m.name,
                "precision": format!("{:?}", m.precision),
                "backend": format!("{:?}", m.backend),
                "input": [m.input_width, m.input_height],
            })),
            "threads": self.threads,
            "detect_workers": self.workers,
            "detect_every": self.detect_every,
            "queue_depths": self.queue_depths,
            "max_queue_depths": self.max_depth,
            "window_s": self.window_s,
            "warmup_s": self.warmup_s,
            "viewers": self.viewers,
            "viewer_jpeg_quality": STREAM_QUALITY,
            "live_frames": { "encoded": self.live.0, "forwarded": self.live.1 },
            "bare_detect_per_s": self.bare.map(|b| b.per_s),
            "bare": self.bare.map(|b| serde_json::json!({
                "seconds": b.secs,
                "still": [b.still.0, b.still.1],
            })),
            "detect_ratio_of_bare": self.detect_ratio(),
            "cameras": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "total": self.total.to_json(),
            "rss_bytes": {
                "start": self.rss_start,
                "detector_loaded": self.rss_after_load,
                "end": self.rss_end,
                "peak_in_window": self.rss_peak,
                "high_water_mark": self.hwm,
                "per_camera": self.rss_per_camera,
            },
            "cpu_s": {
                "daemon": self.cpu_s.0,
                "daemon_detect_workers": self.detect_threads_cpu_s,
                "daemon_inference": self.in_process_inference_s,
                "detector_processes": self.cpu_s.1,
            },
            "cpu_ms_per_detection": self.cpu_ms_per_detection(),
            "cpu_ms_per_frame_outside_inference": self.cpu_ms_outside_inference_per_frame(),
            "cpu_ms_per_undetected_frame": self.cpu_ms_per_undetected_frame(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((percentile_ms(&v, 50.0) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&v, 99.0) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&v[..1], 99.0) - 1.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 50.0).abs() < 1e-9);
    }

    #[test]
    fn rows_use_counter_deltas_and_stage_medians() {
        let mut s = Samples::default();
        for _ in 0..4 {
            s.decode.push(Duration::from_millis(2));
            s.preprocess.push(Duration::from_millis(1));
            s.inference.push(Duration::from_millis(40));
            s.postprocess.push(Duration::from_millis(1));
        }
        s.viewed = 12;
        let before = Counters {
            captured: 10,
            detected: 5,
            dropped: [("raw_queue", 1)].into_iter().collect(),
        };
        let after = Counters {
            captured: 30,
            detected: 9,
            dropped: [("raw_queue", 3)].into_iter().collect(),
        };
        let r = Row::new("cam".into(), &s, &before, &after, 2.0);
        assert!((r.capture_fps - 10.0).abs() < 1e-9);
        assert!((r.detect_fps - 2.0).abs() < 1e-9);
        assert_eq!(r.dropped_total(), 2);
        assert!((r.view_fps - 6.0).abs() < 1e-9);
        assert!((r.overhead_ms - 4.0).abs() < 1e-9);
        assert!((r.overhead_pct() - 10.0).abs() < 1e-9);
        // 4 decoded (detected) frames x 2 ms + 4 x (1 + 1) ms over 160 ms.
        assert!((r.cpu_overhead_pct - 100.0 * 16.0 / 160.0).abs() < 1e-6);
    }

    #[test]
    fn thread_cpu_is_read_by_name() {
        let me = std::thread::current().name().unwrap_or("").to_owned();
        // The test harness names its threads after the test.
        let prefix: String = me.chars().take(12).collect();
        let t0 = Instant::now();
        let mut x = 0u64;
        while thread_cpu_seconds(&prefix) <= 0.0 && t0.elapsed() < Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(thread_cpu_seconds(&prefix) > 0.0, "thread {me:?}");
        assert!(thread_cpu_seconds("no-such-thread-").abs() < 1e-12);
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes() > 0);
        // Busy for a while: the process's CPU time is read and grows.
        let (before, _) = cpu_seconds();
        let t0 = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        // A tick is 10 ms of CPU: spin until one passes (bounded, in case
        // `/proc` is not readable and the figure never moves).
        while after <= before && t0.elapsed() < Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = cpu_seconds().0;
        }
        assert!(after > before, "CPU time not read: {before} -> {after}");
    }
}
