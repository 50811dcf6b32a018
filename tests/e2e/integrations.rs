//! The plant integrations against a real broker: Debian's mosquitto, started by the
//! test on a free port (with persistence, so a subscriber's session and its queued
//! messages survive the broker's restart), and mosquitto_sub as the plant's client.
//!
//! The whole daemon on the demo footage: an intrusion's MQTT message carries the stored
//! event's id; the broker stopped while alarms happen and restarted -> every missed
//! event arrives, in order, none lost; the daemon SIGKILLed with a backlog -> delivered
//! after its restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::alarms::walkway_appliance;
use crate::client::{Client, PASSWORD, first_admin, free_port, wait_until};
use crate::harness::Daemon;

/// A mosquitto broker on `port`, persisting into `dir`.
struct Broker {
    child: Child,
    dir: PathBuf,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        // Started as root, mosquitto drops to its own user, which could not write its
        // persistence file in our directory: it stays the user that runs the test.
        let user = Command::new("id").arg("-un").output().unwrap().stdout;
        std::fs::write(
            &conf,
            format!(
                "user {}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\n",
                String::from_utf8_lossy(&user).trim(),
                dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("mosquitto.log"))
            .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto (scripts/install-deps.sh installs it)");
        let broker = Self {
            child,
            dir: dir.to_owned(),
        };
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        });
        assert!(up.is_some(), "mosquitto did not listen: {}", broker.log());
        broker
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGTERM (mosquitto saves its persistence file) and waits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mosquitto_sub with a persistent session (`-c`, QoS 1): the broker queues what it
/// misses while disconnected; each line is `topic payload`.
struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    fn start(port: u16, topic: &str, out: PathBuf) -> Self {
        let file = std::fs::File::create(&out).unwrap();
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-i", "e2e-plant", "-c", "-q", "1", "-v", "-t", topic])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (scripts/install-deps.sh installs it)");
        Self { child, out }
    }

    /// The JSON payloads received on topics ending with `suffix`, in order.
    fn messages(&self, suffix: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(t, _)| t.ends_with(suffix))
            .filter_map(|(_, p)| serde_json::from_str(p).ok())
            .collect()
    }
}

impl Subscriber {
    /// Publishes a probe to `topic` (one the subscription matches, ending with
    /// `/events`) until it arrives: the subscription is in place.
    fn wait_subscribed(&self, port: u16, topic: &str, broker: &Broker) {
        let probe = wait_until(Duration::from_secs(10), || {
            let _ = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-q", "1", "-t", topic, "-m", "{\"probe\":1}"])
                .status();
            std::thread::sleep(Duration::from_millis(300));
            (!self.messages("/events").is_empty()).then_some(())
        });
        assert!(
            probe.is_some(),
            "the subscriber never subscribed: {}",
            broker.log()
        );
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ids of the events raised on MQTT, in arrival order.
fn raised_ids(sub: &Subscriber) -> Vec<u64> {
    sub.messages("/events")
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect()
}

/// The ids of every stored walkway intrusion, oldest first.
fn stored_ids(c: &Client) -> Vec<u64> {
    let (status, page) = c.json(
        "GET",
        "/api/v1/events?rule=walkway-intrusion&limit=1000",
        None,
    );
    if status != 200 {
        return Vec::new();
    }
    let mut ids: Vec<u64> = page["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

/// One retained message of `topic`, as the broker keeps it now.
fn retained(port: u16, topic: &str) -> Option<String> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", topic, "-C", "1", "-W", "5"])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Every event stored from `first` on has arrived on MQTT; arrivals are in order (a
/// repeat is the same id again, never a new one for an old event).
fn assert_all_delivered_in_order(sub: &Subscriber, stored: &[u64], first: u64, what: &str) {
    let got = raised_ids(sub);
    let want: BTreeSet<u64> = stored.iter().copied().filter(|id| *id >= first).collect();
    let have: BTreeSet<u64> = got.iter().copied().collect();
    let missing: Vec<&u64> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "{what}: events {missing:?} never arrived; got {got:?}"
    );
    // In order: a smaller id than one already received is only ever a repeat.
    let (mut seen, mut highest) = (BTreeSet::new(), 0);
    for id in &got {
        assert!(
            *id >= highest || seen.contains(id),
            "{what}: {id} after {highest}, out of order: {got:?}"
        );
        seen.insert(*id);
        highest = highest.max(*id);
    }
}

#[test]
fn mqtt_delivers_every_event_in_order_through_broker_outages_and_a_sigkill() {
    let api_port = free_port();
    let mqtt_port = free_port();
    let (app, config) = walkway_appliance(api_port);
    let broker_dir = app.path().join("broker");
    let broker = Broker::start(&broker_dir, mqtt_port);
    let sub = Subscriber::start(mqtt_port, "safe-yolo/+/events", app.path().join("sub.txt"));
    // The subscription exists before the daemon publishes anything.
    sub.wait_subscribed(mqtt_port, "safe-yolo/probe/events", &broker);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[integrations]\nbox_name = \"e2e\"\n\n[integrations.mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nkeep_alive_s = 5\nhome_assistant = true\n"
    ));
    std::fs::write(&config, text).unwrap();

    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let mut c = first_admin(&daemon, api_port);

    // 1. An intrusion: its message's id is the stored event's.
    let first = wait_until(Duration::from_secs(150), || {
        raised_ids(&sub).first().copied()
    })
    .unwrap_or_else(|| panic!("no event on MQTT; log:\n{}", daemon.log_text()));
    let (status, stored) = c.json("GET", &format!("/api/v1/events/{first}"), None);
    assert_eq!(status, 200, "{stored}");
    let msg = sub
        .messages("/events")
        .into_iter()
        .find(|m| m["id"] == first)
        .unwrap();
    assert_eq!(msg["rule"], "walkway-intrusion");
    assert_eq!(msg["box"], "e2e");
    assert_eq!(
        (&msg["camera"], &msg["started_at"], &msg["severity"]),
        (
            &stored["camera"],
            &stored["started_at"],
            &stored["severity"]
        )
    );
    assert_eq!(
        msg["snapshot_url"],
        format!("/api/v1/events/{first}/snapshot")
    );
    assert_eq!(
        retained(mqtt_port, "safe-yolo/e2e/status").as_deref(),
        Some("online")
    );
    // The zone's person count, retained (the newest value per zone).
    let count = wait_until(Duration::from_secs(30), || {
        retained(mqtt_port, "safe-yolo/e2e/zones/tape-front/count")
    })
    .expect("no retained zones/tape-front/count");
    let count: Value = serde_json::from_str(&count).unwrap();
    assert_eq!(count["zone"], "tape-front", "{count}");
    assert!(count["count"].as_u64().is_some(), "{count}");
    // Home Assistant discovery: the zone is a sensor of the box's device, reading
    // that topic, available while the box's status is online.
    let ha = retained(
        mqtt_port,
        "homeassistant/sensor/safe-yolo-e2e/zone-tape-front/config",
    )
    .expect("no Home Assistant discovery document for the zone");
    let ha: Value = serde_json::from_str(&ha).unwrap();
    assert_eq!(
        ha["state_topic"], "safe-yolo/e2e/zones/tape-front/count",
        "{ha}"
    );
    assert_eq!(ha["availability_topic"], "safe-yolo/e2e/status", "{ha}");

    // 2. The broker goes away while alarms go on; the outbox keeps them.
    let before = stored_ids(&c);
    broker.stop();
    let outage = std::time::Instant::now();
    let during = wait_until(Duration::from_secs(120), || {
        let now = stored_ids(&c);
        let new: Vec<u64> = now
            .iter()
            .copied()
            .filter(|id| !before.contains(id))
            .collect();
        (new.len() >= 2).then_some(new)
    })
    .unwrap_or_else(|| panic!("no alarms during the outage; log:\n{}", daemon.log_text()));
    let delivered_during: Vec<u64> = raised_ids(&sub)
        .into_iter()
        .filter(|id| during.contains(id))
        .collect();
    assert!(delivered_during.is_empty(), "delivered without a broker?");
    eprintln!(
        "broker down {:.1} s; events {during:?} stored meanwhile",
        outage.elapsed().as_secs_f64()
    );
    let broker = Broker::start(&broker_dir, mqtt_port);
    let all = wait_until(Duration::from_secs(90), || {
        let stored = stored_ids(&c);
        let have: BTreeSet<u64> = raised_ids(&sub).into_iter().collect();
        during.iter().all(|id| have.contains(id)).then_some(stored)
    })
    .unwrap_or_else(|| {
        panic!(
            "missed events not delivered after the restart: got {:?}; log:\n{}",
            raised_ids(&sub),
            daemon.log_text()
        )
    });
    assert_all_delivered_in_order(&sub, &all, first, "after the broker's restart");

    // 3. A backlog, then SIGKILL: delivered by the next run.
    broker.stop();
    let before = stored_ids(&c);
    let backlog = wait_until(Duration::from_secs(120), || {
        let new: Vec<u64> = stored_ids(&c)
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        (!new.is_empty()).then_some(new)
    })
    .unwrap_or_else(|| panic!("no alarm for the backlog; log:\n{}", daemon.log_text()));
    daemon.signal("KILL");
    daemon.wait(Duration::from_secs(5));
    let broker = Broker::start(&broker_dir, mqtt_port);
    // The will: the box went away without a goodbye.
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    c.login("safety", PASSWORD);
    let got = wait_until(Duration::from_secs(90), || {
        let have: BTreeSet<u64> = raised_ids(&sub).into_iter().collect();
        backlog.iter().all(|id| have.contains(id)).then_some(())
    });
    assert!(
        got.is_some(),
        "the backlog {backlog:?} was not delivered after the SIGKILL: got {:?}; log:\n{}",
        raised_ids(&sub),
        daemon.log_text()
    );
    let stored = stored_ids(&c);
    assert_all_delivered_in_order(&sub, &stored, first, "after the SIGKILL");
    // The delivery status: nothing waits, the outages are on record.
    let status = wait_until(Duration::from_secs(30), || {
        let (code, v) = c.json("GET", "/api/v1/system/integrations", None);
        (code == 200 && v["sinks"][0]["backlog"] == 0).then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "the MQTT backlog never drained; log:\n{}",
            daemon.log_text()
        )
    });
    let sink = &status["sinks"][0];
    assert_eq!(sink["name"], "mqtt", "{status}");
    assert!(
        sink["delivered"].as_u64().unwrap() >= stored.len() as u64,
        "{status}"
    );
    assert!(
        sink["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("broker connection")),
        "{status}"
    );
    assert!(!status.to_string().contains("password"), "{status}");
    // "Send test event": it reaches the broker on `test`, audited.
    let waiting = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &mqtt_port.to_string()])
        .args(["-t", "safe-yolo/e2e/test", "-C", "1", "-W", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, sent) = c.json("POST", "/api/v1/system/integrations/test", None);
    assert_eq!(code, 200, "{sent}");
    assert!(sent["outbox_seq"].is_u64(), "{sent}");
    let out = waiting.wait_with_output().unwrap();
    let test: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no test message: {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(
        (&test["kind"], &test["by"]),
        (&"test".into(), &"safety".into())
    );
    let (_, audit) = c.json("GET", "/api/v1/audit?limit=20", None);
    assert!(audit.to_string().contains("integrations.test"), "{audit}");

    // An orderly stop says goodbye: `offline`, retained.
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert_eq!(
        retained(mqtt_port, "safe-yolo/e2e/status").as_deref(),
        Some("offline")
    );
    drop(broker);
}

/// A PLC (tokio-modbus's TCP client) on the Modbus server, from `source`.
fn plc(
    rt: &tokio::runtime::Runtime,
    port: u16,
    source: &str,
) -> std::io::Result<tokio_modbus::client::Context> {
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(format!("{source}:0").parse().unwrap())?;
        let stream = sock
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await?;
        Ok(tokio_modbus::client::tcp::attach_slave(
            stream,
            tokio_modbus::Slave(1),
        ))
    })
}

/// One discrete input.
fn read_di(
    rt: &tokio::runtime::Runtime,
    ctx: &mut tokio_modbus::client::Context,
    addr: u16,
) -> bool {
    use tokio_modbus::client::Reader;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), ctx.read_discrete_inputs(addr, 1)).await
    })
    .expect("modbus read timed out")
    .expect("modbus transport")
    .expect("modbus exception")[0]
}

fn write_coil(
    rt: &tokio::runtime::Runtime,
    ctx: &mut tokio_modbus::client::Context,
    addr: u16,
    v: bool,
) {
    use tokio_modbus::client::Writer;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), ctx.write_single_coil(addr, v)).await
    })
    .expect("modbus write timed out")
    .expect("modbus transport")
    .expect("modbus exception");
}

/// A PLC reads the intrusion rule's alarm state as a discrete input and disarms the
/// rule through its interlock's coil: the alarm clears and no event is raised while
/// people keep walking through the zone; the write is audited with the PLC's address;
/// re-armed, the rule raises again; the acknowledge coil acknowledges; the input
/// registers carry the newest event id; a client outside the allow-list is refused.
#[test]
fn a_plc_reads_the_alarm_over_modbus_and_disarms_the_rule_through_an_interlock_coil() {
    let api_port = free_port();
    let mb_port = free_port();
    let (_app, config) = walkway_appliance(api_port);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "id = \"walkway-intrusion\"\n",
        "id = \"walkway-intrusion\"\narmed_by = \"conveyor-running\"\n",
    );
    text.push_str(&format!(
        "\n[integrations.modbus]\nbind = \"127.0.0.1:{mb_port}\"\nallow = [\"127.0.0.1\"]\nidle_timeout_s = 5\nmax_connections = 2\n\n[[integrations.interlocks]]\nid = \"conveyor-running\"\nsource = \"modbus\"\ncoil = 7\n"
    ));
    std::fs::write(&config, text).unwrap();
    let (daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, api_port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The register map, as the API serves it.
    let (status, map) = c.json("GET", "/api/v1/system/modbus", None);
    assert_eq!(status, 200, "{map}");
    let addr = |kind: &str, key: &str, id: &str| -> u16 {
        map["registers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r[key] == id)
            .and_then(|r| r["address"].as_u64())
            .unwrap_or_else(|| panic!("{kind} {id} not in the map: {map}")) as u16
    };
    let raised = addr("rule_raised", "rule", "walkway-intrusion");
    let armed = addr("rule_armed", "rule", "walkway-intrusion");
    let online = addr("camera_online", "camera", "walkway");
    let coil = addr("interlock", "interlock", "conveyor-running");
    assert_eq!(coil, 7);

    let mut ctx = plc(&rt, mb_port, "127.0.0.1").unwrap();
    // 1. Never written: the interlock is unknown, which arms (fail-safe).
    assert!(read_di(&rt, &mut ctx, armed), "unknown must arm");
    let up = wait_until(Duration::from_secs(60), || {
        read_di(&rt, &mut ctx, online).then_some(())
    });
    assert!(
        up.is_some(),
        "camera never online; log:\n{}",
        daemon.log_text()
    );
    let first = wait_until(Duration::from_secs(150), || {
        read_di(&rt, &mut ctx, raised).then_some(())
    });
    assert!(
        first.is_some(),
        "the alarm never showed on Modbus; log:\n{}",
        daemon.log_text()
    );

    // 2. The PLC disarms: the alarm clears, nothing is raised for a whole loop of
    // the footage (20 s of people walking through the zone).
    write_coil(&rt, &mut ctx, coil, false);
    assert!(!read_di(&rt, &mut ctx, armed));
    let (_, locks) = c.json("GET", "/api/v1/system/interlocks", None);
    assert_eq!(locks[0]["id"], "conveyor-running", "{locks}");
    assert_eq!(locks[0]["level"], "disarmed", "{locks}");
    assert_eq!(locks[0]["rules"][0], "walkway-intrusion", "{locks}");
    let cleared = wait_until(Duration::from_secs(15), || {
        (!read_di(&rt, &mut ctx, raised)).then_some(())
    });
    assert!(cleared.is_some(), "a disarmed rule's alarm did not clear");
    let before = stored_ids(&c);
    let quiet_until = std::time::Instant::now() + Duration::from_secs(25);
    while std::time::Instant::now() < quiet_until {
        assert!(!read_di(&rt, &mut ctx, raised), "a disarmed rule raised");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(stored_ids(&c), before, "a disarmed rule stored an event");

    // 3. Audited with the PLC's address.
    let (_, audit) = c.json("GET", "/api/v1/audit?limit=50", None);
    let row = audit["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("audit page: {audit}"))
        .iter()
        .find(|r| r["action"] == "interlock.set")
        .cloned()
        .unwrap_or_else(|| panic!("no interlock.set audit row: {audit}"));
    assert_eq!(row["actor"], "modbus");
    assert_eq!(row["source"], "127.0.0.1");
    assert_eq!(row["target"], "interlock/conveyor-running");
    assert_eq!(row["after"], "disarmed");

    // 4. Re-armed: the rule raises again; the input registers name the newest event.
    // (A client silent for idle_timeout_s = 5 is disconnected: API calls came
    // between, so a fresh connection.)
    ctx = plc(&rt, mb_port, "127.0.0.1").unwrap();
    write_coil(&rt, &mut ctx, coil, true);
    let again = wait_until(Duration::from_secs(90), || {
        read_di(&rt, &mut ctx, raised).then_some(())
    });
    assert!(
        again.is_some(),
        "a re-armed rule never raised; log:\n{}",
        daemon.log_text()
    );
    let newest = wait_until(Duration::from_secs(30), || {
        let ids = stored_ids(&c);
        ids.iter()
            .any(|id| !before.contains(id))
            .then(|| *ids.last().unwrap())
    })
    .expect("the re-armed rule's event was not stored");
    ctx = plc(&rt, mb_port, "127.0.0.1").unwrap();
    let regs = wait_until(Duration::from_secs(10), || {
        use tokio_modbus::client::Reader;
        let r = rt
            .block_on(ctx.read_input_registers(0, 3))
            .unwrap()
            .unwrap();
        let id = (u64::from(r[0]) << 16) | u64::from(r[1]);
        (id >= newest).then_some(r)
    })
    .expect("the last event id register never reached the stored event");
    let counted = wait_until(Duration::from_secs(60), || {
        use tokio_modbus::client::Reader;
        let r = rt
            .block_on(ctx.read_input_registers(2, 1))
            .unwrap()
            .unwrap();
        (r[0] >= 1).then_some(())
    });
    assert!(
        counted.is_some(),
        "the raised count never showed an alarm ({regs:?})"
    );

    // 5. The acknowledge coil acknowledges every open event.
    write_coil(&rt, &mut ctx, 0, true);
    let acked = wait_until(Duration::from_secs(10), || {
        let (_, e) = c.json("GET", &format!("/api/v1/events/{newest}"), None);
        let by = "modbus 127.0.0.1";
        (e["by"] == by || e["acknowledged"]["by"] == by).then_some(())
    });
    assert!(acked.is_some(), "not acknowledged through Modbus");

    // 6. Writing an address without a writable point is refused; so is a client
    // outside the allow-list (127.0.0.2 is loopback but not allowed), a third client
    // (max_connections = 2), and a client silent for longer than idle_timeout_s.
    // The earlier connection is closed first (the server frees its slot on EOF).
    drop(ctx);
    std::thread::sleep(Duration::from_millis(500));
    let mut ctx = plc(&rt, mb_port, "127.0.0.1").unwrap();
    {
        use tokio_modbus::client::Writer;
        let r = rt.block_on(ctx.write_single_coil(500, true)).unwrap();
        assert!(r.is_err(), "a write to coil 500 was accepted");
    }
    let refused = plc(&rt, mb_port, "127.0.0.2").ok().and_then(|mut other| {
        use tokio_modbus::client::Reader;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), other.read_discrete_inputs(0, 1)).await
        })
        .ok()
        .and_then(Result::ok)
    });
    assert!(
        refused.is_none(),
        "a client outside the allow-list was served"
    );
    let read = |ctx: &mut tokio_modbus::client::Context| {
        use tokio_modbus::client::Reader;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), ctx.read_discrete_inputs(0, 1)).await
        })
        .ok()
        .and_then(Result::ok)
        .and_then(Result::ok)
    };
    let mut second = plc(&rt, mb_port, "127.0.0.1").unwrap();
    assert!(read(&mut ctx).is_some() && read(&mut second).is_some());
    let third = plc(&rt, mb_port, "127.0.0.1")
        .ok()
        .and_then(|mut t| read(&mut t));
    assert!(
        third.is_none(),
        "a third client was served (max_connections = 2)"
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        read(&mut second).is_none(),
        "an idle client was kept past idle_timeout_s"
    );
}

/// The integration settings edited through the API while the daemon runs: MQTT
/// switched on with a topic prefix of its own and the Modbus server on a port of its
/// own start without a restart of the daemon (same PID; the next intrusion arrives on
/// the new topic, so the camera, detection and rules ran on; a PLC connects to the
/// new port); the password sent is never read back, audited or logged; removing an
/// interlock a rule is armed by is refused at that rule; a Modbus port that cannot be
/// bound is reported in the delivery status while the daemon runs on; after a restart
/// the stored settings run again.
#[test]
fn integration_settings_edited_through_the_api_apply_live_and_survive_a_restart() {
    const SETTINGS: &str = "/api/v1/system/integrations/settings";
    const MQTT_PASSWORD: &str = "e2e-mqtt-password-77c1";
    let api_port = free_port();
    let mqtt_port = free_port();
    let mb_port = free_port();
    let (app, config) = walkway_appliance(api_port);
    let broker = Broker::start(&app.path().join("broker"), mqtt_port);
    let sub = Subscriber::start(mqtt_port, "plant/live/#", app.path().join("sub.txt"));
    sub.wait_subscribed(mqtt_port, "plant/live/probe/events", &broker);

    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, api_port);
    let pid = daemon.pid();
    let (status, before) = c.json("GET", SETTINGS, None);
    assert_eq!(status, 200, "{before}");
    assert!(before["doc"].get("mqtt").is_none(), "{before}");

    // 1. MQTT, Modbus and an interlock switched on while the daemon runs.
    let doc = serde_json::json!({
        "mqtt": {"url": format!("mqtt://127.0.0.1:{mqtt_port}"), "topic_prefix": "plant/live/",
                 "username": "box", "password": MQTT_PASSWORD, "keep_alive_s": 5},
        "modbus": {"bind": format!("127.0.0.1:{mb_port}"), "allow": ["127.0.0.1"]},
        "interlocks": [{"id": "conveyor-running", "source": "modbus", "coil": 7}]
    });
    let (status, saved) = c.json("PUT", SETTINGS, Some(&serde_json::json!({"doc": doc})));
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["secrets"]["mqtt_password_set"], true, "{saved}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connected = wait_until(Duration::from_secs(30), || {
        plc(&rt, mb_port, "127.0.0.1").ok()
    });
    let mut ctx = connected.unwrap_or_else(|| {
        panic!(
            "no Modbus server on the new port; log:\n{}",
            daemon.log_text()
        )
    });
    let coil = {
        let (_, map) = c.json("GET", "/api/v1/system/modbus", None);
        assert_eq!(map["bind"], format!("127.0.0.1:{mb_port}"), "{map}");
        map["registers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "interlock")
            .and_then(|r| r["address"].as_u64())
            .unwrap_or_else(|| panic!("the new interlock is not in the map: {map}"))
    };
    assert_eq!(coil, 7);
    let guarding = wait_until(Duration::from_secs(30), || {
        read_di(&rt, &mut ctx, safe_yolo_config::DI_GUARDING).then_some(())
    });
    assert!(guarding.is_some(), "the box must still guard");
    drop(ctx);
    let first = wait_until(Duration::from_secs(150), || {
        raised_ids(&sub).first().copied()
    })
    .unwrap_or_else(|| panic!("no event on the new topic; log:\n{}", daemon.log_text()));
    let (status, stored) = c.json("GET", &format!("/api/v1/events/{first}"), None);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(daemon.pid(), pid, "the daemon restarted");

    // 2. A rule armed by the interlock: the interlock cannot go while it is.
    let (_, rules) = c.json("GET", "/api/v1/rules", None);
    let mut rule = rules["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "walkway-intrusion")
        .map(|r| r["doc"].clone())
        .unwrap_or_else(|| panic!("no rule: {rules}"));
    rule["armed_by"] = "conveyor-running".into();
    let (status, body) = c.json(
        "PUT",
        "/api/v1/rules/walkway-intrusion",
        Some(&serde_json::json!({"doc": rule})),
    );
    assert_eq!(status, 200, "{body}");
    let (_, now) = c.json("GET", SETTINGS, None);
    let mut without = now["doc"].clone();
    without["interlocks"] = serde_json::json!([]);
    let (status, refused) = c.json("PUT", SETTINGS, Some(&serde_json::json!({"doc": without})));
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("rules.walkway-intrusion.armed_by"),
        "{refused}"
    );

    // 3. A port that cannot be bound: the Modbus server degrades and says why in
    // the delivery status; the daemon runs on. Then back to the free port.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let mut blocked = now["doc"].clone();
    blocked["modbus"]["bind"] = format!("127.0.0.1:{busy_port}").into();
    let modbus_error = || {
        let (_, st) = c.json("GET", "/api/v1/system/integrations", None);
        st["modbus_error"].as_str().map(str::to_owned)
    };
    let (status, body) = c.json("PUT", SETTINGS, Some(&serde_json::json!({"doc": blocked})));
    assert_eq!(status, 200, "{body}");
    let why = wait_until(Duration::from_secs(30), modbus_error)
        .unwrap_or_else(|| panic!("no Modbus error reported; log:\n{}", daemon.log_text()));
    assert!(why.contains(&busy_port.to_string()), "{why}");
    assert_eq!(daemon.pid(), pid, "the daemon restarted");
    let (status, body) = c.json(
        "PUT",
        SETTINGS,
        Some(&serde_json::json!({"doc": now["doc"]})),
    );
    assert_eq!(status, 200, "{body}");
    let cleared = wait_until(Duration::from_secs(30), || {
        modbus_error()
            .is_none()
            .then(|| plc(&rt, mb_port, "127.0.0.1").ok())
            .flatten()
    });
    assert!(cleared.is_some(), "the Modbus server did not come back");
    drop(busy);

    // 4. The password is never read back, audited or logged.
    let (_, audit) = c.json("GET", "/api/v1/audit?limit=100", None);
    for text in [
        now.to_string(),
        saved.to_string(),
        audit.to_string(),
        daemon.log_text(),
    ] {
        assert!(
            !text.contains(MQTT_PASSWORD),
            "the password was shown: {text}"
        );
    }
    assert!(audit.to_string().contains("integrations.put"), "{audit}");

    // 5. A restart: the stored settings run again.
    daemon.stop_cleanly(Duration::from_secs(20));
    let (daemon, _notify) = Daemon::start_ready(&config);
    let mut c = Client {
        base: format!("https://127.0.0.1:{api_port}"),
        token: None,
    };
    c.login("safety", PASSWORD);
    let (status, after) = c.json("GET", SETTINGS, None);
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["doc"]["mqtt"]["topic_prefix"], "plant/live/",
        "{after}"
    );
    assert_eq!(after["secrets"]["mqtt_password_set"], true, "{after}");
    let again = wait_until(Duration::from_secs(30), || {
        plc(&rt, mb_port, "127.0.0.1").ok()
    });
    assert!(
        again.is_some(),
        "the stored Modbus settings did not start; log:\n{}",
        daemon.log_text()
    );
    drop(broker);
}
