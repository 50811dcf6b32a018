//! Commands on the live WebSocket (`api::handlers::live::Command::parse`, through
//! `api::fuzzing::live_command`): what a viewer applies, or the message sent back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safe_yolo_api::fuzzing::{LiveCommand, live_command};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match live_command(text) {
        Ok(LiveCommand::SetQuality { quality }) => assert!((10..=95).contains(&quality)),
        Ok(LiveCommand::SetFps { fps }) => assert!((1..=30).contains(&fps)),
        Ok(LiveCommand::Subscribe { .. } | LiveCommand::Unsubscribe) => {}
        Err(message) => assert!(!message.is_empty()),
    }
});
