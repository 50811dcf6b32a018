//! The ONNX metadata reader (`detect::onnx_meta`): a model file's bytes as the
//! detector reads them at load (its `metadata_props`, then the `names` class map),
//! and the class-map grammar on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safe_yolo_detect::onnx_meta::{metadata_props, parse_names};

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = metadata_props(data)
        && let Some(names) = meta.get("names")
        && let Ok(list) = parse_names(names)
    {
        assert!(!list.is_empty(), "an accepted class map has a class");
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(list) = parse_names(text)
    {
        assert!(!list.is_empty(), "an accepted class map has a class");
    }
});
