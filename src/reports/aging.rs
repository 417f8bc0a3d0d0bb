//! Aging buckets: pure rules, no I/O. The SQL of [`super::aging_repo`] is generated from the
//! same table ([`sql_case`]) so the page, the CSV and these tests can never disagree on where
//! a boundary falls.

use std::fmt;

/// One aging bucket, by days past due as of the report date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Current,
    D1To30,
    D31To60,
    D61To90,
    D91To120,
    Over120,
}

/// Upper bound (inclusive) of days past due for each bucket; the last has none.
const UPPER: [(Bucket, Option<i64>); 6] = [
    (Bucket::Current, Some(0)),
    (Bucket::D1To30, Some(30)),
    (Bucket::D31To60, Some(60)),
    (Bucket::D61To90, Some(90)),
    (Bucket::D91To120, Some(120)),
    (Bucket::Over120, None),
];

impl Bucket {
    pub const ALL: [Bucket; 6] = [
        Bucket::Current,
        Bucket::D1To30,
        Bucket::D31To60,
        Bucket::D61To90,
        Bucket::D91To120,
        Bucket::Over120,
    ];

    /// Due today or later (days ≤ 0) is current; every later day lands in exactly one bucket.
    pub fn for_days(days_past_due: i64) -> Bucket {
        UPPER
            .iter()
            .find(|(_, upper)| upper.is_none_or(|u| days_past_due <= u))
            .map_or(Bucket::Over120, |(b, _)| *b)
    }

    /// Position in [`Bucket::ALL`]; also the value the SQL `CASE` yields.
    pub fn index(self) -> usize {
        match self {
            Bucket::Current => 0,
            Bucket::D1To30 => 1,
            Bucket::D31To60 => 2,
            Bucket::D61To90 => 3,
            Bucket::D91To120 => 4,
            Bucket::Over120 => 5,
        }
    }

    pub fn from_index(i: usize) -> Option<Bucket> {
        Bucket::ALL.get(i).copied()
    }

    /// Stable code used in query strings and CSV headers.
    pub fn code(self) -> &'static str {
        match self {
            Bucket::Current => "current",
            Bucket::D1To30 => "1-30",
            Bucket::D31To60 => "31-60",
            Bucket::D61To90 => "61-90",
            Bucket::D91To120 => "91-120",
            Bucket::Over120 => "120+",
        }
    }

    pub fn parse(code: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.code() == code.trim())
    }

    pub fn label(self) -> &'static str {
        match self {
            Bucket::Current => "Current",
            Bucket::D1To30 => "1–30",
            Bucket::D31To60 => "31–60",
            Bucket::D61To90 => "61–90",
            Bucket::D91To120 => "91–120",
            Bucket::Over120 => "120+",
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// `CASE WHEN {days} <= 0 THEN 0 WHEN {days} <= 30 THEN 1 ... ELSE 5 END`, built from the
/// constant table above (never from input), so it is safe to splice into SQL text.
pub fn sql_case(days_expr: &str) -> String {
    let mut s = String::from("CASE");
    for (b, upper) in UPPER {
        if let Some(u) = upper {
            s.push_str(&format!(" WHEN {days_expr} <= {u} THEN {}", b.index()));
        }
    }
    s.push_str(&format!(" ELSE {} END", Bucket::Over120.index()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_fall_on_the_documented_days() {
        let cases = [
            (-5, Bucket::Current),
            (0, Bucket::Current),
            (1, Bucket::D1To30),
            (30, Bucket::D1To30),
            (31, Bucket::D31To60),
            (60, Bucket::D31To60),
            (61, Bucket::D61To90),
            (90, Bucket::D61To90),
            (91, Bucket::D91To120),
            (120, Bucket::D91To120),
            (121, Bucket::Over120),
            (10_000, Bucket::Over120),
        ];
        for (days, want) in cases {
            assert_eq!(Bucket::for_days(days), want, "{days} days past due");
        }
    }

    #[test]
    fn codes_and_indexes_round_trip() {
        for b in Bucket::ALL {
            assert_eq!(Bucket::parse(b.code()), Some(b));
            assert_eq!(Bucket::from_index(b.index()), Some(b));
        }
        assert_eq!(Bucket::parse("bogus"), None);
        assert_eq!(Bucket::from_index(6), None);
    }

    #[test]
    fn the_sql_case_matches_the_rust_rule() {
        assert_eq!(
            sql_case("d"),
            "CASE WHEN d <= 0 THEN 0 WHEN d <= 30 THEN 1 WHEN d <= 60 THEN 2 \
             WHEN d <= 90 THEN 3 WHEN d <= 120 THEN 4 ELSE 5 END"
        );
    }
}
