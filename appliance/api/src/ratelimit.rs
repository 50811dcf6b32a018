//! Request rate limits: one token bucket per credential and one per source address.
//!
//! An authenticated request is charged to its principal (the user name, or `key:<id>`
//! for an API key), so one misbehaving client cannot take the CPU the safety pipeline
//! needs, whatever address it comes from. Requests that carry no valid credential
//! (public routes, failed authentications) are charged to the source address, and a
//! source whose bucket is empty is refused before its credential is even checked.
//!
//! A live stream (MJPEG or WebSocket) is one request: only the upgrade or the first
//! response passes through the limiter.
//!
//! The hot path takes one uncontended `parking_lot` mutex and does no allocation once
//! the key is known; a new key allocates its map entry once.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Instant;

use parking_lot::Mutex;

/// Most tracked keys per map; full (idle) buckets are dropped first once it is
/// reached, then the least recently used one.
const CAP: usize = 10_000;

/// The key a source address is limited under: an IPv4 address as it is, an IPv6
/// address by its /64 (one subscriber's network: a host given a /64 can pick any
/// of 2^64 addresses), an IPv4-mapped IPv6 address as the IPv4 address.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// Rate and burst of every bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after an idle period (the bucket size).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every principal and source.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    principals: Mutex<HashMap<String, Bucket>>,
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter with `limit` per key. A non-positive or non-finite rate, or a zero burst,
    /// falls back to the defaults rather than refusing everything.
    pub fn new(limit: RateLimit) -> Self {
        let limit = if limit.per_second.is_finite() && limit.per_second > 0.0 && limit.burst > 0 {
            limit
        } else {
            tracing::warn!(
                per_second = limit.per_second,
                burst = limit.burst,
                "invalid API rate limit; using the default"
            );
            RateLimit::default()
        };
        Self {
            limit,
            principals: Mutex::new(HashMap::new()),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Charges one request to `actor`; `Err(seconds)` to wait when its bucket is empty.
    pub fn charge_principal(&self, actor: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.principals.lock();
        if let Some(b) = map.get_mut(actor) {
            return take(b, now, self.limit);
        }
        make_room(&mut map, now, self.limit);
        let mut b = full(now, self.limit);
        let r = take(&mut b, now, self.limit);
        map.insert(actor.to_owned(), b);
        r
    }

    /// Charges `tokens` more to `actor` for work a request turned out to cost
    /// (an event page that looked at thousands of events). The bucket may go
    /// below zero: the caller's next requests wait until it has refilled, so a
    /// client's CPU share follows what its requests cost, not only their count.
    pub fn charge_principal_cost(&self, actor: &str, tokens: f64) {
        if !(tokens.is_finite() && tokens > 0.0) {
            return;
        }
        let now = Instant::now();
        let mut map = self.principals.lock();
        if let Some(b) = map.get_mut(actor) {
            b.tokens = refilled(b, now, self.limit) - tokens;
            b.last = now;
        }
    }

    /// Charges one request to `source`; `Err(seconds)` to wait when its bucket is empty.
    pub fn charge_source(&self, source: IpAddr) -> Result<(), u64> {
        let source = source_key(source);
        let now = Instant::now();
        let mut map = self.sources.lock();
        if let Some(b) = map.get_mut(&source) {
            return take(b, now, self.limit);
        }
        make_room(&mut map, now, self.limit);
        let mut b = full(now, self.limit);
        let r = take(&mut b, now, self.limit);
        map.insert(source, b);
        r
    }

    /// `Err(seconds)` while `source`'s bucket is empty, without charging it.
    pub fn check_source(&self, source: IpAddr) -> Result<(), u64> {
        let source = source_key(source);
        let now = Instant::now();
        match self.sources.lock().get(&source) {
            Some(b) => {
                let tokens = refilled(b, now, self.limit);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(wait_secs(tokens, self.limit))
                }
            }
            None => Ok(()),
        }
    }
}

fn full(now: Instant, limit: RateLimit) -> Bucket {
    Bucket {
        tokens: f64::from(limit.burst),
        last: now,
    }
}

/// Rate-limit tokens an event page costs beyond its request: one per this many
/// events looked at (a full 10,000-event scan costs 50 tokens, one second of
/// the default rate).
pub const EVENTS_PER_TOKEN: usize = 200;

fn refilled(b: &Bucket, now: Instant, limit: RateLimit) -> f64 {
    let dt = now.saturating_duration_since(b.last).as_secs_f64();
    (b.tokens + dt * limit.per_second).min(f64::from(limit.burst))
}

fn wait_secs(tokens: f64, limit: RateLimit) -> u64 {
    let secs = ((1.0 - tokens) / limit.per_second).ceil();
    if secs.is_finite() && secs >= 1.0 {
        // Saturating float-to-int conversion; the value is positive and finite here.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "positive, finite, saturating"
        )]
        let s = secs.min(86_400.0) as u64;
        s
    } else {
        1
    }
}

fn take(b: &mut Bucket, now: Instant, limit: RateLimit) -> Result<(), u64> {
    b.tokens = refilled(b, now, limit);
    b.last = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        Ok(())
    } else {
        Err(wait_secs(b.tokens, limit))
    }
}

/// Keeps the map bounded: drops buckets that have refilled completely (their owners
/// are idle, so forgetting them changes nothing), then, if that is not enough, the
/// least recently used one. Never everything: a flood of new keys must not hand
/// every throttled client a fresh bucket.
fn make_room<K: Hash + Eq + Clone>(map: &mut HashMap<K, Bucket>, now: Instant, limit: RateLimit) {
    if map.len() < CAP {
        return;
    }
    let burst = f64::from(limit.burst);
    map.retain(|_, b| refilled(b, now, limit) < burst);
    if map.len() >= CAP {
        evict_oldest(map, |b| b.last);
    }
}

/// Drops the oldest hundredth of a full map (by `age`, smallest first) at once, so a
/// flood of new keys pays the scan once per hundred insertions, not on each.
pub(crate) fn evict_oldest<K: Hash + Eq + Clone, V, A: Ord + Copy>(
    map: &mut HashMap<K, V>,
    age: impl Fn(&V) -> A,
) {
    let n = (map.len() / 100).max(1);
    let mut by_age: Vec<(A, K)> = map.iter().map(|(k, v)| (age(v), k.clone())).collect();
    if n < by_age.len() {
        by_age.select_nth_unstable_by_key(n, |(a, _)| *a);
        by_age.truncate(n);
    }
    for (_, k) in by_age {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> RateLimiter {
        RateLimiter::new(RateLimit {
            per_second: 0.001,
            burst: 3,
        })
    }

    #[test]
    fn a_principal_gets_its_burst_then_waits() {
        let l = tiny();
        for _ in 0..3 {
            assert!(l.charge_principal("alice").is_ok());
        }
        let wait = l.charge_principal("alice").unwrap_err();
        assert!(wait >= 1, "Retry-After is at least one second");
        assert!(
            l.charge_principal("bob").is_ok(),
            "buckets are per principal"
        );
    }

    #[test]
    fn a_source_is_checked_without_being_charged() {
        let l = tiny();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(l.check_source(ip).is_ok());
        for _ in 0..3 {
            assert!(l.check_source(ip).is_ok());
            assert!(l.charge_source(ip).is_ok());
        }
        assert!(l.check_source(ip).is_err());
        assert!(l.charge_source(ip).is_err());
        assert!(l.check_source("10.0.0.10".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_expensive_request_costs_its_work() {
        let l = RateLimiter::new(RateLimit {
            per_second: 0.001,
            burst: 100,
        });
        assert!(l.charge_principal("scraper").is_ok());
        // A page that looked at 10,000 events.
        l.charge_principal_cost("scraper", (10_000 / EVENTS_PER_TOKEN) as f64);
        let mut ok = 0;
        while l.charge_principal("scraper").is_ok() {
            ok += 1;
        }
        assert_eq!(ok, 49, "100 - 1 - 50 tokens left");
        // Unknown callers and nonsense amounts change nothing.
        l.charge_principal_cost("nobody", 10.0);
        assert!(l.principals.lock().get("nobody").is_none());
        l.charge_principal_cost("scraper", f64::NAN);
    }

    #[test]
    fn invalid_limits_fall_back_to_the_default() {
        let l = RateLimiter::new(RateLimit {
            per_second: f64::NAN,
            burst: 0,
        });
        for _ in 0..100 {
            assert!(l.charge_principal("x").is_ok());
        }
        assert!(l.charge_principal("x").is_err());
    }

    #[test]
    fn the_maps_stay_bounded_and_a_full_map_keeps_throttled_clients() {
        let l = tiny();
        let throttled: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            let _ = l.charge_source(throttled);
        }
        assert!(l.check_source(throttled).is_err());
        for i in 0..(CAP as u32 + 10) {
            let _ = l.charge_source(IpAddr::from((i + 1).to_be_bytes()));
            // The throttled client stays recently used.
            if i % 1000 == 0 {
                let _ = l.check_source(throttled);
                let _ = l.charge_source(throttled);
            }
        }
        assert!(l.sources.lock().len() <= CAP);
        assert!(
            l.check_source(throttled).is_err(),
            "a flood of new addresses must not reset a throttled client's bucket"
        );
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let l = tiny();
        for i in 0..3u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, 0, 0, 1));
            assert!(l.charge_source(ip).is_ok());
        }
        let same_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        assert!(l.charge_source(same_64).is_err());
        let other_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(l.charge_source(other_64).is_ok());
        assert_eq!(
            source_key("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }
}
