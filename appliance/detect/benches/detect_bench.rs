//! Detector benchmark, one run measures everything against a reference timed in the
//! same run (no absolute targets are asserted):
//! - each compiled backend x precision: model time, and its ratio to onnxruntime
//!   (python `onnxruntime`, 1 thread, same input shape) on the same model file;
//! - int8 vs fp32 on each backend;
//! - preprocessing and post-processing (decode + NMS + mapping) per 1920x1080 frame.
//!
//! Run: `cargo bench -p safe-yolo-detect [--features onnxruntime]`.
//! Environment: `SAFEYOLO_BENCH_ITERS` (default 20), `SAFEYOLO_BENCH_THREADS` (default 1),
//! `SAFEYOLO_FIXTURES`, `ORT_DYLIB_PATH`.
#![allow(clippy::print_stdout, reason = "a benchmark's report is its output")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts on broken fixtures"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fast_image_resize as fir;
use safe_yolo_detect::{
    BackendChoice, Detector, LoadOptions, Manifest, Precision, load_manifest, report,
};
use safe_yolo_domain::RgbFrame;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// bus.jpg stretched to 1920x1080, the camera frame size the target is about.
fn frame_1080p() -> RgbFrame {
    let src = report::load_image(&safe_yolo_fixtures::media("bus.jpg")).unwrap();
    let s = fir::images::ImageRef::new(src.width(), src.height(), src.data(), fir::PixelType::U8x3)
        .unwrap();
    let mut dst = fir::images::Image::new(1920, 1080, fir::PixelType::U8x3);
    fir::Resizer::new().resize(&s, &mut dst, None).unwrap();
    RgbFrame::new(1920, 1080, dst.into_vec()).unwrap()
}

/// Median milliseconds of python onnxruntime on `model` (random input of its shape).
fn python_ort_ms(model: &Path, iters: usize, threads: usize) -> Option<f64> {
    let script = format!(
        "import onnxruntime as ort, numpy as np, time\n\
         o = ort.SessionOptions(); o.intra_op_num_threads = {threads}\n\
         s = ort.InferenceSession(r'{}', o, providers=['CPUExecutionProvider'])\n\
         i = s.get_inputs()[0]; x = np.random.rand(*i.shape).astype(np.float32) * 2 - 1\n\
         [s.run(None, {{i.name: x}}) for _ in range(2)]\n\
         t = []\n\
         for _ in range({iters}):\n    a = time.perf_counter(); s.run(None, {{i.name: x}}); t.append(time.perf_counter() - a)\n\
         t.sort(); print(t[len(t) // 2] * 1000)\n",
        model.display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn backends() -> Vec<(BackendChoice, LoadOptions)> {
    let mut v = Vec::new();
    if cfg!(feature = "tract") {
        v.push((BackendChoice::Tract, LoadOptions::default()));
    }
    if cfg!(feature = "onnxruntime") {
        let lib = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).or_else(|| {
            let out = Command::new("python3")
                .args(["-c", "import onnxruntime, os, glob; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))[-1])"])
                .output()
                .ok()?;
            Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
        });
        v.push((
            BackendChoice::OnnxRuntime,
            LoadOptions {
                onnxruntime_library: lib,
                ..LoadOptions::default()
            },
        ));
    }
    v
}

fn main() {
    let iters = env_usize("SAFEYOLO_BENCH_ITERS", 20).max(3);
    let threads = env_usize("SAFEYOLO_BENCH_THREADS", 1).max(1);
    let root = safe_yolo_fixtures::manifest_dir!().join("../..");
    let manifest = Manifest::from_path(&root.join("models/nanodet-m-416-coco/model.toml")).unwrap();
    let frame = frame_1080p();
    println!(
        "# safe-yolo-detect benchmark: {} on a 1920x1080 frame, {iters} iterations, {threads} thread(s), medians",
        manifest.spec.name
    );
    println!();
    let mut reference = Vec::new();
    for p in manifest.precisions() {
        let ms = python_ort_ms(&manifest.weights_path(p).unwrap(), iters, threads);
        reference.push((p, ms));
    }
    println!(
        "| backend | precision | model ms | vs python onnxruntime | preprocess ms | postprocess ms | detections |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut per_backend: Vec<(String, Precision, f64)> = Vec::new();
    for (choice, base) in backends() {
        for p in manifest.precisions() {
            let opts = LoadOptions {
                backend: choice,
                precision: Some(p),
                threads,
                ..base.clone()
            };
            let mut det = match load_manifest(&manifest, &opts) {
                Ok(d) => d,
                Err(e) => {
                    println!("| {choice:?} | {p} | unavailable: {e} | | | | |");
                    continue;
                }
            };
            let (mut pre, mut run, mut post) = (Vec::new(), Vec::new(), Vec::new());
            let mut count = 0;
            for i in 0..iters + 2 {
                let t0 = Instant::now();
                det.preprocess(&frame).unwrap();
                let t1 = Instant::now();
                let out = det.run_backend().unwrap();
                let t2 = Instant::now();
                count = det.decode(&out).unwrap().len();
                let t3 = Instant::now();
                if i >= 2 {
                    pre.push(t1 - t0);
                    run.push(t2 - t1);
                    post.push(t3 - t2);
                }
            }
            let model = median(run);
            let ratio = reference
                .iter()
                .find(|(rp, _)| *rp == p)
                .and_then(|(_, r)| *r)
                .map_or("n/a (python onnxruntime missing)".to_owned(), |r| {
                    format!("{:.2}x ({r:.1} ms)", model / r)
                });
            println!(
                "| {} | {p} | {model:.1} | {ratio} | {:.2} | {:.2} | {count} |",
                det.info().backend,
                median(pre),
                median(post)
            );
            per_backend.push((det.info().backend.to_string(), p, model));
        }
    }
    println!();
    for (b, p, ms) in &per_backend {
        if *p == Precision::Int8
            && let Some((_, _, fp32)) = per_backend
                .iter()
                .find(|(b2, p2, _)| b2 == b && *p2 == Precision::Fp32)
        {
            println!(
                "{b}: int8 / fp32 time = {:.2} ({ms:.1} ms / {fp32:.1} ms)",
                ms / fp32
            );
        }
    }
}
