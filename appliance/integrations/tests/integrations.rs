//! The sinks against real servers and a real store.
//!
//! MQTT over TLS: Debian's mosquitto with a TLS listener that requires a client
//! certificate (a CA, server and client certificates made by the test): the event
//! arrives; a sink without the client certificate, or without the plant's CA (the
//! system's roots), is refused.
//!
//! Webhooks against a real HTTPS receiver (hyper over rustls, a certificate made by the
//! test): the receiver answers 500 three times, then 200; the event
//! arrives once accepted, every attempt with the same body and idempotency key and a
//! signature the receiver verifies on its own; the cursor moves only after the 200.
//! A receiver whose certificate the box does not trust is refused (verification is on
//! by default); a filtered-out event is passed over.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use safe_yolo_config::{MqttConfig, MqttTransport, SecretSource, WebhookConfig, WebhookFilter};
use safe_yolo_domain::{CameraId, RuleId, Severity};
use safe_yolo_integrations::{MqttSink, Sink, WebhookSink, deliver};
use safe_yolo_store::{NewEvent, Storage, StorageSettings, Store, StoreConfig, StoreHandle};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "a-webhook-secret-of-some-length";

/// What the receiver saw: headers of interest, the body, the status it answered.
#[derive(Debug, Clone)]
struct Seen {
    timestamp: String,
    signature: String,
    key: String,
    body: Vec<u8>,
    answered: u16,
}

/// An HTTPS receiver on 127.0.0.1 answering 500 to the first `failures` requests.
async fn receiver(
    failures: usize,
) -> (
    u16,
    Arc<Mutex<Vec<Seen>>>,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = dir.path().join("receiver.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = Arc::clone(&log);
                        async move {
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let (timestamp, signature, key) = (
                                header("x-safeyolo-timestamp"),
                                header("x-safeyolo-signature"),
                                header("idempotency-key"),
                            );
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            let mut log = log.lock();
                            let answered = if log.len() < failures { 500 } else { 200 };
                            log.push(Seen {
                                timestamp,
                                signature,
                                key,
                                body,
                                answered,
                            });
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(answered)
                                    .body(Full::new(bytes::Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, seen, ca, dir)
}

/// The receiver's own check of a signature: HMAC-SHA256 over `timestamp.body`.
fn verified(s: &Seen) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let Some(hex) = s.signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut msg = s.timestamp.as_bytes().to_vec();
    msg.push(b'.');
    msg.extend(&s.body);
    ring::hmac::verify(&key, &msg, &tag).is_ok()
}

fn event(severity: Severity, rule: &str) -> NewEvent {
    NewEvent {
        camera: CameraId::new("dock").unwrap(),
        rule: RuleId::new(rule).unwrap(),
        zone: None,
        track: Some(3),
        kind: "intrusion".into(),
        severity,
        started_at: 1_000,
        ended_at: None,
        message: "person in the lane".into(),
        details: None,
        snapshot_jpeg: None,
        cleared: false,
    }
}

fn hook(
    port: u16,
    ca: Option<std::path::PathBuf>,
    secret_file: std::path::PathBuf,
) -> WebhookConfig {
    WebhookConfig {
        id: "pager".into(),
        url: format!("https://localhost:{port}/safety?box=7"),
        secret: SecretSource::File(secret_file),
        ca_file: ca,
        tls_verify: true,
        timeout: Duration::from_secs(5),
        filter: WebhookFilter {
            severities: vec![Severity::Critical],
            ..WebhookFilter::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_500_three_times_gets_the_event_once_accepted_signed() {
    let (port, seen, ca, dir) = receiver(3).await;
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (handle, _writer) =
        StoreHandle::start(Store::open(StoreConfig::new(state.path())).unwrap(), 16).unwrap();
    let store = handle.store().clone();
    store
        .register_outbox_sinks(&["webhook:pager".into()])
        .unwrap();
    // Filtered out (warning), then the one it wants.
    let ids = store
        .insert_events(&[
            event(Severity::Warning, "near-miss"),
            event(Severity::Critical, "no-entry"),
        ])
        .unwrap();
    let storage = Storage::with_handle(handle, StorageSettings::default());

    // Verification is on: without the receiver's CA the system's roots refuse it.
    let mut untrusting = WebhookSink::new(hook(port, None, secret_file.clone()), "b".into(), None);
    untrusting.connect().await.unwrap();
    let entry = store
        .outbox_after("webhook:pager", 10)
        .unwrap()
        .pop()
        .unwrap();
    let refused = untrusting.deliver(&entry).await.unwrap_err();
    assert!(refused.to_string().contains("TLS"), "{refused}");
    assert!(
        seen.lock().is_empty(),
        "an untrusted receiver got the event"
    );

    let stop = CancellationToken::new();
    let sink = WebhookSink::new(hook(port, Some(ca), secret_file), "press-7".into(), None);
    let task = tokio::spawn(deliver::run(sink, storage, stop.clone()));
    let start = Instant::now();
    while seen.lock().len() < 4 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cursor moves once the 200 came.
    let status = loop {
        let s = store.outbox_status().unwrap();
        if s.sinks[0].backlog == 0 || start.elapsed() > Duration::from_secs(60) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.cancel();
    task.await.unwrap();
    let seen = seen.lock().clone();
    let answered: Vec<u16> = seen.iter().map(|s| s.answered).collect();
    assert_eq!(
        answered,
        [500, 500, 500, 200],
        "retried until accepted, then no more"
    );
    for s in &seen {
        assert!(verified(s), "signature does not verify: {s:?}");
        assert_eq!(
            s.body, seen[0].body,
            "every attempt sends the same document"
        );
        assert_eq!(s.key, format!("{}-active", ids[1]));
    }
    let doc: serde_json::Value = serde_json::from_slice(&seen[3].body).unwrap();
    assert_eq!(doc["id"], ids[1]);
    assert_eq!(doc["rule"], "no-entry");
    assert_eq!(doc["box"], "press-7");
    // A tampered body does not verify (the check can fail).
    let mut forged = seen[3].clone();
    forged.body[0] = b' ';
    assert!(!verified(&forged));
    let sink = &status.sinks[0];
    assert_eq!((sink.backlog, sink.cursor.last_event_id), (0, Some(ids[1])));
    assert!(
        sink.cursor
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{status:?}"
    );
    eprintln!(
        "webhook accepted after {:.1} s of retries",
        start.elapsed().as_secs_f64()
    );
}

/// Debian's mosquitto on a free loopback port, configured in `dir` with `extra`
/// lines; returns it once it listens.
async fn mosquitto(dir: &std::path::Path, extra: &str) -> (std::process::Child, u16) {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = Command::new("id").arg("-un").output().unwrap().stdout;
    std::fs::write(
        dir.join("mosquitto.conf"),
        format!(
            "user {}\nlistener {port} 127.0.0.1\n{extra}allow_anonymous true\n",
            String::from_utf8_lossy(&user).trim()
        ),
    )
    .unwrap();
    let broker = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (scripts/install-deps.sh installs it)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mosquitto did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (broker, port)
}

/// A CA, and a certificate it signed for each of `names` (server: `localhost`; client).
fn pki(dir: &std::path::Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "plant test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, san) in [("server", "localhost"), ("client", "tls-box")] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![san.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, san);
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn mqtts(port: u16, dir: &std::path::Path, ca: bool, client: bool) -> MqttConfig {
    MqttConfig {
        transport: MqttTransport::Tls,
        host: "localhost".into(),
        port,
        client_id: "tls-box".into(),
        topic_prefix: "plant/tls-box/".into(),
        credentials: None,
        ca_file: ca.then(|| dir.join("ca.pem")),
        client_auth: client.then(|| (dir.join("client.pem"), dir.join("client.key"))),
        keep_alive: Duration::from_secs(30),
        home_assistant: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_client_certificate_delivers_and_refuses_what_it_cannot_trust() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let d = dir.path().display();
    let (mut broker, port) = mosquitto(
        dir.path(),
        &format!("cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\n"),
    )
    .await;
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &port.to_string(), "--cafile"])
        .arg(dir.path().join("ca.pem"))
        .arg("--cert")
        .arg(dir.path().join("client.pem"))
        .arg("--key")
        .arg(dir.path().join("client.key"))
        .args(["-t", "plant/tls-box/events", "-C", "1", "-W", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Refused: no client certificate; the plant's CA not given (system roots).
    for (ca, client, why) in [
        (true, false, "no client certificate"),
        (false, true, "system roots"),
    ] {
        let mut sink = MqttSink::new(mqtts(port, dir.path(), ca, client), "tls-box".into(), None);
        let refused = tokio::time::timeout(Duration::from_secs(15), sink.connect())
            .await
            .expect("a refusal, not a hang");
        assert!(refused.is_err(), "{why}: connected");
    }

    let state = tempfile::tempdir().unwrap();
    let (handle, _writer) =
        StoreHandle::start(Store::open(StoreConfig::new(state.path())).unwrap(), 16).unwrap();
    let store = handle.store().clone();
    store.register_outbox_sinks(&["mqtt".into()]).unwrap();
    let ids = store
        .insert_events(&[event(Severity::Critical, "no-entry")])
        .unwrap();
    let stop = CancellationToken::new();
    let sink = MqttSink::new(mqtts(port, dir.path(), true, true), "tls-box".into(), None);
    let task = tokio::spawn(deliver::run(
        sink,
        Storage::with_handle(handle, StorageSettings::default()),
        stop.clone(),
    ));
    let start = Instant::now();
    while sub.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap();
    let _ = broker.kill();
    let _ = broker.wait();
    let out = sub.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no event over mqtts: {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(doc["id"], ids[0]);
    assert_eq!(doc["box"], "tls-box");
    assert_eq!(store.outbox_status().unwrap().sinks[0].backlog, 0);
}

/// The MQTT interlocks against Debian's mosquitto: a retained message gives the level
/// at once, `armed_value` arms and any other payload disarms (audited with the
/// topic), a level not renewed goes stale (armed), and a lost broker connection makes
/// the interlock unknown (armed) at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_interlocks_follow_their_topic_and_fail_safe_when_the_broker_goes() {
    use safe_yolo_alarms::Interlocks;
    use safe_yolo_alarms::interlocks::InterlockLevel;
    use safe_yolo_config::{InterlockConfig, InterlockSource};
    use safe_yolo_domain::InterlockId;
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, port) = mosquitto(dir.path(), "").await;
    let publish = |payload: &str, retain: bool| {
        let mut c = Command::new("mosquitto_pub");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", "plant/press-7/loto", "-m", payload]);
        if retain {
            c.arg("-r");
        }
        assert!(c.status().unwrap().success());
    };
    // Retained before the box connects: it gets the level at once.
    publish("clear", true);

    let loto = InterlockId::new("press-7-loto").unwrap();
    let interlocks = Interlocks::new(&[InterlockConfig {
        id: loto.clone(),
        name: "LOTO".into(),
        source: InterlockSource::Mqtt {
            topic: "plant/press-7/loto".into(),
            armed_value: "clear".into(),
        },
        stale_after: Some(Duration::from_secs(3)),
    }]);
    let state = tempfile::tempdir().unwrap();
    let (handle, _writer) =
        StoreHandle::start(Store::open(StoreConfig::new(state.path())).unwrap(), 16).unwrap();
    let store = handle.store().clone();
    let storage = Storage::with_handle(handle, StorageSettings::default());
    let cfg = MqttConfig {
        transport: MqttTransport::Tcp,
        host: "127.0.0.1".into(),
        port,
        client_id: "box".into(),
        topic_prefix: "safe-yolo/box/".into(),
        credentials: None,
        ca_file: None,
        client_auth: None,
        keep_alive: Duration::from_secs(5),
        home_assistant: None,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(safe_yolo_integrations::mqtt_interlocks::run(
        cfg,
        interlocks.clone(),
        storage,
        stop.clone(),
    ));
    let expiry = tokio::spawn(interlocks.clone().run_expiry(stop.clone()));
    let wait_for = |want: InterlockLevel, within: Duration| {
        let interlocks = interlocks.clone();
        let loto = loto.clone();
        async move {
            let start = Instant::now();
            while interlocks.level(&loto) != want {
                assert!(
                    start.elapsed() < within,
                    "level {:?}, wanted {want:?}",
                    interlocks.level(&loto)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(InterlockLevel::Armed, Duration::from_secs(10)).await;
    publish("locked", false);
    wait_for(InterlockLevel::Disarmed, Duration::from_secs(5)).await;
    // Not renewed within 3 s: stale, so armed (fail-safe).
    wait_for(InterlockLevel::Unknown, Duration::from_secs(6)).await;
    publish("locked", false);
    wait_for(InterlockLevel::Disarmed, Duration::from_secs(5)).await;
    // The broker goes: unknown (armed) at once, not after stale_after.
    let _ = broker.kill();
    let _ = broker.wait();
    wait_for(InterlockLevel::Unknown, Duration::from_secs(2)).await;
    stop.cancel();
    task.await.unwrap();
    expiry.await.unwrap();
    let (rows, _) = store.audit_page(None, 50, true).unwrap();
    let changes: Vec<(String, Option<String>)> = rows
        .iter()
        .filter(|r| r.action == "interlock.set" && r.actor == "mqtt")
        .map(|r| (r.target.clone(), r.after.clone()))
        .collect();
    assert!(
        changes.contains(&("interlock/press-7-loto".into(), Some("disarmed".into()))),
        "{changes:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r.action != "interlock.set"
                || r.source.as_deref() == Some("plant/press-7/loto"))
    );
}
