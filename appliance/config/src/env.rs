//! Environment overrides: `SAFEYOLO_<SECTION>__<KEY>[__<KEY>...]=value`.
//!
//! They exist for deployment secrets and paths (a systemd drop-in or a
//! container runtime sets them). Only tables can be overridden, not array
//! elements. A value keeps the type of the key it replaces; for a key absent
//! from the file it is read as a TOML scalar (number, boolean) when it parses
//! as one, else as a string.

use crate::Problem;

const PREFIX: &str = "SAFEYOLO_";

pub(crate) fn apply_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && k.contains("__"))
        .collect();
    // Deterministic order, so problems are reported in a stable order.
    vars.sort();
    for (name, value) in vars {
        let keys: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if keys.iter().any(String::is_empty) {
            problems.push(Problem {
                path: format!("env {name}"),
                reason: "has an empty section or key; use SAFEYOLO_<SECTION>__<KEY>".into(),
            });
            continue;
        }
        if let Err(reason) = set_path(table, &keys, &value) {
            problems.push(Problem {
                path: format!("env {name}"),
                reason,
            });
        }
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], value: &str) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Err("names no key".into());
    };
    let mut cur = table;
    for k in parents {
        let entry = cur
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(format!(
                    "`{k}` is not a section, so it cannot hold `{last}`"
                ));
            }
        };
    }
    let new = match cur.get(last) {
        Some(toml::Value::String(_)) | None if !looks_scalar(value) => {
            toml::Value::String(value.to_owned())
        }
        Some(toml::Value::String(_)) => toml::Value::String(value.to_owned()),
        Some(toml::Value::Table(_)) | Some(toml::Value::Array(_)) => {
            return Err(format!(
                "`{last}` is a section or a list; only single values can be overridden"
            ));
        }
        Some(_) | None => parse_scalar(value)?,
    };
    cur.insert(last.clone(), new);
    Ok(())
}

fn looks_scalar(value: &str) -> bool {
    parse_scalar(value).is_ok()
}

fn parse_scalar(value: &str) -> Result<toml::Value, String> {
    if let Ok(b) = value.parse::<bool>() {
        return Ok(toml::Value::Boolean(b));
    }
    if let Ok(i) = value.parse::<i64>() {
        return Ok(toml::Value::Integer(i));
    }
    if let Ok(f) = value.parse::<f64>() {
        return Ok(toml::Value::Float(f));
    }
    Err(format!("{value:?} is not a number or a boolean"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(toml_text: &str, vars: &[(&str, &str)]) -> (toml::Table, Vec<Problem>) {
        let mut t: toml::Table = toml_text.parse().unwrap();
        let mut p = Vec::new();
        apply_overrides(
            &mut t,
            vars.iter().map(|(a, b)| (a.to_string(), b.to_string())),
            &mut p,
        );
        (t, p)
    }

    #[test]
    fn overrides_keep_types() {
        let (t, p) = run(
            "[api]\nbind = \"0.0.0.0:8443\"\n[storage]\nsnapshot_quota_mb = 10\n",
            &[
                ("SAFEYOLO_API__BIND", "127.0.0.1:9443"),
                ("SAFEYOLO_STORAGE__SNAPSHOT_QUOTA_MB", "512"),
                ("SAFEYOLO_STORAGE__STATE_DIR", "/data"),
                ("SAFEYOLO_FIXTURES", "/ignored/no-double-underscore"),
            ],
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(t["api"]["bind"].as_str(), Some("127.0.0.1:9443"));
        assert_eq!(t["storage"]["snapshot_quota_mb"].as_integer(), Some(512));
        assert_eq!(t["storage"]["state_dir"].as_str(), Some("/data"));
    }

    #[test]
    fn bad_override_is_a_problem_naming_the_variable() {
        let (_, p) = run(
            "[storage]\nsnapshot_quota_mb = 10\n[api]\ncors_origins = []\n",
            &[
                ("SAFEYOLO_STORAGE__SNAPSHOT_QUOTA_MB", "lots"),
                ("SAFEYOLO_API__CORS_ORIGINS", "x"),
            ],
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|x| x.path == "env SAFEYOLO_API__CORS_ORIGINS"));
        assert!(
            p.iter()
                .any(|x| x.path == "env SAFEYOLO_STORAGE__SNAPSHOT_QUOTA_MB"
                    && x.reason.contains("not a number"))
        );
    }
}
