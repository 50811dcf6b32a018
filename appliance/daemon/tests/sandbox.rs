//! The detector child's sandbox and its fault commands, through the real
//! `ProcessDetector` and this package's own binary as the child (as the
//! daemon starts it: `safe-yolo detector-worker`).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test, a skipped check says why"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use safe_yolo_detect::process::sandbox::LandlockLevel;
use safe_yolo_detect::process::{ChildEvent, ChildSpec, ProcessDetector};
use safe_yolo_detect::{BackendChoice, DetectError, Detector, LoadOptions, report};

fn nanodet() -> PathBuf {
    safe_yolo_fixtures::repo_root().join("models/nanodet-m-416-coco/model.toml")
}

/// A child spec for `backend`, its scratch directories under `root`; the
/// events it reports land in the returned list.
fn spec(
    root: &Path,
    backend: BackendChoice,
    extra: &[&str],
) -> (ChildSpec, Arc<Mutex<Vec<ChildEvent>>>) {
    let opts = LoadOptions {
        backend,
        threads: 2,
        ..LoadOptions::default()
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let mut args: Vec<std::ffi::OsString> = vec![
        "detector-worker".into(),
        "--manifest".into(),
        nanodet().into(),
        "--options".into(),
        serde_json::to_string(&opts).unwrap().into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let spec = ChildSpec {
        model: "main".into(),
        program: PathBuf::from(env!("CARGO_BIN_EXE_safe-yolo")),
        args,
        max_wait: Duration::from_secs(5),
        load_timeout: Duration::from_secs(60),
        scratch_root: root.to_path_buf(),
        events: Arc::new(move |e| seen.lock().push(e)),
    };
    (spec, events)
}

fn status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
}

/// `Seccomp:` of every thread of `pid`.
fn seccomp_of_threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| {
            let s = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
            s.lines()
                .find(|l| l.starts_with("Seccomp:"))
                .unwrap_or("Seccomp: ?")
                .to_owned()
        })
        .collect()
}

fn bus(d: &mut ProcessDetector) -> Result<Vec<safe_yolo_domain::Detection>, DetectError> {
    let frame = report::load_image(&safe_yolo_fixtures::media("bus.jpg")).unwrap();
    d.detect(&frame)
}

fn assert_detects(d: &mut ProcessDetector) {
    let found = bus(d).unwrap();
    assert!(
        found.iter().any(|d| &*d.class_name == "bus")
            && found.iter().any(|d| &*d.class_name == "person"),
        "{found:?}"
    );
}

/// Leaves `command` for the child and sends it a frame: the probe's answer.
#[cfg(feature = "fault-injection")]
fn probe(d: &mut ProcessDetector, command: &str) -> String {
    let scratch = d.scratch().unwrap().to_path_buf();
    std::fs::write(
        scratch.join(safe_yolo_detect::process::fault::COMMAND_FILE),
        command,
    )
    .unwrap();
    match bus(d) {
        Err(DetectError::Process(safe_yolo_detect::process::ProcessError::FrameFailed {
            error,
        })) => error,
        other => panic!("{command}: {other:?}"),
    }
}

/// What the sandbox allows and denies, for one backend.
fn sandboxed(backend: BackendChoice) {
    let tmp = tempfile::tempdir().unwrap();
    // The daemon's secrets, outside the child's scratch directory.
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let (store, jwt) = (state.join("store.redb"), state.join("jwt.key"));
    std::fs::write(&store, b"redb").unwrap();
    std::fs::write(&jwt, b"secret").unwrap();
    let root = tmp.path().join("run");
    std::fs::create_dir(&root).unwrap();
    let (spec, _) = spec(&root, backend, &[]);
    let mut d = ProcessDetector::start(spec).unwrap();
    let pid = d.pid().unwrap();
    assert_detects(&mut d);

    // The filter is on every thread, the inference library's included.
    assert!(status(pid).contains("Seccomp:\t2"), "{}", status(pid));
    let threads = seccomp_of_threads(pid);
    assert!(threads.len() > 1, "{threads:?}");
    assert!(threads.iter().all(|s| s == "Seccomp:\t2"), "{threads:?}");
    let report = d.sandbox().unwrap();
    assert!(report.seccomp, "{report}");
    let landlock = report.landlock_abi > 0;
    if landlock {
        assert_eq!(report.landlock, LandlockLevel::Full, "{report}");
    } else {
        eprintln!("this kernel has no Landlock: its checks are skipped ({report})");
    }

    // The scratch directory: private, the child's TMPDIR.
    let scratch = d.scratch().unwrap().to_path_buf();
    assert!(scratch.starts_with(&root));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&scratch).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let tmpdir = format!("TMPDIR={}", scratch.display());
    assert!(
        environ.split(|b| *b == 0).any(|v| v == tmpdir.as_bytes()),
        "no {tmpdir} in the child's environment"
    );

    #[cfg(feature = "fault-injection")]
    {
        let allowed = |r: &str| r.ends_with(": allowed");
        let denied = |r: &str, os: &str| r.contains(": denied: ") && r.contains(os);
        // The probes themselves work: the model may be read, the scratch written.
        let r = probe(&mut d, &format!("open {}", nanodet().display()));
        assert!(allowed(&r), "{r}");
        let inside = scratch.join("tmp-file");
        let r = probe(&mut d, &format!("write {}", inside.display()));
        assert!(allowed(&r), "{r}");
        assert_eq!(std::fs::read(&inside).unwrap(), b"x");
        // No network: the socket call itself is refused by the filter (EPERM).
        let r = probe(&mut d, "connect 127.0.0.1:9");
        assert!(denied(&r, "os error 1)"), "{r}");
        // Never another program.
        let r = probe(&mut d, "exec /bin/true");
        assert!(r.contains(": denied: "), "{r}");
        // Messages only on the control channel's own descriptor: a duplicate
        // of it is refused by the filter (EPERM).
        let r = probe(&mut d, "recv-dup");
        assert!(denied(&r, "os error 1)"), "{r}");
        // ... and the channel itself still works.
        assert_detects(&mut d);
        if landlock {
            // The daemon's secrets are unreadable (EACCES from Landlock).
            for secret in [&store, &jwt] {
                let r = probe(&mut d, &format!("open {}", secret.display()));
                assert!(denied(&r, "os error 13)"), "{r}");
            }
            // Nothing is written outside the scratch directory.
            let outside = tmp.path().join("outside");
            let r = probe(&mut d, &format!("write {}", outside.display()));
            assert!(denied(&r, "os error 13)"), "{r}");
            assert!(!outside.exists());
        }
        // The child went on: it still detects, and it is the same child.
        assert_detects(&mut d);
        assert_eq!(d.pid(), Some(pid));
    }
    drop(d);
    // Its scratch directory went with it.
    assert!(!scratch.exists(), "{} left behind", scratch.display());
}

#[test]
fn a_sandboxed_tract_child_detects_but_cannot_read_secrets_connect_or_write_outside_its_scratch() {
    sandboxed(BackendChoice::Tract);
}

#[test]
fn a_sandboxed_onnxruntime_child_detects_but_cannot_read_secrets_connect_or_write_outside_its_scratch()
 {
    // scripts/test.sh and CI set it: the ONNX Runtime library of the PyPI wheel.
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        eprintln!("ORT_DYLIB_PATH is not set: the ONNX Runtime child is not tried");
        return;
    }
    sandboxed(BackendChoice::OnnxRuntime);
}

#[test]
fn an_unsandboxed_child_has_no_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = spec(tmp.path(), BackendChoice::Tract, &["--no-sandbox"]);
    let mut d = ProcessDetector::start(spec).unwrap();
    let pid = d.pid().unwrap();
    assert_detects(&mut d);
    assert!(status(pid).contains("Seccomp:\t0"), "{}", status(pid));
    assert!(d.sandbox().is_none());
    // The same probe the sandbox denies succeeds here: the checks above can fail.
    #[cfg(feature = "fault-injection")]
    {
        let secret = tmp.path().join("jwt.key");
        std::fs::write(&secret, b"secret").unwrap();
        let r = probe(&mut d, &format!("open {}", secret.display()));
        assert!(r.ends_with(": allowed"), "{r}");
        let r = probe(&mut d, "recv-dup");
        assert!(r.ends_with(": allowed"), "{r}");
        assert_detects(&mut d);
    }
}

/// Each fatal fault command ends the child; the supervisor reports why and a
/// new child detects again.
#[cfg(feature = "fault-injection")]
#[test]
fn segv_abort_hang_and_exit_commands_each_lead_to_a_replaced_child() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, events) = spec(tmp.path(), BackendChoice::Tract, &[]);
    let mut d = ProcessDetector::start(spec).unwrap();
    assert_detects(&mut d);
    for (command, reason) in [
        ("segv", "killed by signal 11 (SIGSEGV)"),
        ("abort", "killed by signal 6 (SIGABRT)"),
        ("hang", "did not answer within"),
        ("exit 3", "exited with code 3"),
    ] {
        let pid = d.pid().unwrap();
        let scratch = d.scratch().unwrap().to_path_buf();
        std::fs::write(
            scratch.join(safe_yolo_detect::process::fault::COMMAND_FILE),
            command,
        )
        .unwrap();
        let e = bus(&mut d).unwrap_err();
        assert!(e.to_string().contains("detector process"), "{command}: {e}");
        let (fault, outage_begins) = events
            .lock()
            .iter()
            .rev()
            .find_map(|e| match e {
                ChildEvent::Fault {
                    reason,
                    outage_begins,
                    ..
                } => Some((Some(reason.clone()), *outage_begins)),
                ChildEvent::Recovered { .. } => None,
            })
            .unwrap_or((None, false));
        // The child was running: its fault begins an outage.
        assert!(
            outage_begins,
            "{command}: the fault did not begin an outage"
        );
        assert!(
            fault.as_deref().is_some_and(|f| f.contains(reason)),
            "{command}: fault {fault:?}, expected {reason:?}"
        );
        // Reaped, and its scratch directory removed.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || status(pid).contains("State:\tZ"),
            "{command}: the child {pid} still runs"
        );
        assert!(!scratch.exists(), "{command}: scratch left behind");
        // Frames are refused while down, then a new child detects.
        let t0 = Instant::now();
        loop {
            match bus(&mut d) {
                Ok(found) if !found.is_empty() => break,
                _ if t0.elapsed() > Duration::from_secs(20) => {
                    panic!("{command}: no new child after 20 s: {:?}", events.lock())
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let new = d.pid().unwrap();
        assert_ne!(new, pid, "{command}");
        assert!(status(new).contains("Seccomp:\t2"), "{command}");
        assert!(
            matches!(events.lock().last(), Some(ChildEvent::Recovered { pid, .. }) if *pid == new),
            "{command}: {:?}",
            events.lock()
        );
    }
}
