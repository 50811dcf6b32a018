//! The MJPEG stream scanner (`capture::mjpeg::index`, a replay file's frames), the
//! start-of-frame reader (`mjpeg::dimensions`) and the JPEG decode path every
//! MJPEG frame takes (`capture::convert::decode_jpeg`, with the Huffman-table patch
//! for UVC frames), and the pipeline's reduced decode (`capture::Picture`: its size
//! from the header, libjpeg-turbo's DCT-scaled decode at half and eighth size), on the
//! whole input (one V4L2 MJPEG payload) and on each frame the scanner found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safe_yolo_capture::convert::{MAX_JPEG_SIDE, decode_jpeg};
use safe_yolo_capture::mjpeg::{dimensions, index};
use safe_yolo_capture::{Payload, Picture};

fn decode(jpeg: &[u8]) {
    if let Ok(frame) = decode_jpeg(jpeg) {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        assert!(w > 0 && h > 0 && w <= MAX_JPEG_SIDE && h <= MAX_JPEG_SIDE);
    }
    if let Ok(picture) = Picture::new(Payload::Jpeg(jpeg.into())) {
        for div in [2, 8] {
            let (w, h) = (picture.width() / div, picture.height() / div);
            if let Ok(frame) = picture.decode_at_least(w, h) {
                let (w, h) = (frame.width() as usize, frame.height() as usize);
                assert!(w > 0 && h > 0 && w <= MAX_JPEG_SIDE && h <= MAX_JPEG_SIDE);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = dimensions(data);
    decode(data);
    let Ok(idx) = index(data) else { return };
    let mut covered = idx.skipped_bytes + idx.truncated_tail;
    for span in &idx.frames {
        let start = usize::try_from(span.offset).unwrap();
        let frame = &data[start..start + span.len as usize];
        assert!(frame.starts_with(&[0xFF, 0xD8]) && frame.ends_with(&[0xFF, 0xD9]));
        covered += u64::from(span.len);
        let _ = dimensions(frame);
        decode(frame);
    }
    assert_eq!(
        covered,
        data.len() as u64,
        "every byte is in a frame, skipped or the tail"
    );
});
