//! `safe-yolo bench-tracking`: how well a person keeps one identity at the
//! detection rates a real box runs at.
//!
//! The real detector runs once on every frame of the demo footage (the
//! person detections are cached next to the frames, keyed by the weights'
//! sha256, so re-runs take a second). The tracker follows them at the full
//! rate: its confirmed tracks are the reference trajectories. Then fresh
//! trackers get the same detections subsampled to 1/k of the frames (every
//! phase of the subsampling is a sequence of its own) and their confirmed
//! tracks are scored against the reference on the frames they saw: IDF1
//! and ID switches (`safe_yolo_rules::mot`, checked against py-motmetrics
//! in `appliance/rules/tests/mot_reference.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use safe_yolo_detect::report::load_image;
use safe_yolo_detect::{BackendChoice, Detector as _, LoadOptions, Manifest, Precision};
use safe_yolo_domain::{BBox, Detection};
use safe_yolo_rules::mot::{MotAccumulator, MotSummary};
use safe_yolo_rules::{TrackState, Tracker, TrackerConfig};

use crate::cli::{BenchTrackingArgs, LogFormatArg};
use crate::report;

/// Detections down to this score are cached (the tracker's thresholds are
/// applied afterwards, so they can be calibrated without re-running the
/// detector).
const CACHE_SCORE: f32 = 0.1;
/// Cache file format version (bump when the format changes).
const CACHE_VERSION: u32 = 1;
/// Subsampling steps: every k-th frame of the footage.
const STEPS: [u32; 6] = [1, 2, 3, 4, 5, 10];
/// The class the tracker follows.
const PERSON: &str = "person";

/// Person detections of every frame of the footage.
#[derive(Debug, Clone, PartialEq)]
pub struct Footage {
    /// Frame width in pixels.
    pub width: f32,
    /// Frame height in pixels.
    pub height: f32,
    /// Detections per frame, in frame order.
    pub frames: Vec<Vec<Detection>>,
}

/// Confirmed tracks `(id, box)` per frame index the tracker saw.
pub type Trajectories = Vec<(usize, Vec<(u64, BBox)>)>;

/// Scores of one detection rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateScore {
    /// Every `step`-th frame was detected.
    pub step: u32,
    /// Detections per second.
    pub rate: f64,
    /// Pooled over every phase.
    pub mot: MotSummary,
    /// Distinct confirmed track ids, mean per phase.
    pub ids: f64,
}

/// Runs `safe-yolo bench-tracking`: exit 0 with the table printed, 1 when
/// the model or footage cannot be used, 2 when logging cannot start.
pub fn run(args: &BenchTrackingArgs, log_format: LogFormatArg, log: &str) -> ExitCode {
    if let Err(e) = safe_yolo_telemetry::logging::init(log_format.into(), log) {
        report::fatal(&anyhow::Error::new(e));
        return ExitCode::from(2);
    }
    match bench(args) {
        Ok(text) => {
            print(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report::fatal(&e);
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchTrackingArgs) -> anyhow::Result<String> {
    let manifest = Manifest::from_path(&args.model)
        .with_context(|| format!("cannot read the model {}", args.model.display()))?;
    let footage = footage(args, &manifest)?;
    let score = person_threshold(&manifest);
    let tracker = crate::wiring::tracker_config(&manifest)
        .with_context(|| format!("{}: the [tracking] section", args.model.display()))?;
    let scores = score_rates(&footage, args.fps, score, &tracker)?;
    Ok(if args.json {
        let rows: Vec<serde_json::Value> = scores
            .iter()
            .map(|s| {
                serde_json::json!({
                    "step": s.step,
                    "detections_per_s": s.rate,
                    "idf1": s.mot.idf1,
                    "id_switches": s.mot.switches,
                    "ids_per_pass": s.ids,
                    "mota": s.mot.mota,
                    "reference_boxes": s.mot.objects,
                    "tracked_boxes": s.mot.hypotheses,
                })
            })
            .collect();
        format!("{}\n", serde_json::Value::Array(rows))
    } else {
        table(&manifest, &footage, args.fps, &scores)
    })
}

/// The manifest's score threshold for persons (the detector's cut-off in
/// production).
fn person_threshold(m: &Manifest) -> f32 {
    m.spec
        .thresholds
        .per_class
        .get(PERSON)
        .copied()
        .unwrap_or(m.spec.thresholds.score)
}

/// The cached detections, or the detector's on every frame (then cached).
fn footage(args: &BenchTrackingArgs, manifest: &Manifest) -> anyhow::Result<Footage> {
    let weights = manifest
        .spec
        .weights
        .get(&Precision::Fp32)
        .context("the benchmark runs the fp32 weights; the manifest has none")?;
    let cache = args.cache.clone().unwrap_or_else(|| {
        args.frames
            .parent()
            .unwrap_or(Path::new("."))
            .join(".cache")
            .join(format!(
                "tracking-{}-{}.tsv",
                manifest.spec.name,
                weights.sha256.get(..16).unwrap_or(&weights.sha256)
            ))
    });
    let images = frame_files(&args.frames)?;
    let key = format!(
        "v{CACHE_VERSION} model={} sha256={} score>={CACHE_SCORE} frames={}",
        manifest.spec.name,
        weights.sha256,
        images.len()
    );
    if let Ok(text) = std::fs::read_to_string(&cache) {
        match parse_cache(&text, &key) {
            Ok(f) => {
                tracing::info!(cache = %cache.display(), "detections from the cache");
                return Ok(f);
            }
            Err(e) => tracing::info!(cache = %cache.display(), reason = %e, "cache not used"),
        }
    }
    let opts = LoadOptions {
        backend: args.backend.map_or(BackendChoice::Auto, Into::into),
        precision: Some(Precision::Fp32),
        threads: usize::from(args.threads),
        score_threshold: Some(CACHE_SCORE),
        classes: Some(vec![PERSON.to_owned()]),
        ..LoadOptions::default()
    };
    let mut detector = safe_yolo_detect::load_manifest(manifest, &opts)
        .with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let info = detector.info();
    tracing::info!(model = %info.name, backend = ?info.backend, frames = images.len(), "detecting every frame");
    let mut frames = Vec::with_capacity(images.len());
    let (mut width, mut height) = (0, 0);
    for (i, image) in images.iter().enumerate() {
        let frame = load_image(image)?;
        if i == 0 {
            (width, height) = (frame.width(), frame.height());
        } else if (frame.width(), frame.height()) != (width, height) {
            bail!(
                "{} is {}x{}, the footage {width}x{height}",
                image.display(),
                frame.width(),
                frame.height()
            );
        }
        let dets = detector
            .detect(&frame)
            .with_context(|| format!("detection failed on {}", image.display()))?;
        frames.push(
            dets.into_iter()
                .filter(|d| &*d.class_name == PERSON)
                .collect(),
        );
        if i % 100 == 99 {
            tracing::info!(done = i + 1, of = images.len(), "detecting");
        }
    }
    let footage = Footage {
        width: width as f32,
        height: height as f32,
        frames,
    };
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = cache.with_extension("tmp");
    std::fs::write(&tmp, write_cache(&footage, &key))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &cache).with_context(|| format!("cannot write {}", cache.display()))?;
    Ok(footage)
}

/// The JPEG frames of `dir`, by name.
fn frame_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot read the footage folder {} (scripts/demo-media.sh makes it)",
                dir.display()
            )
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "jpeg"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no JPEG frames in {}", dir.display());
    }
    Ok(files)
}

/// The cache: a key line, a size line, then one line per detection
/// `frame<TAB>score<TAB>x1<TAB>y1<TAB>x2<TAB>y2`.
fn write_cache(f: &Footage, key: &str) -> String {
    let mut s = format!("# {key}\n# size {} {}\n", f.width, f.height);
    for (i, dets) in f.frames.iter().enumerate() {
        for d in dets {
            let b = d.bbox;
            let _ = writeln!(
                s,
                "{i}\t{}\t{}\t{}\t{}\t{}",
                d.score, b.x1, b.y1, b.x2, b.y2
            );
        }
    }
    s
}

fn parse_cache(text: &str, key: &str) -> anyhow::Result<Footage> {
    let mut lines = text.lines();
    if lines.next() != Some(&format!("# {key}")) {
        bail!("made for another model or footage");
    }
    let size = lines.next().and_then(|l| l.strip_prefix("# size "));
    let (width, height) = size
        .and_then(|s| s.split_once(' '))
        .and_then(|(w, h)| Some((w.parse::<f32>().ok()?, h.parse::<f32>().ok()?)))
        .context("no frame size line")?;
    let count: usize = key
        .rsplit_once("frames=")
        .and_then(|(_, n)| n.parse().ok())
        .context("no frame count in the key")?;
    let mut frames = vec![Vec::new(); count];
    let class: Arc<str> = Arc::from(PERSON);
    for (n, line) in lines.enumerate() {
        let v: Vec<&str> = line.split('\t').collect();
        let bad = || format!("line {} is malformed", n + 3);
        let [i, score, x1, y1, x2, y2] = v[..] else {
            bail!(bad());
        };
        let num = |s: &str| s.parse::<f32>().with_context(bad);
        let i: usize = i.parse().with_context(bad)?;
        let dets = frames.get_mut(i).with_context(bad)?;
        dets.push(Detection {
            class_id: 0,
            class_name: Arc::clone(&class),
            score: num(score)?,
            bbox: BBox {
                x1: num(x1)?,
                y1: num(y1)?,
                x2: num(x2)?,
                y2: num(y2)?,
            },
        });
    }
    Ok(Footage {
        width,
        height,
        frames,
    })
}

/// Runs `tracker` over every `step`-th frame from `phase` (a frame every
/// `step / fps` seconds) and returns, per frame index it saw, its confirmed
/// tracks as `(id, box)`.
pub fn track(
    footage: &Footage,
    fps: f64,
    score: f32,
    cfg: &TrackerConfig,
    step: u32,
    phase: u32,
) -> anyhow::Result<Trajectories> {
    let mut tracker = Tracker::new(*cfg).context("the tracker settings are invalid")?;
    let mut out = Vec::new();
    for i in (phase as usize..footage.frames.len()).step_by(step as usize) {
        let dets: Vec<Detection> = footage.frames[i]
            .iter()
            .filter(|d| d.score >= score)
            .cloned()
            .collect();
        let now = Duration::from_secs_f64(i as f64 / fps);
        let tracks = tracker.update(&dets, footage.width, footage.height, now);
        out.push((
            i,
            tracks
                .iter()
                .filter(|t| t.state == TrackState::Tracked)
                .map(|t| (t.id, t.bbox))
                .collect(),
        ));
    }
    Ok(out)
}

/// Scores every subsampling step against the full-rate reference.
pub fn score_rates(
    footage: &Footage,
    fps: f64,
    score: f32,
    cfg: &TrackerConfig,
) -> anyhow::Result<Vec<RateScore>> {
    let reference = track(footage, fps, score, cfg, 1, 0)?;
    let mut out = Vec::new();
    for step in STEPS {
        let mut parts = Vec::new();
        let mut ids = 0usize;
        for phase in 0..step {
            let hyp = track(footage, fps, score, cfg, step, phase)?;
            if let Some(dump) = std::env::var_os("SAFEYOLO_TRACKING_DUMP") {
                // Reference and tracks side by side, for a look with other tools.
                let mut csv = String::new();
                for (i, tracks) in &hyp {
                    for (kind, list) in [("o", &reference[*i].1), ("h", tracks)] {
                        for (id, b) in list {
                            let [x1, y1, x2, y2] = [b.x1, b.y1, b.x2, b.y2].map(f64::from);
                            let _ = writeln!(
                                csv,
                                "k{step}p{phase},{i},{kind},{id},{x1},{y1},{x2},{y2}"
                            );
                        }
                    }
                    let _ = writeln!(csv, "k{step}p{phase},{i},-,,,,,");
                }
                let path = PathBuf::from(dump).join(format!("k{step}p{phase}.csv"));
                std::fs::write(&path, csv)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let mut acc = MotAccumulator::new();
            let mut seen = std::collections::BTreeSet::new();
            for (i, tracks) in &hyp {
                acc.update(&reference[*i].1, tracks);
                seen.extend(tracks.iter().map(|t| t.0));
            }
            ids += seen.len();
            parts.push(acc.summary());
        }
        out.push(RateScore {
            step,
            rate: fps / f64::from(step),
            mot: MotSummary::pooled(&parts),
            ids: ids as f64 / f64::from(step),
        });
    }
    Ok(out)
}

fn table(m: &Manifest, f: &Footage, fps: f64, scores: &[RateScore]) -> String {
    let persons: usize = f.frames.iter().map(Vec::len).sum();
    let mut s = format!(
        "model {} (fp32), {} frames at {fps} fps, {persons} person detections >= {CACHE_SCORE} (tracked from {})\n\n",
        m.spec.name,
        f.frames.len(),
        person_threshold(m)
    );
    s.push_str("| detections/s | IDF1 | ID switches | track ids per pass | MOTA |\n");
    s.push_str("|---:|---:|---:|---:|---:|\n");
    for r in scores {
        let _ = writeln!(
            s,
            "| {:.1} | {:.3} | {} | {:.1} | {:.3} |",
            r.rate, r.mot.idf1, r.mot.switches, r.ids, r.mot.mota
        );
    }
    s
}

#[allow(clippy::print_stdout, reason = "the command's result, not logging")]
fn print(text: &str) {
    print!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection {
            class_id: 0,
            class_name: Arc::from(PERSON),
            score,
            bbox: BBox {
                x1: x,
                y1: 10.0,
                x2: x + 30.0,
                y2: 90.0,
            },
        }
    }

    #[test]
    fn cache_round_trips_and_refuses_another_key() {
        let f = Footage {
            width: 768.0,
            height: 576.0,
            frames: vec![
                vec![det(1.5, 0.75), det(100.25, 0.4)],
                vec![],
                vec![det(3.0, 0.9)],
            ],
        };
        let key = "v1 model=m sha256=ab score>=0.1 frames=3";
        let text = write_cache(&f, key);
        assert_eq!(parse_cache(&text, key).unwrap(), f);
        assert!(parse_cache(&text, "v1 model=m sha256=cd score>=0.1 frames=3").is_err());
        let broken = text.replace("\t0.9\t", "\tx\t");
        let e = parse_cache(&broken, key).unwrap_err();
        assert!(e.to_string().contains("line 5"), "{e}");
    }

    #[test]
    fn the_full_rate_scores_one_against_itself() {
        // Two people walking apart; at step 1 the tracker is its own reference.
        let frames = (0..60)
            .map(|f| {
                vec![
                    det(100.0 + f as f32 * 3.0, 0.9),
                    det(500.0 - f as f32 * 3.0, 0.8),
                ]
            })
            .collect();
        let f = Footage {
            width: 768.0,
            height: 576.0,
            frames,
        };
        let scores = score_rates(&f, 10.0, 0.35, &TrackerConfig::default()).unwrap();
        assert_eq!(scores[0].step, 1);
        assert!((scores[0].mot.idf1 - 1.0).abs() < 1e-12);
        assert_eq!(scores[0].mot.switches, 0);
        assert!((scores[0].ids - 2.0).abs() < 1e-12);
    }
}
