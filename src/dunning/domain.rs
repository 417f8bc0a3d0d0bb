//! Dunning policies and payment retry schedules, free of I/O.
//!
//! A policy is an ordered list of steps, each `offset_days` from the invoice's due date
//! (negative = before it), each with actions. Offsets are strictly increasing, so "step N"
//! means the same thing on every invoice. Retry rules say when a failed automatic charge is
//! tried again: soft declines on fixed days counted from the first failure, retryable errors
//! with a growing backoff in hours, hard declines never.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{money::Currency, payments::gateway::DeclineClass};

pub const MAX_STEPS: usize = 12;
pub const MIN_OFFSET: i32 = -60;
pub const MAX_OFFSET: i32 = 365;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub retry: RetryRules,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub offset_days: i32,
    pub actions: Vec<Action>,
    /// Reminder email of this step; placeholders are listed in [`PLACEHOLDERS`].
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Reminder,
    RetryPayment,
    LateFee {
        fee: Fee,
    },
    Task {
        title: String,
        assignee: Assignee,
        due_in_days: i32,
    },
    Hold,
    Stop,
}

impl Action {
    /// The key an executed action is stored under (one per step and invoice).
    pub fn code(&self) -> &'static str {
        match self {
            Action::Reminder => "reminder",
            Action::RetryPayment => "retry_payment",
            Action::LateFee { .. } => "late_fee",
            Action::Task { .. } => "task",
            Action::Hold => "hold",
            Action::Stop => "stop",
        }
    }

    pub fn describe(&self, fmt: &dyn Fn(Decimal) -> String) -> String {
        match self {
            Action::Reminder => "Send reminder".into(),
            Action::RetryPayment => "Retry payment".into(),
            Action::LateFee { fee: Fee::Fixed(a) } => format!("Late fee {}", fmt(*a)),
            Action::LateFee {
                fee: Fee::Percent(p),
            } => format!("Late fee {}%", p.normalize()),
            Action::Task {
                title, assignee, ..
            } => format!("Task “{title}” for {}", assignee.label()),
            Action::Hold => "Put account on hold".into(),
            Action::Stop => "Stop dunning".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Fee {
    Fixed(Decimal),
    Percent(Decimal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "user_id", rename_all = "snake_case")]
pub enum Assignee {
    /// The account's owner, else the team.
    AccountOwner,
    User(i64),
    /// Unassigned: visible to everyone in the team inbox.
    Team,
}

impl Assignee {
    pub fn label(&self) -> String {
        match self {
            Assignee::AccountOwner => "the account owner".into(),
            Assignee::User(id) => format!("user #{id}"),
            Assignee::Team => "the team".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryRules {
    /// Days after the first failure on which a soft decline is retried.
    pub soft_days: Vec<i32>,
    /// Hours to wait after the 1st, 2nd, ... consecutive retryable error.
    pub retryable_hours: Vec<i32>,
}

impl Default for RetryRules {
    fn default() -> Self {
        Self {
            soft_days: vec![1, 3, 5, 7],
            retryable_hours: vec![1, 4, 12, 24],
        }
    }
}

pub const PLACEHOLDERS: &[&str] = &[
    "{{account}}",
    "{{invoice_numbers}}",
    "{{total_overdue}}",
    "{{due_date}}",
    "{{days_overdue}}",
    "{{pay_link}}",
    "{{company}}",
];

impl Policy {
    /// What a new tenant starts with: a friendly note before the due date, then firmer
    /// reminders, one late fee, a person after two weeks and a hold after a month.
    pub fn standard() -> Self {
        let task = |title: &str, assignee, due_in_days| Action::Task {
            title: title.into(),
            assignee,
            due_in_days,
        };
        Self {
            steps: vec![
                Step {
                    offset_days: -3,
                    actions: vec![Action::Reminder],
                    subject: "Invoice {{invoice_numbers}} is due on {{due_date}}".into(),
                    body: "Hello {{account}},\n\nA friendly reminder that invoice {{invoice_numbers}} \
                           is due on {{due_date}}. You can view and pay it here: {{pay_link}}\n\n\
                           Thank you,\n{{company}}"
                        .into(),
                },
                Step {
                    offset_days: 1,
                    actions: vec![Action::Reminder, Action::RetryPayment],
                    subject: "Payment overdue: {{invoice_numbers}}".into(),
                    body: "Hello {{account}},\n\nWe have not yet received payment of \
                           {{total_overdue}} for {{invoice_numbers}}, due on {{due_date}}. \
                           The invoices and a statement are attached.\n\nPay online: \
                           {{pay_link}}\n\nIf you have already paid, please ignore this \
                           message.\n\n{{company}}"
                        .into(),
                },
                Step {
                    offset_days: 7,
                    actions: vec![
                        Action::Reminder,
                        Action::LateFee {
                            fee: Fee::Percent(Decimal::new(15, 1)),
                        },
                    ],
                    subject: "Second notice: {{total_overdue}} overdue".into(),
                    body: "Hello {{account}},\n\n{{invoice_numbers}} is now {{days_overdue}} days \
                           overdue ({{total_overdue}}). A late fee has been applied as per \
                           our terms. The invoices and a statement are attached.\n\n\
                           Pay online: {{pay_link}}\n\n{{company}}"
                        .into(),
                },
                Step {
                    offset_days: 14,
                    actions: vec![
                        Action::Reminder,
                        task("Call the customer about overdue invoices", Assignee::AccountOwner, 3),
                    ],
                    subject: "Third notice: {{total_overdue}} overdue".into(),
                    body: "Hello {{account}},\n\n{{invoice_numbers}} is {{days_overdue}} days \
                           overdue. Please contact us if there is a problem with the \
                           invoice.\n\nPay online: {{pay_link}}\n\n{{company}}"
                        .into(),
                },
                Step {
                    offset_days: 30,
                    actions: vec![
                        Action::Reminder,
                        Action::Hold,
                        task("Account on hold: agree a payment plan", Assignee::Team, 5),
                    ],
                    subject: "Final notice: account on hold".into(),
                    body: "Hello {{account}},\n\n{{invoice_numbers}} is {{days_overdue}} days \
                           overdue ({{total_overdue}}). Your account has been put on hold \
                           until it is settled.\n\nPay online: {{pay_link}}\n\n{{company}}"
                        .into(),
                },
                Step {
                    offset_days: 45,
                    actions: vec![
                        task("Escalate or write off", Assignee::Team, 5),
                        Action::Stop,
                    ],
                    subject: String::new(),
                    body: String::new(),
                },
            ],
            retry: RetryRules::default(),
        }
    }

    /// Every problem, as `(field, message)`; field names match the editor form.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.steps.is_empty() {
            errors.push(("steps".into(), "Add at least one step.".into()));
        }
        if self.steps.len() > MAX_STEPS {
            errors.push(("steps".into(), format!("At most {MAX_STEPS} steps.")));
        }
        let mut previous: Option<i32> = None;
        for (i, step) in self.steps.iter().enumerate() {
            let f = |name: &str| format!("step{i}_{name}");
            if !(MIN_OFFSET..=MAX_OFFSET).contains(&step.offset_days) {
                errors.push((
                    f("offset"),
                    format!("Use a day between {MIN_OFFSET} and {MAX_OFFSET}."),
                ));
            }
            if previous.is_some_and(|p| step.offset_days <= p) {
                errors.push((
                    f("offset"),
                    "Each step must come after the one before it.".into(),
                ));
            }
            previous = Some(step.offset_days);
            if step.actions.is_empty() {
                errors.push((f("actions"), "Choose at least one action.".into()));
            }
            let has = |code: &str| step.actions.iter().any(|a| a.code() == code);
            if has("reminder") && (step.subject.trim().is_empty() || step.body.trim().is_empty()) {
                errors.push((
                    f("subject"),
                    "A reminder needs a subject and a message.".into(),
                ));
            }
            for a in &step.actions {
                match a {
                    Action::LateFee { fee: Fee::Fixed(v) } if *v <= Decimal::ZERO => {
                        errors.push((f("fee"), "A late fee must be above zero.".into()))
                    }
                    Action::LateFee {
                        fee: Fee::Percent(p),
                    } if *p <= Decimal::ZERO || *p > Decimal::from(25) => errors.push((
                        f("fee"),
                        "A percentage fee must be above 0 and at most 25.".into(),
                    )),
                    Action::Task {
                        title, due_in_days, ..
                    } => {
                        if title.trim().is_empty() {
                            errors.push((f("task_title"), "Give the task a title.".into()));
                        }
                        if !(0..=90).contains(due_in_days) {
                            errors
                                .push((f("task_due"), "A task is due within 0 to 90 days.".into()));
                        }
                    }
                    _ => {}
                }
            }
            if has("stop") && i + 1 != self.steps.len() {
                errors.push((f("actions"), "Only the last step can stop dunning.".into()));
            }
        }
        let r = &self.retry;
        if r.soft_days.len() > 10 || r.soft_days.iter().any(|d| !(1..=60).contains(d)) {
            errors.push((
                "soft_days".into(),
                "Up to 10 retry days, each between 1 and 60.".into(),
            ));
        } else if r.soft_days.windows(2).any(|w| w[1] <= w[0]) {
            errors.push(("soft_days".into(), "List the retry days in order.".into()));
        }
        if r.retryable_hours.len() > 10 || r.retryable_hours.iter().any(|h| !(1..=168).contains(h))
        {
            errors.push((
                "retryable_hours".into(),
                "Up to 10 waits, each between 1 and 168 hours.".into(),
            ));
        }
        errors
    }

    /// Steps whose day has come by `today`, as `(step number, the step's date)`.
    pub fn due_steps(&self, due_date: NaiveDate, today: NaiveDate) -> Vec<(usize, NaiveDate)> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (i, due_date + Duration::days(i64::from(s.offset_days))))
            .filter(|(_, on)| *on <= today)
            .collect()
    }

    /// The first step after `today`, if any.
    pub fn next_step(&self, due_date: NaiveDate, today: NaiveDate) -> Option<(usize, NaiveDate)> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (i, due_date + Duration::days(i64::from(s.offset_days))))
            .find(|(_, on)| *on > today)
    }

    /// How many days before the due date the first step starts (0 if none is before).
    pub fn lead_days(&self) -> i32 {
        self.steps.first().map_or(0, |s| (-s.offset_days).max(0))
    }
}

/// The fee for an invoice's open balance. A percentage applies to the invoice's own balance
/// only (never to earlier fees, which are separate invoices), rounded to the currency.
pub fn late_fee(fee: Fee, balance: Decimal, currency: Currency) -> Decimal {
    match fee {
        Fee::Fixed(a) => currency.round(a),
        Fee::Percent(p) => currency.round(balance * p / Decimal::ONE_HUNDRED),
    }
}

/// What to do after a failed automatic charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    At(DateTime<Utc>),
    /// Hard decline: ask the customer for a new method.
    AskForNewMethod,
    /// The schedule is used up: a person takes over.
    Exhausted,
}

/// The earlier failures of this invoice's charges, oldest first, decide the next attempt.
/// Soft declines are retried on `soft_days` counted from the first failure (the gap between
/// consecutive entries is added to today, so a late run does not bunch retries up);
/// retryable errors wait `retryable_hours[n]` after the n-th consecutive one, then fall back
/// to the soft schedule.
pub fn next_retry(
    rules: &RetryRules,
    history: &[DeclineClass],
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Retry {
    let Some(last) = history.last() else {
        return Retry::Exhausted;
    };
    let soft_at = |n: usize| -> Retry {
        // n soft-like failures so far; the n-th retry day follows.
        match (
            rules.soft_days.get(n - 1),
            n.checked_sub(2).and_then(|p| rules.soft_days.get(p)),
        ) {
            (Some(day), prev) => {
                let gap = i64::from(day - prev.copied().unwrap_or(0));
                let date = today + Duration::days(gap.max(1));
                Retry::At(date.and_time(chrono::NaiveTime::MIN).and_utc())
            }
            (None, _) => Retry::Exhausted,
        }
    };
    match last {
        DeclineClass::Hard => Retry::AskForNewMethod,
        DeclineClass::Soft => {
            let n = history.iter().filter(|c| **c == DeclineClass::Soft).count();
            soft_at(n)
        }
        DeclineClass::Retryable => {
            let streak = history
                .iter()
                .rev()
                .take_while(|c| **c == DeclineClass::Retryable)
                .count();
            match rules.retryable_hours.get(streak - 1) {
                Some(h) => Retry::At(now + Duration::hours(i64::from(*h))),
                None => {
                    // The gateway kept failing: treat the streak as one soft decline.
                    let n = history.iter().filter(|c| **c == DeclineClass::Soft).count() + 1;
                    soft_at(n)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn at(s: &str) -> DateTime<Utc> {
        d(s).and_time(chrono::NaiveTime::MIN).and_utc()
    }

    #[test]
    fn the_standard_policy_is_valid_and_orders_steps_around_the_due_date() {
        let p = Policy::standard();
        assert!(p.check().is_empty(), "{:?}", p.check());
        let due = d("2026-03-10");
        assert!(p.due_steps(due, d("2026-03-06")).is_empty());
        assert_eq!(
            p.due_steps(due, d("2026-03-07")),
            vec![(0, d("2026-03-07"))]
        );
        assert_eq!(p.due_steps(due, d("2026-03-17")).len(), 3);
        assert_eq!(
            p.next_step(due, d("2026-03-17")),
            Some((3, d("2026-03-24")))
        );
        assert_eq!(p.lead_days(), 3);
        // Round trip through the stored JSON.
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(serde_json::from_value::<Policy>(json).unwrap(), p);
    }

    #[test]
    fn checks_name_the_field_at_fault() {
        let mut p = Policy::standard();
        p.steps[1].offset_days = -3;
        p.steps[2].actions = vec![Action::LateFee {
            fee: Fee::Percent(Decimal::from(30)),
        }];
        p.steps[0].actions.push(Action::Stop);
        p.retry.soft_days = vec![3, 1];
        let fields: Vec<String> = p.check().into_iter().map(|e| e.0).collect();
        assert_eq!(
            fields,
            ["step0_actions", "step1_offset", "step2_fee", "soft_days"]
        );
    }

    #[test]
    fn late_fees_round_to_the_currency_and_ignore_earlier_fees() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let pct = Fee::Percent(Decimal::from_str("1.5").unwrap());
        assert_eq!(
            late_fee(pct, Decimal::from_str("1234.56").unwrap(), usd).to_string(),
            "18.52"
        );
        assert_eq!(late_fee(pct, Decimal::from(1001), jpy).to_string(), "15");
        assert_eq!(
            late_fee(
                Fee::Fixed(Decimal::from_str("25.005").unwrap()),
                Decimal::ZERO,
                usd
            )
            .to_string(),
            "25.01"
        );
    }

    #[test]
    fn soft_declines_follow_days_1_3_5_7_from_the_first_failure() {
        use DeclineClass::*;
        let r = RetryRules::default();
        let now = at("2026-05-01");
        let mut history = vec![Soft];
        let mut day = d("2026-05-01");
        let mut dates = Vec::new();
        loop {
            match next_retry(&r, &history, day, now) {
                Retry::At(t) => {
                    day = t.date_naive();
                    dates.push(day);
                    history.push(Soft);
                }
                Retry::Exhausted => break,
                Retry::AskForNewMethod => panic!("soft is never hard"),
            }
        }
        assert_eq!(
            dates,
            [
                d("2026-05-02"),
                d("2026-05-04"),
                d("2026-05-06"),
                d("2026-05-08")
            ]
        );
    }

    #[test]
    fn hard_declines_are_never_retried_and_errors_back_off() {
        use DeclineClass::*;
        let r = RetryRules::default();
        let now = at("2026-05-01") + Duration::hours(9);
        let today = d("2026-05-01");
        assert_eq!(
            next_retry(&r, &[Soft, Hard], today, now),
            Retry::AskForNewMethod
        );
        assert_eq!(
            next_retry(&r, &[Retryable], today, now),
            Retry::At(now + Duration::hours(1))
        );
        assert_eq!(
            next_retry(&r, &[Retryable, Retryable, Retryable], today, now),
            Retry::At(now + Duration::hours(12))
        );
        // After the backoff is used up the streak counts as a soft decline.
        assert_eq!(
            next_retry(&r, &[Retryable; 5], today, now),
            Retry::At(at("2026-05-02"))
        );
        assert_eq!(next_retry(&r, &[], today, now), Retry::Exhausted);
    }
}
