//! The command line a technician uses: `check-config`, `version`, `--help`.

use std::process::Command;

use crate::harness::{Appliance, bin, repo_root};

#[test]
fn check_config_reports_every_problem_and_exits_1() {
    let app = Appliance::new();
    let config = app.write_config(
        2,
        r#"
[[cameras]]
id = "cam-0"
source = { kind = "replay", path = "people" }
detect_every = 0
fov = 90

[[zones]]
id = "bowtie"
camera = "cam-1"
polygon = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
"#,
    );
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // cameras[2] has two mistakes in one table: serde stops at the unknown key,
    // so the range error of that same table is reported once the key is fixed.
    for expected in [
        "cameras[2].fov: unknown field `fov`",
        "zones[0].polygon: edges 0 and 2 cross each other",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let fixed = std::fs::read_to_string(&config)
        .unwrap()
        .replace("fov = 90\n", "");
    std::fs::write(&config, fixed).unwrap();
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "cameras[2].detect_every: must be between 1 and 100, got 0",
        "cameras[2].id: duplicate camera id \"cam-0\" (first used at cameras[0])",
        "zones[0].polygon: edges 0 and 2 cross each other",
        "3 problem(s)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn shipped_configs_check_ok() {
    for name in ["demo.toml", "example-box.toml"] {
        let out = Command::new(bin())
            .arg("check-config")
            .arg(repo_root().join("config").join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": OK ("));
    }
}

#[test]
fn unreadable_config_exits_2_and_run_refuses_bad_config() {
    let out = Command::new(bin())
        .args(["check-config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let app = Appliance::new();
    let config = app.write_config(1, "\n[[rules]]\nid = \"r\"\nkind = \"teleport\"\n");
    let out = Command::new(bin())
        .args(["--log-format", "text", "run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rules[0].kind"), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn version_and_help() {
    let out = Command::new(bin()).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("safe-yolo "));
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "check-config", "version"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[test]
fn modbus_map_prints_the_register_map_of_the_file() {
    let app = Appliance::new();
    let config = app.write_config(
        0,
        r#"
[[cameras]]
id = "dock"
source = { kind = "replay", path = "people" }

[[zones]]
id = "lane"
camera = "dock"
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]

[[rules]]
id = "lane-intrusion"
kind = "intrusion"
zone = "lane"
"#,
    );
    // Without [integrations.modbus]: says so and exits 1.
    let out = Command::new(bin())
        .arg("modbus-map")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [integrations.modbus]"));
    let mut text = std::fs::read_to_string(&config).unwrap().replace(
        "zone = \"lane\"\n",
        "zone = \"lane\"\narmed_by = \"press\"\n",
    );
    text.push_str(
        "\n[integrations.modbus]\nbind = \"0.0.0.0:1502\"\nallow = [\"10.0.5.0/24\"]\n\n[[integrations.interlocks]]\nid = \"press\"\nsource = \"modbus\"\ncoil = 7\n",
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(bin())
        .arg("modbus-map")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| coil | 0 | write 1: acknowledge every open alarm |",
        "| coil | 7 | interlock `press`: 1 armed, 0 disarmed |",
        "| discrete input | 100 | rule `lane-intrusion` has an alarm raised |",
        "| discrete input | 2100 | camera `dock` delivers frames |",
        "| input register | 100 | persons in zone `lane` |",
    ] {
        assert!(stdout.contains(row), "missing {row:?} in:\n{stdout}");
    }
}
