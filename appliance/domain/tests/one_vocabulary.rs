//! Workspace lints of the architecture's invariants. "One vocabulary": each word of the safety domain
//! is one enum in the whole workspace, with one table of names (`Named`). A second
//! `enum Severity` (or an `AnchorDoc` beside `Anchor`) fails here with the places.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::{Path, PathBuf};

/// Concept, and the words an enum's name may contain to count as a copy of it.
const CONCEPTS: &[(&str, &[&str])] = &[
    ("severity", &["Severity"]),
    ("anchor", &["Anchor"]),
    ("crossing direction", &["Direction"]),
    ("siren pattern", &["Pattern"]),
    ("output role", &["OutputRole"]),
    ("safe state", &["SafeState"]),
    ("weekday", &["Weekday", "DayDoc"]),
    ("alarm detail", &["AlarmDetail"]),
    ("camera health", &["CameraHealth"]),
    ("tamper reason", &["TamperReason"]),
    ("crossing", &["Crossing"]),
    ("rule kind", &["RuleKind"]),
    ("input role", &["InputRole"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn each_domain_word_is_declared_once() {
    let appliance = safe_yolo_fixtures::manifest_dir!().join("..");
    let mut files = Vec::new();
    rust_files(&appliance, &mut files);
    let mut problems = Vec::new();
    for (concept, words) in CONCEPTS {
        let mut places = Vec::new();
        for f in &files {
            // This file names the words it looks for.
            if f.ends_with("one_vocabulary.rs") {
                continue;
            }
            let text = std::fs::read_to_string(f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let Some(rest) = line.trim_start().split("enum ").nth(1) else {
                    continue;
                };
                if !line.trim_start().starts_with("pub") && !line.trim_start().starts_with("enum") {
                    continue;
                }
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // The outputs' InputRole and the board's LineRole are other concepts.
                if words.iter().any(|w| name.contains(w)) {
                    places.push(format!("{}:{} enum {name}", f.display(), i + 1));
                }
            }
        }
        if places.len() != 1 {
            problems.push(format!(
                "{concept}: {} declarations {places:?}",
                places.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The architecture's "only the daemon picks backends" invariant: the functions
/// that choose a real backend (a camera source, a detector backend, the GPIO or
/// simulated outputs) are called only by the daemon (its wiring and commands),
/// never by another library crate, which takes a factory or a handle instead.
#[test]
fn only_the_daemon_picks_backends() {
    let appliance = safe_yolo_fixtures::manifest_dir!().join("..");
    // (call, the crate that defines it)
    let pickers = [
        ("safe_yolo_capture::open(", "capture"),
        ("capture::open(", "capture"),
        ("outputs::open_backend(", "outputs"),
        ("safe_yolo_detect::load(", "detect"),
    ];
    let mut files = Vec::new();
    rust_files(&appliance, &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&appliance).unwrap_or(f);
        let krate = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        // Tests and benchmarks pick what they test; the daemon picks for the box.
        let under = |dir: &str| rel.components().any(|c| c.as_os_str() == dir);
        if krate == "daemon"
            || under("tests")
            || under("benches")
            || f.ends_with("one_vocabulary.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (call, owner) in pickers {
            if krate == owner {
                continue;
            }
            for (i, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if l.contains(call) && !l.starts_with("//") {
                    problems.push(format!("{}:{}: {}", rel.display(), i + 1, l));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "backends picked outside the daemon: {problems:#?}"
    );
}
