//! Identifier newtypes: short, lowercase slugs that are safe in URLs, file
//! names, metric labels and log fields.

use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier is empty.
    #[error("must not be empty")]
    Empty,
    /// The identifier is longer than [`MAX_ID_LEN`] bytes.
    #[error("is {len} characters long; at most {MAX_ID_LEN} are allowed")]
    TooLong {
        /// Length of the rejected identifier.
        len: usize,
    },
    /// The identifier has a character outside `[a-z0-9_-]`.
    #[error("has the character {ch:?}; only a-z, 0-9, '-' and '_' are allowed")]
    BadChar {
        /// The first offending character.
        ch: char,
    },
    /// The identifier does not start with a letter or a digit.
    #[error("must start with a letter or a digit")]
    BadStart,
}

/// Longest identifier accepted.
pub const MAX_ID_LEN: usize = 64;

fn check_slug(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(IdError::BadChar { ch });
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(IdError::BadStart);
    }
    Ok(())
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as an identifier.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_slug(&s)?;
                Ok(Self(s))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                slug_schema()
            }
        }
    };
}

/// The JSON schema of every identifier: what [`check_slug`] accepts.
fn slug_schema() -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": "^[a-z0-9][a-z0-9_-]*$",
    })
}

slug_id!(
    /// A camera's identifier, e.g. `walkway-north`.
    CameraId
);
slug_id!(
    /// A zone's (or a counting line's) identifier, unique across the appliance.
    ZoneId
);
slug_id!(
    /// A safety rule's identifier.
    RuleId
);
slug_id!(
    /// A physical output's identifier (siren, relay, healthy lamp).
    OutputId
);
slug_id!(
    /// An interlock's identifier: a machine state that arms rules, e.g. `press-7-running`.
    InterlockId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs() {
        for ok in ["a", "cam-1", "walkway_north", "0", &"x".repeat(MAX_ID_LEN)] {
            assert!(CameraId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_ids_with_reason() {
        assert_eq!(CameraId::new(""), Err(IdError::Empty));
        assert_eq!(CameraId::new("Cam"), Err(IdError::BadChar { ch: 'C' }));
        assert_eq!(CameraId::new("a/b"), Err(IdError::BadChar { ch: '/' }));
        assert_eq!(CameraId::new("-a"), Err(IdError::BadStart));
        assert_eq!(
            CameraId::new("x".repeat(65)),
            Err(IdError::TooLong { len: 65 })
        );
    }

    #[test]
    fn serde_validates() {
        let e = serde_json::from_str::<ZoneId>("\"../etc\"").unwrap_err();
        assert!(e.to_string().contains("only a-z"), "{e}");
        let z: ZoneId = serde_json::from_str("\"dock\"").unwrap();
        assert_eq!(z.as_str(), "dock");
    }
}
