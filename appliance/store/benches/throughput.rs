//! Write throughput and commit latency of the store (harness = false).
//!
//! Run: `cargo bench -p safe-yolo-store --bench throughput`. Reports medians and p99 and,
//! as the in-run reference, the cost of one 4 KiB write + fsync on the same file system
//! (the floor any durable commit pays). Scenarios:
//! 1. one event per transaction, no snapshot (and again with an integration registered:
//!    each event also writes its outbox entry, in the same transaction);
//! 2. one event per transaction with a 50 KB snapshot;
//! 3. a burst of 3000 events through the writer thread (group commit), 1 in 3 with a snapshot;
//! 4. an alarm storm: 100 events/s for 10 s, each with a 50 KB snapshot, through `try_submit`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark report"
)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use safe_yolo_domain::alarm::AlarmDetail;
use safe_yolo_domain::{CameraId, RuleId};
use safe_yolo_store::{
    AlarmKey, EventDetails, NewEvent, RetentionPolicy, Severity, Store, StoreConfig, StoreHandle,
};

fn event(n: u64, jpeg: Option<Arc<[u8]>>) -> NewEvent {
    NewEvent {
        camera: CameraId::new("bench").unwrap(),
        rule: RuleId::new("no-entry").unwrap(),
        zone: None,
        track: Some(n),
        kind: "intrusion".into(),
        severity: Severity::Critical,
        started_at: n,
        ended_at: None,
        message: "person in forklift lane".into(),
        details: Some(EventDetails {
            alarm_key: AlarmKey { boot_ms: 0, seq: n },
            detail: AlarmDetail::Dwell {
                inside: Duration::from_millis(1500),
            },
        }),
        snapshot_jpeg: jpeg,
        cleared: false,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "index of a percentile"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut lat: Vec<Duration>, total: Duration, n: usize, reference: Duration) {
    lat.sort();
    let p50 = pct(&lat, 0.5);
    let p99 = pct(&lat, 0.99);
    println!(
        "{name:<48} n={n:>5}  {:>8.0} ev/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  p50/fsync {:>5.2}",
        n as f64 / total.as_secs_f64(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        p50.as_secs_f64() / reference.as_secs_f64(),
    );
}

fn open(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention = RetentionPolicy {
        snapshot_quota_bytes: 4 << 30,
        min_free_bytes: 64 << 20,
        ..RetentionPolicy::default()
    };
    Store::open(cfg).unwrap()
}

fn main() {
    let base = std::env::var_os("SAFEYOLO_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let jpeg: Arc<[u8]> = vec![0x5Au8; 50_000].into();

    // Reference: 4 KiB write + fsync.
    let mut fs_lat = Vec::new();
    let f = tmp.path().join("ref.bin");
    for _ in 0..200 {
        let t = Instant::now();
        let mut h = std::fs::File::create(&f).unwrap();
        h.write_all(&[1u8; 4096]).unwrap();
        h.sync_all().unwrap();
        fs_lat.push(t.elapsed());
    }
    fs_lat.sort();
    let reference = pct(&fs_lat, 0.5);
    println!(
        "reference: 4 KiB write+fsync p50 {:.2} ms, p99 {:.2} ms (dir {})",
        reference.as_secs_f64() * 1e3,
        pct(&fs_lat, 0.99).as_secs_f64() * 1e3,
        base.display()
    );

    // 1 and 2: one event per transaction.
    for (name, snap, sink) in [
        ("1 event/txn, no snapshot", None, false),
        ("1 event/txn, no snapshot, outbox (1 sink)", None, true),
        ("1 event/txn, 50 KB snapshot", Some(jpeg.clone()), false),
    ] {
        let dir = tmp
            .path()
            .join(name.replace(['/', ' ', ',', '(', ')'], "_"));
        let store = open(&dir);
        if sink {
            store.register_outbox_sinks(&["bench".into()]).unwrap();
        }
        let n = 300;
        let mut lat = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n as u64 {
            let t = Instant::now();
            store.insert_events(&[event(i, snap.clone())]).unwrap();
            lat.push(t.elapsed());
        }
        report(name, lat, start.elapsed(), n, reference);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 3: burst through the writer thread.
    {
        let (handle, writer) = StoreHandle::start(open(&tmp.path().join("burst")), 8192).unwrap();
        let n = 3000usize;
        let (lat, total) = rt.block_on(async {
            let start = Instant::now();
            let mut waits = Vec::with_capacity(n);
            for i in 0..n as u64 {
                let t = Instant::now();
                let ticket = handle
                    .try_submit(event(i, (i % 3 == 0).then(|| jpeg.clone())))
                    .unwrap();
                waits.push(tokio::spawn(async move {
                    ticket.committed().await.unwrap();
                    t.elapsed()
                }));
            }
            let mut lat = Vec::with_capacity(n);
            for w in waits {
                lat.push(w.await.unwrap());
            }
            (lat, start.elapsed())
        });
        let m = handle.metrics();
        let batches = m.event_batches.load(Ordering::Relaxed);
        report(
            "burst 3000 via writer (group commit, 1/3 snap)",
            lat,
            total,
            n,
            reference,
        );
        println!(
            "    {batches} transactions, {:.1} events per transaction",
            n as f64 / batches as f64
        );
        drop(handle);
        writer.join();
    }

    // 4: alarm storm, 100 events/s for 10 s, each with a snapshot.
    {
        let (handle, writer) = StoreHandle::start(open(&tmp.path().join("storm")), 4096).unwrap();
        let n = 1000usize;
        let (lat, total) = rt.block_on(async {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let start = Instant::now();
            let mut waits = Vec::with_capacity(n);
            for i in 0..n as u64 {
                tick.tick().await;
                let t = Instant::now();
                match handle.try_submit(event(i, Some(jpeg.clone()))) {
                    Ok(ticket) => waits.push(tokio::spawn(async move {
                        ticket.committed().await.unwrap();
                        t.elapsed()
                    })),
                    Err(e) => println!("    rejected: {e}"),
                }
            }
            let mut lat = Vec::with_capacity(n);
            for w in waits {
                lat.push(w.await.unwrap());
            }
            (lat, start.elapsed())
        });
        let m = handle.metrics();
        report(
            "alarm storm 100 ev/s x 10 s, 50 KB snapshot each",
            lat,
            total,
            n,
            reference,
        );
        println!(
            "    rejected {}, transactions {}, snapshots written {}",
            m.events_rejected_queue_full.load(Ordering::Relaxed),
            m.event_batches.load(Ordering::Relaxed),
            m.snapshots_written.load(Ordering::Relaxed)
        );
        drop(handle);
        writer.join();
    }
}
