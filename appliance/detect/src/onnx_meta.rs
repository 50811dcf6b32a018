//! Reads the `metadata_props` of an ONNX model (a protobuf `ModelProto`) without a
//! protobuf dependency, and parses the Ultralytics `names` entry
//! (`{0: 'person', 1: 'bicycle'}`) into a class list.

use std::collections::BTreeMap;

/// Why ONNX metadata could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OnnxMetaError {
    /// The bytes are not a well-formed protobuf message.
    #[error("ONNX model is not a valid protobuf message at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The `names` metadata entry is not a `{index: 'name', ...}` mapping with indices 0..n.
    #[error("ONNX metadata `names` is not a {{index: 'name'}} map with indices 0..n: {reason}")]
    BadNames {
        /// What was wrong.
        reason: String,
    },
}

/// `ModelProto.metadata_props` field number.
const METADATA_PROPS: u64 = 14;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> OnnxMetaError {
        OnnxMetaError::Malformed {
            offset: self.pos,
            reason,
        }
    }

    fn varint(&mut self) -> Result<u64, OnnxMetaError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], OnnxMetaError> {
        let n = usize::try_from(n).map_err(|_| self.err("length overflows"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err("length past end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Next field: (field number, payload when length-delimited).
    fn field(&mut self) -> Result<(u64, Option<&'a [u8]>), OnnxMetaError> {
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                self.varint()?;
                Ok((number, None))
            }
            1 => self.bytes(8).map(|_| (number, None)),
            2 => {
                let n = self.varint()?;
                self.bytes(n).map(|b| (number, Some(b)))
            }
            5 => self.bytes(4).map(|_| (number, None)),
            _ => Err(self.err("unsupported wire type")),
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// The key/value metadata of an ONNX model file's bytes.
pub fn metadata_props(model: &[u8]) -> Result<BTreeMap<String, String>, OnnxMetaError> {
    let mut out = BTreeMap::new();
    let mut r = Reader { buf: model, pos: 0 };
    while !r.done() {
        let (number, payload) = r.field()?;
        if let (METADATA_PROPS, Some(entry)) = (number, payload) {
            let mut e = Reader { buf: entry, pos: 0 };
            let (mut key, mut value) = (String::new(), String::new());
            while !e.done() {
                match e.field()? {
                    (1, Some(b)) => key = String::from_utf8_lossy(b).into_owned(),
                    (2, Some(b)) => value = String::from_utf8_lossy(b).into_owned(),
                    _ => {}
                }
            }
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// Parses a Python-dict-style class map `{0: 'a', 1: "b"}` into names by index.
pub fn parse_names(text: &str) -> Result<Vec<String>, OnnxMetaError> {
    let bad = |reason: &str| OnnxMetaError::BadNames {
        reason: reason.to_owned(),
    };
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("not enclosed in braces"))?;
    let mut names = BTreeMap::new();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let (idx, after) = rest
            .split_once(':')
            .ok_or_else(|| bad("entry without ':'"))?;
        let idx: usize = idx
            .trim()
            .parse()
            .map_err(|_| bad("index is not an integer"))?;
        let after = after.trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| bad("name is not quoted"))?;
        let inner = &after[1..];
        let end = inner.find(quote).ok_or_else(|| bad("unterminated name"))?;
        if names.insert(idx, inner[..end].to_owned()).is_some() {
            return Err(bad("duplicate index"));
        }
        rest = inner[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if names.is_empty() {
        return Err(bad("no entries"));
    }
    let n = names.len();
    if names.keys().copied().ne(0..n) {
        return Err(bad("indices are not 0..n"));
    }
    Ok(names.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![
            u8::try_from(field << 3 | 2).unwrap(),
            u8::try_from(payload.len()).unwrap(),
        ];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn reads_metadata_props_and_skips_other_fields() {
        let mut entry = ld(1, b"names");
        entry.extend(ld(2, b"{0: 'With Helmet', 1: \"Without Helmet\"}"));
        let mut model = vec![0x08, 0x07]; // ir_version = 7 (varint)
        model.extend(ld(7, b"graph bytes"));
        model.extend(ld(METADATA_PROPS, &entry));
        let meta = metadata_props(&model).unwrap();
        let names = parse_names(&meta["names"]).unwrap();
        assert_eq!(names, ["With Helmet", "Without Helmet"]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(metadata_props(&[0x0a, 0x05, 1]).is_err());
        assert!(metadata_props(&[0x0f]).is_err());
        assert!(parse_names("{1: 'a'}").is_err());
        assert!(parse_names("{0: 'a', 0: 'b'}").is_err());
        assert!(parse_names("[0]").is_err());
        assert_eq!(parse_names("{0: 'a', 1: 'b',}").unwrap(), ["a", "b"]);
    }
}
