//! The policy editor's form: a policy as form fields and back, with every message keyed
//! by the field it belongs to.
//!
//! Rules: one fieldset per step, named by its row (`step{row}_offset`, ...); a row marked
//! removed, and the empty row offered for a new step, are dropped. `Policy::check` counts
//! the kept steps, so its messages are moved back to the row they came from. Actions are
//! kept in one canonical order, so an untouched form equals the stored policy.

use super::super::domain::{Action, Assignee, Fee, Policy, RetryRules, Step, MAX_STEPS};
use crate::{accounts::domain::Fields, error::FieldErrors};

/// The editor never reads more rows than this, whatever the form claims.
const MAX_ROWS: usize = MAX_STEPS + 4;

/// Canonical action order, so an unchanged form equals the stored policy.
fn rank(a: &Action) -> u8 {
    match a {
        Action::Reminder => 0,
        Action::RetryPayment => 1,
        Action::LateFee { .. } => 2,
        Action::Task { .. } => 3,
        Action::Hold => 4,
        Action::Stop => 5,
    }
}

pub fn canonical(p: &Policy) -> Policy {
    let mut p = p.clone();
    for s in &mut p.steps {
        s.actions.sort_by_key(rank);
    }
    p
}

fn assignee_code(a: Assignee) -> String {
    match a {
        Assignee::AccountOwner => "owner".into(),
        Assignee::Team => "team".into(),
        Assignee::User(id) => id.to_string(),
    }
}

fn join(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// The editor's fields for a policy, with one empty row to add a step.
pub fn policy_fields(p: &Policy) -> Fields {
    let mut f = Fields::default();
    f.set("rows", (p.steps.len() + 1).to_string());
    for (i, s) in p.steps.iter().enumerate() {
        let mut set = |n: &str, v: String| f.set(&format!("step{i}_{n}"), v);
        set("offset", s.offset_days.to_string());
        set("subject", s.subject.clone());
        set("body", s.body.clone());
        set("fee_type", "percent".into());
        for a in &s.actions {
            match a {
                Action::Reminder => set("reminder", "yes".into()),
                Action::RetryPayment => set("retry", "yes".into()),
                Action::LateFee { fee } => {
                    set("fee_on", "yes".into());
                    let (kind, v) = match fee {
                        Fee::Fixed(v) => ("fixed", v),
                        Fee::Percent(v) => ("percent", v),
                    };
                    set("fee_type", kind.into());
                    set("fee", v.normalize().to_string());
                }
                Action::Task {
                    title,
                    assignee,
                    due_in_days,
                } => {
                    set("task_on", "yes".into());
                    set("task_title", title.clone());
                    set("task_assignee", assignee_code(*assignee));
                    set("task_due", due_in_days.to_string());
                }
                Action::Hold => set("hold", "yes".into()),
                Action::Stop => set("stop", "yes".into()),
            }
        }
    }
    f.set("soft_days", join(&p.retry.soft_days));
    f.set("retryable_hours", join(&p.retry.retryable_hours));
    f
}

fn int_list(raw: &str) -> Option<Vec<i32>> {
    raw.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

/// Reads the editor form into a policy, or every message keyed by the form's fields.
/// `members` are the ids a task may be assigned to.
pub fn parse_policy(f: &Fields, members: &[i64]) -> Result<Policy, FieldErrors> {
    let mut e = FieldErrors::default();
    let rows = f.get("rows").parse::<usize>().unwrap_or(0).min(MAX_ROWS);
    let (mut steps, mut row_of) = (Vec::new(), Vec::new());
    for i in 0..rows {
        let k = |n: &str| format!("step{i}_{n}");
        let on = |n: &str| f.flag(&k(n));
        if on("remove") {
            continue;
        }
        let flags = ["reminder", "retry", "fee_on", "task_on", "hold", "stop"];
        let (subject, body) = (f.get(&k("subject")), f.get(&k("body")));
        let offset_raw = f.get(&k("offset"));
        if offset_raw.is_empty()
            && !flags.iter().any(|n| on(n))
            && subject.is_empty()
            && body.is_empty()
        {
            continue; // the empty "add a step" row
        }
        let offset_days = offset_raw.parse::<i32>().unwrap_or_else(|_| {
            e.add(
                &k("offset"),
                "Enter a whole number of days (negative = before the due date).",
            );
            0
        });
        let mut actions = Vec::new();
        if on("reminder") {
            actions.push(Action::Reminder);
        }
        if on("retry") {
            actions.push(Action::RetryPayment);
        }
        if on("fee_on") {
            match (f.get(&k("fee_type")), f.decimal(&k("fee"))) {
                (_, Err(m)) => e.add(&k("fee"), m),
                (_, Ok(None)) => e.add(&k("fee"), "Enter the fee amount or percentage."),
                ("fixed", Ok(Some(v))) => actions.push(Action::LateFee { fee: Fee::Fixed(v) }),
                ("percent", Ok(Some(v))) => actions.push(Action::LateFee {
                    fee: Fee::Percent(v),
                }),
                _ => e.add(&k("fee"), "Choose a fixed amount or a percentage."),
            }
        }
        if on("task_on") {
            let assignee = match f.get(&k("task_assignee")) {
                "owner" => Assignee::AccountOwner,
                "team" | "" => Assignee::Team,
                raw => match raw.parse::<i64>() {
                    Ok(id) if members.contains(&id) => Assignee::User(id),
                    _ => {
                        e.add(
                            &k("task_assignee"),
                            "Choose an active member, the account owner or the team.",
                        );
                        Assignee::Team
                    }
                },
            };
            let due_in_days = f.get(&k("task_due")).parse::<i32>().unwrap_or_else(|_| {
                e.add(&k("task_due"), "Enter the number of days the task has.");
                0
            });
            let title = f.get(&k("task_title")).chars().take(200).collect();
            actions.push(Action::Task {
                title,
                assignee,
                due_in_days,
            });
        }
        if on("hold") {
            actions.push(Action::Hold);
        }
        if on("stop") {
            actions.push(Action::Stop);
        }
        steps.push(Step {
            offset_days,
            actions,
            subject: subject.chars().take(200).collect(),
            body: body.chars().take(10_000).collect(),
        });
        row_of.push(i);
    }
    let mut list = |name: &str, what: &str| {
        int_list(f.get(name)).unwrap_or_else(|| {
            e.add(
                name,
                format!("List {what} as whole numbers separated by commas."),
            );
            Vec::new()
        })
    };
    let retry = RetryRules {
        soft_days: list("soft_days", "the retry days"),
        retryable_hours: list("retryable_hours", "the waits in hours"),
    };
    let policy = Policy { steps, retry };
    for (field, message) in policy.check() {
        // `Policy::check` counts kept steps; the form counts rows (removed and empty ones too).
        let field = field
            .strip_prefix("step")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(n, name)| {
                Some(format!(
                    "step{}_{name}",
                    row_of.get(n.parse::<usize>().ok()?)?
                ))
            })
            .unwrap_or(field);
        if e.get(&field).is_none() {
            e.add(&field, message);
        }
    }
    if e.is_empty() {
        Ok(policy)
    } else {
        Err(e)
    }
}

/// One row of the editor.
pub struct StepView {
    pub i: usize,
    pub form: Fields,
    errors: Vec<(String, String)>,
}

impl StepView {
    pub fn v(&self, name: &str) -> &str {
        self.form.get(&format!("step{}_{name}", self.i))
    }
    pub fn on(&self, name: &str) -> bool {
        self.form.flag(&format!("step{}_{name}", self.i))
    }
    pub fn err(&self, name: &str) -> &str {
        let key = format!("step{}_{name}", self.i);
        self.errors
            .iter()
            .find(|e| e.0 == key)
            .map_or("", |e| e.1.as_str())
    }
    pub fn is_blank(&self) -> bool {
        self.v("offset").is_empty() && self.v("subject").is_empty() && !self.on("reminder")
    }
}

pub fn step_views(form: &Fields, errors: &FieldErrors) -> Vec<StepView> {
    let rows = form.get("rows").parse::<usize>().unwrap_or(0).min(MAX_ROWS);
    (0..rows)
        .map(|i| StepView {
            i,
            form: form.clone(),
            errors: errors.0.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_policy_survives_a_round_trip_through_the_form() {
        let p = Policy::standard();
        let parsed = parse_policy(&policy_fields(&p), &[]).unwrap();
        assert_eq!(parsed, canonical(&p));
    }

    #[test]
    fn removed_and_empty_rows_are_dropped_and_errors_name_the_form_row() {
        let mut f = policy_fields(&Policy::standard());
        f.set("step0_remove", "yes");
        // Row 2 now comes before row 1 once row 0 is gone: its offset is the culprit.
        f.set("step2_offset", "0");
        f.set("step3_fee_on", "yes");
        f.set("step3_fee", "abc");
        f.set("step4_task_assignee", "999");
        f.set("soft_days", "1, x");
        let e = parse_policy(&f, &[7]).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            fields,
            [
                "step3_fee",
                "step4_task_assignee",
                "soft_days",
                "step2_offset"
            ]
        );

        let mut f = policy_fields(&Policy::standard());
        f.set("step1_remove", "yes");
        f.set("step4_task_assignee", "7");
        let p = parse_policy(&f, &[7]).unwrap();
        assert_eq!(p.steps.len(), 5);
        assert!(p.steps[3].actions.contains(&Action::Task {
            title: "Account on hold: agree a payment plan".into(),
            assignee: Assignee::User(7),
            due_in_days: 5,
        }));
    }

    #[test]
    fn the_extra_row_adds_a_step_and_an_empty_form_needs_one() {
        let mut f = policy_fields(&Policy::standard());
        f.set("step6_offset", "60");
        f.set("step6_task_on", "yes");
        f.set("step6_task_title", "Send to the agency");
        f.set("step6_task_due", "2");
        let e = parse_policy(&f, &[]).unwrap_err();
        assert_eq!(
            e.get("step5_actions"),
            Some("Only the last step can stop dunning.")
        );
        let mut empty = Fields::default();
        empty.set("rows", "1");
        assert!(parse_policy(&empty, &[])
            .unwrap_err()
            .get("steps")
            .is_some());
    }
}
