//! Active hours of a rule: a set of weekdays and a window of minutes in the
//! day, in local time supplied by the caller (this crate never reads a clock).

use std::fmt;

/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// Why a schedule was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule names no weekday, so the rule would never be active.
    #[error("names no weekday; the rule would never be active")]
    NoDays,
    /// A start minute outside `0..1440`.
    #[error("starts at minute {minute}; the start must be in 0..1440")]
    BadStart {
        /// The rejected minute of the day.
        minute: u16,
    },
    /// An end minute outside `0..=1440`.
    #[error("ends at minute {minute}; the end must be in 0..=1440")]
    BadEnd {
        /// The rejected minute of the day.
        minute: u16,
    },
}

pub use safe_yolo_domain::Weekday;

/// A set of weekdays.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    /// No day at all.
    pub const EMPTY: WeekdaySet = WeekdaySet(0);
    /// Every day of the week.
    pub const EVERY_DAY: WeekdaySet = WeekdaySet(0x7f);
    /// Monday to Friday.
    pub const WORKDAYS: WeekdaySet = WeekdaySet(0x1f);

    /// The set holding exactly `days`.
    pub fn of(days: &[Weekday]) -> Self {
        days.iter().fold(Self::EMPTY, |s, &d| s.with(d))
    }

    /// This set plus `day`.
    #[must_use]
    pub fn with(self, day: Weekday) -> Self {
        Self(self.0 | (1 << day.index()))
    }

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.index()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for WeekdaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(Weekday::ALL.iter().filter(|d| self.contains(**d)))
            .finish()
    }
}

/// Local wall-clock time as the rules see it: the weekday and the minute of
/// the day (`0..1440`), computed by the caller from its time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Day of the week.
    pub weekday: Weekday,
    /// Minutes since local midnight; values of 1440 and above are read as 1439.
    pub minute_of_day: u16,
}

/// When a rule is active: on `days`, from minute `from_min` (inclusive) to
/// `to_min` (exclusive). A window with `to_min < from_min` wraps past midnight
/// and belongs to the day it starts on (a Friday 22:00-06:00 shift covers
/// Saturday 03:00). `from_min == to_min` means the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    days: WeekdaySet,
    from_min: u16,
    to_min: u16,
}

impl Schedule {
    /// Validates a schedule.
    pub fn new(days: WeekdaySet, from_min: u16, to_min: u16) -> Result<Self, ScheduleError> {
        if days.is_empty() {
            return Err(ScheduleError::NoDays);
        }
        if from_min >= MINUTES_PER_DAY {
            return Err(ScheduleError::BadStart { minute: from_min });
        }
        if to_min > MINUTES_PER_DAY {
            return Err(ScheduleError::BadEnd { minute: to_min });
        }
        Ok(Self {
            days,
            from_min,
            to_min,
        })
    }

    /// The days the window starts on.
    pub fn days(&self) -> WeekdaySet {
        self.days
    }

    /// First active minute of the day.
    pub fn from_min(&self) -> u16 {
        self.from_min
    }

    /// First inactive minute after the window.
    pub fn to_min(&self) -> u16 {
        self.to_min
    }

    /// Whether the schedule is active at `t`.
    pub fn is_active(&self, t: LocalTime) -> bool {
        let m = t.minute_of_day.min(MINUTES_PER_DAY - 1);
        let (from, to) = (self.from_min, self.to_min);
        if from == to {
            self.days.contains(t.weekday)
        } else if from < to {
            self.days.contains(t.weekday) && m >= from && m < to
        } else {
            // Wraps midnight: the evening part belongs to today, the
            // early-morning part to yesterday's window.
            (m >= from && self.days.contains(t.weekday))
                || (m < to && self.days.contains(t.weekday.pred()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: Weekday, h: u16, m: u16) -> LocalTime {
        LocalTime {
            weekday,
            minute_of_day: h * 60 + m,
        }
    }

    #[test]
    fn validation_names_the_reason() {
        assert_eq!(
            Schedule::new(WeekdaySet::EMPTY, 0, 10),
            Err(ScheduleError::NoDays)
        );
        assert_eq!(
            Schedule::new(WeekdaySet::EVERY_DAY, 1440, 10),
            Err(ScheduleError::BadStart { minute: 1440 })
        );
        assert_eq!(
            Schedule::new(WeekdaySet::EVERY_DAY, 0, 1441),
            Err(ScheduleError::BadEnd { minute: 1441 })
        );
        assert!(Schedule::new(WeekdaySet::EVERY_DAY, 0, 1440).is_ok());
    }

    #[test]
    fn day_window_boundaries() {
        let s = Schedule::new(WeekdaySet::WORKDAYS, 8 * 60, 17 * 60).unwrap();
        assert!(!s.is_active(at(Weekday::Mon, 7, 59)));
        assert!(s.is_active(at(Weekday::Mon, 8, 0)));
        assert!(s.is_active(at(Weekday::Fri, 16, 59)));
        assert!(!s.is_active(at(Weekday::Fri, 17, 0)));
        assert!(!s.is_active(at(Weekday::Sat, 12, 0)));
    }

    #[test]
    fn night_window_wraps_midnight_and_belongs_to_its_start_day() {
        let s = Schedule::new(WeekdaySet::of(&[Weekday::Fri]), 22 * 60, 6 * 60).unwrap();
        assert!(s.is_active(at(Weekday::Fri, 22, 0)));
        assert!(s.is_active(at(Weekday::Sat, 3, 0)));
        assert!(!s.is_active(at(Weekday::Sat, 6, 0)));
        assert!(!s.is_active(at(Weekday::Sat, 22, 30)));
        assert!(!s.is_active(at(Weekday::Fri, 3, 0)));
    }

    #[test]
    fn equal_bounds_mean_the_whole_day() {
        let s = Schedule::new(WeekdaySet::of(&[Weekday::Sun]), 0, 0).unwrap();
        assert!(s.is_active(at(Weekday::Sun, 0, 0)));
        assert!(s.is_active(at(Weekday::Sun, 23, 59)));
        assert!(!s.is_active(at(Weekday::Mon, 0, 0)));
        assert_eq!(Weekday::Mon.pred(), Weekday::Sun);
    }
}
