//! Bounded queues that drop the oldest item when full.
//!
//! [`Lanes`] holds one bounded FIFO per producer (camera) and hands items to
//! consumers round-robin across lanes, so a busy camera cannot starve the
//! others. A single-lane `Lanes` is a plain bounded drop-oldest queue.
//! Nothing here ever grows past its bound: a push into a full lane evicts
//! the lane's oldest item and returns it, so the caller can count the drop.
//!
//! [`Lanes::exclusive`] lanes hand out a lane's next item only after the
//! previous one was released ([`Lanes::release`]): with several consumers
//! (detect workers) a camera's frames are then worked on one at a time and
//! leave in the order they came, so the tracker never sees a frame older
//! than one it already has.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

#[derive(Debug)]
struct State<T> {
    lanes: Vec<VecDeque<T>>,
    /// Lanes whose last item is still being worked on (exclusive lanes only).
    leased: Vec<bool>,
    /// Lanes handed out by [`Lanes::open_lane`] and not closed since (a lane
    /// made by the constructor is open).
    open: Vec<bool>,
    next: usize,
    closed: bool,
}

/// Round-robin bounded lanes with drop-oldest overflow.
#[derive(Debug)]
pub struct Lanes<T> {
    cap: usize,
    exclusive: bool,
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// Result of a pop.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<T> {
    /// An item and the lane it came from.
    Item(usize, T),
    /// Nothing arrived within the timeout.
    Empty,
    /// The queue was closed and is drained.
    Closed,
}

impl<T> Lanes<T> {
    /// `lanes` lanes of at most `cap` items each (`cap` at least 1).
    pub fn new(lanes: usize, cap: usize) -> Self {
        Self::build(lanes, cap, false)
    }

    /// Like [`Lanes::new`], but a lane's next item is handed out only after
    /// the consumer of the previous one called [`Lanes::release`].
    pub fn exclusive(lanes: usize, cap: usize) -> Self {
        Self::build(lanes, cap, true)
    }

    fn build(lanes: usize, cap: usize, exclusive: bool) -> Self {
        Self {
            cap: cap.max(1),
            exclusive,
            state: Mutex::new(State {
                lanes: (0..lanes)
                    .map(|_| VecDeque::with_capacity(cap.max(1)))
                    .collect(),
                leased: vec![false; lanes],
                open: vec![true; lanes],
                next: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Appends `item` to `lane`; returns the evicted oldest item when the
    /// lane was full (or `item` itself when the lane does not exist or the
    /// queue is closed).
    pub fn push(&self, lane: usize, item: T) -> Option<T> {
        let mut st = self.state.lock();
        if st.closed {
            return Some(item);
        }
        let cap = self.cap;
        if !st.open.get(lane).copied().unwrap_or(false) {
            return Some(item);
        }
        let Some(q) = st.lanes.get_mut(lane) else {
            return Some(item);
        };
        let dropped = if q.len() >= cap { q.pop_front() } else { None };
        q.push_back(item);
        drop(st);
        self.ready.notify_one();
        dropped
    }

    /// Puts `item` in place of the newest item waiting in `lane` and returns
    /// that item; leaves the lane alone and returns `None` when nothing waits
    /// there (`item` is only built when it is used).
    pub fn replace_waiting(&self, lane: usize, item: impl FnOnce() -> T) -> Option<T> {
        let mut st = self.state.lock();
        if st.closed {
            return None;
        }
        let newest = st.lanes.get_mut(lane)?.back_mut()?;
        Some(std::mem::replace(newest, item()))
    }

    /// Takes the next item, visiting lanes round-robin; waits up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Pop<T> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        loop {
            let n = st.lanes.len();
            for i in 0..n {
                let lane = (st.next + i) % n;
                if st.leased[lane] {
                    continue;
                }
                if let Some(item) = st.lanes[lane].pop_front() {
                    st.next = (lane + 1) % n;
                    st.leased[lane] = self.exclusive;
                    return Pop::Item(lane, item);
                }
            }
            if st.closed {
                return Pop::Closed;
            }
            if self.ready.wait_until(&mut st, deadline).timed_out() {
                return Pop::Empty;
            }
        }
    }

    /// Ends the work on `lane`'s last item: the lane's next item can be
    /// handed out (exclusive lanes; a no-op otherwise).
    pub fn release(&self, lane: usize) {
        let mut st = self.state.lock();
        if let Some(l) = st.leased.get_mut(lane)
            && std::mem::take(l)
        {
            drop(st);
            self.ready.notify_all();
        }
    }

    /// A new lane for a producer that joins while consumers run: a closed lane
    /// nobody works on any more is reused, else one is added. Returns its index.
    pub fn open_lane(&self) -> usize {
        let mut st = self.state.lock();
        let reusable = (0..st.lanes.len()).find(|&i| !st.open[i] && !st.leased[i]);
        match reusable {
            Some(i) => {
                st.open[i] = true;
                i
            }
            None => {
                st.lanes.push(VecDeque::with_capacity(self.cap));
                st.leased.push(false);
                st.open.push(true);
                st.lanes.len() - 1
            }
        }
    }

    /// Ends `lane` (its producer left): what waits there is dropped and returned,
    /// further pushes to it are refused until [`Lanes::open_lane`] hands it out again.
    pub fn close_lane(&self, lane: usize) -> Vec<T> {
        let mut st = self.state.lock();
        if let Some(o) = st.open.get_mut(lane) {
            *o = false;
        }
        st.lanes
            .get_mut(lane)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Items waiting in `lane`.
    pub fn depth(&self, lane: usize) -> usize {
        self.state.lock().lanes.get(lane).map_or(0, VecDeque::len)
    }

    /// The per-lane bound.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Refuses further pushes and wakes every waiting consumer.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests run on plain threads")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn drops_oldest_when_full() {
        let q = Lanes::new(1, 2);
        assert_eq!(q.push(0, 1), None);
        assert_eq!(q.push(0, 2), None);
        assert_eq!(q.push(0, 3), Some(1));
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 2));
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 3));
        assert_eq!(q.pop(Duration::from_millis(1)), Pop::Empty);
    }

    #[test]
    fn lanes_open_and_close_while_consumers_run() {
        let q = Lanes::exclusive(0, 2);
        let a = q.open_lane();
        let b = q.open_lane();
        assert_eq!((a, b), (0, 1));
        assert_eq!(q.push(a, 1), None);
        assert_eq!(q.push(b, 2), None);
        // A closed lane drops what waits and refuses pushes.
        assert_eq!(q.close_lane(b), vec![2]);
        assert_eq!(q.push(b, 3), Some(3));
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(a, 1));
        assert_eq!(q.pop(Duration::ZERO), Pop::Empty);
        // A closed lane still leased (its last item in work) is not reused.
        assert_eq!(q.push(a, 4), None);
        assert_eq!(q.pop(Duration::ZERO), Pop::Empty, "lane a is leased");
        q.release(a);
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(a, 4));
        q.close_lane(a);
        assert_eq!(q.open_lane(), b, "the free closed lane is reused");
        assert_eq!(q.open_lane(), 2, "lane a is still leased: a new lane");
        q.release(a);
        assert_eq!(q.open_lane(), a);
    }

    #[test]
    fn round_robin_across_lanes() {
        let q = Lanes::new(3, 4);
        for i in 0..3 {
            q.push(0, ("a", i));
        }
        q.push(2, ("c", 0));
        let order: Vec<_> = (0..4)
            .map(|_| match q.pop(Duration::ZERO) {
                Pop::Item(_, v) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        // Lane 2 is served before lane 0's backlog is drained.
        assert_eq!(order[1], ("c", 0));
    }

    #[test]
    fn replace_waiting_only_touches_an_occupied_lane() {
        let q = Lanes::new(2, 2);
        assert_eq!(q.replace_waiting(0, || 1), None);
        assert_eq!(q.depth(0), 0);
        q.push(0, 1);
        q.push(0, 2);
        assert_eq!(q.replace_waiting(0, || 3), Some(2));
        assert_eq!(q.depth(0), 2);
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 1));
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 3));
        assert_eq!(q.replace_waiting(5, || 4), None);
    }

    #[test]
    fn exclusive_lanes_hand_out_one_item_per_lane_at_a_time() {
        let q = Lanes::exclusive(2, 2);
        q.push(0, 1);
        q.push(0, 2);
        q.push(1, 3);
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 1));
        // Lane 0's next item waits for the release; lane 1 is served.
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(1, 3));
        assert_eq!(q.pop(Duration::from_millis(1)), Pop::Empty);
        q.release(0);
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 2));
        // Plain lanes ignore releases.
        let p = Lanes::new(1, 2);
        p.push(0, 1);
        p.push(0, 2);
        assert_eq!(p.pop(Duration::ZERO), Pop::Item(0, 1));
        assert_eq!(p.pop(Duration::ZERO), Pop::Item(0, 2));
    }

    #[test]
    fn a_release_wakes_a_waiting_consumer() {
        let q = std::sync::Arc::new(Lanes::exclusive(1, 2));
        q.push(0, 1);
        q.push(0, 2);
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(0, 1));
        let q2 = std::sync::Arc::clone(&q);
        let t = std::thread::spawn(move || q2.pop(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        q.release(0);
        assert_eq!(t.join().unwrap(), Pop::Item(0, 2));
    }

    #[test]
    fn close_wakes_and_refuses() {
        let q = std::sync::Arc::new(Lanes::<u32>::new(1, 1));
        let q2 = std::sync::Arc::clone(&q);
        let t = std::thread::spawn(move || q2.pop(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(t.join().unwrap(), Pop::Closed);
        assert_eq!(q.push(0, 7), Some(7));
    }

    proptest! {
        /// Whatever the interleaving of pushes and pops, no lane ever holds
        /// more than its bound, every pushed item is either popped or
        /// reported dropped exactly once, and the survivors are the newest.
        #[test]
        fn never_exceeds_bound_and_loses_nothing_silently(
            ops in proptest::collection::vec((0usize..3, any::<bool>()), 0..200),
            cap in 1usize..5,
        ) {
            let q = Lanes::new(3, cap);
            let mut pushed = 0u32;
            let mut seen = Vec::new();
            for (lane, is_push) in ops {
                if is_push {
                    if let Some(d) = q.push(lane, pushed) { seen.push(d); }
                    pushed += 1;
                } else if let Pop::Item(_, v) = q.pop(Duration::ZERO) {
                    seen.push(v);
                }
                for l in 0..3 { prop_assert!(q.depth(l) <= cap); }
            }
            while let Pop::Item(_, v) = q.pop(Duration::ZERO) { seen.push(v); }
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..pushed).collect::<Vec<_>>());
        }
    }
}
