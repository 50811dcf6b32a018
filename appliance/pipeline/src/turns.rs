//! Which decoded frames a camera hands to the shared detector.
//!
//! A camera asks for a detection every `detect_every` frames. Two rules keep
//! a frame's wait for the detector short without lowering the detection rate:
//!
//! - **Staggered turns.** Camera `k` takes its first turn on frame
//!   `k mod detect_every`, so cameras started together (replays, genlocked
//!   cameras) do not all hand a frame to the detector on the same frame tick,
//!   where the last would wait for the others' inferences.
//! - **A waiting frame is replaced by a fresher one.** While a camera's frame
//!   still waits for a busy detector, each newer frame of that camera takes
//!   its place: the detector would spend the same time on either, and the
//!   newer one is closer to now. The next turn counts from the frame handed
//!   over last, so a camera that waited is not served twice in a row.
//!
//! When the detector is overloaded the cameras' detection rates drop evenly
//! (each waits its turn in the round-robin lanes) and no frame waits longer
//! than about one frame interval beyond the inference in progress.

use crate::queue::Lanes;

/// What happened to a frame offered to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Not this camera's turn, and none of its frames is waiting.
    Skipped,
    /// Queued for the detector on its turn.
    Queued,
    /// Took the place of this camera's frame that was still waiting.
    Replaced,
}

/// One camera's turns at the detector, counted in decoded frames.
#[derive(Debug)]
pub(crate) struct Turns {
    every: u64,
    /// Index of the frame that takes the next turn.
    next: u64,
    /// Index of the next decoded frame.
    n: u64,
}

impl Turns {
    /// Turns of the camera in detect lane `lane`, detecting every `every` frames.
    pub(crate) fn new(lane: usize, every: u32) -> Self {
        let every = u64::from(every.max(1));
        Self {
            every,
            next: u64::try_from(lane).unwrap_or(0) % every,
            n: 0,
        }
    }

    /// Offers the next decoded frame (built by `job` only when it is used)
    /// to `lane` of `lanes`.
    pub(crate) fn offer<T>(
        &mut self,
        lanes: &Lanes<T>,
        lane: usize,
        job: impl FnOnce() -> T,
    ) -> Offer {
        let n = self.n;
        self.n = self.n.wrapping_add(1);
        let outcome = if n >= self.next {
            // A full lane (cap 1) gives its waiting frame back: that counts
            // as a replacement too.
            match lanes.push(lane, job()) {
                None => Offer::Queued,
                Some(_) => Offer::Replaced,
            }
        } else {
            match lanes.replace_waiting(lane, job) {
                Some(_) => Offer::Replaced,
                None => return Offer::Skipped,
            }
        };
        self.next = n.saturating_add(self.every);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Pop;
    use std::time::Duration;

    /// Feeds `frames` frames to `turns`; the consumer pops after the frames
    /// listed in `pops`. Returns the frame indexes the consumer got.
    fn run(turns: &mut Turns, frames: u64, pops: &[u64]) -> Vec<u64> {
        let lanes = Lanes::new(1, 1);
        let mut got = Vec::new();
        for i in 0..frames {
            turns.offer(&lanes, 0, || i);
            if pops.contains(&i)
                && let Pop::Item(_, v) = lanes.pop(Duration::ZERO)
            {
                got.push(v);
            }
        }
        got
    }

    #[test]
    fn an_idle_detector_gets_every_nth_frame() {
        let mut t = Turns::new(0, 3);
        let all: Vec<u64> = (0..12).collect();
        assert_eq!(run(&mut t, 12, &all), vec![0, 3, 6, 9]);
    }

    #[test]
    fn lanes_start_on_staggered_frames() {
        let firsts: Vec<u64> = (0..5)
            .map(|lane| {
                let mut t = Turns::new(lane, 3);
                let all: Vec<u64> = (0..6).collect();
                run(&mut t, 6, &all)[0]
            })
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1]);
        // Every frame tick hands the detector at most ceil(5 / 3) frames.
        let mut per_tick = [0; 3];
        for f in firsts {
            per_tick[usize::try_from(f).unwrap_or(0)] += 1;
        }
        assert!(per_tick.iter().all(|&c| c <= 2), "{per_tick:?}");
    }

    #[test]
    fn a_waiting_frame_is_replaced_and_the_next_turn_counts_from_the_newest() {
        let mut t = Turns::new(0, 3);
        // Busy detector: it takes a frame only after frame 4, then after 12.
        let got = run(&mut t, 13, &[4, 12]);
        // Frame 0 waited and was replaced by 1..=4; frame 4 was handed over.
        // The next turn is frame 7, which waits and is replaced up to 12.
        assert_eq!(got, vec![4, 12]);
    }

    #[test]
    fn offers_report_what_happened() {
        let lanes = Lanes::new(1, 1);
        let mut t = Turns::new(0, 2);
        assert_eq!(t.offer(&lanes, 0, || 0), Offer::Queued);
        assert_eq!(t.offer(&lanes, 0, || 1), Offer::Replaced);
        assert!(matches!(lanes.pop(Duration::ZERO), Pop::Item(0, 1)));
        assert_eq!(t.offer(&lanes, 0, || 2), Offer::Skipped);
        assert_eq!(t.offer(&lanes, 0, || 3), Offer::Queued);
    }

    #[test]
    fn a_job_is_built_only_when_used() {
        let lanes: Lanes<u64> = Lanes::new(1, 1);
        let mut t = Turns::new(1, 4);
        let mut built = 0;
        for i in 0..8 {
            t.offer(&lanes, 0, || {
                built += 1;
                i
            });
            let _ = lanes.pop(Duration::ZERO);
        }
        assert_eq!(built, 2);
    }
}
