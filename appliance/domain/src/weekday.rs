//! Days of the week, as schedules name them.

use crate::Named;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Days since Monday (Monday is 0, Sunday is 6).
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The day before.
    pub fn pred(self) -> Weekday {
        Weekday::ALL[(usize::from(self.index()) + 6) % 7]
    }
}

impl Named for Weekday {
    const WHAT: &'static str = "weekday";
    /// Every day with the name configuration files and the API use, Monday first.
    const NAMED: &'static [(&'static str, Self)] = &[
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];
}
crate::named_vocabulary!(Weekday);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_in_order_and_wrap() {
        for (i, d) in Weekday::ALL.iter().enumerate() {
            assert_eq!(usize::from(d.index()), i);
        }
        assert_eq!(Weekday::Mon.pred(), Weekday::Sun);
        assert_eq!(Weekday::Sun.pred(), Weekday::Sat);
        let names: Vec<_> = Weekday::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names, ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
        for (name, d) in Weekday::NAMED {
            assert_eq!(d.as_str(), *name);
        }
    }
}
