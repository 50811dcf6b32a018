//! The API's JSON request bodies, through the extractor's parser
//! (`api::body::parse_json`) and the checks each document's handler makes before it
//! touches any state (`api::fuzzing::parse_body`). The first byte picks the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safe_yolo_api::fuzzing::{Body, parse_body};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, json)) = data.split_first() else {
        return;
    };
    let body = Body::ALL[usize::from(pick) % Body::ALL.len()];
    if let Err(e) = parse_body(body, json) {
        assert!(e.status.is_client_error(), "{body:?}: {} {e:?}", e.status);
        assert!(
            !e.message.is_empty() || !e.problems.is_empty(),
            "{body:?}: {e:?}"
        );
        if e.status.as_u16() == 422 {
            assert!(
                e.field.is_some() || !e.problems.is_empty(),
                "{body:?}: a refused value names its field: {e:?}"
            );
        }
    }
});
