//! The words of the safety domain that configuration files, the API, the
//! database and the logs spell the same way: each closed set (severity, weekday,
//! anchor, crossing direction, output role, safe state, ...) is one Rust enum,
//! declared in the crate that owns it, with one table of names.
//!
//! [`Named`] is that table; [`named_vocabulary!`](crate::named_vocabulary)
//! derives the serde and JSON-schema forms from it, so a name is written once and
//! the file parser, the API documents, their OpenAPI schema and the database all
//! accept and print exactly the same words.

use std::borrow::Cow;

/// A closed set of values, each with the name files and the API use.
pub trait Named: Copy + PartialEq + Sized + 'static {
    /// What a value of this set is called in messages (`severity`, `weekday`).
    const WHAT: &'static str;
    /// Every value with its name, canonical names first; a later entry for the
    /// same value is an accepted alias (`center` for `centre`).
    const NAMED: &'static [(&'static str, Self)];

    /// The canonical name.
    fn as_str(self) -> &'static str {
        Self::NAMED
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }

    /// The value of a name (canonical or alias).
    fn from_name(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The canonical names, in order.
    fn names() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for (n, v) in Self::NAMED {
            if Self::NAMED.iter().find(|(_, w)| w == v).map(|(m, _)| m) == Some(n) {
                out.push(n);
            }
        }
        out
    }

    /// Why `name` is not one of these, naming the accepted ones.
    fn unknown(name: &str) -> String {
        format!("{name:?} is not one of: {}", Self::names().join(", "))
    }
}

/// The JSON schema of a [`Named`] set: a string, one of the canonical names.
pub fn json_schema<T: Named>() -> schemars::Schema {
    let names = T::names();
    schemars::json_schema!({ "type": "string", "enum": names })
}

/// The schema's name: the Rust type's own.
pub fn schema_name(rust_name: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(rust_name)
}

/// Implements `Display`, `Serialize`, `Deserialize` and `JsonSchema` of a
/// [`Named`] enum from its table, so every form of it spells the same names.
#[macro_export]
macro_rules! named_vocabulary {
    ($t:ident) => {
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::Named::as_str(*self))
            }
        }
        impl $crate::__serde::Serialize for $t {
            fn serialize<S: $crate::__serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str($crate::Named::as_str(*self))
            }
        }
        impl<'de> $crate::__serde::Deserialize<'de> for $t {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let s =
                    <::std::borrow::Cow<'de, str> as $crate::__serde::Deserialize>::deserialize(d)?;
                <$t as $crate::Named>::from_name(&s).ok_or_else(|| {
                    <D::Error as $crate::__serde::de::Error>::custom(
                        <$t as $crate::Named>::unknown(&s),
                    )
                })
            }
        }
        impl $crate::__schemars::JsonSchema for $t {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                $crate::vocabulary::schema_name(stringify!($t))
            }
            fn json_schema(
                _: &mut $crate::__schemars::SchemaGenerator,
            ) -> $crate::__schemars::Schema {
                $crate::vocabulary::json_schema::<$t>()
            }
        }
    };
}

/// How serious an alarm (and the event it leaves) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Recorded only, e.g. a counting-line crossing.
    Info,
    /// Needs attention.
    Warning,
    /// Danger to a person: sirens and relays.
    Critical,
}

impl Named for Severity {
    const WHAT: &'static str = "severity";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("info", Self::Info),
        ("warning", Self::Warning),
        ("critical", Self::Critical),
    ];
}
named_vocabulary!(Severity);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Weekday;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Shade {
        Light,
        Dark,
    }
    impl Named for Shade {
        const WHAT: &'static str = "shade";
        const NAMED: &'static [(&'static str, Self)] = &[
            ("light", Self::Light),
            ("dark", Self::Dark),
            ("dim", Self::Dark),
        ];
    }
    named_vocabulary!(Shade);

    #[test]
    fn names_aliases_and_errors() {
        assert_eq!(Shade::Dark.as_str(), "dark");
        assert_eq!(Shade::from_name("dim"), Some(Shade::Dark));
        assert_eq!(Shade::names(), ["light", "dark"]);
        assert_eq!(
            Shade::unknown("grey"),
            r#""grey" is not one of: light, dark"#
        );
        assert_eq!(Shade::Light.to_string(), "light");
    }

    #[test]
    fn serde_and_schema_follow_the_table() {
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            r#""critical""#
        );
        let s: Severity = serde_json::from_str(r#""info""#).unwrap();
        assert_eq!(s, Severity::Info);
        let e = serde_json::from_str::<Severity>(r#""fatal""#).unwrap_err();
        assert!(
            e.to_string()
                .contains("not one of: info, warning, critical"),
            "{e}"
        );
        let d: Shade = serde_json::from_str(r#""dim""#).unwrap();
        assert_eq!(
            (d, serde_json::to_string(&d).unwrap().as_str()),
            (Shade::Dark, r#""dark""#)
        );
        let schema = serde_json::to_value(schemars::schema_for!(Weekday)).unwrap();
        assert_eq!(schema["enum"][6], "sun", "{schema}");
        assert_eq!(schema["type"], "string");
    }

    #[test]
    fn severity_orders_by_danger() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
    }
}
