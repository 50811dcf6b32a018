//! Crash-test child: writes events as fast as it can from several threads and prints
//! `ACK <id> <started_at>` on stdout after each commit returned. The crash test kills it
//! with SIGKILL at random moments and checks that every acknowledged event survived.
//!
//! Usage: `store-crash-writer <state-dir> <writer-threads>`

use std::io::Write;
use std::sync::Arc;

use safe_yolo_domain::alarm::AlarmDetail;
use safe_yolo_domain::{CameraId, RuleId, ZoneId};
use safe_yolo_store::{
    AlarmKey, EventDetails, NewEvent, Severity, Store, StoreConfig, StoreHandle,
};

/// A small fake JPEG (SOI ... EOI) so snapshot files are exercised too.
fn fake_jpeg(n: u64) -> Arc<[u8]> {
    let mut v = vec![0xFF, 0xD8];
    v.extend(std::iter::repeat_n(
        u8::try_from(n % 251).unwrap_or(0),
        8 * 1024,
    ));
    v.extend([0xFF, 0xD9]);
    v.into()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("missing state dir")?;
    let threads: u64 = args.next().as_deref().unwrap_or("4").parse()?;
    let store = Store::open(StoreConfig::new(dir))?;
    let (handle, _writer) = StoreHandle::start(store, 1024)?;
    let out = Arc::new(parking_stdout());
    let mut joins = Vec::new();
    for t in 0..threads {
        let handle = handle.clone();
        let out = Arc::clone(&out);
        joins.push(std::thread::spawn(move || -> Result<(), String> {
            let camera = CameraId::new(format!("cam-{t}")).map_err(|e| e.to_string())?;
            let rule = RuleId::new("no-entry").map_err(|e| e.to_string())?;
            let zone = ZoneId::new("lane").map_err(|e| e.to_string())?;
            for n in 0u64.. {
                let started_at = t * 1_000_000_000 + n;
                let ev = NewEvent {
                    camera: camera.clone(),
                    rule: rule.clone(),
                    zone: Some(zone.clone()),
                    track: Some(n),
                    kind: "intrusion".into(),
                    severity: Severity::Critical,
                    started_at,
                    ended_at: None,
                    message: format!("thread {t} event {n}"),
                    details: Some(EventDetails {
                        alarm_key: AlarmKey { boot_ms: t, seq: n },
                        detail: AlarmDetail::Intrusion,
                    }),
                    snapshot_jpeg: (n % 3 == 0).then(|| fake_jpeg(n)),
                    cleared: n % 2 == 1,
                };
                let id = handle.blocking_record(ev).map_err(|e| e.to_string())?;
                let mut o = out.lock().map_err(|_| "stdout lock poisoned".to_owned())?;
                writeln!(o, "ACK {id} {started_at}").map_err(|e| e.to_string())?;
                o.flush().map_err(|e| e.to_string())?;
            }
            Ok(())
        }));
    }
    for j in joins {
        j.join().map_err(|_| "writer thread panicked")??;
    }
    Ok(())
}

#[allow(
    clippy::disallowed_types,
    reason = "test child; a poisoned lock just ends it"
)]
fn parking_stdout() -> std::sync::Mutex<std::io::Stdout> {
    std::sync::Mutex::new(std::io::stdout())
}
