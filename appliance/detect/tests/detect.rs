//! Golden tests on real images and models: every backend's detections are compared
//! with onnxruntime references produced by `scripts/make_golden.py` (committed JSON
//! under `tests/golden/`), plus the bad-model error paths.
#![cfg(any(feature = "tract", feature = "onnxruntime"))]
#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers fail loudly and skipped tests say why"
)]

use std::path::{Path, PathBuf};

use safe_yolo_detect::backend::{BackendChoice, BackendError};
use safe_yolo_detect::decode::DecodeError;
use safe_yolo_detect::manifest::ManifestError;
use safe_yolo_detect::{
    DetectError, Detector, LoadOptions, Manifest, Precision, load, load_manifest, report,
};
use safe_yolo_domain::{BBox, Detection};
use serde_json::Value;

fn crate_dir() -> PathBuf {
    safe_yolo_fixtures::manifest_dir!()
}

fn repo() -> PathBuf {
    crate_dir().join("../..")
}

fn nanodet_manifest() -> PathBuf {
    repo().join("models/nanodet-m-416-coco/model.toml")
}

/// The helmet test manifest, with weights resolved in the fixtures directory.
fn helmet_manifest(edit: impl Fn(String) -> String) -> Manifest {
    let path = crate_dir().join("tests/manifests/helmet-yolov12m-640.toml");
    let text = edit(std::fs::read_to_string(&path).unwrap());
    Manifest::from_toml(
        &text,
        &path,
        safe_yolo_fixtures::model("helmet-yolov12m-640.onnx")
            .parent()
            .unwrap(),
    )
    .unwrap()
}

fn golden(name: &str) -> Value {
    let path = crate_dir().join("tests/golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn bbox(v: &Value) -> BBox {
    let b: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    BBox {
        x1: b[0],
        y1: b[1],
        x2: b[2],
        y2: b[3],
    }
}

/// Tolerances of one comparison.
#[derive(Clone, Copy)]
struct Tol {
    iou: f32,
    score: f32,
}

const FP32: Tol = Tol {
    iou: 0.9,
    score: 0.02,
};
const INT8: Tol = Tol {
    iou: 0.8,
    score: 0.1,
};

/// Compares detections of `classes` (None = all) with the reference list. Both sides
/// must match one to one (IoU and score within `tol`); boxes whose score is within
/// `tol.score` of the threshold may be missing on either side.
fn compare(
    image: &str,
    got: &[Detection],
    reference: &Value,
    classes: Option<&[u32]>,
    threshold: f32,
    tol: Tol,
) -> Result<usize, String> {
    let wanted = |c: u32| classes.is_none_or(|cs| cs.contains(&c));
    let refs: Vec<(u32, f32, BBox)> = reference
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["class_id"].as_u64().unwrap() as u32,
                d["score"].as_f64().unwrap() as f32,
                bbox(&d["bbox"]),
            )
        })
        .filter(|(c, _, _)| wanted(*c))
        .collect();
    let got: Vec<&Detection> = got.iter().filter(|d| wanted(d.class_id)).collect();
    let borderline = |s: f32| s < threshold + tol.score;
    let mut used = vec![false; got.len()];
    for (c, s, b) in &refs {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, d)| !used[*i] && d.class_id == *c)
            .map(|(i, d)| (i, d.bbox.iou(b)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, iou)) if iou >= tol.iou && (got[i].score - s).abs() <= tol.score => {
                used[i] = true;
                eprintln!(
                    "{image}: class {c} IoU {iou:.3} score diff {:+.4}",
                    got[i].score - s
                );
            }
            Some((i, iou)) if !borderline(*s) => {
                return Err(format!(
                    "{image}: reference class {c} score {s} {b:?} best match IoU {iou:.3} score {} {:?}",
                    got[i].score, got[i].bbox
                ));
            }
            None if !borderline(*s) => {
                return Err(format!(
                    "{image}: reference class {c} score {s} {b:?} not found"
                ));
            }
            _ => {}
        }
    }
    for (i, d) in got.iter().enumerate() {
        if !used[i] && !borderline(d.score) {
            return Err(format!(
                "{image}: extra detection {} {} {:?}",
                d.class_name, d.score, d.bbox
            ));
        }
    }
    Ok(refs.len())
}

/// Runs `det` on every image of the golden file and compares.
fn check_golden(
    det: &mut dyn Detector,
    golden: &Value,
    images: &[&str],
    classes: Option<&[u32]>,
    tol: Tol,
) -> Result<usize, String> {
    let threshold = golden["score_threshold"].as_f64().unwrap() as f32;
    let mut matched = 0;
    for image in images {
        let frame = report::load_image(&safe_yolo_fixtures::media(image)).unwrap();
        let got = det.detect(&frame).map_err(|e| e.to_string())?;
        matched += compare(
            image,
            &got,
            &golden["images"][image],
            classes,
            threshold,
            tol,
        )?;
    }
    Ok(matched)
}

const NANODET_IMAGES: &[&str] = &[
    "bus.jpg",
    "zidane.jpg",
    "astronaut.png",
    "camera.png",
    "person-horse-dog.jpg",
];
const PERSON: Option<&[u32]> = Some(&[0]);

fn opts(backend: BackendChoice, precision: Precision) -> LoadOptions {
    LoadOptions {
        backend,
        precision: Some(precision),
        threads: 1,
        ..LoadOptions::default()
    }
}

#[cfg(feature = "tract")]
mod tract {
    use super::*;

    #[test]
    fn nanodet_fp32_matches_onnxruntime_reference() {
        let mut det = load(
            &nanodet_manifest(),
            &opts(BackendChoice::Tract, Precision::Fp32),
        )
        .unwrap();
        assert_eq!(det.info().classes.len(), 80);
        let g = golden("nanodet-m-416-coco-fp32.json");
        let persons = check_golden(det.as_mut(), &g, NANODET_IMAGES, PERSON, FP32).unwrap();
        assert!(
            persons >= 9,
            "bus 4 + zidane 2 + astronaut 1 + camera 1 + person-horse-dog 1, got {persons}"
        );
        // All classes agree too.
        check_golden(
            det.as_mut(),
            &g,
            &["bus.jpg", "person-horse-dog.jpg"],
            None,
            FP32,
        )
        .unwrap();
    }

    #[test]
    fn nanodet_int8_finds_the_same_persons() {
        let mut det = load(
            &nanodet_manifest(),
            &opts(BackendChoice::Tract, Precision::Int8),
        )
        .unwrap();
        assert_eq!(det.info().precision, Precision::Int8);
        check_golden(
            det.as_mut(),
            &golden("nanodet-m-416-coco-fp32.json"),
            NANODET_IMAGES,
            PERSON,
            INT8,
        )
        .unwrap();
        check_golden(
            det.as_mut(),
            &golden("nanodet-m-416-coco-int8.json"),
            NANODET_IMAGES,
            PERSON,
            INT8,
        )
        .unwrap();
    }

    /// The golden comparison is sensitive: feeding RGB instead of BGR (a typical
    /// preprocessing regression) must make it fail.
    #[test]
    fn golden_comparison_catches_a_preprocessing_regression() {
        let path = nanodet_manifest();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("channels = \"bgr\"", "channels = \"rgb\"");
        let m = Manifest::from_toml(&text, &path, path.parent().unwrap()).unwrap();
        let mut det = load_manifest(&m, &opts(BackendChoice::Tract, Precision::Fp32)).unwrap();
        let g = golden("nanodet-m-416-coco-fp32.json");
        let err = check_golden(&mut det, &g, &["bus.jpg", "zidane.jpg"], PERSON, FP32).unwrap_err();
        eprintln!("perturbed preprocessing detected: {err}");
    }

    #[test]
    fn yolov8_layout_helmet_model_with_metadata_class_names() {
        let m = helmet_manifest(|t| t);
        let mut det = load_manifest(
            &m,
            &LoadOptions {
                backend: BackendChoice::Tract,
                threads: 2,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        assert_eq!(&*det.info().classes[0], "With Helmet");
        assert_eq!(&*det.info().classes[1], "Without Helmet");
        let g = golden("helmet-yolov12m-640-fp32.json");
        let n = check_golden(&mut det, &g, &["bus.jpg", "zidane.jpg"], None, FP32).unwrap();
        assert!(n >= 3, "heads in bus.jpg and zidane.jpg, got {n}");
        let frame = report::load_image(&safe_yolo_fixtures::media("zidane.jpg")).unwrap();
        let d = det.detect(&frame).unwrap();
        assert!(
            d.iter().any(|d| &*d.class_name == "Without Helmet"),
            "{d:?}"
        );
    }

    #[test]
    fn auto_backend_and_class_filter() {
        let o = LoadOptions {
            classes: Some(vec!["bus".into()]),
            ..LoadOptions::default()
        };
        let mut det = load(&nanodet_manifest(), &o).unwrap();
        let frame = report::load_image(&safe_yolo_fixtures::media("bus.jpg")).unwrap();
        let d = det.detect(&frame).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(&*d[0].class_name, "bus");
        let err = load(
            &nanodet_manifest(),
            &LoadOptions {
                classes: Some(vec!["unicorn".into()]),
                ..LoadOptions::default()
            },
        )
        .err()
        .unwrap();
        assert!(matches!(err, DetectError::UnknownClass { .. }), "{err}");
    }

    #[test]
    fn unexpected_shapes_and_class_lists_are_clear_errors() {
        let path = nanodet_manifest();
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = path.parent().unwrap();
        let tract = opts(BackendChoice::Tract, Precision::Fp32);
        // Declared as a YOLOv8 model: the outputs do not fit.
        let m = Manifest::from_toml(
            &text.replace("family = \"nanodet\"", "family = \"yolov8\""),
            &path,
            dir,
        )
        .unwrap();
        let err = load_manifest(&m, &tract).unwrap_err();
        assert!(
            matches!(
                err,
                DetectError::Decode {
                    source: DecodeError::MissingOutput { .. },
                    ..
                }
            ),
            "{err}"
        );
        // Wrong input size for the model.
        let m =
            Manifest::from_toml(&text.replace("width = 416", "width = 320"), &path, dir).unwrap();
        let err = load_manifest(&m, &tract).unwrap_err();
        assert!(
            matches!(err, DetectError::Backend(BackendError::InputShape { .. })),
            "{err}"
        );
        // 79 class names for an 80-class model.
        let m = Manifest::from_toml(&text.replace("\"toothbrush\",", ""), &path, dir).unwrap();
        let err = load_manifest(&m, &tract).unwrap_err();
        assert!(
            matches!(
                err,
                DetectError::Decode {
                    source: DecodeError::ClassCount {
                        model: 80,
                        listed: 79,
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );
        // A manifest class list that disagrees with the ONNX metadata.
        let m = helmet_manifest(|t| format!("{t}\n[classes]\nnames = [\"helmet\", \"head\"]\n"));
        let err = load_manifest(&m, &tract).unwrap_err();
        assert!(matches!(err, DetectError::Classes { .. }), "{err}");
        assert!(err.to_string().contains("ONNX metadata"), "{err}");
    }
}

#[test]
fn missing_file_and_wrong_checksum_are_clear_errors() {
    let err = load(
        Path::new("/nonexistent/model.toml"),
        &LoadOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, DetectError::Manifest(ManifestError::Read { .. })),
        "{err}"
    );
    let path = nanodet_manifest();
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = path.parent().unwrap();
    let m =
        Manifest::from_toml(&text.replace("model-fp32.onnx", "missing.onnx"), &path, dir).unwrap();
    let err = load_manifest(&m, &opts(BackendChoice::Auto, Precision::Fp32)).unwrap_err();
    assert!(
        matches!(
            err,
            DetectError::Manifest(ManifestError::ReadWeights { .. })
        ),
        "{err}"
    );
    let m = Manifest::from_toml(&text.replace("d8b641eb", "00000000"), &path, dir).unwrap();
    let err = load_manifest(&m, &opts(BackendChoice::Auto, Precision::Fp32)).unwrap_err();
    assert!(
        matches!(
            err,
            DetectError::Manifest(ManifestError::ChecksumMismatch { .. })
        ),
        "{err}"
    );
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert!(
        chain
            .iter()
            .any(|s| s.contains("model-fp32.onnx") && s.contains("00000000")),
        "{chain:?}"
    );
}

#[cfg(feature = "onnxruntime")]
mod onnxruntime {
    use super::*;

    /// The `libonnxruntime.so` inside the PyPI `onnxruntime` wheel, or `ORT_DYLIB_PATH`.
    fn library() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
            return Some(PathBuf::from(p));
        }
        let out = std::process::Command::new("python3")
            .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
            .output()
            .ok()?;
        let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        let mut libs: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("libonnxruntime.so")
            })
            .collect();
        libs.sort();
        libs.pop()
    }

    fn ort_opts(precision: Precision) -> Option<LoadOptions> {
        let Some(lib) = library() else {
            eprintln!(
                "SKIPPED: no libonnxruntime.so (pip install onnxruntime, or set ORT_DYLIB_PATH)"
            );
            return None;
        };
        Some(LoadOptions {
            onnxruntime_library: Some(lib),
            ..opts(BackendChoice::OnnxRuntime, precision)
        })
    }

    #[test]
    fn nanodet_fp32_and_int8_on_onnxruntime() {
        let Some(o) = ort_opts(Precision::Fp32) else {
            return;
        };
        let mut det = load(&nanodet_manifest(), &o).unwrap();
        assert_eq!(
            det.info().backend,
            safe_yolo_detect::BackendKind::OnnxRuntime
        );
        check_golden(
            det.as_mut(),
            &golden("nanodet-m-416-coco-fp32.json"),
            NANODET_IMAGES,
            None,
            FP32,
        )
        .unwrap();
        let o = LoadOptions {
            precision: Some(Precision::Int8),
            ..o
        };
        let mut det = load(&nanodet_manifest(), &o).unwrap();
        check_golden(
            det.as_mut(),
            &golden("nanodet-m-416-coco-int8.json"),
            NANODET_IMAGES,
            PERSON,
            INT8,
        )
        .unwrap();
        check_golden(
            det.as_mut(),
            &golden("nanodet-m-416-coco-fp32.json"),
            NANODET_IMAGES,
            PERSON,
            INT8,
        )
        .unwrap();
    }

    #[test]
    fn helmet_on_onnxruntime() {
        let Some(o) = ort_opts(Precision::Fp32) else {
            return;
        };
        let mut det = load_manifest(&helmet_manifest(|t| t), &o).unwrap();
        check_golden(
            &mut det,
            &golden("helmet-yolov12m-640-fp32.json"),
            &["bus.jpg", "zidane.jpg"],
            None,
            FP32,
        )
        .unwrap();
    }

    #[test]
    fn auto_prefers_onnxruntime_when_present() {
        let Some(o) = ort_opts(Precision::Fp32) else {
            return;
        };
        let o = LoadOptions {
            backend: BackendChoice::Auto,
            precision: None,
            ..o
        };
        let det = load(&nanodet_manifest(), &o).unwrap();
        assert_eq!(
            det.info().backend,
            safe_yolo_detect::BackendKind::OnnxRuntime
        );
        assert_eq!(
            det.info().precision,
            Precision::Int8,
            "manifest prefers int8 on onnxruntime"
        );
    }
}

#[cfg(feature = "rknn")]
mod rknn {
    use super::*;

    /// `rknpu2` panics when dlopen fails; the backend must turn that into an error.
    #[test]
    fn missing_or_broken_runtime_library_is_an_error_not_a_panic() {
        // The shipped manifest has an [rknn] model (its last table).
        let path = nanodet_manifest();
        let text = std::fs::read_to_string(&path).unwrap();
        let m = Manifest::from_toml(&text, &path, path.parent().unwrap()).unwrap();
        assert!(m.spec.rknn.is_some());
        let dir = std::env::temp_dir().join(format!("safe-yolo-rknn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("librknnrt.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let o = LoadOptions {
            backend: BackendChoice::Rknn,
            rknn_library: Some(fake),
            ..LoadOptions::default()
        };
        let err = load_manifest(&m, &o).unwrap_err();
        assert!(
            matches!(&err, DetectError::Backend(BackendError::Unavailable { reason, .. }) if reason.contains("dlopen")),
            "{err:?}"
        );
        let o = LoadOptions {
            rknn_library: Some(dir.join("absent.so")),
            ..o
        };
        let err = load_manifest(&m, &o).unwrap_err();
        assert!(
            matches!(err, DetectError::Backend(BackendError::Unavailable { .. })),
            "{err:?}"
        );
        // A manifest without an [rknn] model cannot run on the NPU.
        let (without, _) = text.split_once("\n[rknn]").unwrap();
        let plain = Manifest::from_toml(without, &path, path.parent().unwrap()).unwrap();
        assert!(plain.spec.rknn.is_none());
        let err = load_manifest(
            &plain,
            &LoadOptions {
                backend: BackendChoice::Rknn,
                ..LoadOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, DetectError::Backend(BackendError::Unavailable { .. })),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
