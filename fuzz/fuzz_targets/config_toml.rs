//! The configuration file (`config::parse`: TOML, environment overrides, every
//! section's validation). The input is the file's text, optionally followed by a
//! NUL byte and `KEY=VALUE` lines: the environment (`SAFEYOLO_<SECTION>__<KEY>`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(text), Ok(env)) = (std::str::from_utf8(text), std::str::from_utf8(env)) else {
        return;
    };
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    match safe_yolo_config::parse(text, Path::new("/etc/safe-yolo"), env) {
        Ok(_) => {}
        Err(problems) => {
            assert!(!problems.is_empty(), "a refused file names a problem");
            for p in &problems {
                assert!(!p.path.is_empty(), "a problem names its key: {p:?}");
                assert!(!p.reason.is_empty(), "a problem says why: {p:?}");
            }
        }
    }
});
