//! Posting rules per event, and a model of random billing sequences that must keep every
//! entry balanced and the receivable account equal to the open invoice balances.

use proptest::prelude::*;

use super::*;

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default()
}

fn roles() -> Roles {
    let codes = [
        (Role::Cash, "1000"),
        (Role::Receivable, "1200"),
        (Role::UnappliedCash, "2100"),
        (Role::CustomerCredit, "2150"),
        (Role::DeferredRevenue, "2200"),
        (Role::TaxPayable, "2300"),
        (Role::Discounts, "4900"),
        (Role::LateFees, "4800"),
        (Role::BadDebt, "6100"),
    ];
    Roles(codes.iter().map(|(r, c)| (*r, (*c).to_owned())).collect())
}

fn fallback() -> MappingRule {
    MappingRule {
        id: 1,
        product_id: None,
        entity: None,
        currency: None,
        revenue_account: "4000".into(),
        deferred_account: "2200".into(),
    }
}

fn line(id: i64, product: Option<i64>, ratable: bool, net: &str, disc: &str, tax: &str) -> DocLine {
    DocLine {
        id: Some(id),
        product_id: product,
        product_name: product.map(|p| format!("P{p}")),
        ratable,
        late_fee: false,
        net: d(net),
        discount: d(disc),
        tax: d(tax),
    }
}

fn doc(credit_note: bool, total: &str, from_credit: &str, lines: Vec<DocLine>) -> Document {
    Document {
        id: 7,
        credit_note,
        number: "INV-000001".into(),
        date: day(),
        currency: "EUR".into(),
        entities: vec!["ACME".into()],
        total: d(total),
        settled_from_credit: d(from_credit),
        lines,
    }
}

fn by_account(e: &NewEntry) -> Vec<(String, Decimal)> {
    let mut m: BTreeMap<String, Decimal> = BTreeMap::new();
    for p in &e.postings {
        *m.entry(p.account.clone()).or_default() += p.amount;
    }
    m.into_iter().filter(|(_, a)| !a.is_zero()).collect()
}

fn acc(pairs: &[(&str, &str)]) -> Vec<(String, Decimal)> {
    pairs.iter().map(|(a, v)| ((*a).to_owned(), d(v))).collect()
}

#[test]
fn an_invoice_debits_receivable_and_credits_revenue_deferred_revenue_discount_and_tax() {
    let lines = vec![
        line(1, Some(10), true, "90", "10", "18"),
        line(2, Some(11), false, "50", "0", "10"),
    ];
    let rules = vec![
        fallback(),
        MappingRule {
            id: 2,
            product_id: Some(11),
            entity: None,
            currency: None,
            revenue_account: "4020".into(),
            deferred_account: "2200".into(),
        },
    ];
    let e = document_entry(&doc(false, "168", "20", lines), &roles(), &rules).unwrap();
    assert_eq!(
        by_account(&e),
        acc(&[
            ("1200", "148"),
            ("2150", "20"),
            ("2200", "-100"),
            ("2300", "-28"),
            ("4020", "-50"),
            ("4900", "10"),
        ])
    );
    assert!(e.postings.iter().any(|p| p.source_line == Some(2)));
}

#[test]
fn a_credit_note_reverses_its_lines_and_splits_between_receivable_and_account_credit() {
    let lines = vec![line(3, Some(10), false, "50", "0", "10")];
    let e = document_entry(&doc(true, "60", "25", lines), &roles(), &[fallback()]).unwrap();
    assert_eq!(e.source_type, SourceType::CreditNote);
    assert_eq!(
        by_account(&e),
        acc(&[
            ("1200", "-35"),
            ("2150", "-25"),
            ("2300", "10"),
            ("4000", "50")
        ])
    );
}

#[test]
fn a_late_fee_line_goes_to_late_fee_income_without_a_mapping() {
    let mut l = line(4, None, false, "15", "0", "0");
    l.late_fee = true;
    let e = document_entry(&doc(false, "15", "0", vec![l]), &roles(), &[]).unwrap();
    assert_eq!(by_account(&e), acc(&[("1200", "15"), ("4800", "-15")]));
}

#[test]
fn the_most_specific_rule_wins_and_without_a_fallback_a_gap_names_the_product() {
    let mut rules = vec![
        fallback(),
        MappingRule {
            id: 2,
            entity: Some("ACME".into()),
            product_id: None,
            currency: None,
            revenue_account: "4100".into(),
            deferred_account: "2200".into(),
        },
        MappingRule {
            id: 3,
            currency: Some("EUR".into()),
            product_id: None,
            entity: None,
            revenue_account: "4010".into(),
            deferred_account: "2200".into(),
        },
    ];
    let ent = vec!["ACME".to_owned()];
    assert_eq!(resolve(&rules, Some(1), &ent, "EUR").map(|r| r.id), Some(2));
    assert_eq!(resolve(&rules, Some(1), &[], "EUR").map(|r| r.id), Some(3));
    assert_eq!(resolve(&rules, Some(1), &[], "USD").map(|r| r.id), Some(1));
    // Only a rule for another product is left: product 9 has nowhere to go.
    rules = vec![MappingRule {
        id: 4,
        product_id: Some(8),
        ..fallback()
    }];
    let err = document_entry(
        &doc(
            false,
            "10",
            "0",
            vec![line(1, Some(9), false, "10", "0", "0")],
        ),
        &roles(),
        &rules,
    )
    .unwrap_err();
    assert!(matches!(err, PostingError::MappingGap { .. }));
    assert!(err.to_string().contains("product “P9” in EUR"), "{err}");
}

#[test]
fn an_entry_that_does_not_add_up_is_refused() {
    let e = document_entry(
        &doc(
            false,
            "99",
            "0",
            vec![line(1, None, false, "100", "0", "0")],
        ),
        &roles(),
        &[fallback()],
    );
    assert!(matches!(e, Err(PostingError::Unbalanced { .. })));
}

/// What a billing event does in the model.
#[derive(Debug, Clone)]
enum Op {
    Invoice { net: i64, tax: i64, ratable: bool },
    Pay(i64),
    Apply { payment: usize, invoice: usize },
    Unapply { payment: usize, invoice: usize },
    Credit { invoice: usize, amount: i64 },
    Refund { payment: usize, amount: i64 },
    WriteOff(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..50_000, 0i64..10_000, any::<bool>()).prop_map(|(net, tax, ratable)| Op::Invoice {
            net,
            tax,
            ratable
        }),
        (1i64..80_000).prop_map(Op::Pay),
        (0usize..8, 0usize..8).prop_map(|(payment, invoice)| Op::Apply { payment, invoice }),
        (0usize..8, 0usize..8).prop_map(|(payment, invoice)| Op::Unapply { payment, invoice }),
        (0usize..8, 1i64..30_000).prop_map(|(invoice, amount)| Op::Credit { invoice, amount }),
        (0usize..8, 1i64..30_000).prop_map(|(payment, amount)| Op::Refund { payment, amount }),
        (0usize..8).prop_map(Op::WriteOff),
    ]
}

#[derive(Default)]
struct Model {
    /// (amount due, written off)
    invoices: Vec<(Decimal, bool)>,
    /// (unapplied, applied per invoice)
    payments: Vec<(Decimal, BTreeMap<usize, Decimal>)>,
    credit: Decimal,
    entries: Vec<NewEntry>,
}

impl Model {
    fn post(&mut self, e: Result<NewEntry, PostingError>) {
        let e = e.unwrap();
        assert!(is_balanced(&e.postings), "{e:?}");
        self.entries.push(e);
    }

    fn move_cash(&mut self, t: SourceType, debit: Role, credit: Role, amount: Decimal) {
        let r = roles();
        let (dr, cr) = (r.0[&debit].clone(), r.0[&credit].clone());
        self.post(transfer(day(), t, 1, "P", "", "EUR", &dr, &cr, amount));
    }

    fn step(&mut self, op: Op) {
        let cents = |c: i64| Decimal::new(c, 2);
        match op {
            Op::Invoice { net, tax, ratable } => {
                let total = cents(net) + cents(tax);
                let drawn = self.credit.min(total);
                self.credit -= drawn;
                let mut dc = doc(false, "0", "0", vec![]);
                dc.lines = vec![DocLine {
                    net: cents(net),
                    tax: cents(tax),
                    ..line(1, Some(1), ratable, "0", "0", "0")
                }];
                dc.total = total;
                dc.settled_from_credit = drawn;
                self.post(document_entry(&dc, &roles(), &[fallback()]));
                self.invoices.push((total - drawn, false));
            }
            Op::Pay(c) => {
                self.move_cash(
                    SourceType::Payment,
                    Role::Cash,
                    Role::UnappliedCash,
                    cents(c),
                );
                self.payments.push((cents(c), BTreeMap::new()));
            }
            Op::Apply { payment, invoice } => {
                let (Some(p), Some(i)) = (self.payments.get(payment), self.invoices.get(invoice))
                else {
                    return;
                };
                let amount = p.0.min(i.0);
                if i.1 || amount.is_zero() {
                    return;
                }
                self.payments[payment].0 -= amount;
                *self.payments[payment].1.entry(invoice).or_default() += amount;
                self.invoices[invoice].0 -= amount;
                let t = SourceType::PaymentApplication;
                self.move_cash(t, Role::UnappliedCash, Role::Receivable, amount);
            }
            Op::Unapply { payment, invoice } => {
                let Some(applied) = self.payments.get(payment).and_then(|p| p.1.get(&invoice))
                else {
                    return;
                };
                let amount = *applied;
                if self.invoices[invoice].1 || amount.is_zero() {
                    return;
                }
                self.payments[payment].0 += amount;
                self.payments[payment].1.insert(invoice, Decimal::ZERO);
                self.invoices[invoice].0 += amount;
                let t = SourceType::PaymentApplication;
                self.move_cash(t, Role::UnappliedCash, Role::Receivable, -amount);
            }
            Op::Credit { invoice, amount } => {
                let Some(&(due, off)) = self.invoices.get(invoice) else {
                    return;
                };
                let total = cents(amount);
                let to_invoice = if off { Decimal::ZERO } else { due.min(total) };
                let mut dc = doc(true, "0", "0", vec![]);
                dc.lines = vec![DocLine {
                    net: total,
                    ..line(1, Some(1), false, "0", "0", "0")
                }];
                dc.total = total;
                dc.settled_from_credit = total - to_invoice;
                self.post(document_entry(&dc, &roles(), &[fallback()]));
                self.invoices[invoice].0 -= to_invoice;
                self.credit += total - to_invoice;
            }
            Op::Refund { payment, amount } => {
                let Some(p) = self.payments.get(payment) else {
                    return;
                };
                let amount = p.0.min(cents(amount));
                if amount.is_zero() {
                    return;
                }
                self.payments[payment].0 -= amount;
                self.move_cash(SourceType::Refund, Role::UnappliedCash, Role::Cash, amount);
            }
            Op::WriteOff(invoice) => {
                let Some(&(due, off)) = self.invoices.get(invoice) else {
                    return;
                };
                if off || due.is_zero() {
                    return;
                }
                self.invoices[invoice].1 = true;
                self.move_cash(SourceType::WriteOff, Role::BadDebt, Role::Receivable, due);
            }
        }
    }

    fn balance(&self, account: &str) -> Decimal {
        balances(&self.entries)
            .get(&(account.to_owned(), "EUR".to_owned()))
            .copied()
            .unwrap_or_default()
    }
}

proptest! {
    #[test]
    fn random_billing_keeps_entries_balanced_and_receivables_reconciled(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let mut m = Model::default();
        for o in ops {
            m.step(o);
            let open: Decimal = m.invoices.iter().filter(|i| !i.1).map(|i| i.0).sum();
            prop_assert_eq!(m.balance("1200"), open);
            let unapplied: Decimal = m.payments.iter().map(|p| p.0).sum();
            prop_assert_eq!(m.balance("2100"), -unapplied);
            prop_assert_eq!(m.balance("2150"), -m.credit);
            let all: Decimal = balances(&m.entries).values().copied().sum();
            prop_assert!(all.is_zero());
        }
    }
}
