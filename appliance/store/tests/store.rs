//! Integration tests of the store: crash safety (SIGKILL), migrations from every earlier
//! schema's fixture, quota and retention, backup/restore, export, the async handle.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly by design"
)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use safe_yolo_domain::alarm::AlarmDetail;
use safe_yolo_domain::{CameraId, RuleId, ZoneId};
use safe_yolo_store::{
    AlarmKey, AuditResult, CURRENT_VERSION, Event, EventDetails, EventQuery, EventState, NewAudit,
    NewEvent, OutboxEntry, OutboxMessage, RetentionPolicy, Role, SettingKind, Severity, Snapshot,
    SnapshotRefusal, StateFilter, Store, StoreConfig, StoreError, StoreHandle, SubmitError, User,
    now_ms,
};
use sha2::{Digest, Sha256};

fn ev(camera: &str, started_at: u64, jpeg: Option<Vec<u8>>) -> NewEvent {
    NewEvent {
        camera: CameraId::new(camera).unwrap(),
        rule: RuleId::new("no-entry").unwrap(),
        zone: Some(ZoneId::new("lane").unwrap()),
        track: Some(1),
        kind: "intrusion".into(),
        severity: Severity::Critical,
        started_at,
        ended_at: None,
        message: format!("event at {started_at}"),
        details: Some(EventDetails {
            alarm_key: AlarmKey {
                boot_ms: 1_700_000_000_000,
                seq: started_at,
            },
            detail: AlarmDetail::Occupancy { count: 2 },
        }),
        snapshot_jpeg: jpeg.map(Into::into),
        cleared: false,
    }
}

fn jpeg(len: usize, fill: u8) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.resize(len - 2, fill);
    v.extend([0xFF, 0xD9]);
    v
}

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir)).unwrap()
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn fixtures_dir() -> PathBuf {
    safe_yolo_fixtures::manifest_dir!().join("tests/fixtures")
}

// === crash safety ===

#[test]
fn sigkill_never_loses_an_acknowledged_event_nor_reuses_an_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let exe = env!("CARGO_BIN_EXE_store-crash-writer");
    let mut all_acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seq_after_restart = 0u64;
    let rounds = 12u64;
    for round in 0..rounds {
        let mut child = Command::new(exe)
            .arg(&dir)
            .arg("3")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                // A line cut by the kill is incomplete: skip anything malformed.
                if let ["ACK", id, at] = parts[..]
                    && let (Ok(id), Ok(at)) = (id.parse(), at.parse())
                {
                    let _ = tx.send((id, at));
                }
            }
        });
        // Wait for a round-dependent number of acknowledgements, then kill mid-stream.
        let target = 20 + (round * 37) % 90;
        let mut acked = Vec::new();
        while (acked.len() as u64) < target {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(a) => acked.push(a),
                Err(e) => panic!("child produced no acks: {e}"),
            }
        }
        // And a further round-dependent pause so the kill lands at arbitrary points.
        #[allow(clippy::disallowed_methods, reason = "plain test thread, no runtime")]
        std::thread::sleep(Duration::from_micros((round * 7919) % 20_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(rx.try_iter());
        assert!(!acked.is_empty());

        // Ids acknowledged in this round are all new: above everything committed before.
        for (id, _) in &acked {
            assert!(
                *id > seq_after_restart,
                "round {round}: id {id} reused (seq was {seq_after_restart})"
            );
        }
        for (id, at) in &acked {
            assert!(
                all_acked.insert(*id, *at).is_none(),
                "id {id} acknowledged twice"
            );
        }

        let store = open(&dir);
        let stats = store.stats().unwrap();
        assert_eq!(stats.schema_version, CURRENT_VERSION);
        // Every event acknowledged in any round is there, with its content.
        for (&id, &at) in &all_acked {
            let e = store
                .get_event(id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged event {id} lost"));
            assert_eq!(e.started_at, at, "event {id} has the wrong content");
        }
        // Ids in the database are strictly increasing and never above the sequence.
        let mut q = EventQuery {
            oldest_first: true,
            limit: 10_000,
            ..EventQuery::default()
        };
        let mut last = 0;
        let mut referenced = HashSet::new();
        loop {
            let page = store.query_events(&q).unwrap();
            for e in &page.events {
                assert!(e.id > last);
                last = e.id;
                if let Snapshot::Stored(r) = &e.snapshot {
                    let bytes = std::fs::read(store.snapshot_path(r).unwrap()).unwrap();
                    assert_eq!(
                        bytes.len() as u64,
                        r.bytes,
                        "snapshot of {} truncated",
                        e.id
                    );
                    assert_eq!(hex::encode(Sha256::digest(&bytes)), r.sha256);
                    referenced.insert(r.file.clone());
                }
            }
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert!(stats.event_seq >= last);
        assert!(stats.event_seq >= *all_acked.keys().last().unwrap());
        // No orphan or temporary snapshot files survive the open.
        let on_disk: HashSet<String> = snapshot_files(&dir).into_iter().collect();
        assert_eq!(on_disk, referenced, "round {round}");
        seq_after_restart = stats.event_seq;
    }
    assert!(all_acked.len() as u64 >= rounds * 20);
}

// === migrations ===

#[test]
fn migrates_every_earlier_schema_fixture() {
    // One entry per earlier schema version; add the next one when v4 ships.
    type Check = fn(&Store);
    let fixtures: [(u32, &str, Check); 3] = [
        (1, "schema-v1.redb", check_migrated_v1),
        (2, "schema-v2.redb", check_migrated_v2),
        (3, "schema-v3.redb", check_migrated_v3),
    ];
    assert_eq!(fixtures.len() as u32, CURRENT_VERSION - 1);
    for (version, name, check) in fixtures {
        let tmp = tempfile::tempdir().unwrap();
        let fixture = fixtures_dir().join(name);
        std::fs::copy(&fixture, tmp.path().join("store.redb")).unwrap();
        let store = open(tmp.path());
        let report = store.open_report().clone();
        assert_eq!(report.found_version, Some(version));
        let backup = report.backup.expect("a pre-migration copy");
        // The copy aside is still a readable database of the old version (for a rollback).
        assert_eq!(raw_schema_version(&backup), u64::from(version));
        check(&store);
        let audit_rows = store.stats().unwrap().audit_rows;
        drop(store);
        // Reopening does not migrate again.
        let store = open(tmp.path());
        assert_eq!(store.open_report().backup, None);
        assert_eq!(store.stats().unwrap().audit_rows, audit_rows);
    }
}

fn check_migrated_v1(store: &Store) {
    let stats = store.stats().unwrap();
    assert_eq!(stats.schema_version, CURRENT_VERSION);
    assert_eq!(stats.events, 5);
    assert_eq!(stats.event_seq, 7);
    assert_eq!(store.open_event_ids().unwrap(), vec![4, 6, 7]);
    let e1 = store.get_event(1).unwrap().unwrap();
    match &e1.state {
        EventState::Cleared {
            at, acknowledged, ..
        } => {
            assert_eq!(*at, 1_700_000_020_000);
            assert_eq!(acknowledged.as_ref().unwrap().by, "alice");
        }
        s => panic!("event 1 should be cleared, is {s:?}"),
    }
    let e4 = store.get_event(4).unwrap().unwrap();
    assert_eq!(
        e4.state,
        EventState::Acknowledged {
            by: "bob".into(),
            at: 1_700_000_410_000
        }
    );
    assert_eq!(e4.camera.as_str(), "dock");
    assert_eq!(
        store.get_event(7).unwrap().unwrap().severity,
        Severity::Critical
    );
    assert_eq!(store.get_event(2).unwrap(), None);
    assert_eq!(e1.snapshot, Snapshot::None);
    assert_eq!(store.get_user("admin").unwrap().unwrap().role, Role::Admin);
    assert!(store.get_session("s-1").unwrap().is_some());
    assert_eq!(
        store.get_api_key("k-1").unwrap().unwrap().role,
        Role::Viewer
    );
    let zone = store
        .get_setting(SettingKind::Zone, "forklift-lane")
        .unwrap()
        .unwrap();
    assert_eq!(zone.version, 3);
    let (audit, _) = store.audit_page(None, 10, true).unwrap();
    let steps: Vec<_> = audit
        .iter()
        .map(|r| (r.action.as_str(), r.before.as_deref(), r.after.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            ("store.migrate", Some("v1"), Some("v2 (5 events rewritten)")),
            (
                "store.migrate",
                Some("v2"),
                Some("v3 (0 event details typed)")
            ),
            (
                "store.migrate",
                Some("v3"),
                Some("v4 (integration outbox created)")
            ),
        ]
    );
    assert!(
        (1..=7).all(|id| store
            .get_event(id)
            .unwrap()
            .is_none_or(|e| e.details.is_none())),
        "v1 had no details"
    );
    // The sequence continues after the highest id ever handed out, not after the last row.
    let id = store.insert_events(&[ev("gate", 1, None)]).unwrap();
    assert_eq!(id, vec![8]);
}

/// The v2 fixture's events, as the raw JSON records of the database.
fn raw_events(path: &Path) -> Vec<(u64, serde_json::Value)> {
    let db = redb::Database::open(path).unwrap();
    let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let t = tx
        .open_table(redb::TableDefinition::<u64, &[u8]>::new("events"))
        .unwrap();
    redb::ReadableTable::iter(&t)
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            (k.value(), serde_json::from_slice(v.value()).unwrap())
        })
        .collect()
}

fn check_migrated_v2(store: &Store) {
    let stats = store.stats().unwrap();
    assert_eq!(stats.schema_version, CURRENT_VERSION);
    assert_eq!(stats.events, 12);
    assert_eq!(stats.event_seq, 13);
    assert_eq!(stats.snapshots, 1);
    assert_eq!(stats.snapshot_bytes, 2048);
    // Every detail the v2 dispatcher wrote is typed now; the unreadable one is null.
    let expected = safe_yolo_store::schema::v2::fixture_details();
    assert_eq!(expected.len(), 12);
    for (id, _, details) in &expected {
        let e = store.get_event(*id).unwrap().unwrap();
        assert_eq!(&e.details, details, "event {id}");
    }
    assert_eq!(
        store.get_event(3).unwrap().unwrap().details.unwrap().detail,
        AlarmDetail::Dwell {
            inside: Duration::from_millis(12_500)
        }
    );
    // Nothing else changed: each record equals its v2 original but for `details`.
    let backup = store.open_report().backup.clone().unwrap();
    let before = raw_events(&backup);
    assert_eq!(before.len(), 12);
    for (id, mut v2) in before {
        let e = store.get_event(id).unwrap().unwrap();
        let mut v3 = serde_json::to_value(&e).unwrap();
        assert!(
            !v3["details"].to_string().contains("Dwell {"),
            "no Debug text left: {v3}"
        );
        v2.as_object_mut().unwrap().remove("details");
        v3.as_object_mut().unwrap().remove("details");
        assert_eq!(v3, v2, "event {id}");
    }
    assert_eq!(
        store.open_event_ids().unwrap(),
        vec![1, 3, 6, 7, 9, 10, 12, 13]
    );
    assert_eq!(store.get_event(4).unwrap(), None);
    assert_eq!(store.get_user("admin").unwrap().unwrap().role, Role::Admin);
    assert!(store.get_session("s-1").unwrap().is_some());
    assert_eq!(
        store.get_api_key("k-1").unwrap().unwrap().role,
        Role::Viewer
    );
    let zone = store
        .get_setting(SettingKind::Zone, "forklift-lane")
        .unwrap()
        .unwrap();
    assert_eq!(zone.version, 3);
    let (audit, _) = store.audit_page(None, 10, true).unwrap();
    let rows: Vec<_> = audit
        .iter()
        .map(|r| (r.id, r.action.as_str(), r.after.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            (4, "user.create", Some("acknowledged")),
            (5, "event.acknowledge", Some("acknowledged")),
            (
                6,
                "store.migrate",
                Some("v3 (10 event details typed, unreadable dropped: events 13)")
            ),
            (7, "store.migrate", Some("v4 (integration outbox created)")),
        ]
    );
    let id = store.insert_events(&[ev("gate", 1, None)]).unwrap();
    assert_eq!(id, vec![14]);
}

/// v3 -> v4: the records are untouched, the outbox exists and is empty, and a sink
/// registered afterwards starts at the head and gets what happens from then on.
fn check_migrated_v3(store: &Store) {
    let stats = store.stats().unwrap();
    assert_eq!(stats.schema_version, CURRENT_VERSION);
    assert_eq!((stats.events, stats.event_seq), (12, 13));
    check_migrated_v2_events(store);
    let (audit, _) = store.audit_page(None, 10, true).unwrap();
    let steps: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "store.migrate")
        .map(|r| (r.before.as_deref(), r.after.as_deref()))
        .collect();
    assert_eq!(
        steps.last(),
        Some(&(Some("v3"), Some("v4 (integration outbox created)")))
    );
    let status = store.outbox_status().unwrap();
    assert_eq!((status.head, status.entries, status.sinks.len()), (0, 0, 0));
    // No sink: an event writes no entry.
    store.insert_events(&[ev("gate", 1, None)]).unwrap();
    assert_eq!(store.outbox_status().unwrap().head, 0);
    let cursors = store.register_outbox_sinks(&["mqtt".into()]).unwrap();
    assert_eq!(cursors[0].cursor, 0);
    let ids = store.insert_events(&[ev("gate", 2, None)]).unwrap();
    let entries = store.outbox_after("mqtt", 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message.event().map(|e| e.id), Some(ids[0]));
    // Acknowledging event 3 (active in the fixture) is delivered too.
    store.acknowledge(3, "alice", 5).unwrap();
    assert_eq!(store.outbox_after("mqtt", 10).unwrap().len(), 2);
}

#[test]
fn a_freshly_generated_v3_database_migrates_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    safe_yolo_store::schema::v3::write_fixture(&tmp.path().join("store.redb")).unwrap();
    assert_eq!(raw_schema_version(&tmp.path().join("store.redb")), 3);
    check_migrated_v3(&open(tmp.path()));
}

// === the integrations' outbox ===

fn kinds(entries: &[OutboxEntry]) -> Vec<(String, Option<u64>, Option<&'static str>)> {
    entries
        .iter()
        .map(|e| {
            let v = serde_json::to_value(&e.message).unwrap();
            (
                v["kind"].as_str().unwrap().to_owned(),
                e.message.event().map(|ev| ev.id),
                e.message.event().map(|ev| ev.state.name()),
            )
        })
        .collect()
}

/// Each record and its outbox entry commit together: events, acknowledgements, ends
/// and clears, camera health and output changes, in the order they happened; a refused
/// change writes no entry; a failed transaction neither.
#[test]
fn every_record_change_writes_its_outbox_entry_in_the_same_transaction() {
    use safe_yolo_domain::alarm::CameraHealth;
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.register_outbox_sinks(&["mqtt".into()]).unwrap();
    let ids = store
        .insert_events(&[ev("gate", 1, None), ev("dock", 2, None)])
        .unwrap();
    store.acknowledge(ids[0], "alice", 10).unwrap();
    store
        .transaction(|t| t.end_alarm(ids[0], 11).map(drop))
        .unwrap();
    // Refused: already cleared. No entry.
    assert!(store.acknowledge(ids[0], "bob", 12).is_err());
    // A transaction that fails after the change: neither the change nor its entry.
    let failed: Result<(), StoreError> = store.transaction(|t| {
        t.acknowledge_event(ids[1], "carol", 13)?;
        Err(StoreError::Invalid {
            field: "test",
            reason: "rolled back".into(),
        })
    });
    assert!(failed.is_err());
    store
        .record_outbox(OutboxMessage::CameraHealth {
            camera: CameraId::new("dock").unwrap(),
            health: CameraHealth::Offline,
        })
        .unwrap();
    store
        .record_outbox(OutboxMessage::Output {
            output: safe_yolo_domain::OutputId::new("siren").unwrap(),
            active: true,
        })
        .unwrap();
    let entries = store.outbox_after("mqtt", 100).unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "contiguous and ordered");
    assert_eq!(
        kinds(&entries),
        [
            ("event_raised".into(), Some(ids[0]), Some("active")),
            ("event_raised".into(), Some(ids[1]), Some("active")),
            ("event_changed".into(), Some(ids[0]), Some("acknowledged")),
            ("event_changed".into(), Some(ids[0]), Some("cleared")),
            ("camera_health".into(), None, None),
            ("output".into(), None, None),
        ]
    );
    // The raised entry is the stored event itself.
    assert_eq!(
        entries[1].message.event(),
        Some(&store.get_event(ids[1]).unwrap().unwrap())
    );
    assert_eq!(*store.watch_outbox().borrow(), 6);
}

/// Cursors are persistent: a restart resumes each sink after what it delivered; an entry
/// every sink delivered is removed; a sink no longer configured gives up its cursor.
#[test]
fn outbox_cursors_survive_a_restart_and_delivered_entries_go() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let sinks: Vec<String> = vec!["mqtt".into(), "webhook:pager".into()];
    store.register_outbox_sinks(&sinks).unwrap();
    let batch: Vec<NewEvent> = (0..5).map(|i| ev("gate", i, None)).collect();
    store.insert_events(&batch).unwrap();
    let all = store.outbox_after("mqtt", 100).unwrap();
    assert_eq!(all.len(), 5);
    let c = store.outbox_delivered("mqtt", &all[2], 3).unwrap();
    assert_eq!((c.cursor, c.delivered, c.last_event_id), (3, 3, Some(3)));
    drop(store);
    let store = open(tmp.path());
    let cursors = store.register_outbox_sinks(&sinks).unwrap();
    assert_eq!((cursors[0].cursor, cursors[1].cursor), (3, 0));
    let status = store.outbox_status().unwrap();
    let backlog: Vec<(String, u64)> = status
        .sinks
        .iter()
        .map(|s| (s.name.clone(), s.backlog))
        .collect();
    assert_eq!(backlog, [("mqtt".into(), 2), ("webhook:pager".into(), 5)]);
    assert_eq!(status.entries, 5, "the webhook has delivered nothing yet");
    let next = store.outbox_after("mqtt", 100).unwrap();
    assert_eq!(next.first().map(|e| e.seq), Some(4));
    store.outbox_delivered("webhook:pager", &all[3], 4).unwrap();
    assert_eq!(
        store.outbox_status().unwrap().entries,
        2,
        "3 delivered by both"
    );
    // The webhook is removed from the configuration: its cursor goes, and the entries
    // only it was waiting for with it.
    store.register_outbox_sinks(&["mqtt".into()]).unwrap();
    let status = store.outbox_status().unwrap();
    assert_eq!((status.sinks.len(), status.entries), (1, 2));
    store.outbox_delivered("mqtt", &all[4], 2).unwrap();
    assert_eq!(store.outbox_status().unwrap().entries, 0);
    assert!(matches!(
        store.outbox_after("nobody", 1),
        Err(StoreError::NotFound { .. })
    ));
}

/// A sink down for days: past the bound the oldest non-critical entries are dropped,
/// counted and audited; entries about critical events are all kept; they age out with
/// the events (retention), audited too.
#[test]
fn a_full_outbox_drops_oldest_non_critical_first_and_keeps_critical_until_they_age_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig {
        outbox_max_entries: 5,
        ..StoreConfig::new(tmp.path())
    })
    .unwrap();
    store.register_outbox_sinks(&["mqtt".into()]).unwrap();
    let mut critical = Vec::new();
    for i in 0..12u64 {
        let mut e = ev("gate", i, None);
        if i % 4 != 0 {
            e.severity = Severity::Warning;
        }
        let id = store.insert_events(&[e]).unwrap()[0];
        if i % 4 == 0 {
            critical.push(id);
        }
    }
    let left = store.outbox_after("mqtt", 100).unwrap();
    let ids: Vec<u64> = left
        .iter()
        .filter_map(|e| e.message.event().map(|ev| ev.id))
        .collect();
    // 12 entries, bound 5: 7 warnings dropped, oldest first; the 3 critical kept.
    assert_eq!(ids, [1, 5, 9, 11, 12]);
    assert!(critical.iter().all(|c| ids.contains(c)));
    let status = store.outbox_status().unwrap();
    assert_eq!((status.entries, status.dropped), (5, 7));
    let drops: Vec<_> = store
        .audit_page(None, 100, true)
        .unwrap()
        .0
        .into_iter()
        .filter(|r| r.action == "outbox.drop")
        .collect();
    assert_eq!(drops.len(), 1, "one row an hour, not one per drop");
    assert_eq!(
        drops[0].after.as_deref(),
        Some("1 entries dropped: the backlog is full")
    );
    // More critical events than the bound: the last two warnings go, every critical
    // entry stays, over the bound.
    for i in 0..6 {
        store.insert_events(&[ev("gate", 100 + i, None)]).unwrap();
    }
    let left = store.outbox_after("mqtt", 100).unwrap();
    assert_eq!(
        left.len(),
        3 + 6,
        "only critical entries are left, over the bound"
    );
    assert!(left.iter().all(|e| e.message.is_critical()));
    assert_eq!(store.outbox_status().unwrap().dropped, 9);
    // A year and a day later retention ages them out with the events: audited, with the
    // drops not audited yet.
    let report = store.prune(now_ms() + 366 * 86_400_000).unwrap();
    assert_eq!(report.outbox, 9);
    let status = store.outbox_status().unwrap();
    assert_eq!((status.entries, status.dropped), (0, 9 + 9));
    let last = store
        .audit_page(None, 1, false)
        .unwrap()
        .0
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(last.action, "outbox.drop");
    assert_eq!(
        last.after.as_deref(),
        Some("17 entries dropped: 9 aged out with the events, 8 for the full backlog")
    );
}

#[test]
fn a_v2_event_that_is_no_event_fails_the_migration_and_keeps_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("store.redb");
    safe_yolo_store::schema::v2::write_fixture(&path).unwrap();
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut events = tx
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("events"))
                .unwrap();
            events
                .insert(99, br#"{"id":99,"details":null}"#.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    match Store::open(StoreConfig::new(tmp.path())) {
        Err(StoreError::Migration { from: 2, to: 3, .. }) => {}
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert_eq!(raw_schema_version(&path), 2);
    assert_eq!(raw_events(&path).len(), 13);
}

#[test]
fn a_freshly_generated_v2_database_migrates_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    safe_yolo_store::schema::v2::write_fixture(&tmp.path().join("store.redb")).unwrap();
    check_migrated_v2(&open(tmp.path()));
}

#[test]
fn a_freshly_generated_v1_database_migrates_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    safe_yolo_store::schema::v1::write_fixture(&tmp.path().join("store.redb")).unwrap();
    check_migrated_v1(&open(tmp.path()));
}

#[test]
fn a_failed_migration_leaves_the_old_database_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("store.redb");
    safe_yolo_store::schema::v1::write_fixture(&path).unwrap();
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut events = tx
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("events"))
                .unwrap();
            events.insert(99, b"{not json".as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    match Store::open(StoreConfig::new(tmp.path())) {
        Err(StoreError::Migration {
            from: 1,
            to: 2,
            backup,
            ..
        }) => {
            assert_eq!(raw_schema_version(&backup), 1);
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    // The step ran in one transaction: the database itself is still a complete v1.
    assert_eq!(raw_schema_version(&path), 1);
}

/// The newest audit row.
fn last_audit_row(store: &Store) -> safe_yolo_store::AuditRecord {
    let (rows, _) = store.audit_page(None, 1, false).unwrap();
    rows.into_iter().next().unwrap()
}

/// An update migrates the committed v2 fixture to v3 and records events; the firmware is
/// rolled back and the v2 reader (the older firmware) meets the v3 database. It starts:
/// the v3 file is kept aside byte for byte, the pre-migration copy is in use again, the
/// events only the v3 file holds are listed, the ids go on after them, and their
/// snapshots are moved beside the v3 file. Updated again, the v3 reader migrates the
/// restored copy and names the set-aside file.
#[test]
fn a_rollback_restores_the_pre_migration_copy_and_keeps_the_newer_database_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("store.redb");
    std::fs::copy(fixtures_dir().join("schema-v2.redb"), &db).unwrap();
    let v2_events = raw_events(&db);
    // The update: the current reader migrates and records three events with snapshots.
    let store = open(tmp.path());
    let copy = store
        .open_report()
        .backup
        .clone()
        .expect("pre-migration copy");
    let seq = store.stats().unwrap().event_seq;
    let t0 = now_ms();
    let batch: Vec<NewEvent> = (0..3)
        .map(|i| ev("gate", t0 + i, Some(jpeg(1_000, 9))))
        .collect();
    let ids = store.insert_events(&batch).unwrap();
    assert_eq!(ids, [seq + 1, seq + 2, seq + 3]);
    drop(store);
    let v3_bytes = std::fs::read(&db).unwrap();

    // The rollback: the v2 reader.
    let store = Store::open_as(StoreConfig::new(tmp.path()), 2).unwrap();
    let report = store.open_report().clone();
    let rb = report.rollback.clone().expect("a rollback");
    assert_eq!(rb.newer_version, CURRENT_VERSION);
    assert_eq!(rb.restored_from.as_ref(), Some(&copy));
    assert_eq!(report.found_version, Some(2));
    assert_eq!(rb.newer_events.ids, ids);
    assert_eq!(rb.newer_events.count, 3);
    assert_eq!(
        (rb.newer_events.first_at, rb.newer_events.last_at),
        (Some(t0), Some(t0 + 2))
    );
    assert_eq!(rb.newer_events.unreadable, None);
    assert!(
        std::fs::read(&rb.set_aside).unwrap() == v3_bytes,
        "the newer database is kept aside byte for byte"
    );
    // Ids go on after the newer file's: none is used twice across the two files.
    assert_eq!(store.stats().unwrap().event_seq, seq + 3);
    let row = last_audit_row(&store);
    assert_eq!(row.action, "store.rollback");
    assert_eq!(
        row.before.as_deref(),
        Some(format!("v{CURRENT_VERSION}").as_str())
    );
    let after = row.after.unwrap();
    assert!(after.contains("3 newer event(s)"), "{after}");
    assert!(
        after.contains(&format!("ids {}..={}", ids[0], ids[2])),
        "{after}"
    );
    // The snapshots of the newer events moved beside it, none swept.
    let aside_snaps = rb.snapshots_set_aside.clone().expect("snapshots set aside");
    let mut moved: Vec<String> = std::fs::read_dir(&aside_snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    moved.sort();
    assert_eq!(moved.len(), 3, "{moved:?}");
    assert!(
        snapshot_files(tmp.path())
            .iter()
            .all(|f| !moved.contains(f))
    );
    drop(store);
    // The database in use is the pre-migration data, at v2.
    assert_eq!(raw_schema_version(&db), 2);
    assert_eq!(raw_events(&db), v2_events);

    // The set-aside file is a whole v3 store: the v3 reader opens it with its events.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(&rb.set_aside, elsewhere.path().join("store.redb")).unwrap();
    let newer = open(elsewhere.path());
    assert_eq!(newer.stats().unwrap().events, 15);
    assert_eq!(newer.get_event(ids[2]).unwrap().unwrap().started_at, t0 + 2);
    drop(newer);

    // Updated again: the restored copy is migrated once more; the set-aside file is named.
    let store = open(tmp.path());
    let report = store.open_report();
    assert_eq!(report.found_version, Some(2));
    assert_eq!(report.rollback, None);
    assert_eq!(report.set_aside, vec![rb.set_aside.clone()]);
    check_migrated_v2_events(&store);
    assert!(rb.set_aside.exists() && copy.exists());
}

fn check_migrated_v2_events(store: &Store) {
    for (id, _, details) in &safe_yolo_store::schema::v2::fixture_details() {
        assert_eq!(&store.get_event(*id).unwrap().unwrap().details, details);
    }
}

/// The current reader meets a database of a far newer schema and no pre-migration copy:
/// it starts with an empty store (ids after the newer file's) and keeps the newer file
/// aside unchanged.
#[test]
fn a_newer_database_without_a_copy_is_set_aside_and_the_store_starts_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let ids = store
        .insert_events(&[ev("gate", 1_000, None), ev("gate", 2_000, None)])
        .unwrap();
    drop(store);
    let path = tmp.path().join("store.redb");
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("schema_version", 99).unwrap();
        }
        tx.commit().unwrap();
    }
    let newer_bytes = std::fs::read(&path).unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let report = store.open_report().clone();
    let rb = report.rollback.expect("a rollback");
    assert_eq!((rb.newer_version, rb.restored_from), (99, None));
    assert_eq!(report.found_version, None);
    assert_eq!(rb.newer_events.ids, ids);
    assert_eq!(
        (rb.newer_events.first_at, rb.newer_events.last_at),
        (Some(1_000), Some(2_000))
    );
    assert!(std::fs::read(&rb.set_aside).unwrap() == newer_bytes);
    let stats = store.stats().unwrap();
    assert_eq!((stats.events, stats.event_seq), (0, 2));
    assert_eq!(last_audit_row(&store).action, "store.rollback");
    let id = store.insert_events(&[ev("gate", 3_000, None)]).unwrap();
    assert_eq!(id, [3], "no id is used twice");
    drop(store);
    assert_eq!(raw_schema_version(&rb.set_aside), 99);
}

fn raw_schema_version(path: &Path) -> u64 {
    use redb::ReadableDatabase;
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_read().unwrap();
    let meta = tx
        .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap();
    meta.get("schema_version").unwrap().unwrap().value()
}

#[test]
fn a_foreign_redb_file_is_not_mistaken_for_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(tmp.path().join("store.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<u64, u64>::new("other"))
            .unwrap();
        tx.commit().unwrap();
    }
    assert!(matches!(
        Store::open(StoreConfig::new(tmp.path())),
        Err(StoreError::NotAStore { .. })
    ));
}

// === quota and retention ===

#[test]
fn snapshot_quota_refuses_then_prunes_oldest_cleared_first_and_events_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.retention = RetentionPolicy {
        snapshot_quota_bytes: 100_000,
        snapshot_low_water_percent: 50,
        min_free_bytes: 0,
        ..RetentionPolicy::default()
    };
    let store = Store::open(cfg).unwrap();
    let now = now_ms();
    let batch: Vec<NewEvent> = (0..12)
        .map(|i| ev("gate", now + i, Some(jpeg(10_000, 7))))
        .collect();
    let ids = store.insert_events(&batch).unwrap();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    let m = store.metrics();
    assert_eq!(m.snapshots_written.load(Ordering::Relaxed), 10);
    assert_eq!(m.snapshots_refused_quota.load(Ordering::Relaxed), 2);
    assert!(m.snapshot_quota_exceeded.load(Ordering::Relaxed));
    assert_eq!(m.snapshot_bytes.load(Ordering::Relaxed), 100_000);
    for id in [11, 12] {
        assert_eq!(
            store.get_event(id).unwrap().unwrap().snapshot,
            Snapshot::Refused {
                reason: SnapshotRefusal::Quota
            },
            "event {id} recorded without its snapshot"
        );
    }
    // Events 1 and 2 stay active; everything else is cleared.
    for id in 3..=12 {
        store.clear(id, Some("op"), now + 100).unwrap();
    }
    let report = store.prune(now + 200).unwrap();
    assert_eq!(
        report.snapshots,
        vec![3, 4, 5, 6, 7],
        "oldest cleared first, active kept"
    );
    assert!(
        report.events.is_empty(),
        "events are young: only snapshots go"
    );
    assert_eq!(m.snapshot_bytes.load(Ordering::Relaxed), 50_000);
    assert!(!m.snapshot_quota_exceeded.load(Ordering::Relaxed));
    assert_eq!(
        snapshot_files(tmp.path()),
        [1, 2, 8, 9, 10]
            .iter()
            .map(|id| format!("{id:020}.jpg"))
            .collect::<Vec<_>>()
    );
    let e3 = store.get_event(3).unwrap().unwrap();
    assert!(matches!(
        e3.snapshot,
        Snapshot::Pruned { bytes: 10_000, .. }
    ));
    // Recording goes on and snapshots are accepted again.
    let id = store
        .insert_events(&[ev("gate", now + 300, Some(jpeg(10_000, 8)))])
        .unwrap();
    assert!(
        store
            .get_event(id[0])
            .unwrap()
            .unwrap()
            .snapshot
            .stored()
            .is_some()
    );
    assert_eq!(store.stats().unwrap().events, 13);
}

#[test]
fn disk_full_guard_refuses_snapshots_but_records_events() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(tmp.path());
    // Demand more free space than any disk has: the guard must trip.
    cfg.retention.min_free_bytes = u64::MAX / 2;
    let store = Store::open(cfg).unwrap();
    let ids = store
        .insert_events(&[ev("gate", 1, Some(jpeg(1000, 1))), ev("gate", 2, None)])
        .unwrap();
    assert_eq!(ids.len(), 2);
    let m = store.metrics();
    assert_eq!(m.snapshots_refused_disk_full.load(Ordering::Relaxed), 1);
    assert!(m.disk_full.load(Ordering::Relaxed));
    assert_eq!(
        store.get_event(1).unwrap().unwrap().snapshot,
        Snapshot::Refused {
            reason: SnapshotRefusal::DiskFull
        }
    );
    assert!(snapshot_files(tmp.path()).is_empty());
}

#[test]
fn events_pruned_by_age_and_count_oldest_first_never_open_ones_audit_by_its_own_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let hour = 3_600_000u64;
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.retention = RetentionPolicy {
        event_max_age: Some(Duration::from_millis(24 * hour)),
        max_events: Some(6),
        snapshot_max_age: None,
        audit_max_age: Some(Duration::from_millis(100 * 24 * hour)),
        min_free_bytes: 0,
        ..RetentionPolicy::default()
    };
    let store = Store::open(cfg).unwrap();
    let now = 1_000 * 24 * hour;
    // Ids 1..=4 are two days old, 5..=10 are fresh.
    let mut batch: Vec<NewEvent> = (0..4)
        .map(|i| ev("gate", now - 48 * hour + i, Some(jpeg(500, 1))))
        .collect();
    batch.extend((0..6).map(|i| ev("dock", now - hour + i, None)));
    store.insert_events(&batch).unwrap();
    for id in [1, 3, 5, 6, 7, 8, 9, 10] {
        store.clear(id, None, now).unwrap();
    }
    // Audit rows: one 200 days old, one fresh; the fresh one must stay although the
    // event rule (one day) would remove it.
    store
        .transaction(|tx| {
            for at in [now - 200 * 24 * hour, now - 2 * 24 * hour] {
                tx.append_audit(audit("test", at))?;
            }
            Ok(())
        })
        .unwrap();
    let report = store.prune(now).unwrap();
    // Old cleared 1 and 3 go by age; 2 and 4 are open and stay. Then 8 events remain and
    // the cap of 6 removes the two oldest cleared ones: 5 and 6.
    assert_eq!(report.events, vec![1, 3, 5, 6]);
    assert_eq!(report.audit_rows, 1);
    assert_eq!(store.stats().unwrap().events, 6);
    assert!(store.get_event(2).unwrap().is_some());
    assert_eq!(
        snapshot_files(tmp.path()),
        vec![format!("{:020}.jpg", 2), format!("{:020}.jpg", 4)]
    );
    let (rows, _) = store.audit_page(None, 10, true).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].at, now - 2 * 24 * hour);
    // Ids are never reused after pruning.
    assert_eq!(
        store.insert_events(&[ev("gate", now, None)]).unwrap(),
        vec![11]
    );
}

fn audit(action: &str, at: u64) -> NewAudit {
    NewAudit {
        at,
        actor: "admin".into(),
        role: Some(Role::Admin),
        source: Some("10.0.0.2".into()),
        action: action.into(),
        target: "zone/lane".into(),
        before: None,
        after: None,
        result: AuditResult::Ok,
    }
}

// === transactions, users, settings, events life cycle ===

#[test]
fn a_change_and_its_audit_row_commit_together_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let doc = serde_json::json!({"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]});
    let failed: Result<(), StoreError> = store.transaction(|tx| {
        tx.put_setting(SettingKind::Zone, "lane", doc.clone(), Some(0), "admin", 1)?;
        tx.append_audit(audit("settings.put", 1))?;
        Err(StoreError::Invalid {
            field: "test",
            reason: "abort".into(),
        })
    });
    assert!(failed.is_err());
    assert!(
        store
            .get_setting(SettingKind::Zone, "lane")
            .unwrap()
            .is_none()
    );
    assert_eq!(store.stats().unwrap().audit_rows, 0);

    let v1 = store
        .transaction(|tx| {
            let d = tx.put_setting(SettingKind::Zone, "lane", doc.clone(), Some(0), "admin", 1)?;
            tx.append_audit(audit("settings.put", 1))?;
            Ok(d)
        })
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(store.stats().unwrap().audit_rows, 1);
    // Optimistic concurrency: a stale version is refused.
    let stale = store.transaction(|tx| {
        tx.put_setting(SettingKind::Zone, "lane", doc.clone(), Some(0), "bob", 2)
    });
    assert!(matches!(
        stale,
        Err(StoreError::VersionConflict {
            expected: 0,
            actual: 1,
            ..
        })
    ));
    let v2 = store
        .transaction(|tx| tx.put_setting(SettingKind::Zone, "lane", doc.clone(), Some(1), "bob", 2))
        .unwrap();
    assert_eq!(v2.version, 2);
    store
        .transaction(|tx| {
            tx.put_setting(
                SettingKind::Camera,
                "gate",
                serde_json::json!({}),
                None,
                "a",
                3,
            )
        })
        .unwrap();
    assert_eq!(
        store.list_settings(Some(SettingKind::Zone)).unwrap().len(),
        1
    );
    assert_eq!(store.list_settings(None).unwrap().len(), 2);
    assert!(
        store
            .transaction(|tx| tx.put_setting(
                SettingKind::Zone,
                "Bad Id",
                doc.clone(),
                None,
                "a",
                3
            ))
            .is_err()
    );
    store
        .transaction(|tx| tx.delete_setting(SettingKind::Zone, "lane", Some(2)))
        .unwrap();
    assert!(
        store
            .get_setting(SettingKind::Zone, "lane")
            .unwrap()
            .is_none()
    );

    // Users and sessions.
    let user = User {
        username: "op".into(),
        password_hash: "$argon2id$...".into(),
        role: Role::Operator,
        created_at: 1,
        disabled: false,
    };
    store.transaction(|tx| tx.create_user(&user)).unwrap();
    assert!(matches!(
        store.transaction(|tx| tx.create_user(&user)),
        Err(StoreError::AlreadyExists { .. })
    ));
    store
        .transaction(|tx| {
            tx.put_session(&safe_yolo_store::Session {
                id: "s1".into(),
                username: "op".into(),
                created_at: 1,
                expires_at: u64::MAX,
                revoked: false,
            })
        })
        .unwrap();
    store.transaction(|tx| tx.delete_user("op")).unwrap();
    assert!(
        store.get_session("s1").unwrap().is_none(),
        "sessions go with their user"
    );
    assert!(store.list_users().unwrap().is_empty());
}

#[test]
fn a_session_family_is_listed_and_revoked_by_prefix_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let session = |id: &str| safe_yolo_store::Session {
        id: id.into(),
        username: "op".into(),
        created_at: 1,
        expires_at: u64::MAX,
        revoked: false,
    };
    store
        .transaction(|tx| {
            // "pw.fam" is the family; "pw.fam.*" its children; "pw.family2" shares a
            // textual prefix but is another session and must be left alone.
            for id in ["pw.fam", "pw.fam.a", "pw.fam.b", "pw.family2", "pw.fam0"] {
                tx.put_session(&session(id))?;
            }
            Ok(())
        })
        .unwrap();
    let children = store
        .transaction(|tx| tx.session_children("pw.fam"))
        .unwrap();
    let ids: Vec<&str> = children.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["pw.fam.a", "pw.fam.b"]);
    assert_eq!(
        store
            .transaction(|tx| tx.revoke_session_family("pw.fam"))
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .transaction(|tx| tx.revoke_session_family("pw.fam"))
            .unwrap(),
        0,
        "revoking twice changes nothing"
    );
    for (id, revoked) in [
        ("pw.fam", true),
        ("pw.fam.a", true),
        ("pw.fam.b", true),
        ("pw.family2", false),
        ("pw.fam0", false),
    ] {
        assert_eq!(
            store.get_session(id).unwrap().unwrap().revoked,
            revoked,
            "{id}"
        );
    }
    // A family whose own record is gone (pruned) still has its children revoked.
    store
        .transaction(|tx| tx.put_session(&session("pw.gone.c")))
        .unwrap();
    assert_eq!(
        store
            .transaction(|tx| tx.revoke_session_family("pw.gone"))
            .unwrap(),
        1
    );
}

#[test]
fn event_life_cycle_and_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let batch: Vec<NewEvent> = (0..25)
        .map(|i| ev(if i % 2 == 0 { "gate" } else { "dock" }, 1000 + i, None))
        .collect();
    store.insert_events(&batch).unwrap();
    let acked = store.acknowledge(3, "op", 2000).unwrap();
    assert_eq!(acked.state.name(), "acknowledged");
    assert!(matches!(
        store.acknowledge(3, "op", 2001),
        Err(StoreError::BadTransition { .. })
    ));
    let cleared = store.clear(3, Some("op"), 2002).unwrap();
    match cleared.state {
        EventState::Cleared {
            acknowledged: Some(a),
            ..
        } => assert_eq!(a.by, "op"),
        s => panic!("{s:?}"),
    }
    assert!(matches!(
        store.clear(3, None, 2003),
        Err(StoreError::BadTransition { .. })
    ));
    store.clear(4, None, 2004).unwrap();
    assert!(matches!(
        store.clear(999, None, 1),
        Err(StoreError::NotFound { .. })
    ));
    store
        .update_event(
            5,
            safe_yolo_store::EventUpdate {
                ended_at: Some(1500),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(store.get_event(5).unwrap().unwrap().ended_at, Some(1500));
    assert_eq!(store.open_event_ids().unwrap().len(), 23);

    // Pagination, newest first, by camera.
    let mut q = EventQuery {
        camera: Some(CameraId::new("gate").unwrap()),
        limit: 5,
        ..EventQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.query_events(&q).unwrap();
        seen.extend(page.events.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).rev().step_by(2).collect::<Vec<u64>>());
    // State and time filters.
    let cleared = store
        .query_events(&EventQuery {
            state: Some(StateFilter::Cleared),
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(
        cleared.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![4, 3]
    );
    let window = store
        .query_events(&EventQuery {
            from: Some(1010),
            to: Some(1013),
            oldest_first: true,
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(
        window.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![11, 12, 13]
    );
}

// === backup, restore, export ===

#[test]
fn backup_restore_round_trip_and_tamper_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let store = open(&live);
    store
        .insert_events(&[
            ev("gate", 1, Some(jpeg(3000, 1))),
            ev("gate", 2, None),
            ev("dock", 3, Some(jpeg(3000, 2))),
        ])
        .unwrap();
    store.clear(1, None, 10).unwrap();
    store
        .transaction(|tx| {
            tx.put_setting(
                SettingKind::Rule,
                "no-entry",
                serde_json::json!({"dwell_s": 2}),
                None,
                "admin",
                5,
            )?;
            tx.append_audit(audit("settings.put", 5))
        })
        .unwrap();
    let config = tmp.path().join("safe-yolo.toml");
    std::fs::write(&config, "[appliance]\nname = \"dock\"\n").unwrap();
    let bdir = tmp.path().join("backup");
    let manifest = store.backup(&bdir, Some(&config), true).unwrap();
    assert_eq!(manifest.events, 3);
    assert_eq!(manifest.files.len(), 4, "db + 2 snapshots + config");
    assert!(
        store.backup(&bdir, None, false).is_err(),
        "never overwrites a backup"
    );
    // Later changes are not in the backup.
    store.insert_events(&[ev("gate", 4, None)]).unwrap();
    drop(store);

    // Restore into a fresh directory: another box as far as the signature goes
    // (it has no key, or another one), so only with the explicit flag.
    let fresh = tmp.path().join("fresh");
    let refused = safe_yolo_store::restore(&bdir, &fresh, false).unwrap_err();
    assert!(
        refused.to_string().contains("--accept-foreign"),
        "{refused}"
    );
    assert!(!fresh.join("store.redb").exists(), "nothing restored");
    let report = safe_yolo_store::restore(&bdir, &fresh, true).unwrap();
    assert!(
        matches!(&report.provenance, safe_yolo_store::Provenance::Foreign { reason } if reason.contains("no backup key")),
        "{:?}",
        report.provenance
    );
    assert_eq!(report.snapshots, 2);
    assert_eq!(report.replaced, None);
    assert_eq!(
        std::fs::read_to_string(report.config.unwrap()).unwrap(),
        "[appliance]\nname = \"dock\"\n"
    );
    let restored = open(&fresh);
    assert_eq!(restored.stats().unwrap().events, 3);
    assert_eq!(restored.stats().unwrap().audit_rows, 1);
    assert_eq!(restored.open_event_ids().unwrap(), vec![2, 3]);
    let e3 = restored.get_event(3).unwrap().unwrap();
    let bytes = std::fs::read(
        restored
            .snapshot_path(e3.snapshot.stored().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(bytes, jpeg(3000, 2));
    assert!(
        restored
            .events_with_invalid_snapshot_names()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        restored.insert_events(&[ev("gate", 9, None)]).unwrap(),
        vec![4]
    );
    drop(restored);

    // Restore over the live directory (the box that signed it): the old database
    // is moved aside, not deleted.
    let report = safe_yolo_store::restore(&bdir, &live, false).unwrap();
    assert_eq!(report.provenance, safe_yolo_store::Provenance::ThisBox);
    assert!(report.replaced.as_ref().unwrap().exists());
    assert_eq!(open(&live).stats().unwrap().events, 3);

    // A damaged backup is refused.
    let snap = bdir.join("snapshots").join(format!("{:020}.jpg", 1));
    std::fs::write(&snap, b"tampered").unwrap();
    assert!(matches!(
        safe_yolo_store::verify_backup(&bdir),
        Err(StoreError::BadBackup { .. })
    ));
    assert!(safe_yolo_store::restore(&bdir, &tmp.path().join("x"), true).is_err());
}

#[test]
fn a_crafted_backup_cannot_name_files_outside_the_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let store = open(&live);
    store
        .insert_events(&[ev("gate", 1, Some(jpeg(100, 1)))])
        .unwrap();
    let bdir = tmp.path().join("backup");
    store.backup(&bdir, None, true).unwrap();
    // A manifest listing a file the store would never write is refused, even
    // with its checksum right and --accept-foreign.
    let manifest_path = bdir.join("MANIFEST.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    std::fs::create_dir_all(bdir.join("snapshots")).unwrap();
    std::fs::write(bdir.join("snapshots/jwt.key"), b"planted").unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"planted"));
    m["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"path": "snapshots/jwt.key", "bytes": 7, "sha256": sha}));
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = safe_yolo_store::restore(&bdir, &tmp.path().join("x"), true).unwrap_err();
    assert!(e.to_string().contains("unexpected path"), "{e}");
    // The signature no longer matches the changed manifest: foreign even here.
    std::fs::write(&manifest_path, &original).unwrap();
    std::fs::write(
        &manifest_path,
        original.replacen("\"format\": 1", "\"format\":  1", 1),
    )
    .unwrap();
    let e = safe_yolo_store::restore(&bdir, &live, false).unwrap_err();
    assert!(e.to_string().contains("changed after it was signed"), "{e}");
    // A row naming another file is never served, whatever the database says.
    let mut r = store
        .get_event(1)
        .unwrap()
        .unwrap()
        .snapshot
        .stored()
        .unwrap()
        .clone();
    for name in ["../api/jwt.key", "/data/api/tls.key", "x.jpg", ""] {
        r.file = name.into();
        assert!(store.snapshot_path(&r).is_err(), "{name:?}");
    }
}

#[test]
fn events_export_as_csv_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut e = ev("gate", 1_700_000_000_123, None);
    e.message = "person, \"running\"\nnear press".into();
    store
        .insert_events(&[e, ev("dock", 1_700_000_001_000, None)])
        .unwrap();
    store.acknowledge(1, "op", 1_700_000_002_000).unwrap();
    let mut csv = Vec::new();
    let n = store
        .export_events_csv(&EventQuery::default(), &mut csv)
        .unwrap();
    assert_eq!(n, 2);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("id,started_at_utc,"));
    assert!(csv.contains("2023-11-14T22:13:20.123Z"));
    assert!(csv.contains("\"person, \"\"running\"\"\nnear press\""));
    assert!(csv.contains(",acknowledged,op,1700000002000,"));
    let mut json = Vec::new();
    store
        .export_events_json(
            &EventQuery {
                camera: Some(CameraId::new("gate").unwrap()),
                ..EventQuery::default()
            },
            &mut json,
        )
        .unwrap();
    let back: Vec<Event> = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0], store.get_event(1).unwrap().unwrap());
}

// === async handle ===

#[test]
fn handle_group_commits_acks_in_order_and_hands_back_on_full_queue() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (handle, writer) = StoreHandle::start(open(tmp.path()), 2).unwrap();
    rt.block_on(async {
        // Hold the write lock so the writer stalls and the queue fills up.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let store = Arc::clone(handle.store());
        let holder = std::thread::spawn(move || {
            store
                .transaction(|_| {
                    locked_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok(())
                })
                .unwrap();
        });
        locked_rx.recv().unwrap();
        let mut tickets = Vec::new();
        let mut handed_back = 0;
        for i in 0..6 {
            match handle.try_submit(ev("gate", i, None)) {
                Ok(t) => tickets.push((i, t)),
                Err(SubmitError::QueueFull { event }) => {
                    assert_eq!(event.started_at, i, "the refused event comes back intact");
                    handed_back += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        // The writer may already hold a group of events it drained before
        // the lock stalled it; whatever it took, the queue (capacity 2) fills
        // and later submissions come back instead of waiting.
        assert!(handed_back >= 1, "a full queue hands events back");
        assert_eq!(tickets.len() + handed_back as usize, 6);
        assert_eq!(
            handle
                .metrics()
                .events_rejected_queue_full
                .load(Ordering::Relaxed),
            handed_back
        );
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        let mut last = 0;
        for (i, t) in tickets {
            let id = t.committed().await.unwrap();
            assert!(id > last, "ids follow submission order");
            last = id;
            assert_eq!(handle.get_event(id).await.unwrap().unwrap().started_at, i);
        }
        // A burst is absorbed and committed in groups.
        let h2 = handle.clone();
        let ids: Vec<u64> = {
            let mut v = Vec::new();
            for i in 0..200 {
                let h = h2.clone();
                v.push(tokio::spawn(async move {
                    h.record(ev("dock", 100 + i, None)).await
                }));
            }
            let mut out = Vec::new();
            for f in v {
                out.push(f.await.unwrap().unwrap());
            }
            out
        };
        let unique: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 200);
        assert!(
            handle.metrics().event_batches.load(Ordering::Relaxed)
                <= handle.metrics().events_written.load(Ordering::Relaxed)
        );
        let page = handle
            .query_events(EventQuery {
                camera: Some(CameraId::new("dock").unwrap()),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.events.len(), 100);
        let n = handle
            .transaction(|tx| tx.append_audit(audit("x", 1)))
            .await
            .unwrap();
        assert_eq!(n, 1);
    });
    drop(handle);
    writer.join();
}

#[test]
fn retention_task_wakes_when_the_quota_refuses_a_snapshot() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.retention = RetentionPolicy {
        snapshot_quota_bytes: 30_000,
        snapshot_low_water_percent: 50,
        min_free_bytes: 0,
        ..RetentionPolicy::default()
    };
    let (handle, writer) = StoreHandle::start(Store::open(cfg).unwrap(), 16).unwrap();
    rt.block_on(async {
        // A long period: only the quota wake-up can make it run within the test.
        let task = handle.spawn_retention(Duration::from_secs(3600));
        let now = now_ms();
        for i in 0..3 {
            let mut e = ev("gate", now + i, Some(jpeg(10_000, 3)));
            e.cleared = true;
            handle.record(e).await.unwrap();
        }
        let refused = handle
            .record(ev("gate", now + 9, Some(jpeg(10_000, 3))))
            .await
            .unwrap();
        assert!(matches!(
            handle.get_event(refused).await.unwrap().unwrap().snapshot,
            Snapshot::Refused {
                reason: SnapshotRefusal::Quota
            }
        ));
        let m = Arc::clone(handle.metrics());
        let mut waited = 0;
        // The pass prunes, then clears the flag: wait for both.
        while m.snapshots_pruned.load(Ordering::Relaxed) < 2
            || m.snapshot_quota_exceeded.load(Ordering::Relaxed)
        {
            waited += 1;
            assert!(waited < 600, "retention never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(snapshot_files(tmp.path()), vec![format!("{:020}.jpg", 3)]);
        assert_eq!(m.snapshots_pruned.load(Ordering::Relaxed), 2);
        task.abort();
    });
    drop(handle);
    writer.join();
}

#[test]
fn a_rare_filter_costs_each_page_a_bounded_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    // One event of a quiet camera, then more events of a busy one than a page
    // may look at.
    store.insert_events(&[ev("quiet", 1, None)]).unwrap();
    let busy: Vec<NewEvent> = (0..safe_yolo_store::store::SCAN_BUDGET as u64 + 50)
        .map(|i| NewEvent {
            cleared: true,
            ..ev("busy", 10 + i, None)
        })
        .collect();
    store.insert_events(&busy).unwrap();
    let q = EventQuery {
        camera: Some(CameraId::new("quiet").unwrap()),
        limit: 100,
        ..Default::default()
    };
    // Newest first: the first page spends its budget on the busy camera and
    // says where to go on.
    let first = store.query_events(&q).unwrap();
    assert!(first.events.is_empty());
    let cursor = first.next_cursor.expect("a partial page points further");
    let second = store
        .query_events(&EventQuery {
            cursor: Some(cursor),
            ..q.clone()
        })
        .unwrap();
    assert_eq!(second.events.len(), 1);
    assert_eq!(second.events[0].camera.as_str(), "quiet");
    assert_eq!(second.next_cursor, None);
    // The export still walks every page.
    let mut csv = Vec::new();
    assert_eq!(store.export_events_csv(&q, &mut csv).unwrap(), 1);
    // Alarms not cleared come from their index: the old active one is on the
    // first page however many cleared events came after it.
    let active = store
        .query_events(&EventQuery {
            state: Some(StateFilter::Active),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<u64> = active.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![1]);
    assert_eq!(active.next_cursor, None);
}

/// A camera-tamper event keeps its reason through the store (the details' serde
/// form of schema v3), as every other alarm detail does.
#[test]
fn a_camera_tamper_event_keeps_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut e = ev("gate", 1, None);
    e.zone = None;
    e.track = None;
    e.kind = "camera_tamper".into();
    let detail = AlarmDetail::CameraTamper {
        reason: safe_yolo_domain::alarm::TamperReason::Moved,
    };
    e.details.as_mut().unwrap().detail = detail;
    let id = store.insert_events(&[e]).unwrap()[0];
    let got = store.get_event(id).unwrap().unwrap();
    assert_eq!(got.details.unwrap().detail, detail);
    drop(store);
    let store = open(tmp.path());
    let got = store.get_event(id).unwrap().unwrap();
    assert_eq!(got.details.unwrap().detail, detail, "after a reopen");
}
