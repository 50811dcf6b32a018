//! End-to-end checks through the public API: footage written as real JPEGs,
//! replayed through the sandboxed factory, decoded back to RGB. Plus an
//! opt-in benchmark of the per-frame costs (`--ignored`).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions may fail loudly too"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use safe_yolo_capture::{
    CaptureError, JpegEncoder, Pacing, Payload, PixelFormat, SourceKind, SourcePolicy,
    SourceRequest, convert, open,
};
use safe_yolo_domain::RgbFrame;

const T: Duration = Duration::from_secs(2);

/// A 64x48 frame filled with a colour that encodes `k`.
fn frame(k: u8) -> RgbFrame {
    let colour = [k.wrapping_mul(40), 255 - k.wrapping_mul(40), 128];
    RgbFrame::new(64, 48, colour.repeat(64 * 48)).unwrap()
}

fn replay(path: &str, looping: bool, start_frame: u64) -> SourceRequest {
    SourceRequest::Replay {
        path: path.into(),
        looping,
        pacing: Pacing::AsFastAsPossible,
        fps: 10.0,
        start_frame,
    }
}

/// `media/clip.mjpeg` and `media/frames/NNNN.jpg` holding `n` encoded frames.
fn write_footage(media: &Path, n: u8) {
    std::fs::create_dir_all(media.join("frames")).unwrap();
    let mut enc = JpegEncoder::new(90).unwrap();
    let mut stream = Vec::new();
    for k in 0..n {
        let jpeg = enc.encode(&frame(k)).unwrap();
        std::fs::write(media.join(format!("frames/{:04}.jpg", k + 1)), &jpeg).unwrap();
        stream.extend_from_slice(&jpeg);
    }
    std::fs::write(media.join("clip.mjpeg"), &stream).unwrap();
}

fn close(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= 3)
}

#[test]
fn replayed_jpegs_decode_to_the_recorded_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    write_footage(&media, 5);
    let policy = SourcePolicy::new(&media);
    for path in ["clip.mjpeg", "frames"] {
        let mut src = open(&replay(path, true, 3), &policy).unwrap();
        let info = src.info();
        assert_eq!((info.width, info.height), (64, 48));
        assert_eq!(info.format, PixelFormat::Mjpeg);
        assert!(matches!(
            info.kind,
            SourceKind::ReplayMjpeg { .. } | SourceKind::ReplayFolder { .. }
        ));
        let mut last = Duration::ZERO;
        for n in 0..12u64 {
            let captured = src.next_frame(T).unwrap();
            assert_eq!(captured.seq, n);
            assert!(captured.since_start >= last, "time runs forward");
            last = captured.since_start;
            assert!(matches!(captured.payload, Payload::Jpeg(_)));
            let rgb = convert::to_rgb(&captured.payload).unwrap();
            let k = ((3 + n) % 5) as u8;
            assert!(
                close(&rgb.data()[..3], &frame(k).data()[..3]),
                "{path} frame {n}: {:?} vs {:?}",
                &rgb.data()[..3],
                &frame(k).data()[..3]
            );
        }
    }
}

#[test]
fn the_factory_refuses_what_the_sandbox_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    write_footage(&media, 1);
    std::os::unix::fs::symlink("/etc", media.join("etc")).unwrap();
    let policy = SourcePolicy::new(&media);
    for path in ["../media/clip.mjpeg", "etc", "/etc/hostname"] {
        match open(&replay(path, true, 0), &policy) {
            Err(CaptureError::Refused(reason)) => {
                let text = reason.to_string();
                assert!(
                    text.contains("media directory") || text.contains(".."),
                    "{text}"
                );
            }
            Err(other) => panic!("{path}: unexpected error {other}"),
            Ok(_) => panic!("{path}: opened"),
        }
    }
    let dev_null = SourceRequest::V4l2 {
        device: "/dev/null".into(),
        width: 640,
        height: 480,
        fps: 10.0,
        format: None,
    };
    let Err(CaptureError::Refused(reason)) = open(&dev_null, &policy) else {
        panic!("/dev/null was not refused");
    };
    assert!(reason.to_string().contains("not a V4L2 device"), "{reason}");
}

#[test]
fn a_finished_replay_reports_its_end_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    write_footage(&media, 2);
    let policy = SourcePolicy::new(&media);
    let req = replay("clip.mjpeg", false, 0);
    let mut src = open(&req, &policy).unwrap();
    src.next_frame(T).unwrap();
    src.next_frame(T).unwrap();
    assert!(src.next_frame(T).unwrap_err().is_end());
    drop(src);
    let mut again = open(&req, &policy).unwrap();
    assert_eq!(again.next_frame(T).unwrap().seq, 0);
}

/// Where the demo footage is (`SAFEYOLO_DEMO_MEDIA` or `<repo>/demo-media`).
fn demo_media() -> PathBuf {
    std::env::var_os("SAFEYOLO_DEMO_MEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| safe_yolo_fixtures::manifest_dir!().join("../../demo-media"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Per-frame costs on the demo footage (run `scripts/demo-media.sh` first):
/// `cargo test --release -p safe-yolo-capture --test capture -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; needs demo-media and a release build"]
fn bench_per_frame_costs() {
    let media = demo_media();
    let policy = SourcePolicy::new(&media);
    let t0 = Instant::now();
    let mut src = open(&replay("vtest.mjpeg", false, 0), &policy).unwrap();
    let open_time = t0.elapsed();
    assert_eq!(src.info().frame_count, Some(795));
    let (mut read, mut decode, mut encode) = (Vec::new(), Vec::new(), Vec::new());
    let mut enc = JpegEncoder::new(80).unwrap();
    let mut last = None;
    loop {
        let t = Instant::now();
        let captured = match src.next_frame(T) {
            Ok(f) => f,
            Err(e) if e.is_end() => break,
            Err(e) => panic!("{e}"),
        };
        read.push(t.elapsed());
        let t = Instant::now();
        let rgb = convert::to_rgb(&captured.payload).unwrap();
        decode.push(t.elapsed());
        assert_eq!((rgb.width(), rgb.height()), (768, 576));
        if read.len() % 8 == 0 {
            let t = Instant::now();
            enc.encode(&rgb).unwrap();
            encode.push(t.elapsed());
        }
        last = Some(rgb);
    }
    assert_eq!(read.len(), 795);
    // Raw conversions on a 768x576 frame (YUYV and NV12 built from the last frame's size).
    let rgb = last.unwrap();
    let (w, h) = (rgb.width(), rgb.height());
    let yuyv = vec![128u8; (w * h * 2) as usize];
    let nv12 = vec![128u8; (w * h * 3 / 2) as usize];
    let (mut t_yuyv, mut t_nv12, mut t_copy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..50 {
        let t = Instant::now();
        convert::raw_to_rgb(PixelFormat::Yuyv, w, h, (w * 2) as usize, &yuyv).unwrap();
        t_yuyv.push(t.elapsed());
        let t = Instant::now();
        convert::raw_to_rgb(PixelFormat::Nv12, w, h, w as usize, &nv12).unwrap();
        t_nv12.push(t.elapsed());
        let t = Instant::now();
        convert::raw_to_rgb(PixelFormat::Rgb24, w, h, (w * 3) as usize, rgb.data()).unwrap();
        t_copy.push(t.elapsed());
    }
    let copy = median(t_copy);
    let ratio = |d: Duration| d.as_secs_f64() / copy.as_secs_f64();
    let report = format!(
        "open+index 795 frames: {open_time:?}\n\
         read frame (median): {:?}\n\
         decode 768x576 JPEG (zune, median): {:?}\n\
         encode 768x576 JPEG q80 (turbojpeg, median): {:?}\n\
         RGB24 copy (reference): {copy:?}\n\
         YUYV->RGB: {:?} ({:.1}x copy)\n\
         NV12->RGB: {:?} ({:.1}x copy)",
        median(read),
        median(decode),
        median(encode),
        median(t_yuyv.clone()),
        ratio(median(t_yuyv)),
        median(t_nv12.clone()),
        ratio(median(t_nv12)),
    );
    #[allow(clippy::print_stderr, reason = "benchmark report")]
    {
        eprintln!("{report}");
    }
}
