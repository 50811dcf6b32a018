//! Software debouncing of input edges (pure; time is a parameter).
//!
//! A stable-time debouncer: the reported level changes only after the raw level has
//! differed from it, without any further edge, for the whole debounce period. Contact
//! bounce (any burst of edges shorter than the period) is swallowed, and a glitch that
//! returns to the reported level before the period ends produces no event at all.

use std::time::Duration;

/// A debounced level change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounced {
    /// The new logical level (`true` = active: button pressed, door open).
    pub level: bool,
    /// When the level became stable (the last raw edge plus the period).
    pub at: Duration,
}

/// One input's debouncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debouncer {
    period: Duration,
    stable: bool,
    raw: bool,
    raw_since: Duration,
}

impl Debouncer {
    /// A debouncer whose reported level starts at `initial` (read from the line at start).
    pub fn new(period: Duration, initial: bool, now: Duration) -> Self {
        Self {
            period,
            stable: initial,
            raw: initial,
            raw_since: now,
        }
    }

    /// The debounced level.
    pub fn level(&self) -> bool {
        self.stable
    }

    /// Feeds a raw edge: the line's raw level is `level` from time `at` on.
    ///
    /// Edges must be fed in time order. Returns the debounced change, if any, that became
    /// due before this edge (so a caller that only feeds edges still sees every change).
    pub fn edge(&mut self, level: bool, at: Duration) -> Option<Debounced> {
        let due = self.poll(at);
        if level != self.raw {
            self.raw = level;
            self.raw_since = at;
        }
        due.or_else(|| self.poll(at))
    }

    /// Reports the debounced change, if one has become due by `now`.
    pub fn poll(&mut self, now: Duration) -> Option<Debounced> {
        if self.raw == self.stable {
            return None;
        }
        let stable_at = self.raw_since.saturating_add(self.period);
        if now < stable_at {
            return None;
        }
        self.stable = self.raw;
        Some(Debounced {
            level: self.stable,
            at: stable_at,
        })
    }

    /// When the pending change (if any) becomes due, so a runner can wake up then.
    pub fn due_at(&self) -> Option<Duration> {
        (self.raw != self.stable).then(|| self.raw_since.saturating_add(self.period))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Feeds `(time_ms, level)` edges, then polls every millisecond until `end`.
    fn run(period: u64, edges: &[(u64, bool)], end: u64) -> Vec<(u64, bool)> {
        let mut d = Debouncer::new(ms(period), false, ms(0));
        let mut out = Vec::new();
        let mut next = edges.iter().peekable();
        for t in 0..=end {
            while let Some(&&(et, level)) = next.peek() {
                if et != t {
                    break;
                }
                if let Some(c) = d.edge(level, ms(et)) {
                    out.push((u64::try_from(c.at.as_millis()).unwrap(), c.level));
                }
                next.next();
            }
            if let Some(c) = d.poll(ms(t)) {
                out.push((u64::try_from(c.at.as_millis()).unwrap(), c.level));
            }
        }
        out
    }

    #[test]
    fn bouncy_press_and_release_give_one_event_each() {
        // A press bouncing for 8 ms, held, then a release bouncing for 6 ms.
        let edges = [
            (100, true),
            (101, false),
            (103, true),
            (104, false),
            (108, true),
            (400, false),
            (402, true),
            (406, false),
        ];
        assert_eq!(run(20, &edges, 1000), vec![(128, true), (426, false)]);
    }

    #[test]
    fn short_glitch_is_ignored() {
        let edges = [(100, true), (115, false), (500, true), (519, false)];
        assert_eq!(run(20, &edges, 1000), vec![]);
    }

    #[test]
    fn zero_period_passes_edges_through() {
        let edges = [(10, true), (11, false), (12, true)];
        assert_eq!(
            run(0, &edges, 20),
            vec![(10, true), (11, false), (12, true)]
        );
    }

    #[test]
    fn edge_only_feeding_reports_changes_due_before_the_edge() {
        let mut d = Debouncer::new(ms(20), false, ms(0));
        assert_eq!(d.edge(true, ms(100)), None);
        assert_eq!(d.due_at(), Some(ms(120)));
        // The release at 300 first reports the press that became stable at 120.
        assert_eq!(
            d.edge(false, ms(300)),
            Some(Debounced {
                level: true,
                at: ms(120)
            })
        );
        assert_eq!(
            d.poll(ms(320)),
            Some(Debounced {
                level: false,
                at: ms(320)
            })
        );
        assert_eq!(d.due_at(), None);
    }

    proptest! {
        #[test]
        fn events_alternate_and_follow_stable_raw_levels(
            gaps in proptest::collection::vec((1u64..60, any::<bool>()), 0..60),
            period in 0u64..40,
        ) {
            let mut t = 0;
            let edges: Vec<(u64, bool)> = gaps.iter().map(|(g, l)| { t += g; (t, *l) }).collect();
            let out = run(period, &edges, t + 100);
            // Events alternate, starting from the initial low level.
            let mut last = false;
            for (_, level) in &out {
                prop_assert_ne!(*level, last);
                last = *level;
            }
            // Each event is exactly `period` after an edge to that level, and no edge
            // changes the raw level inside that window.
            for (at, level) in &out {
                let start = at - period;
                let raw_at = |time: u64| edges.iter().rev().find(|(et, _)| *et <= time).is_some_and(|e| e.1);
                prop_assert_eq!(raw_at(start), *level);
                prop_assert!(edges.iter().all(|(et, l)| *et <= start || *et > *at || *et == *at || *l == *level));
            }
            // At the end the debounced level equals the final raw level.
            let final_raw = edges.last().is_some_and(|e| e.1);
            prop_assert_eq!(last, final_raw);
        }
    }
}
