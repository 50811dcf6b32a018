//! The repository's board profiles and a real `rauc status` sample.

use std::path::{Path, PathBuf};

use safe_yolo_board::profile::{self, AccelBackend, LineRole};
use safe_yolo_board::update::{self, SlotSource};

fn board_dir() -> PathBuf {
    safe_yolo_fixtures::manifest_dir!().join("../../board")
}

#[test]
fn every_shipped_profile_is_valid_and_named_after_its_file() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(board_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let p = profile::load_named(&board_dir(), &name).unwrap_or_else(|e| panic!("{e}"));
        for role in [LineRole::Siren, LineRole::Healthy] {
            assert!(p.line(role).is_some(), "{name} lacks {role}");
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["jetson-orin", "qemu-vm", "rk3588", "x86-64"]);
}

#[test]
fn factory_configs_are_valid_and_name_their_board() {
    // Generated from the profiles by tests/image/gen-default-configs.py; the
    // image installs the one of its board as /etc/safe-yolo/safe-yolo.toml.
    let dir = safe_yolo_fixtures::manifest_dir!()
        .join("../../yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo-data/files/config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = safe_yolo_config::parse(
            &text,
            Path::new("/etc/safe-yolo"),
            std::iter::empty::<(String, String)>(),
        )
        .unwrap_or_else(|problems| panic!("{}: {problems:?}", path.display()));
        assert_eq!(config.system.board.as_deref(), Some(name.as_str()));
        let profile = profile::load_named(&board_dir(), &name).unwrap();
        assert_eq!(
            config.outputs.lines.len(),
            profile.lines.iter().filter(|l| !l.role.is_input()).count()
        );
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn accelerators_match_the_boards() {
    let load = |n: &str| profile::load_named(&board_dir(), n).unwrap();
    let rk = load("rk3588");
    assert_eq!(rk.accelerator.backend, AccelBackend::Rknn);
    assert_eq!(rk.accelerator.runtime_libraries, ["librknnrt.so"]);
    let orin = load("jetson-orin");
    assert_eq!(orin.accelerator.backend, AccelBackend::OnnxruntimeCuda);
    assert!(
        orin.accelerator
            .runtime_libraries
            .iter()
            .any(|l| l.contains("cuda"))
    );
    let vm = load("qemu-vm");
    assert_eq!(vm.accelerator.backend, AccelBackend::Tract);
    assert!(vm.accelerator.runtime_libraries.is_empty());
    assert!(vm.thermal.is_empty());
    assert_eq!(
        vm.cameras[0].path,
        Path::new("/dev/v4l/by-path/platform-vivid.0-video-index0")
    );
}

#[test]
fn rauc_status_sample_from_the_ci_test() {
    // Written by tests/image/rauc-test.sh with Debian's RAUC 1.8 after an
    // update to slot B was booted and marked good. Regenerate with
    // SAFEYOLO_RAUC_STATUS_SAMPLE=$PWD/appliance/board/tests/data/rauc-status-updated.json \
    //     tests/image/rauc-test.sh
    let text = std::fs::read_to_string(
        safe_yolo_fixtures::manifest_dir!().join("tests/data/rauc-status-updated.json"),
    )
    .unwrap();
    let status = update::parse_rauc_status(&text).unwrap();
    assert_eq!(status.compatible, "safe-yolo-ci");
    assert_eq!(status.booted.as_deref(), Some("B"));
    let booted = status.booted_slot().unwrap();
    assert_eq!(booted.name, "rootfs.1");
    assert_eq!(booted.bundle_version.as_deref(), Some("1.0.0"));
    assert!(
        booted
            .installed_timestamp
            .as_deref()
            .is_some_and(|t| t.ends_with('Z')),
        "{booted:?}"
    );
    let other = status.slots.iter().find(|s| s.name == "rootfs.0").unwrap();
    assert_eq!(
        (other.state.as_str(), other.bundle_version.as_deref()),
        ("inactive", None)
    );

    let state = update::combine(
        Some("root=/dev/mmcblk0p3 rauc.slot=B"),
        Some("VERSION_ID=0.9\n"),
        Ok(Some(status)),
    );
    assert_eq!(state.slot_source, SlotSource::Rauc);
    assert_eq!(state.booted_slot.as_deref(), Some("B"));
    assert_eq!(state.version.as_deref(), Some("1.0.0"));
    assert_eq!(state.boot_good, Some(true));
    assert!(!state.primary_differs);
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["slot_source"], "rauc");
    assert_eq!(json["slots"].as_array().unwrap().len(), 2);
}

#[test]
fn rauc_status_after_a_failed_update() {
    // Shape of RAUC 1.8 output after a rollback: A burnt its attempts.
    let text = r#"{"compatible":"safe-yolo-rk3588","variant":"","booted":"B","boot_primary":"rootfs.1",
      "slots":[{"rootfs.0":{"class":"rootfs","bootname":"A","state":"inactive","boot_status":"bad",
                 "slot_status":{"bundle":{"compatible":"safe-yolo-rk3588","version":"2.0.0"}}}},
               {"rootfs.1":{"class":"rootfs","bootname":"B","state":"booted","boot_status":"good",
                 "slot_status":{"bundle":{"compatible":"safe-yolo-rk3588","version":"1.0.0"}}}}]}"#;
    let state = update::combine(None, None, update::parse_rauc_status(text).map(Some));
    assert_eq!(state.version.as_deref(), Some("1.0.0"));
    assert_eq!(state.boot_good, Some(true));
    let a = state
        .slots
        .iter()
        .find(|s| s.bootname.as_deref() == Some("A"))
        .unwrap();
    assert_eq!(
        (a.boot_status.as_deref(), a.bundle_version.as_deref()),
        (Some("bad"), Some("2.0.0"))
    );
}
