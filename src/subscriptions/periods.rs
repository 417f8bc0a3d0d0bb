//! Billing periods: half-open date ranges [start, end) and the schedule that cuts a subscription
//! into them.
//!
//! Rules: ranges are half-open, so consecutive periods share a boundary date and no day is billed
//! twice. Cycles renew on an anchor day clamped to short months, and every anchor is computed from
//! the first one (never from the previous), so 31 → Feb 28 → Mar 31 never drifts. A start off the
//! anchor gets a stub period prorated against the full cycle it falls in. Proration counts days and
//! multiplies before dividing. Nonsense input yields empty results, never a panic.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Half-open date range [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    /// `None` unless `start < end`.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Option<Self> {
        (start < end).then_some(Self { start, end })
    }

    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.start <= d && d < self.end
    }

    pub fn intersect(&self, other: &Period) -> Option<Period> {
        Period::new(self.start.max(other.start), self.end.min(other.end))
    }

    /// The last day inside the range (end − 1 day), for display.
    pub fn last_day(&self) -> NaiveDate {
        self.end.pred_opt().unwrap_or(self.start)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// Signed month arithmetic; `None` outside chrono's date range.
fn shift_months(from: NaiveDate, months: i64, anchor_day: u32) -> Option<NaiveDate> {
    let index = month_index(from).checked_add(months)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    let day = anchor_day.clamp(1, 31).min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Date `months` calendar months after the month of `from`, on `anchor_day` clamped to that
/// month's length (anchor 31 → Feb 28/29 → Mar 31). Saturates at `NaiveDate::MAX`.
pub fn add_months_on_day(from: NaiveDate, months: u32, anchor_day: u32) -> NaiveDate {
    shift_months(from, i64::from(months), anchor_day).unwrap_or(NaiveDate::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub start: NaiveDate,
    /// 1..=31, clamped to each month's length.
    pub anchor_day: u32,
    /// 1 monthly, 3 quarterly, 6 semi-annual, 12 annual, any N up to 36.
    pub interval_months: u32,
}

/// One billable period: `service` is what is billed; `nominal` is the full cycle it belongs to
/// (equal to `service` except for a first stub and a last cut-short period).
/// Proration fraction = service.days / nominal.days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingPeriod {
    pub service: Period,
    pub nominal: Period,
}

impl BillingPeriod {
    pub fn is_partial(&self) -> bool {
        self.service != self.nominal
    }
}

impl Schedule {
    /// Fields "anchor_day" (1..=31) and "interval_months" (1..=36).
    pub fn validate(&self) -> Result<(), Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        if !(1..=31).contains(&self.anchor_day) {
            errors.push((
                "anchor_day",
                "The billing day must be between 1 and 31.".to_string(),
            ));
        }
        if !(1..=36).contains(&self.interval_months) {
            errors.push((
                "interval_months",
                "The billing interval must be between 1 and 36 months.".to_string(),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The first anchor date on or after `start`; if `start` is on it there is no stub.
    pub fn first_anchor(&self) -> NaiveDate {
        let this_month = shift_months(self.start, 0, self.anchor_day).unwrap_or(self.start);
        if self.start <= this_month {
            this_month
        } else {
            add_months_on_day(self.start, 1, self.anchor_day)
        }
    }

    /// Anchor `cycle` cycles after `first` (negative = before).
    fn anchor(&self, first: NaiveDate, cycle: i64) -> Option<NaiveDate> {
        let months = cycle.checked_mul(i64::from(self.interval_months))?;
        shift_months(first, months, self.anchor_day)
    }

    /// Cycle `k` = [a_k, a_{k+1}) cut to the subscription's [start, end); cycle −1 is the stub.
    fn cycle(&self, first: NaiveDate, k: i64, end: Option<NaiveDate>) -> Option<BillingPeriod> {
        let nominal = Period::new(self.anchor(first, k)?, self.anchor(first, k + 1)?)?;
        let service_end = end.map_or(nominal.end, |e| e.min(nominal.end));
        let service = Period::new(nominal.start.max(self.start), service_end)?;
        Some(BillingPeriod { service, nominal })
    }

    /// Periods in order from `start` whose service start is before `until`, cut at `end`
    /// (subscription end, exclusive). Linear in the number of periods returned.
    pub fn periods(&self, until: NaiveDate, end: Option<NaiveDate>) -> Vec<BillingPeriod> {
        let mut out = Vec::new();
        if self.validate().is_err() {
            return out;
        }
        let first = self.first_anchor();
        let mut k = if first > self.start { -1 } else { 0 };
        while let Some(period) = self.cycle(first, k, end) {
            if period.service.start >= until {
                break;
            }
            out.push(period);
            k += 1;
        }
        out
    }

    /// The billing period containing `date` (None before start or on/after end). Constant time.
    pub fn period_containing(
        &self,
        date: NaiveDate,
        end: Option<NaiveDate>,
    ) -> Option<BillingPeriod> {
        if self.validate().is_err() || date < self.start || end.is_some_and(|e| date >= e) {
            return None;
        }
        let first = self.first_anchor();
        if date < first {
            return self.cycle(first, -1, end);
        }
        let mut k =
            (month_index(date) - month_index(first)).div_euclid(i64::from(self.interval_months));
        // The month estimate is one cycle late when date falls before the anchor day of its month.
        while k > 0 && self.anchor(first, k)? > date {
            k -= 1;
        }
        while self.anchor(first, k + 1)? <= date {
            k += 1;
        }
        self.cycle(first, k, end)
    }
}

/// amount × part.days / full.days, unrounded; 0 for an empty `full`.
pub fn prorate(amount: Decimal, part: &Period, full: &Period) -> Decimal {
    let full_days = Decimal::from(full.days());
    if full_days <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let part_days = Decimal::from(part.days());
    // Multiplying first keeps fractions like 15/30 exact; dividing first only to dodge overflow.
    match amount.checked_mul(part_days) {
        Some(product) => product / full_days,
        None => amount / full_days * part_days,
    }
}

/// Splits `period` at each date strictly inside it (sorted, deduplicated), for ramps and arrears
/// segments. The parts are contiguous and cover `period` exactly.
pub fn split_at(period: &Period, dates: &[NaiveDate]) -> Vec<Period> {
    let mut cuts: Vec<NaiveDate> = dates
        .iter()
        .copied()
        .filter(|d| period.start < *d && *d < period.end)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut from = period.start;
    for cut in cuts.into_iter().chain(std::iter::once(period.end)) {
        parts.extend(Period::new(from, cut));
        from = cut;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// "2026-01-01..2026-02-01" → Period.
    fn p(range: &str) -> Period {
        let (start, end) = range.split_once("..").unwrap();
        Period::new(date(start), date(end)).unwrap()
    }

    fn sched(start: &str, anchor_day: u32, interval_months: u32) -> Schedule {
        let start = date(start);
        Schedule {
            start,
            anchor_day,
            interval_months,
        }
    }

    fn services(periods: &[BillingPeriod]) -> Vec<Period> {
        periods.iter().map(|b| b.service).collect()
    }

    #[test]
    fn period_basics() {
        assert_eq!(Period::new(date("2026-01-02"), date("2026-01-02")), None);
        let jan = p("2026-01-01..2026-02-01");
        assert_eq!(jan.days(), 31);
        assert!(jan.contains(date("2026-01-01")) && !jan.contains(date("2026-02-01")));
        assert_eq!(jan.last_day(), date("2026-01-31"));
        let overlap = jan.intersect(&p("2026-01-20..2026-03-01"));
        assert_eq!(overlap, Some(p("2026-01-20..2026-02-01")));
        assert_eq!(jan.intersect(&p("2026-02-01..2026-03-01")), None);
    }

    #[test]
    fn anchor_31_clamps_without_drifting() {
        let jan31 = date("2027-01-31");
        let got: Vec<NaiveDate> = (0..4).map(|m| add_months_on_day(jan31, m, 31)).collect();
        assert_eq!(
            got,
            ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"].map(date)
        );
        let leap = add_months_on_day(date("2028-01-31"), 1, 31);
        assert_eq!(leap, date("2028-02-29"));
        let from_feb = add_months_on_day(date("2027-02-28"), 1, 31);
        assert_eq!(from_feb, date("2027-03-31"));
        assert_eq!(add_months_on_day(NaiveDate::MAX, 1, 1), NaiveDate::MAX);

        let periods = sched("2027-01-31", 31, 1).periods(date("2027-05-01"), None);
        let want = [
            "2027-01-31..2027-02-28",
            "2027-02-28..2027-03-31",
            "2027-03-31..2027-04-30",
        ];
        assert_eq!(services(&periods[..3]), want.map(p));
        assert_eq!(periods[3].service, p("2027-04-30..2027-05-31"));
        assert!(periods.iter().all(|b| !b.is_partial()));
        // Starting on the clamped anchor in February needs no stub either.
        let feb = sched("2027-02-28", 31, 1);
        assert_eq!(feb.first_anchor(), date("2027-02-28"));
    }

    #[test]
    fn monthly_stub_then_full_months() {
        let s = sched("2026-04-16", 1, 1);
        assert_eq!(s.first_anchor(), date("2026-05-01"));
        let periods = s.periods(date("2026-06-01"), None);
        assert_eq!(
            services(&periods),
            [p("2026-04-16..2026-05-01"), p("2026-05-01..2026-06-01")]
        );
        assert_eq!(periods[0].nominal, p("2026-04-01..2026-05-01"));
        assert!(periods[0].is_partial() && !periods[1].is_partial());
        // A start before the anchor day: the stub runs to this month's anchor.
        assert_eq!(
            sched("2026-04-03", 20, 1).first_anchor(),
            date("2026-04-20")
        );
    }

    #[test]
    fn quarterly_with_stub() {
        let periods = sched("2026-01-15", 1, 3).periods(date("2026-08-02"), None);
        let stub = periods[0];
        assert_eq!(stub.service, p("2026-01-15..2026-02-01"));
        assert_eq!(stub.nominal, p("2025-11-01..2026-02-01"));
        assert_eq!((stub.service.days(), stub.nominal.days()), (17, 92));
        let want = [
            "2026-02-01..2026-05-01",
            "2026-05-01..2026-08-01",
            "2026-08-01..2026-11-01",
        ];
        assert_eq!(services(&periods[1..]), want.map(p));
    }

    #[test]
    fn annual_with_leap_year_cycle() {
        let periods = sched("2026-03-10", 10, 12).periods(date("2028-03-10"), None);
        let years = services(&periods);
        assert_eq!(
            years,
            [p("2026-03-10..2027-03-10"), p("2027-03-10..2028-03-10")]
        );
        assert_eq!((years[0].days(), years[1].days()), (365, 366));
        assert!(periods.iter().all(|b| !b.is_partial()));
    }

    #[test]
    fn end_cuts_the_last_period() {
        let s = sched("2026-01-01", 1, 1);
        let until = date("2030-01-01");
        let periods = s.periods(until, Some(date("2026-03-20")));
        assert_eq!(periods.len(), 3);
        assert_eq!(periods[2].service, p("2026-03-01..2026-03-20"));
        assert_eq!(periods[2].nominal, p("2026-03-01..2026-04-01"));
        assert!(periods[2].is_partial());
        // Ending exactly on an anchor leaves no empty trailing period.
        assert_eq!(s.periods(until, Some(date("2026-03-01"))).len(), 2);
        assert_eq!(s.periods(until, Some(date("2026-01-01"))), []);
    }

    #[test]
    fn catch_up_over_24_months_is_gap_free() {
        let periods = sched("2024-01-01", 1, 1).periods(date("2026-01-01"), None);
        assert_eq!(periods.len(), 24);
        assert_eq!(periods[0].service.start, date("2024-01-01"));
        assert_eq!(periods[23].service.end, date("2026-01-01"));
        assert!(periods
            .windows(2)
            .all(|w| w[0].service.end == w[1].service.start));
    }

    #[test]
    fn nonsense_input_is_empty_not_a_panic() {
        let (day, until) = (date("2026-06-01"), date("2027-01-01"));
        for (anchor, interval) in [(0, 1), (32, 1), (1, 0), (1, 37)] {
            let s = sched("2026-01-01", anchor, interval);
            assert!(s.validate().is_err());
            assert_eq!(s.periods(until, None), []);
            assert_eq!(s.period_containing(day, None), None);
        }
        let errors = sched("2026-01-01", 40, 37).validate().unwrap_err();
        assert_eq!(
            (errors[0].0, errors[1].0),
            ("anchor_day", "interval_months")
        );
        assert_eq!(
            sched("2026-01-01", 1, 1).periods(date("2025-01-01"), None),
            []
        );
        let start = NaiveDate::MAX - Duration::days(10);
        let near_max = Schedule {
            start,
            anchor_day: 31,
            interval_months: 36,
        };
        assert_eq!(near_max.periods(NaiveDate::MAX, None).len(), 1);
    }

    #[test]
    fn period_containing_finds_stub_cycles_and_bounds() {
        let s = sched("2026-01-15", 31, 1);
        let at = |d: &str, end: Option<&str>| s.period_containing(date(d), end.map(date));
        assert_eq!(
            at("2026-01-20", None).unwrap().service,
            p("2026-01-15..2026-01-31")
        );
        assert_eq!(
            at("2026-02-28", None).unwrap().service,
            p("2026-02-28..2026-03-31")
        );
        let cut = at("2026-03-01", Some("2026-03-05")).unwrap();
        assert_eq!(cut.service, p("2026-02-28..2026-03-05"));
        assert_eq!(at("2026-01-14", None), None);
        assert_eq!(at("2026-03-05", Some("2026-03-05")), None);
    }

    #[test]
    fn split_at_ramp_date() {
        let apr = p("2026-04-01..2026-05-01");
        let ramps = [
            "2026-04-20",
            "2026-04-10",
            "2026-04-10",
            "2026-04-01",
            "2026-06-01",
        ];
        let parts = split_at(&apr, &ramps.map(date));
        let want = [
            "2026-04-01..2026-04-10",
            "2026-04-10..2026-04-20",
            "2026-04-20..2026-05-01",
        ];
        assert_eq!(parts, want.map(p));
        assert_eq!(split_at(&apr, &[]), [apr]);
        assert_eq!(
            prorate(Decimal::new(10000, 2), &parts[0], &apr),
            Decimal::new(30, 0)
        );
    }

    fn schedules() -> impl Strategy<Value = Schedule> {
        (0i64..20_000, 1u32..=31, 1u32..=36).prop_map(|(offset, anchor_day, interval_months)| {
            let start = date("2000-01-01") + Duration::days(offset);
            Schedule {
                start,
                anchor_day,
                interval_months,
            }
        })
    }

    proptest! {
        #[test]
        fn periods_are_contiguous_and_non_empty(
            s in schedules(), span in 1i64..3_000, cut in proptest::option::of(1i64..3_000),
        ) {
            let end = cut.map(|c| s.start + Duration::days(c));
            let periods = s.periods(s.start + Duration::days(span), end);
            prop_assert!(!periods.is_empty());
            prop_assert_eq!(periods[0].service.start, s.start);
            for b in &periods {
                prop_assert!(b.service.days() > 0);
                prop_assert_eq!(b.service.intersect(&b.nominal), Some(b.service));
                prop_assert_eq!(s.period_containing(b.service.start, end), Some(*b));
                prop_assert_eq!(s.period_containing(b.service.last_day(), end), Some(*b));
            }
            for w in periods.windows(2) {
                prop_assert_eq!(w[0].service.end, w[1].service.start);
                prop_assert_eq!(w[0].nominal.end, w[1].nominal.start);
            }
        }

        #[test]
        fn prorated_parts_sum_to_whole(
            cents in 0i64..100_000_000, len in 1i64..800,
            cuts in proptest::collection::vec(0i64..800, 0..8),
        ) {
            let start = date("2026-01-01");
            let whole = Period::new(start, start + Duration::days(len)).unwrap();
            let dates: Vec<NaiveDate> = cuts.iter().map(|c| start + Duration::days(*c)).collect();
            let amount = Decimal::new(cents, 2);
            let parts = split_at(&whole, &dates);
            let sum: Decimal = parts.iter().map(|part| prorate(amount, part, &whole)).sum();
            prop_assert!((sum - amount).abs() < Decimal::new(1, 20), "{} vs {}", sum, amount);
        }
    }
}
