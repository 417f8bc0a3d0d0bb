//! The customer statement as pure arithmetic over an account's dated movements.
//!
//! Rules:
//! - The balance is what the account owes us net of what it paid in advance: invoices (+),
//!   credit notes (−), payments received (−), bounced payments (+) and refunds (+). Applying a
//!   payment or account credit to an invoice only moves money between the customer's own
//!   items, so it never changes the balance (counting it too would count the cash twice); it
//!   shows in the aging instead.
//! - Every movement counts on its own date: the opening balance is the sum of everything
//!   dated before `from`, the rows are `from..=to`, the closing balance is opening + rows, so
//!   a statement of a past period ignores later activity.
//! - The aging footer lists what each invoice still owed at `to` (total less the settlements
//!   dated on or before `to`) by days past its due date: Current (not yet due, or due that
//!   day), 1–30, 31–60, 61–90, 91–120, more than 120. Aging total + unapplied cash and
//!   credit = closing balance, shown as its own line so the footer adds up.
//! - One currency per section; amounts in different currencies are never added together.

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// What moved the balance, in the order a day's rows are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Invoice,
    CreditNote,
    Payment,
    PaymentReversed,
    Refund,
}

impl Kind {
    /// Stable machine name (CSV, HTML data attributes).
    pub fn code(self) -> &'static str {
        match self {
            Kind::Invoice => "invoice",
            Kind::CreditNote => "credit_note",
            Kind::Payment => "payment",
            Kind::PaymentReversed => "payment_reversed",
            Kind::Refund => "refund",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Invoice => "Invoice",
            Kind::CreditNote => "Credit note",
            Kind::Payment => "Payment",
            Kind::PaymentReversed => "Payment reversed",
            Kind::Refund => "Refund",
        }
    }

    /// Whether the movement adds to what the account owes.
    pub fn is_charge(self) -> bool {
        matches!(self, Kind::Invoice | Kind::PaymentReversed | Kind::Refund)
    }
}

/// One dated movement of the balance. `amount` is positive; the kind gives the sign.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub date: NaiveDate,
    pub currency: String,
    pub kind: Kind,
    /// Invoice id for documents, payment id for payments, reversals and refunds.
    pub id: i64,
    /// Document number or the payment's reference.
    pub reference: String,
    pub details: String,
    pub amount: Decimal,
}

impl Movement {
    fn signed(&self) -> Decimal {
        if self.kind.is_charge() {
            self.amount
        } else {
            -self.amount
        }
    }
}

/// An issued invoice and every dated amount that settled part of it (account credit,
/// credit notes, payment applications; unapplications are negative).
#[derive(Debug, Clone, PartialEq)]
pub struct Receivable {
    pub id: i64,
    pub currency: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub total: Decimal,
    pub settlements: Vec<(NaiveDate, Decimal)>,
}

impl Receivable {
    /// What was still owed at the end of `on`.
    pub fn due_on(&self, on: NaiveDate) -> Decimal {
        if self.issue_date > on {
            return Decimal::ZERO;
        }
        let settled: Decimal = self
            .settlements
            .iter()
            .filter(|(d, _)| *d <= on)
            .map(|(_, a)| *a)
            .sum();
        (self.total - settled).max(Decimal::ZERO)
    }
}

pub const BUCKETS: [&str; 6] = ["Current", "1–30", "31–60", "61–90", "91–120", "120+"];

/// Index into [`BUCKETS`] for an amount `days_past_due` days after its due date.
pub fn bucket(days_past_due: i64) -> usize {
    match days_past_due {
        ..=0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        91..=120 => 4,
        _ => 5,
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aging {
    pub buckets: [Decimal; 6],
    pub open_total: Decimal,
    /// Cash received and credit issued but not yet applied to an invoice, as a negative
    /// amount, so `open_total + unapplied` is the closing balance.
    pub unapplied: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub movement: Movement,
    /// Running balance after this row.
    pub balance: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub currency: String,
    pub opening: Decimal,
    pub rows: Vec<Row>,
    pub invoiced: Decimal,
    pub credited: Decimal,
    /// Payments less bounced payments.
    pub paid: Decimal,
    pub refunded: Decimal,
    pub closing: Decimal,
    pub aging: Aging,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// By currency code; only currencies with a balance, activity or open items.
    pub sections: Vec<Section>,
}

impl Statement {
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

pub fn build(
    movements: &[Movement],
    receivables: &[Receivable],
    from: NaiveDate,
    to: NaiveDate,
) -> Statement {
    let mut currencies: Vec<&str> = movements
        .iter()
        .map(|m| m.currency.as_str())
        .chain(receivables.iter().map(|r| r.currency.as_str()))
        .collect();
    currencies.sort_unstable();
    currencies.dedup();
    let sections = currencies
        .into_iter()
        .map(|c| section(c, movements, receivables, from, to))
        .filter(|s| !s.opening.is_zero() || !s.rows.is_empty() || !s.aging.open_total.is_zero())
        .collect();
    Statement { from, to, sections }
}

fn section(
    currency: &str,
    movements: &[Movement],
    receivables: &[Receivable],
    from: NaiveDate,
    to: NaiveDate,
) -> Section {
    let mine = movements.iter().filter(|m| m.currency == currency);
    let opening: Decimal = mine
        .clone()
        .filter(|m| m.date < from)
        .map(Movement::signed)
        .sum();
    let mut listed: Vec<&Movement> = mine.filter(|m| m.date >= from && m.date <= to).collect();
    listed.sort_by_key(|m| (m.date, m.kind, m.id));
    let mut balance = opening;
    let mut s = Section {
        currency: currency.to_owned(),
        opening,
        rows: Vec::with_capacity(listed.len()),
        invoiced: Decimal::ZERO,
        credited: Decimal::ZERO,
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        closing: Decimal::ZERO,
        aging: Aging::default(),
    };
    for m in listed {
        balance += m.signed();
        match m.kind {
            Kind::Invoice => s.invoiced += m.amount,
            Kind::CreditNote => s.credited += m.amount,
            Kind::Payment => s.paid += m.amount,
            Kind::PaymentReversed => s.paid -= m.amount,
            Kind::Refund => s.refunded += m.amount,
        }
        s.rows.push(Row {
            movement: m.clone(),
            balance,
        });
    }
    s.closing = balance;
    for r in receivables.iter().filter(|r| r.currency == currency) {
        let due = r.due_on(to);
        if due > Decimal::ZERO {
            s.aging.buckets[bucket((to - r.due_date).num_days())] += due;
            s.aging.open_total += due;
        }
    }
    s.aging.unapplied = s.closing - s.aging.open_total;
    s
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn mv(date: &str, kind: Kind, id: i64, amount: &str) -> Movement {
        Movement {
            date: day(date),
            currency: "EUR".into(),
            kind,
            id,
            reference: format!("R{id}"),
            details: String::new(),
            amount: d(amount),
        }
    }

    fn inv(id: i64, issued: &str, due: &str, total: &str, settled: &[(&str, &str)]) -> Receivable {
        Receivable {
            id,
            currency: "EUR".into(),
            issue_date: day(issued),
            due_date: day(due),
            total: d(total),
            settlements: settled.iter().map(|(a, b)| (day(a), d(b))).collect(),
        }
    }

    #[test]
    fn opening_running_and_closing_balances_follow_the_dates() {
        // Arrange: 100 invoiced and 40 paid before the period; in it 250 invoiced, 30
        // credited, 200 paid, 20 refunded, and a 50 payment that bounced.
        let moves = vec![
            mv("2026-01-05", Kind::Invoice, 1, "100"),
            mv("2026-01-20", Kind::Payment, 10, "40"),
            mv("2026-02-01", Kind::Invoice, 2, "250"),
            mv("2026-02-03", Kind::CreditNote, 3, "30"),
            mv("2026-02-10", Kind::Payment, 11, "200"),
            mv("2026-02-11", Kind::Payment, 12, "50"),
            mv("2026-02-15", Kind::PaymentReversed, 12, "50"),
            mv("2026-02-20", Kind::Refund, 11, "20"),
            mv("2026-03-02", Kind::Invoice, 4, "999"),
        ];
        // Act
        let s = build(&moves, &[], day("2026-02-01"), day("2026-02-28"));
        // Assert
        let eur = &s.sections[0];
        assert_eq!(eur.opening, d("60"));
        let balances: Vec<Decimal> = eur.rows.iter().map(|r| r.balance).collect();
        assert_eq!(
            balances,
            ["310", "280", "80", "30", "80", "100"].map(d).to_vec()
        );
        assert_eq!(eur.closing, d("100"));
        assert_eq!(
            (eur.invoiced, eur.credited, eur.paid, eur.refunded),
            (d("250"), d("30"), d("200"), d("20"))
        );
        assert_eq!(
            eur.closing,
            eur.opening + eur.invoiced - eur.credited - eur.paid + eur.refunded
        );
    }

    #[test]
    fn rows_of_one_day_list_charges_before_credits_then_by_id() {
        let moves = vec![
            mv("2026-02-01", Kind::Payment, 5, "10"),
            mv("2026-02-01", Kind::Invoice, 9, "10"),
            mv("2026-02-01", Kind::Invoice, 7, "10"),
        ];
        let s = build(&moves, &[], day("2026-02-01"), day("2026-02-01"));
        let order: Vec<(Kind, i64)> = s.sections[0]
            .rows
            .iter()
            .map(|r| (r.movement.kind, r.movement.id))
            .collect();
        assert_eq!(
            order,
            vec![(Kind::Invoice, 7), (Kind::Invoice, 9), (Kind::Payment, 5)]
        );
    }

    #[test]
    fn aging_buckets_split_exactly_at_their_boundaries() {
        // One invoice of 1 per boundary day: due `days` before the statement date.
        let to = day("2026-06-30");
        let days = [0, 1, 30, 31, 60, 61, 90, 91, 120, 121, -5];
        let recs: Vec<Receivable> = days
            .iter()
            .zip(1..)
            .map(|(n, id)| Receivable {
                id,
                currency: "EUR".into(),
                issue_date: day("2026-01-01"),
                due_date: to - chrono::TimeDelta::days(*n),
                total: Decimal::ONE,
                settlements: vec![],
            })
            .collect();
        let s = build(&[], &recs, day("2026-06-01"), to);
        // Current: day 0 and not yet due; then two per bucket.
        assert_eq!(
            s.sections[0].aging.buckets,
            ["2", "2", "2", "2", "2", "1"].map(d)
        );
        for (n, want) in [(0, 0), (1, 1), (30, 1), (31, 2), (60, 2), (61, 3)] {
            assert_eq!(bucket(n), want, "{n}");
        }
        for (n, want) in [(90, 3), (91, 4), (120, 4), (121, 5), (-1, 0)] {
            assert_eq!(bucket(n), want, "{n}");
        }
    }

    #[test]
    fn aging_uses_what_was_owed_at_the_end_date_and_reconciles_to_the_closing_balance() {
        // Arrange: 100 due 1 Mar, 60 paid on 10 Mar and 40 on 20 Apr; 50 unapplied cash.
        let recs = vec![inv(
            1,
            "2026-02-01",
            "2026-03-01",
            "100",
            &[("2026-03-10", "60"), ("2026-04-20", "40")],
        )];
        let moves = vec![
            mv("2026-02-01", Kind::Invoice, 1, "100"),
            mv("2026-03-10", Kind::Payment, 10, "110"),
            mv("2026-04-20", Kind::Payment, 11, "40"),
        ];
        // Act: as of 31 Mar, the later payment does not count.
        let s = build(&moves, &recs, day("2026-03-01"), day("2026-03-31"));
        // Assert
        let a = &s.sections[0].aging;
        assert_eq!(a.buckets[1], d("40"), "30 days past due");
        assert_eq!(a.open_total, d("40"));
        assert_eq!(s.sections[0].closing, d("-10"));
        assert_eq!(a.unapplied, d("-50"));
        // Later, everything is settled and only the unapplied cash remains.
        let later = build(&moves, &recs, day("2026-04-01"), day("2026-04-30"));
        assert_eq!(later.sections[0].aging.open_total, Decimal::ZERO);
        assert_eq!(later.sections[0].closing, d("-50"));
    }

    #[test]
    fn currencies_get_their_own_sections_and_idle_ones_are_left_out() {
        let mut usd = mv("2026-02-02", Kind::Invoice, 2, "70");
        usd.currency = "USD".into();
        let mut gbp = mv("2026-01-02", Kind::Invoice, 3, "5");
        gbp.currency = "GBP".into();
        let mut gbp_paid = mv("2026-01-03", Kind::Payment, 4, "5");
        gbp_paid.currency = "GBP".into();
        let moves = vec![
            mv("2026-02-01", Kind::Invoice, 1, "100"),
            usd,
            gbp,
            gbp_paid,
        ];
        let s = build(&moves, &[], day("2026-02-01"), day("2026-02-28"));
        let codes: Vec<(&str, Decimal)> = s
            .sections
            .iter()
            .map(|x| (x.currency.as_str(), x.closing))
            .collect();
        assert_eq!(codes, vec![("EUR", d("100")), ("USD", d("70"))]);
        assert!(build(&[], &[], day("2026-02-01"), day("2026-02-28")).is_empty());
    }

    #[test]
    fn an_invoice_issued_after_the_end_date_is_not_aged() {
        let r = inv(1, "2026-05-01", "2026-05-31", "10", &[]);
        assert_eq!(r.due_on(day("2026-04-30")), Decimal::ZERO);
        assert_eq!(r.due_on(day("2026-05-01")), d("10"));
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn kind() -> impl Strategy<Value = Kind> {
            prop_oneof![
                Just(Kind::Invoice),
                Just(Kind::CreditNote),
                Just(Kind::Payment),
                Just(Kind::PaymentReversed),
                Just(Kind::Refund),
            ]
        }

        proptest! {
            #[test]
            fn closing_is_opening_plus_the_period_totals_and_the_last_running_balance(
                raw in prop::collection::vec((0u32..120, kind(), 1i64..100_000), 0..40),
                split in 0u32..120,
            ) {
                let base = day("2026-01-01");
                let moves: Vec<Movement> = raw
                    .iter()
                    .zip(1..)
                    .map(|((off, k, cents), id)| Movement {
                        date: base + chrono::Days::new(u64::from(*off)),
                        currency: "EUR".into(),
                        kind: *k,
                        id,
                        reference: String::new(),
                        details: String::new(),
                        amount: Decimal::new(*cents, 2),
                    })
                    .collect();
                let from = base + chrono::Days::new(u64::from(split));
                let s = build(&moves, &[], from, base + chrono::Days::new(200));
                let all: Decimal = moves.iter().map(Movement::signed).sum();
                match s.sections.first() {
                    None => prop_assert!(all.is_zero()),
                    Some(x) => {
                        prop_assert_eq!(x.closing, all);
                        prop_assert_eq!(
                            x.closing,
                            x.opening + x.invoiced - x.credited - x.paid + x.refunded
                        );
                        prop_assert_eq!(x.rows.last().map_or(x.opening, |r| r.balance), x.closing);
                    }
                }
            }
        }
    }
}
