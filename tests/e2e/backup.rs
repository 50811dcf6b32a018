//! Backup and restore as an admin does it: download the backup over HTTPS
//! while the appliance runs, lose the state directory, `safe-yolo restore`
//! the downloaded file, start again: the admin can log in, the event and its
//! snapshot are back byte for byte, and new events continue the id sequence.

use std::process::Command;
use std::time::Duration;

use crate::alarms::{open_intrusions, walkway_appliance};
use crate::client::{Client, PASSWORD, first_admin, free_port, wait_until};
use crate::harness::{Daemon, bin};

fn snapshot(c: &Client, id: u64) -> Option<Vec<u8>> {
    let (status, jpeg) = c.call("GET", &format!("/api/v1/events/{id}/snapshot"), None);
    (status == 200).then_some(jpeg)
}

fn restore(
    config: &std::path::Path,
    backup: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(bin())
        .args(["--log-format", "text", "restore", "--config"])
        .arg(config)
        .args(extra)
        .arg(backup)
        .output()
        .unwrap()
}

#[test]
fn downloaded_backup_restores_users_events_snapshots_and_the_id_sequence() {
    let port = free_port();
    let (app, config) = walkway_appliance(port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);
    let event = wait_until(Duration::from_secs(150), || {
        open_intrusions(&c).into_iter().next()
    })
    .unwrap_or_else(|| panic!("no intrusion event; log:\n{}", daemon.log_text()));
    let id = event["id"].as_u64().unwrap();
    let jpeg = wait_until(Duration::from_secs(20), || snapshot(&c, id)).expect("snapshot");

    // The admin downloads the backup while the appliance runs.
    let tar = app.path().join("download.tar");
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "60", "-o"])
        .arg(&tar)
        .args(["-w", "%{http_code}", "-H"])
        .arg(format!(
            "authorization: Bearer {}",
            c.token.as_deref().unwrap()
        ))
        .arg(format!("{}/api/v1/system/backup?snapshots=true", c.base))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let size = std::fs::metadata(&tar).unwrap().len();
    assert!(size > jpeg.len() as u64, "a backup of {size} bytes");

    // Restoring under a running daemon is refused and changes nothing.
    let refused = restore(&config, &tar, &[]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop the daemon"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The box loses its state.
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(20)).is_some());
    std::fs::remove_dir_all(app.path().join("state")).unwrap();

    // With its state went its backup signing key: the backup cannot be proved
    // to be this box's any more, so it is restored only when asked explicitly.
    let foreign = restore(&config, &tar, &[]);
    assert_eq!(foreign.status.code(), Some(1), "{foreign:?}");
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("--accept-foreign"),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
    let done = restore(&config, &tar, &["--accept-foreign"]);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("foreign backup was restored"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("restored into"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );

    let (daemon, _notify) = Daemon::start_ready(&config);
    let mut c2 = Client {
        base: c.base.clone(),
        token: None,
    };
    // The admin exists again: setup is closed, the password works.
    let (status, _) = c2.json(
        "POST",
        "/api/v1/setup",
        Some(&serde_json::json!({"username": "other", "password": PASSWORD})),
    );
    assert_ne!(status / 100, 2, "setup reopened after a restore");
    c2.login("safety", PASSWORD);
    // The restore is in the restored audit log, marked foreign with the reason.
    let (status, audit) = c2.json("GET", "/api/v1/audit?limit=50", None);
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit.to_string().contains("system.restore_foreign")
            && audit.to_string().contains("no backup key"),
        "{audit}"
    );

    // The event and its snapshot are back byte for byte.
    let (status, back) = c2.json("GET", &format!("/api/v1/events/{id}"), None);
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["started_at"], event["started_at"]);
    assert_eq!(snapshot(&c2, id).as_deref(), Some(jpeg.as_slice()));

    // New events continue the restored sequence.
    let newer = wait_until(Duration::from_secs(150), || {
        open_intrusions(&c2)
            .into_iter()
            .find(|e| e["id"].as_u64().is_some_and(|n| n > id))
    })
    .unwrap_or_else(|| panic!("no new event after restore:\n{}", daemon.log_text()));
    assert!(newer["id"].as_u64().unwrap() > id);
}
