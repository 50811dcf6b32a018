//! The checking toolkit of every section: problems at key paths, ranges, ids,
//! vocabularies and paths. Each section's module (`cameras`, `rules`, ...) checks
//! its raw form with it into its validated form.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use safe_yolo_domain::{IdError, Named};

use crate::Problem;

/// Where problems are collected, and the directory relative paths are resolved against.
pub(crate) struct Ctx<'a> {
    pub(crate) problems: &'a mut Vec<Problem>,
    pub(crate) base: &'a Path,
}

impl Ctx<'_> {
    /// Runs `f` on a context of its own (for one document's checks, away from any
    /// file) and returns the problems it found.
    pub(crate) fn standalone(f: impl FnOnce(&mut Ctx<'_>)) -> Vec<Problem> {
        let mut problems = Vec::new();
        f(&mut Ctx {
            problems: &mut problems,
            base: Path::new("/"),
        });
        problems
    }

    /// A human name: absent (`Some(None)`), or 1-64 characters.
    pub(crate) fn name(&mut self, path: &str, v: Option<&str>) -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(n) if !n.trim().is_empty() && n.chars().count() <= 64 => Some(Some(n.to_owned())),
            Some(_) => {
                self.bad(path, "must be 1-64 characters");
                None
            }
        }
    }

    pub(crate) fn bad(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn id<T>(
        &mut self,
        path: &str,
        value: &str,
        f: fn(String) -> Result<T, IdError>,
    ) -> Option<T> {
        match f(value.to_owned()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.bad(path, format!("{value:?} {e}"));
                None
            }
        }
    }

    pub(crate) fn int_in<T: TryFrom<i64>>(
        &mut self,
        path: &str,
        v: Option<i64>,
        default: i64,
        lo: i64,
        hi: i64,
    ) -> Option<T> {
        let v = v.unwrap_or(default);
        if !(lo..=hi).contains(&v) {
            self.bad(path, format!("must be between {lo} and {hi}, got {v}"));
            return None;
        }
        T::try_from(v).ok()
    }

    pub(crate) fn secs_in(
        &mut self,
        path: &str,
        v: Option<f64>,
        default: f64,
        lo: f64,
        hi: f64,
    ) -> Option<Duration> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v < lo || v > hi {
            self.bad(
                path,
                format!("must be between {lo} and {hi} seconds, got {v}"),
            );
            return None;
        }
        Some(Duration::from_secs_f64(v))
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        normalize(&if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        })
    }

    /// One word of a vocabulary ([`Named`]); `default` when absent.
    pub(crate) fn named<T: Named>(&mut self, path: &str, v: Option<&str>, default: T) -> Option<T> {
        let Some(v) = v else { return Some(default) };
        let t = T::from_name(v);
        if t.is_none() {
            self.bad(path, T::unknown(v));
        }
        t
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        path: &str,
        v: Option<&str>,
        default: T,
        options: &[(&str, T)],
    ) -> Option<T> {
        let Some(v) = v else { return Some(default) };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.bad(path, format!("{v:?} is not one of: {}", names.join(", ")));
        None
    }
}

/// Removes `.` and resolves `..` lexically (`config/../state` -> `state`),
/// so paths in logs and sandbox checks are the plain paths they denote.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// Reports every id of `items` (key path, id) used before, at its `id` key.
pub(crate) fn unique<'a>(
    ctx: &mut Ctx<'_>,
    what: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (path, id) in items {
        if let Some(first) = seen.get(id) {
            ctx.bad(
                format!("{path}.id"),
                format!("duplicate {what} id {id:?} (first used at {first})"),
            );
        } else {
            seen.insert(id, path);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `f` with a fresh context (relative paths against `/etc/safe-yolo`); returns
    /// its result and the problems it reported.
    pub(crate) fn check<T>(f: impl FnOnce(&mut Ctx<'_>) -> T) -> (T, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut ctx = Ctx {
            problems: &mut problems,
            base: Path::new("/etc/safe-yolo"),
        };
        let out = f(&mut ctx);
        (out, problems)
    }

    /// The key paths of `problems`.
    pub(crate) fn paths(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize(Path::new("config/../state/demo")),
            Path::new("state/demo")
        );
        assert_eq!(
            normalize(Path::new("/etc/safe-yolo/./../x")),
            Path::new("/etc/x")
        );
        assert_eq!(normalize(Path::new("../a")), Path::new("../a"));
        assert_eq!(normalize(Path::new("a/..")), Path::new("."));
    }

    #[test]
    fn ranges_and_duplicates_are_reported_at_their_paths() {
        let (v, p) = check(|ctx| ctx.int_in::<u32>("a.n", Some(7), 1, 1, 5));
        assert_eq!((v, paths(&p)), (None, vec!["a.n"]));
        let (v, p) = check(|ctx| ctx.secs_in("a.s", None, 2.0, 0.0, 3.0));
        assert_eq!((v, p), (Some(Duration::from_secs(2)), Vec::new()));
        let ((), p) = check(|ctx| {
            unique(
                ctx,
                "thing",
                [("t[0]", "x"), ("t[1]", "y"), ("t[2]", "x")].into_iter(),
            )
        });
        assert_eq!(paths(&p), vec!["t[2].id"]);
        assert!(p[0].reason.contains("first used at t[0]"), "{p:?}");
    }
}
