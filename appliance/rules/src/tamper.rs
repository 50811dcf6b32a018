//! The camera tamper check: is a camera that delivers frames still watching?
//!
//! Per detected frame the pipeline reduces the pixels the detector already
//! decoded to a small luma picture ([`Luma::from_rgb`], 160x90, one pass over
//! the frame) and steps the camera's [`TamperCheck`] with it, the frame's
//! capture time and the time. The check measures, on that picture and its
//! 80x45 half:
//!
//! - **frozen**: the content does not change (mean absolute luma change
//!   between consecutive frames at most `frozen_max_change`; a live sensor's
//!   noise alone changes it), or the capture time does not advance; never
//!   for a uniform picture, which is covered or blinded;
//! - **covered / blinded**: the picture is nearly uniform (standard deviation of
//!   the 80x45 luma below `uniform_max_std`); `blinded` when it is also bright
//!   (mean at least `blinded_min_luma`), `covered` otherwise;
//! - **defocused**: the sharpness (mean squared Laplacian over the variance of
//!   the 160x90 luma, so lighting does not change it) is below
//!   `defocus_max_ratio` times the camera's own baseline;
//! - **moved**: the normalised cross-correlation of the 80x45 luma's edges
//!   (the picture minus its 3x3 average) with the reference picture's is below
//!   `moved_min_correlation` (the edges of the static background are where
//!   they were, or not).
//!
//! The baseline sharpness and the reference picture are learnt: the average
//! of the first `learn` of usable frames (neither uniform nor frozen; people
//! walking by average out of the reference), then followed slowly (time
//! constants of 10 minutes and an hour) while the camera is found sharp and
//! in place (and not frozen), so daylight does not drift into an alarm and a
//! sudden change is never learnt. Until learnt, `defocused` and `moved` are not
//! evaluated; they are not for a uniform picture either.
//!
//! Hysteresis: a reason is reported once it has held for its `*_after`
//! duration and stops being reported on the first frame it does not hold.
//! Pure like the rule engine: time is an input, nothing can fail.

use std::time::{Duration, SystemTime};

use safe_yolo_domain::RgbFrame;
use safe_yolo_domain::alarm::{TamperReason, TamperSet};

/// Width of the luma picture the check works on.
pub const LUMA_W: usize = 160;
/// Height of the luma picture the check works on.
pub const LUMA_H: usize = 90;
const THUMB_W: usize = LUMA_W / 2;
const THUMB_H: usize = LUMA_H / 2;
/// Time constant of the sharpness baseline once learnt.
const BASELINE_TAU: Duration = Duration::from_secs(600);
/// Time constant of the reference picture once learnt.
const REFERENCE_TAU: Duration = Duration::from_secs(3600);

/// A camera's tamper thresholds (validated by the configuration: every ratio in
/// its range, every duration finite). [`TamperConfig::default`] holds the
/// documented defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TamperConfig {
    /// Whether the check runs at all.
    pub enabled: bool,
    /// Usable frames over this long make the baseline and the reference.
    pub learn: Duration,
    /// How long `frozen` must hold.
    pub frozen_after: Duration,
    /// Largest mean absolute luma change (0-255 levels) between consecutive
    /// frames that counts as no change.
    pub frozen_max_change: f32,
    /// How long `covered` or `blinded` must hold.
    pub covered_after: Duration,
    /// Largest luma standard deviation of a nearly uniform picture.
    pub uniform_max_std: f32,
    /// Least mean luma of a uniform picture that is `blinded` (else `covered`).
    pub blinded_min_luma: f32,
    /// How long `defocused` must hold.
    pub defocused_after: Duration,
    /// Largest sharpness, as a fraction of the baseline, that is `defocused`.
    pub defocus_max_ratio: f32,
    /// How long `moved` must hold.
    pub moved_after: Duration,
    /// Least correlation of the picture's edges with the reference's of a
    /// camera in place.
    pub moved_min_correlation: f32,
}

impl Default for TamperConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            learn: Duration::from_secs(10),
            frozen_after: Duration::from_secs(10),
            frozen_max_change: 0.1,
            covered_after: Duration::from_secs(5),
            uniform_max_std: 8.0,
            blinded_min_luma: 200.0,
            defocused_after: Duration::from_secs(20),
            defocus_max_ratio: 0.5,
            moved_after: Duration::from_secs(20),
            moved_min_correlation: 0.3,
        }
    }
}

impl TamperConfig {
    fn after(&self, r: TamperReason) -> Duration {
        match r {
            TamperReason::Frozen => self.frozen_after,
            TamperReason::Covered | TamperReason::Blinded => self.covered_after,
            TamperReason::Defocused => self.defocused_after,
            TamperReason::Moved => self.moved_after,
        }
    }
}

/// A frame reduced to a 160x90 luma picture (levels 0-255, BT.601 weights,
/// each cell the average of its block of the frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Luma {
    px: Vec<f32>,
}

impl Luma {
    /// Reduces `frame` in one pass over its pixels: every pixel of a frame up
    /// to four times the picture's size, every `s`-th of every `s`-th row of
    /// a larger one (at least 2x2 samples a cell), so the cost stays about
    /// that of a 640x360 frame whatever the decode size. A frame smaller than
    /// the picture repeats its pixels.
    pub fn from_rgb(frame: &RgbFrame) -> Self {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let stride = ((w / LUMA_W).min(h / LUMA_H) / 2).max(1);
        let data = frame.data();
        let cols: Vec<(usize, usize)> = (0..LUMA_W).map(|c| span(c, LUMA_W, w)).collect();
        let mut px = vec![0.0f32; LUMA_W * LUMA_H];
        let mut row_sum = vec![0u32; LUMA_W];
        for (cy, out) in px.chunks_exact_mut(LUMA_W).enumerate() {
            let (y0, y1) = span(cy, LUMA_H, h);
            row_sum.iter_mut().for_each(|s| *s = 0);
            for y in (y0..y1).step_by(stride) {
                let row = &data[y * w * 3..(y + 1) * w * 3];
                for (sum, &(x0, x1)) in row_sum.iter_mut().zip(&cols) {
                    for p in row[x0 * 3..x1 * 3].chunks_exact(3).step_by(stride) {
                        *sum += 77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]);
                    }
                }
            }
            let rows = (y1 - y0).div_ceil(stride);
            for ((o, &s), &(x0, x1)) in out.iter_mut().zip(&row_sum).zip(&cols) {
                let n = (x1 - x0).div_ceil(stride) * rows * 256;
                *o = s as f32 / n as f32;
            }
        }
        Self { px }
    }

    /// A picture from its 160x90 luma values, row by row; `None` for another size.
    pub fn from_levels(px: Vec<f32>) -> Option<Self> {
        (px.len() == LUMA_W * LUMA_H).then_some(Self { px })
    }

    /// The 80x45 half: each value the average of a 2x2 block.
    fn thumb(&self) -> Vec<f32> {
        let mut t = Vec::with_capacity(THUMB_W * THUMB_H);
        for y in 0..THUMB_H {
            let r0 = &self.px[2 * y * LUMA_W..(2 * y + 1) * LUMA_W];
            let r1 = &self.px[(2 * y + 1) * LUMA_W..(2 * y + 2) * LUMA_W];
            for x in 0..THUMB_W {
                t.push((r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]) * 0.25);
            }
        }
        t
    }

    /// Mean squared 4-neighbour Laplacian over the variance: high for a sharp
    /// picture, whatever its brightness and contrast.
    fn sharpness(&self) -> f32 {
        let (_, var) = mean_var(&self.px);
        let mut sum = 0.0f64;
        for y in 1..LUMA_H - 1 {
            for x in 1..LUMA_W - 1 {
                let i = y * LUMA_W + x;
                let lap = 4.0 * self.px[i]
                    - self.px[i - 1]
                    - self.px[i + 1]
                    - self.px[i - LUMA_W]
                    - self.px[i + LUMA_W];
                sum += f64::from(lap * lap);
            }
        }
        let n = ((LUMA_W - 2) * (LUMA_H - 2)) as f64;
        (sum / n / (f64::from(var) + 1.0)) as f32
    }

    /// Mean absolute difference to `other`.
    fn change(&self, other: &Luma) -> f32 {
        let s: f32 = self
            .px
            .iter()
            .zip(&other.px)
            .map(|(a, b)| (a - b).abs())
            .sum();
        s / self.px.len() as f32
    }
}

/// The source range of output cell `i` of `n` over `len` pixels (never empty).
fn span(i: usize, n: usize, len: usize) -> (usize, usize) {
    let a = (i * len / n).min(len - 1);
    let b = ((i + 1) * len / n).clamp(a + 1, len);
    (a, b)
}

fn mean_var(v: &[f32]) -> (f32, f32) {
    let n = v.len() as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    (mean, var)
}

/// The 80x45 picture minus its 3x3 average: its edges, which a moved view
/// displaces (the whole picture's brightness pattern correlates with a shifted
/// copy of itself; its edges do not).
fn high_pass(t: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity((THUMB_W - 2) * (THUMB_H - 2));
    for y in 1..THUMB_H - 1 {
        for x in 1..THUMB_W - 1 {
            let mut sum = 0.0;
            for yy in y - 1..=y + 1 {
                sum += t[yy * THUMB_W + x - 1] + t[yy * THUMB_W + x] + t[yy * THUMB_W + x + 1];
            }
            out.push(t[y * THUMB_W + x] - sum / 9.0);
        }
    }
    out
}

/// Normalised cross-correlation of two pictures of the same size (-1..=1; 0
/// when either is flat).
fn ncc(a: &[f32], b: &[f32]) -> f32 {
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let denom = (va * vb).sqrt() * a.len() as f32;
    if denom <= f32::EPSILON {
        return 0.0;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f32>()
        / denom
}

/// What the check measured on one frame (for logs, tests and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TamperMeasures {
    /// Mean luma of the 80x45 picture.
    pub mean: f32,
    /// Its standard deviation.
    pub std: f32,
    /// Mean absolute luma change since the previous frame (`None` on the first).
    pub change: Option<f32>,
    /// Sharpness over the learnt baseline (`None` until learnt).
    pub sharpness_ratio: Option<f32>,
    /// Correlation of the edges with the reference picture's (`None` until learnt).
    pub correlation: Option<f32>,
    /// The reasons holding on this frame, before their durations.
    pub holding: TamperSet,
}

/// Learning the baseline and the reference.
#[derive(Debug, Clone, PartialEq)]
enum Learnt {
    /// Summing usable frames since `since`.
    Learning {
        since: Option<Duration>,
        thumb: Vec<f32>,
        sharpness: f32,
        frames: u32,
    },
    /// Learnt.
    Done { reference: Vec<f32>, sharpness: f32 },
}

impl Learnt {
    /// Nothing summed yet.
    fn learning() -> Self {
        Self::Learning {
            since: None,
            thumb: vec![0.0; THUMB_W * THUMB_H],
            sharpness: 0.0,
            frames: 0,
        }
    }
}

/// One camera's tamper state: step it with every detected frame.
#[derive(Debug, Clone, PartialEq)]
pub struct TamperCheck {
    config: TamperConfig,
    previous: Option<(Luma, SystemTime)>,
    learnt: Learnt,
    /// When each reason started to hold, by its order in the vocabulary.
    since: [Option<Duration>; 5],
    active: TamperSet,
    last_step: Option<Duration>,
}

impl TamperCheck {
    /// A check with nothing learnt yet.
    pub fn new(config: TamperConfig) -> Self {
        Self {
            config,
            previous: None,
            learnt: Learnt::learning(),
            since: [None; 5],
            active: TamperSet::EMPTY,
            last_step: None,
        }
    }

    /// Forgets the learnt sharpness baseline and reference picture and learns
    /// them again from the next `learn` of usable frames: the view was changed
    /// on purpose (a camera re-aimed by its installer, who then redraws the
    /// zones), which the check itself never learns. `defocused` and `moved`,
    /// judged against what was learnt, clear at once; `frozen`, `covered` and
    /// `blinded` need nothing learnt and keep their timers.
    pub fn relearn(&mut self) {
        self.learnt = Learnt::learning();
        let mut active = TamperSet::EMPTY;
        for (i, (_, r)) in <TamperReason as safe_yolo_domain::Named>::NAMED
            .iter()
            .enumerate()
        {
            if matches!(r, TamperReason::Defocused | TamperReason::Moved) {
                self.since[i] = None;
            } else if self.active.contains(*r) {
                active = active.with(*r);
            }
        }
        self.active = active;
    }

    /// The reasons reported now.
    pub fn reasons(&self) -> TamperSet {
        self.active
    }

    /// Steps the check with a frame captured at `captured_at`, at monotonic
    /// time `now`; returns the reasons reported and what was measured.
    pub fn step(
        &mut self,
        luma: Luma,
        captured_at: SystemTime,
        now: Duration,
    ) -> (TamperSet, TamperMeasures) {
        let dt = self
            .last_step
            .map_or(Duration::ZERO, |t| now.saturating_sub(t));
        self.last_step = Some(now);
        if !self.config.enabled {
            return (TamperSet::EMPTY, TamperMeasures::default());
        }
        let c = self.config;
        let thumb = luma.thumb();
        let (mean, var) = mean_var(&thumb);
        let std = var.sqrt();
        let mut m = TamperMeasures {
            mean,
            std,
            ..TamperMeasures::default()
        };
        let mut holding = TamperSet::EMPTY;
        let uniform = std < c.uniform_max_std;
        if uniform {
            holding = holding.with(if mean >= c.blinded_min_luma {
                TamperReason::Blinded
            } else {
                TamperReason::Covered
            });
        }
        if let Some((prev, prev_at)) = &self.previous {
            let change = luma.change(prev);
            m.change = Some(change);
            // A uniform picture cannot show change: it is covered or
            // blinded, the more specific reason.
            if !uniform && (change <= c.frozen_max_change || captured_at <= *prev_at) {
                holding = holding.with(TamperReason::Frozen);
            }
        }
        // A uniform picture says nothing of focus or aim; a frozen one still
        // does (a still scene blurred by a defocus changes little), but
        // neither is learnt.
        if !uniform {
            let sharp = luma.sharpness();
            let mut learnt = None;
            match &mut self.learnt {
                Learnt::Learning { .. } if !holding.is_empty() => {}
                Learnt::Learning {
                    since,
                    thumb: sum,
                    sharpness,
                    frames,
                } => {
                    let start = *since.get_or_insert(now);
                    sum.iter_mut().zip(&thumb).for_each(|(s, t)| *s += t);
                    *sharpness += sharp;
                    *frames += 1;
                    if now.saturating_sub(start) >= c.learn {
                        let n = *frames as f32;
                        let reference = sum.iter().map(|s| s / n).collect();
                        learnt = Some(Learnt::Done {
                            reference,
                            sharpness: *sharpness / n,
                        });
                    }
                }
                Learnt::Done {
                    reference,
                    sharpness,
                } => {
                    let ratio = sharp / sharpness.max(f32::EPSILON);
                    let corr = ncc(&high_pass(&thumb), &high_pass(reference));
                    m.sharpness_ratio = Some(ratio);
                    m.correlation = Some(corr);
                    let defocused = ratio <= c.defocus_max_ratio;
                    let moved = corr < c.moved_min_correlation;
                    let still = holding.contains(TamperReason::Frozen);
                    if defocused {
                        holding = holding.with(TamperReason::Defocused);
                    } else if !still {
                        let a = follow(dt, BASELINE_TAU);
                        *sharpness += a * (sharp - *sharpness);
                    }
                    if moved {
                        holding = holding.with(TamperReason::Moved);
                    } else if !defocused && !still {
                        let a = follow(dt, REFERENCE_TAU);
                        reference
                            .iter_mut()
                            .zip(&thumb)
                            .for_each(|(r, t)| *r += a * (t - *r));
                    }
                }
            }
            if let Some(l) = learnt {
                self.learnt = l;
            }
        }
        m.holding = holding;
        self.previous = Some((luma, captured_at));
        let mut active = TamperSet::EMPTY;
        for (i, (_, r)) in <TamperReason as safe_yolo_domain::Named>::NAMED
            .iter()
            .enumerate()
        {
            if !holding.contains(*r) {
                self.since[i] = None;
                continue;
            }
            let start = *self.since[i].get_or_insert(now);
            if now.saturating_sub(start) >= c.after(*r) {
                active = active.with(*r);
            }
        }
        self.active = active;
        (active, m)
    }
}

/// The weight of a new value in an average that follows with time constant `tau`.
fn follow(dt: Duration, tau: Duration) -> f32 {
    (dt.as_secs_f32() / tau.as_secs_f32()).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> RgbFrame {
        let mut d = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = f(x, y);
                d.extend_from_slice(&[v, v, v]);
            }
        }
        RgbFrame::new(w, h, d).unwrap()
    }

    #[test]
    fn luma_averages_blocks_and_repeats_small_frames() {
        let l = Luma::from_rgb(&frame(320, 180, |x, _| if x % 2 == 0 { 0 } else { 200 }));
        assert!(
            l.px.iter().all(|v| (v - 100.0).abs() < 1.0),
            "{:?}",
            &l.px[..4]
        );
        let small = Luma::from_rgb(&frame(40, 30, |x, y| u8::try_from(x + y).unwrap()));
        assert_eq!(small.px.len(), LUMA_W * LUMA_H);
        assert!((small.px[0] - 0.0).abs() < 1.0);
        assert!((small.px[LUMA_W * LUMA_H - 1] - 67.0).abs() < 1.5);
    }

    #[test]
    fn correlation_and_sharpness_measure_what_they_say() {
        let a: Vec<f32> = (0..100).map(|i| (i % 7) as f32).collect();
        let b: Vec<f32> = a.iter().map(|v| 3.0 * v + 10.0).collect();
        assert!((ncc(&a, &b) - 1.0).abs() < 1e-4);
        assert_eq!(ncc(&a, &[5.0; 100]), 0.0);
        let sharp = Luma::from_rgb(&frame(160, 90, |x, y| {
            if (x / 4 + y / 4) % 2 == 0 { 30 } else { 220 }
        }));
        let soft = Luma::from_rgb(&frame(160, 90, |x, _| u8::try_from(x).unwrap()));
        assert!(sharp.sharpness() > 10.0 * soft.sharpness());
    }

    /// Each reason is reported once it held for its duration, and not after it
    /// stops holding; a disabled check reports nothing.
    #[test]
    fn reasons_need_their_duration_and_clear_at_once() {
        let c = TamperConfig::default();
        let mut check = TamperCheck::new(c);
        let t0 = SystemTime::UNIX_EPOCH;
        let black = || Luma::from_levels(vec![3.0; LUMA_W * LUMA_H]).unwrap();
        let mut first = None;
        for i in 0..100u32 {
            let now = Duration::from_millis(100 * u64::from(i));
            let (r, _) = check.step(black(), t0 + now, now);
            if r.contains(TamperReason::Covered) && first.is_none() {
                first = Some(now);
            }
        }
        assert_eq!(first, Some(c.covered_after));
        assert_eq!(
            check.reasons(),
            TamperSet::EMPTY.with(TamperReason::Covered),
            "a uniform picture is covered, not frozen"
        );
        let noise = Luma::from_levels(
            (0..LUMA_W * LUMA_H)
                .map(|i| ((i * 37) % 251) as f32)
                .collect(),
        )
        .unwrap();
        let (r, _) = check.step(noise, t0 + Duration::from_secs(11), Duration::from_secs(11));
        assert_eq!(r, TamperSet::EMPTY);
        // A picture that changes but whose capture time stands still (a
        // driver re-sending its buffer with noise) is frozen too.
        let mut stuck = TamperCheck::new(c);
        let mut first = None;
        for i in 0..200u32 {
            let now = Duration::from_millis(100 * u64::from(i));
            let shift = i as usize % 7;
            let px = (0..LUMA_W * LUMA_H)
                .map(|k| (((k + shift) * 37) % 251) as f32)
                .collect();
            let (r, _) = stuck.step(Luma::from_levels(px).unwrap(), t0, now);
            if r.contains(TamperReason::Frozen) && first.is_none() {
                first = Some(now);
            }
        }
        // The first frame has nothing to compare with.
        assert_eq!(first, Some(c.frozen_after + Duration::from_millis(100)));
        let mut off = TamperCheck::new(TamperConfig {
            enabled: false,
            ..c
        });
        for i in 0..100u64 {
            let now = Duration::from_secs(i);
            assert_eq!(off.step(black(), t0, now).0, TamperSet::EMPTY);
        }
    }

    #[test]
    fn relearn_takes_the_new_view_as_the_reference() {
        let c = TamperConfig::default();
        let t0 = SystemTime::UNIX_EPOCH;
        // A textured view (pseudo-random edges) whose brightness flickers by
        // one level, so it is never frozen; two of them share no edges.
        let view = |mul: usize, modulus: usize, i: u32| {
            let px = (0..LUMA_W * LUMA_H)
                .map(|k| ((k * mul) % modulus) as f32 + (i % 2) as f32)
                .collect();
            Luma::from_levels(px).unwrap()
        };
        let (a, b) = ((37, 251), (53, 241));
        let mut check = TamperCheck::new(c);
        let mut i = 0u32;
        let mut step = |check: &mut TamperCheck, (mul, modulus): (usize, usize), frames: u32| {
            let mut r = TamperSet::EMPTY;
            for _ in 0..frames {
                let now = Duration::from_millis(100 * u64::from(i));
                r = check.step(view(mul, modulus, i), t0 + now, now).0;
                i += 1;
            }
            r
        };
        assert_eq!(step(&mut check, a, 150), TamperSet::EMPTY, "view a learnt");
        let r = step(&mut check, b, 250);
        assert!(r.contains(TamperReason::Moved), "view b is moved: {r:?}");
        check.relearn();
        assert_eq!(check.reasons(), TamperSet::EMPTY, "moved clears at once");
        assert_eq!(step(&mut check, b, 300), TamperSet::EMPTY, "view b learnt");
        let r = step(&mut check, a, 250);
        assert!(
            r.contains(TamperReason::Moved),
            "view a is now the moved one: {r:?}"
        );
    }
}
