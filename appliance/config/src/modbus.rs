//! `[integrations.modbus]` (the box as a Modbus TCP server a PLC polls) and
//! `[[integrations.interlocks]]` (machine states that arm rules), and the register map
//! both make: generated here once, served by the Modbus server and by the API.
//!
//! Interlocks are fail-safe ([`safe_yolo_rules::interlock`]): only a fresh, explicit
//! *disarmed* disarms the rules that name one; unknown or stale arms them.

use std::net::SocketAddr;
use std::time::Duration;

use safe_yolo_domain::{CameraId, InterlockId, RuleId, ZoneId};
use serde::{Deserialize, Serialize};

use crate::api::{IpNet, parse_net};
use crate::check::Ctx;

/// The coil that acknowledges every open alarm (write 1), as the button does.
pub const COIL_ACK_ALL: u16 = 0;
/// Interlock coils are at `coil` addresses in this range.
pub const INTERLOCK_COILS: std::ops::RangeInclusive<u16> = 1..=999;
/// Discrete input: the box guards (some camera watched, every detector up).
pub const DI_GUARDING: u16 = 0;
/// Discrete input: some alarm is raised.
pub const DI_ANY_ALARM: u16 = 1;
/// Discrete inputs `DI_RULE_RAISED + i`: rule `i` of the map has an alarm raised.
pub const DI_RULE_RAISED: u16 = 100;
/// Discrete inputs `DI_RULE_ARMED + i`: rule `i` of the map is armed (its interlock).
pub const DI_RULE_ARMED: u16 = 1100;
/// Discrete inputs `DI_CAMERA_ONLINE + i`: camera `i` of the map delivers frames.
pub const DI_CAMERA_ONLINE: u16 = 2100;
/// Input registers 0-1: the newest stored event id (u32, high word first).
pub const IR_LAST_EVENT: u16 = 0;
/// Input register 2: alarms raised now.
pub const IR_RAISED: u16 = 2;
/// Input registers `IR_ZONE_COUNT + i`: persons in zone `i` of the map.
pub const IR_ZONE_COUNT: u16 = 100;
/// Most rules, cameras or zones a map lists (each block holds 1000 addresses).
pub const MAX_MAPPED: usize = 1000;

/// `[integrations.modbus]` as written (also the API's document of it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ModbusDoc")]
pub struct RawModbus {
    /// `address:port` the server listens on (default `0.0.0.0:502`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Client addresses or networks allowed to connect (CIDR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// The Modbus unit id answered (1-247, default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<i64>,
    /// Connections at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// A silent connection is closed after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<f64>,
    /// The rules mapped to registers (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    /// The cameras mapped to registers (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cameras: Option<Vec<String>>,
    /// The zones mapped to registers (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
}

/// `[[integrations.interlocks]]` as written (also the API's document of one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "InterlockDoc")]
pub struct RawInterlock {
    /// Its id (rules name it in `armed_by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `modbus` (a coil), `mqtt` (a topic) or `gpio` (the machine-state input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The coil a PLC writes (modbus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coil: Option<i64>,
    /// The topic (mqtt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The payload that arms (mqtt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub armed_value: Option<String>,
    /// A level not renewed within this long goes back to unknown (armed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_after_s: Option<f64>,
}

/// The Modbus TCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusConfig {
    /// Listen address (`0.0.0.0:502`; a port below 1024 needs CAP_NET_BIND_SERVICE).
    pub bind: SocketAddr,
    /// The only client addresses served (at least one network: no open default).
    pub allow: Vec<IpNet>,
    /// The unit id answered (255 or 0 are accepted too, as Modbus TCP gateways send).
    pub unit_id: u8,
    /// Most clients connected at once; more are refused.
    pub max_connections: usize,
    /// A client silent this long is disconnected.
    pub idle_timeout: Duration,
    /// Rules in map order (pinned); `None`: every rule, by id.
    pub rules: Option<Vec<RuleId>>,
    /// Cameras in map order (pinned); `None`: every camera, by id.
    pub cameras: Option<Vec<CameraId>>,
    /// Zones in map order (pinned); `None`: every zone, by id.
    pub zones: Option<Vec<ZoneId>>,
}

/// Where an interlock's level comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterlockSource {
    /// A coil of the Modbus server a PLC writes: 1 armed, 0 disarmed.
    ModbusCoil {
        /// Its address.
        coil: u16,
    },
    /// An MQTT topic on the integrations' broker: `armed_value` arms, any other
    /// payload disarms.
    Mqtt {
        /// The topic (no wildcard).
        topic: String,
        /// The payload (trimmed) that arms.
        armed_value: String,
    },
    /// The `[outputs.machine_state]` GPIO input: active arms, inactive disarms.
    Gpio,
}

/// A machine state that arms rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterlockConfig {
    /// Its id (rules name it in `armed_by`).
    pub id: InterlockId,
    /// Human name.
    pub name: String,
    /// Where its level comes from.
    pub source: InterlockSource,
    /// Unknown (so armed) when not written or published for this long; `None`: a
    /// level holds until the next one or a restart.
    pub stale_after: Option<Duration>,
}

/// Which table of the Modbus data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModbusTable {
    /// Read/write bits (function codes 1, 5, 15).
    Coil,
    /// Read-only bits (function code 2).
    DiscreteInput,
    /// Read-only 16-bit registers (function code 4).
    InputRegister,
}

/// What one address means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModbusPoint {
    /// Coil: write 1 to acknowledge every open alarm.
    AcknowledgeAll,
    /// Coil: the interlock's level (1 armed, 0 disarmed).
    Interlock {
        /// The interlock.
        interlock: InterlockId,
    },
    /// Discrete input: the box guards.
    Guarding,
    /// Discrete input: some alarm is raised.
    AnyAlarm,
    /// Discrete input: the rule has an alarm raised.
    RuleRaised {
        /// The rule.
        rule: RuleId,
    },
    /// Discrete input: the rule is armed.
    RuleArmed {
        /// The rule.
        rule: RuleId,
    },
    /// Discrete input: the camera delivers frames.
    CameraOnline {
        /// The camera.
        camera: CameraId,
    },
    /// Input registers (two): the newest stored event id, high word first.
    LastEventId,
    /// Input register: alarms raised now.
    RaisedCount,
    /// Input register: persons in the zone.
    ZoneCount {
        /// The zone.
        zone: ZoneId,
    },
}

/// One address of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ModbusRegister {
    /// The table.
    pub table: ModbusTable,
    /// The address (0-based, as on the wire).
    pub address: u16,
    /// What it means.
    #[serde(flatten)]
    pub point: ModbusPoint,
}

/// The register map: fixed points, then `rules`, `cameras` and `zones` in the order
/// given (the configuration's pinned lists, or the live ids sorted). Ids beyond
/// [`MAX_MAPPED`] are left out.
pub fn modbus_map(
    interlocks: &[InterlockConfig],
    rules: &[RuleId],
    cameras: &[CameraId],
    zones: &[ZoneId],
) -> Vec<ModbusRegister> {
    let reg = |table, address, point| ModbusRegister {
        table,
        address,
        point,
    };
    let at = |base: u16, i: usize| base.saturating_add(u16::try_from(i).unwrap_or(u16::MAX));
    let mut map = vec![reg(
        ModbusTable::Coil,
        COIL_ACK_ALL,
        ModbusPoint::AcknowledgeAll,
    )];
    for i in interlocks {
        if let InterlockSource::ModbusCoil { coil } = i.source {
            map.push(reg(
                ModbusTable::Coil,
                coil,
                ModbusPoint::Interlock {
                    interlock: i.id.clone(),
                },
            ));
        }
    }
    map.push(reg(
        ModbusTable::DiscreteInput,
        DI_GUARDING,
        ModbusPoint::Guarding,
    ));
    map.push(reg(
        ModbusTable::DiscreteInput,
        DI_ANY_ALARM,
        ModbusPoint::AnyAlarm,
    ));
    for (i, r) in rules.iter().take(MAX_MAPPED).enumerate() {
        map.push(reg(
            ModbusTable::DiscreteInput,
            at(DI_RULE_RAISED, i),
            ModbusPoint::RuleRaised { rule: r.clone() },
        ));
    }
    for (i, r) in rules.iter().take(MAX_MAPPED).enumerate() {
        map.push(reg(
            ModbusTable::DiscreteInput,
            at(DI_RULE_ARMED, i),
            ModbusPoint::RuleArmed { rule: r.clone() },
        ));
    }
    for (i, c) in cameras.iter().take(MAX_MAPPED).enumerate() {
        map.push(reg(
            ModbusTable::DiscreteInput,
            at(DI_CAMERA_ONLINE, i),
            ModbusPoint::CameraOnline { camera: c.clone() },
        ));
    }
    map.push(reg(
        ModbusTable::InputRegister,
        IR_LAST_EVENT,
        ModbusPoint::LastEventId,
    ));
    map.push(reg(
        ModbusTable::InputRegister,
        IR_RAISED,
        ModbusPoint::RaisedCount,
    ));
    for (i, z) in zones.iter().take(MAX_MAPPED).enumerate() {
        map.push(reg(
            ModbusTable::InputRegister,
            at(IR_ZONE_COUNT, i),
            ModbusPoint::ZoneCount { zone: z.clone() },
        ));
    }
    map
}

impl ModbusConfig {
    /// The map's order of `live` ids: the pinned list if any, else `live` sorted.
    pub fn order<T: Ord + Clone>(pinned: Option<&Vec<T>>, live: &[T]) -> Vec<T> {
        match pinned {
            Some(p) => p.clone(),
            None => {
                let mut v = live.to_vec();
                v.sort();
                v.dedup();
                v
            }
        }
    }
}

/// Checks `[integrations.modbus]`.
pub(crate) fn validate_modbus(ctx: &mut Ctx<'_>, raw: &RawModbus) -> Option<ModbusConfig> {
    let p = "integrations.modbus";
    let start = ctx.problems.len();
    let bind = match raw.bind.as_deref().unwrap_or("0.0.0.0:502").parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.bad(
                format!("{p}.bind"),
                "must be an address and port such as 0.0.0.0:502",
            );
            None
        }
    };
    let mut allow = Vec::new();
    match &raw.allow {
        None => ctx.bad(
            format!("{p}.allow"),
            "is required: the networks of the PLCs allowed to read and write (e.g. [\"10.0.5.0/24\"]); Modbus has no authentication",
        ),
        Some(list) if list.is_empty() || list.len() > 64 => ctx.bad(
            format!("{p}.allow"),
            "must list 1-64 networks (Modbus has no authentication)",
        ),
        Some(list) => {
            for (i, n) in list.iter().enumerate() {
                match parse_net(n) {
                    Some(net) => allow.push(net),
                    None => ctx.bad(
                        format!("{p}.allow[{i}]"),
                        format!("{n:?} is not a network such as 10.0.5.0/24 or an address"),
                    ),
                }
            }
        }
    }
    let unit_id = ctx.int_in::<u8>(&format!("{p}.unit_id"), raw.unit_id, 1, 1, 247);
    let max_connections = ctx.int_in::<usize>(
        &format!("{p}.max_connections"),
        raw.max_connections,
        4,
        1,
        32,
    );
    let idle_timeout = ctx.secs_in(
        &format!("{p}.idle_timeout_s"),
        raw.idle_timeout_s,
        60.0,
        1.0,
        3600.0,
    );
    let rules = ids(
        ctx,
        &format!("{p}.rules"),
        raw.rules.as_deref(),
        RuleId::new,
    );
    let cameras = ids(
        ctx,
        &format!("{p}.cameras"),
        raw.cameras.as_deref(),
        CameraId::new,
    );
    let zones = ids(
        ctx,
        &format!("{p}.zones"),
        raw.zones.as_deref(),
        ZoneId::new,
    );
    if ctx.problems.len() > start {
        return None;
    }
    Some(ModbusConfig {
        bind: bind?,
        allow,
        unit_id: unit_id?,
        max_connections: max_connections?,
        idle_timeout: idle_timeout?,
        rules,
        cameras,
        zones,
    })
}

/// A pinned list of ids: each valid, none twice, at most [`MAX_MAPPED`].
fn ids<T: PartialEq>(
    ctx: &mut Ctx<'_>,
    p: &str,
    raw: Option<&[String]>,
    f: fn(String) -> Result<T, safe_yolo_domain::IdError>,
) -> Option<Vec<T>> {
    let raw = raw?;
    if raw.len() > MAX_MAPPED {
        ctx.bad(p, format!("lists at most {MAX_MAPPED} ids"));
    }
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        if let Some(id) = ctx.id(&format!("{p}[{i}]"), s, f) {
            if out.contains(&id) {
                ctx.bad(format!("{p}[{i}]"), format!("{s:?} is listed twice"));
            } else {
                out.push(id);
            }
        }
    }
    Some(out)
}

/// Checks `[[integrations.interlocks]]`; `mqtt` and `modbus`: whether those are
/// configured (an interlock needs its source).
pub(crate) fn validate_interlocks(
    ctx: &mut Ctx<'_>,
    raw: &[RawInterlock],
    mqtt: bool,
    modbus: bool,
) -> Vec<InterlockConfig> {
    let mut out: Vec<InterlockConfig> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let p = format!("integrations.interlocks[{i}]");
        let start = ctx.problems.len();
        let id = match r.id.as_deref() {
            Some(id) => ctx.id(&format!("{p}.id"), id, InterlockId::new),
            None => {
                ctx.bad(format!("{p}.id"), "is required");
                None
            }
        };
        if let Some(id) = &id
            && out.iter().any(|o| &o.id == id)
        {
            ctx.bad(
                format!("{p}.id"),
                format!("{:?} is used twice", id.as_str()),
            );
        }
        let name = ctx.name(&format!("{p}.name"), r.name.as_deref());
        let stale_after = match r.stale_after_s {
            None => Some(None),
            v => ctx
                .secs_in(&format!("{p}.stale_after_s"), v, 0.0, 0.5, 86_400.0)
                .map(Some),
        };
        let source = match r.source.as_deref() {
            Some("modbus") => {
                for (key, set) in [
                    ("topic", r.topic.is_some()),
                    ("armed_value", r.armed_value.is_some()),
                ] {
                    if set {
                        ctx.bad(format!("{p}.{key}"), "does not apply to a modbus interlock");
                    }
                }
                if !modbus {
                    ctx.bad(
                        format!("{p}.source"),
                        "a modbus interlock needs [integrations.modbus]",
                    );
                }
                match r.coil {
                    None => {
                        ctx.bad(format!("{p}.coil"), "is required for a modbus interlock");
                        None
                    }
                    Some(c) => {
                        let (lo, hi) = (INTERLOCK_COILS.start(), INTERLOCK_COILS.end());
                        let coil = ctx.int_in::<u16>(
                            &format!("{p}.coil"),
                            Some(c),
                            1,
                            i64::from(*lo),
                            i64::from(*hi),
                        );
                        if let Some(coil) = coil
                            && out
                                .iter()
                                .any(|o| o.source == InterlockSource::ModbusCoil { coil })
                        {
                            ctx.bad(format!("{p}.coil"), format!("coil {coil} is used twice"));
                        }
                        coil.map(|coil| InterlockSource::ModbusCoil { coil })
                    }
                }
            }
            Some("mqtt") => {
                if r.coil.is_some() {
                    ctx.bad(format!("{p}.coil"), "does not apply to an mqtt interlock");
                }
                if !mqtt {
                    ctx.bad(
                        format!("{p}.source"),
                        "an mqtt interlock needs [integrations.mqtt] (its broker)",
                    );
                }
                let topic = match r.topic.as_deref() {
                    Some(t) if !t.is_empty() && t.len() <= 200 && !t.contains(['+', '#', '\0']) => {
                        Some(t.to_owned())
                    }
                    Some(t) => {
                        ctx.bad(
                            format!("{p}.topic"),
                            format!("{t:?} must be 1-200 characters without the wildcards + and #"),
                        );
                        None
                    }
                    None => {
                        ctx.bad(format!("{p}.topic"), "is required for an mqtt interlock");
                        None
                    }
                };
                let armed_value = match r.armed_value.as_deref().map(str::trim) {
                    Some(v) if !v.is_empty() && v.len() <= 64 => Some(v.to_owned()),
                    Some(_) => {
                        ctx.bad(format!("{p}.armed_value"), "must be 1-64 characters");
                        None
                    }
                    None => {
                        ctx.bad(
                            format!("{p}.armed_value"),
                            "is required for an mqtt interlock (the payload that arms)",
                        );
                        None
                    }
                };
                topic
                    .zip(armed_value)
                    .map(|(topic, armed_value)| InterlockSource::Mqtt { topic, armed_value })
            }
            Some("gpio") => {
                for (key, set) in [
                    ("coil", r.coil.is_some()),
                    ("topic", r.topic.is_some()),
                    ("armed_value", r.armed_value.is_some()),
                ] {
                    if set {
                        ctx.bad(format!("{p}.{key}"), "does not apply to a gpio interlock");
                    }
                }
                if out.iter().any(|o| o.source == InterlockSource::Gpio) {
                    ctx.bad(
                        format!("{p}.source"),
                        "only one gpio interlock: it reads the [outputs.machine_state] input",
                    );
                }
                Some(InterlockSource::Gpio)
            }
            Some(other) => {
                ctx.bad(
                    format!("{p}.source"),
                    format!("{other:?} is not one of: modbus, mqtt, gpio"),
                );
                None
            }
            None => {
                ctx.bad(format!("{p}.source"), "is required (modbus, mqtt or gpio)");
                None
            }
        };
        if ctx.problems.len() > start {
            continue;
        }
        if let (Some(id), Some(name), Some(source), Some(stale_after)) =
            (id, name, source, stale_after)
        {
            let name = name.unwrap_or_else(|| id.as_str().to_owned());
            out.push(InterlockConfig {
                id,
                name,
                source,
                stale_after,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn the_map_has_fixed_points_then_each_block_in_order() {
        let il = InterlockConfig {
            id: InterlockId::new("press").unwrap(),
            name: "press".into(),
            source: InterlockSource::ModbusCoil { coil: 10 },
            stale_after: None,
        };
        let rules = [RuleId::new("a").unwrap(), RuleId::new("b").unwrap()];
        let cams = [CameraId::new("dock").unwrap()];
        let zones = [ZoneId::new("lane").unwrap()];
        let map = modbus_map(&[il], &rules, &cams, &zones);
        let find = |t: ModbusTable, a: u16| {
            map.iter()
                .find(|r| r.table == t && r.address == a)
                .map(|r| r.point.clone())
        };
        assert_eq!(
            find(ModbusTable::Coil, 0),
            Some(ModbusPoint::AcknowledgeAll)
        );
        assert!(matches!(
            find(ModbusTable::Coil, 10),
            Some(ModbusPoint::Interlock { .. })
        ));
        assert_eq!(
            find(ModbusTable::DiscreteInput, 101),
            Some(ModbusPoint::RuleRaised {
                rule: rules[1].clone()
            })
        );
        assert_eq!(
            find(ModbusTable::DiscreteInput, 1100),
            Some(ModbusPoint::RuleArmed {
                rule: rules[0].clone()
            })
        );
        assert_eq!(
            find(ModbusTable::DiscreteInput, 2100),
            Some(ModbusPoint::CameraOnline {
                camera: cams[0].clone()
            })
        );
        assert_eq!(
            find(ModbusTable::InputRegister, 100),
            Some(ModbusPoint::ZoneCount {
                zone: zones[0].clone()
            })
        );
        // No two points share an address of one table.
        let mut seen = std::collections::HashSet::new();
        assert!(map.iter().all(|r| seen.insert((r.table, r.address))));
    }

    #[test]
    fn modbus_and_interlocks_are_checked_at_their_keys() {
        use crate::check::tests::{check, paths};
        let modbus = RawModbus {
            bind: Some("127.0.0.1:1502".into()),
            allow: Some(vec!["10.0.5.0/24".into(), "127.0.0.1".into()]),
            ..RawModbus::default()
        };
        let (m, p) = check(|ctx| validate_modbus(ctx, &modbus));
        assert!(p.is_empty(), "{p:?}");
        let m = m.unwrap();
        assert_eq!((m.unit_id, m.max_connections), (1, 4));
        assert!(m.allow[1].contains("127.0.0.1".parse().unwrap()));
        // No allow-list: refused (Modbus has no authentication).
        let (_, p) = check(|ctx| validate_modbus(ctx, &RawModbus::default()));
        assert_eq!(paths(&p), ["integrations.modbus.allow"]);
        let (_, p) = check(|ctx| {
            validate_modbus(
                ctx,
                &RawModbus {
                    allow: Some(vec!["plc".into()]),
                    unit_id: Some(0),
                    rules: Some(vec!["a".into(), "a".into()]),
                    ..RawModbus::default()
                },
            )
        });
        assert_eq!(
            paths(&p),
            [
                "integrations.modbus.allow[0]",
                "integrations.modbus.unit_id",
                "integrations.modbus.rules[1]"
            ]
        );

        let coil = |id: &str, c: i64| RawInterlock {
            id: Some(id.into()),
            source: Some("modbus".into()),
            coil: Some(c),
            ..RawInterlock::default()
        };
        let mqtt = RawInterlock {
            id: Some("press".into()),
            source: Some("mqtt".into()),
            topic: Some("plant/press-7/state".into()),
            armed_value: Some(" running ".into()),
            stale_after_s: Some(30.0),
            ..RawInterlock::default()
        };
        let (v, p) = check(|ctx| validate_interlocks(ctx, &[coil("loto", 10), mqtt], true, true));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            v[1].source,
            InterlockSource::Mqtt {
                topic: "plant/press-7/state".into(),
                armed_value: "running".into()
            }
        );
        assert_eq!(v[1].stale_after, Some(Duration::from_secs(30)));
        let (v, p) = check(|ctx| {
            validate_interlocks(
                ctx,
                &[
                    coil("a", 10),
                    coil("a", 11),
                    coil("b", 10),
                    coil("c", 0),
                    RawInterlock {
                        id: Some("d".into()),
                        source: Some("mqtt".into()),
                        topic: Some("plant/#".into()),
                        ..RawInterlock::default()
                    },
                ],
                false,
                true,
            )
        });
        assert_eq!(v.len(), 1);
        assert_eq!(
            paths(&p),
            [
                "integrations.interlocks[1].id",
                "integrations.interlocks[2].coil",
                "integrations.interlocks[3].coil",
                "integrations.interlocks[4].source",
                "integrations.interlocks[4].topic",
                "integrations.interlocks[4].armed_value",
            ]
        );
        let (_, p) = check(|ctx| validate_interlocks(ctx, &[coil("a", 1)], true, false));
        assert_eq!(paths(&p), ["integrations.interlocks[0].source"]);
    }

    #[test]
    fn pinned_order_wins_and_live_ids_are_sorted() {
        let live = vec![RuleId::new("b").unwrap(), RuleId::new("a").unwrap()];
        let order = ModbusConfig::order(None, &live);
        assert_eq!(order[0].as_str(), "a");
        let pinned = vec![RuleId::new("z").unwrap()];
        assert_eq!(ModbusConfig::order(Some(&pinned), &live), pinned);
    }
}
