//! Helpers for the `safe-yolo detect IMAGE...` command: load a JPEG or PNG file into
//! an [`RgbFrame`] and format detections as a table or JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use safe_yolo_domain::{Detection, RgbFrame};
use serde::Serialize;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read.
    #[error("cannot read image {path}")]
    Read {
        /// The image path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JPEG or PNG image.
    #[error("{path} is neither a JPEG nor a PNG image")]
    UnknownFormat {
        /// The image path.
        path: PathBuf,
    },
    /// The decoder rejected the file.
    #[error("cannot decode image {path}: {reason}")]
    Decode {
        /// The image path.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// JSON serialisation failed.
    #[error("cannot serialise detections to JSON")]
    Json(#[source] serde_json::Error),
}

/// Loads a JPEG or PNG file (any bit depth, grey or colour, alpha dropped) as RGB.
pub fn load_image(path: &Path) -> Result<RgbFrame, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes).map_err(|e| match e {
        None => ReportError::UnknownFormat {
            path: path.to_path_buf(),
        },
        Some(reason) => ReportError::Decode {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// Decodes JPEG or PNG bytes; `Err(None)` when the format is neither.
fn decode_image(bytes: &[u8]) -> Result<RgbFrame, Option<String>> {
    let (w, h, cs, pixels) = if bytes.starts_with(&[0xff, 0xd8]) {
        let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
        let pixels = d.decode().map_err(|e| Some(format!("{e:?}")))?;
        let info = d.info().ok_or_else(|| Some("no image header".to_owned()))?;
        let cs = d.output_colorspace().unwrap_or(ColorSpace::RGB);
        (
            usize::from(info.width),
            usize::from(info.height),
            cs,
            pixels,
        )
    } else if bytes.starts_with(b"\x89PNG") {
        let opts = DecoderOptions::default().png_set_strip_to_8bit(true);
        let mut d = zune_png::PngDecoder::new_with_options(ZCursor::new(bytes), opts);
        let result = d.decode().map_err(|e| Some(format!("{e:?}")))?;
        let (w, h) = d
            .dimensions()
            .ok_or_else(|| Some("no image header".to_owned()))?;
        let cs = d
            .colorspace()
            .ok_or_else(|| Some("unknown colour space".to_owned()))?;
        let pixels = result
            .u8()
            .ok_or_else(|| Some("not 8-bit after stripping".to_owned()))?;
        (w, h, cs, pixels)
    } else {
        return Err(None);
    };
    let n = cs.num_components();
    let rgb: Vec<u8> = match n {
        3 => pixels,
        1 => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
        2 => pixels
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        4 => pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        _ => return Err(Some(format!("unsupported colour space {cs:?}"))),
    };
    let (w, h) = (
        u32::try_from(w).map_err(|_| Some("too wide".to_owned()))?,
        u32::try_from(h).map_err(|_| Some("too tall".to_owned()))?,
    );
    RgbFrame::new(w, h, rgb).ok_or_else(|| Some(format!("pixel data does not fill {w}x{h}")))
}

/// One detection as serialised to JSON.
#[derive(Debug, Serialize)]
struct JsonDetection<'a> {
    class_id: u32,
    class_name: &'a str,
    score: f32,
    bbox: [f32; 4],
}

/// Detections of one image as a JSON object `{"image": ..., "detections": [...]}`.
pub fn to_json(image: &str, detections: &[Detection]) -> Result<String, ReportError> {
    #[derive(Serialize)]
    struct Doc<'a> {
        image: &'a str,
        detections: Vec<JsonDetection<'a>>,
    }
    let doc = Doc {
        image,
        detections: detections
            .iter()
            .map(|d| JsonDetection {
                class_id: d.class_id,
                class_name: &d.class_name,
                score: d.score,
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
            })
            .collect(),
    };
    serde_json::to_string(&doc).map_err(ReportError::Json)
}

/// Detections of one image as a human-readable table.
pub fn to_table(image: &str, detections: &[Detection]) -> String {
    let mut s = format!("{image}: {} detection(s)\n", detections.len());
    if detections.is_empty() {
        return s;
    }
    let width = detections
        .iter()
        .map(|d| d.class_name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        s,
        "  {:<width$}  score   x1      y1      x2      y2",
        "class"
    );
    for d in detections {
        let b = d.bbox;
        let _ = writeln!(
            s,
            "  {:<width$}  {:.3}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}",
            d.class_name, d.score, b.x1, b.y1, b.x2, b.y2
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_yolo_domain::BBox;
    use std::sync::Arc;

    fn det() -> Detection {
        Detection {
            class_id: 0,
            class_name: Arc::from("person"),
            score: 0.5,
            bbox: BBox {
                x1: 1.0,
                y1: 2.0,
                x2: 3.0,
                y2: 4.0,
            },
        }
    }

    #[test]
    fn formats_json_and_table() {
        let j: serde_json::Value =
            serde_json::from_str(&to_json("a.jpg", &[det()]).unwrap()).unwrap();
        assert_eq!(j["detections"][0]["class_name"], "person");
        assert_eq!(j["detections"][0]["bbox"][3], 4.0);
        let t = to_table("a.jpg", &[det()]);
        assert!(
            t.contains("a.jpg: 1 detection(s)") && t.contains("person  0.500"),
            "{t}"
        );
    }

    #[test]
    fn rejects_unknown_and_corrupt_images() {
        assert!(matches!(decode_image(b"GIF89a"), Err(None)));
        assert!(matches!(
            decode_image(b"\xff\xd8\xff\x00garbage"),
            Err(Some(_))
        ));
        assert!(matches!(decode_image(b"\x89PNG\r\n\x1a\nxx"), Err(Some(_))));
    }
}
