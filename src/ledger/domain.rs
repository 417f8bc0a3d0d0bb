//! Pure posting rules: which accounts a billing event debits and credits, and by how much.
//! No I/O; `post` loads the documents and writes what these functions return.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Accounts the posting rules need, each held by one account of the chart (`gl_accounts.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Cash,
    Receivable,
    UnappliedCash,
    CustomerCredit,
    DeferredRevenue,
    TaxPayable,
    Discounts,
    LateFees,
    BadDebt,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Cash,
        Role::Receivable,
        Role::UnappliedCash,
        Role::CustomerCredit,
        Role::DeferredRevenue,
        Role::TaxPayable,
        Role::Discounts,
        Role::LateFees,
        Role::BadDebt,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Role::Cash => "cash",
            Role::Receivable => "receivable",
            Role::UnappliedCash => "unapplied_cash",
            Role::CustomerCredit => "customer_credit",
            Role::DeferredRevenue => "deferred_revenue",
            Role::TaxPayable => "tax_payable",
            Role::Discounts => "discounts",
            Role::LateFees => "late_fees",
            Role::BadDebt => "bad_debt",
        }
    }

    pub fn parse(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// Role → account code, as the chart says.
#[derive(Debug, Clone, Default)]
pub struct Roles(pub BTreeMap<Role, String>);

impl Roles {
    pub fn account(&self, role: Role) -> Result<&str, PostingError> {
        self.0
            .get(&role)
            .map(String::as_str)
            .ok_or(PostingError::MissingRole(role))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRule {
    pub id: i64,
    pub product_id: Option<i64>,
    pub entity: Option<String>,
    pub currency: Option<String>,
    pub revenue_account: String,
    pub deferred_account: String,
}

impl MappingRule {
    pub fn is_fallback(&self) -> bool {
        self.product_id.is_none() && self.entity.is_none() && self.currency.is_none()
    }

    fn specificity(&self) -> u8 {
        u8::from(self.product_id.is_some()) * 4
            + u8::from(self.entity.is_some()) * 2
            + u8::from(self.currency.is_some())
    }
}

/// The most specific rule matching a line: product beats entity beats currency; the rule
/// with every key empty is the fallback. `entities` are the account numbers of the customer
/// and of its payer.
pub fn resolve<'a>(
    rules: &'a [MappingRule],
    product_id: Option<i64>,
    entities: &[String],
    currency: &str,
) -> Option<&'a MappingRule> {
    rules
        .iter()
        .filter(|r| r.product_id.is_none() || r.product_id == product_id)
        .filter(|r| r.entity.as_ref().is_none_or(|e| entities.contains(e)))
        .filter(|r| r.currency.as_deref().is_none_or(|c| c == currency))
        .max_by_key(|r| (r.specificity(), std::cmp::Reverse(r.id)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostingError {
    /// No rule maps this line and there is no fallback.
    MappingGap {
        product: Option<String>,
        currency: String,
    },
    MissingRole(Role),
    Unbalanced {
        currency: String,
        off: Decimal,
    },
}

impl std::fmt::Display for PostingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostingError::MappingGap { product, currency } => {
                let what = match product {
                    Some(p) => format!("product “{p}”"),
                    None => "lines without a product".to_owned(),
                };
                write!(
                    f,
                    "No GL mapping for {what} in {currency}: add a mapping rule for it (or restore \
                     the fallback rule) under Ledger → Chart of accounts, then try again."
                )
            }
            PostingError::MissingRole(r) => write!(
                f,
                "The chart of accounts has no account for the role “{}”; assign one under \
                 Ledger → Chart of accounts.",
                r.code()
            ),
            PostingError::Unbalanced { currency, off } => write!(
                f,
                "The journal entry does not balance: debits minus credits = {off} {currency}."
            ),
        }
    }
}

/// One posting; debit positive, credit negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: String,
    pub amount: Decimal,
    pub source_line: Option<i64>,
    pub memo: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Invoice,
    CreditNote,
    Payment,
    PaymentApplication,
    Refund,
    PaymentReversal,
    WriteOff,
    /// A voided invoice: its finalization entry reversed line by line.
    Void,
    /// A month of ratable revenue moved from deferred revenue to revenue (`revrec`).
    RevenueRecognition,
}

impl SourceType {
    pub fn code(self) -> &'static str {
        match self {
            SourceType::Invoice => "invoice",
            SourceType::CreditNote => "credit_note",
            SourceType::Payment => "payment",
            SourceType::PaymentApplication => "payment_application",
            SourceType::Refund => "refund",
            SourceType::PaymentReversal => "payment_reversal",
            SourceType::WriteOff => "write_off",
            SourceType::Void => "void",
            SourceType::RevenueRecognition => "revenue_recognition",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub date: NaiveDate,
    pub source_type: SourceType,
    pub source_id: i64,
    pub document: String,
    pub memo: String,
    pub currency: String,
    pub postings: Vec<Posting>,
}

/// Zero postings are dropped; the rest must sum to zero.
fn finish(mut e: NewEntry) -> Result<NewEntry, PostingError> {
    e.postings.retain(|p| !p.amount.is_zero());
    let off: Decimal = e.postings.iter().map(|p| p.amount).sum();
    if !off.is_zero() {
        return Err(PostingError::Unbalanced {
            currency: e.currency,
            off,
        });
    }
    Ok(e)
}

pub fn is_balanced(postings: &[Posting]) -> bool {
    postings.iter().map(|p| p.amount).sum::<Decimal>().is_zero()
}

/// A line of an invoice or credit note as the ledger sees it. `id` is `None` for the single
/// stand-in line of a document written without lines (its subtotal and tax, mapped like a
/// line without a product).
#[derive(Debug, Clone)]
pub struct DocLine {
    pub id: Option<i64>,
    pub product_id: Option<i64>,
    pub product_name: Option<String>,
    pub ratable: bool,
    pub late_fee: bool,
    pub net: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
}

/// A finalized invoice or credit note. `settled_from_credit` is the account credit an invoice
/// drew; for a credit note it is the part that became account credit instead of reducing its
/// invoice.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: i64,
    pub credit_note: bool,
    pub number: String,
    pub date: NaiveDate,
    pub currency: String,
    pub entities: Vec<String>,
    pub total: Decimal,
    pub settled_from_credit: Decimal,
    pub lines: Vec<DocLine>,
}

/// Invoice: Dr AR total / Cr revenue (or deferred revenue for ratable products) gross, Dr
/// discounts, Cr tax; credit drawn moves from customer credit to AR. A credit note is the
/// mirror image, with AR credited by what reduced its invoice and customer credit by the rest.
pub fn document_entry(
    doc: &Document,
    roles: &Roles,
    rules: &[MappingRule],
) -> Result<NewEntry, PostingError> {
    let sign = if doc.credit_note {
        Decimal::NEGATIVE_ONE
    } else {
        Decimal::ONE
    };
    let mut postings = Vec::new();
    for l in &doc.lines {
        let revenue = if l.late_fee {
            roles.account(Role::LateFees)?.to_owned()
        } else {
            let rule =
                resolve(rules, l.product_id, &doc.entities, &doc.currency).ok_or_else(|| {
                    PostingError::MappingGap {
                        product: l.product_name.clone(),
                        currency: doc.currency.clone(),
                    }
                })?;
            if l.ratable {
                rule.deferred_account.clone()
            } else {
                rule.revenue_account.clone()
            }
        };
        let line = |account: String, amount: Decimal, memo: &str| Posting {
            account,
            amount: amount * sign,
            source_line: l.id,
            memo: memo.to_owned(),
        };
        postings.push(line(revenue, -(l.net + l.discount), "revenue"));
        postings.push(line(
            roles.account(Role::Discounts)?.to_owned(),
            l.discount,
            "discount",
        ));
        postings.push(line(
            roles.account(Role::TaxPayable)?.to_owned(),
            -l.tax,
            "tax",
        ));
    }
    let ar = roles.account(Role::Receivable)?.to_owned();
    let credit = roles.account(Role::CustomerCredit)?.to_owned();
    let whole = |account: String, amount: Decimal, memo: &str| Posting {
        account,
        amount: amount * sign,
        source_line: None,
        memo: memo.to_owned(),
    };
    if doc.credit_note {
        postings.push(whole(ar, doc.total - doc.settled_from_credit, "receivable"));
        postings.push(whole(credit, doc.settled_from_credit, "to account credit"));
    } else {
        postings.push(whole(ar.clone(), doc.total, "receivable"));
        postings.push(whole(
            credit,
            doc.settled_from_credit,
            "account credit drawn",
        ));
        postings.push(whole(ar, -doc.settled_from_credit, "account credit drawn"));
    }
    let (source_type, what) = if doc.credit_note {
        (SourceType::CreditNote, "Credit note")
    } else {
        (SourceType::Invoice, "Invoice")
    };
    finish(NewEntry {
        date: doc.date,
        source_type,
        source_id: doc.id,
        document: doc.number.clone(),
        memo: format!("{what} {}", doc.number),
        currency: doc.currency.clone(),
        postings,
    })
}

/// A two-line entry: Dr `debit` / Cr `credit` by `amount` (a negative amount reverses it).
#[allow(clippy::too_many_arguments)]
pub fn transfer(
    date: NaiveDate,
    source_type: SourceType,
    source_id: i64,
    document: &str,
    memo: &str,
    currency: &str,
    debit: &str,
    credit: &str,
    amount: Decimal,
) -> Result<NewEntry, PostingError> {
    let p = |account: &str, amount: Decimal| Posting {
        account: account.to_owned(),
        amount,
        source_line: None,
        memo: String::new(),
    };
    finish(NewEntry {
        date,
        source_type,
        source_id,
        document: document.to_owned(),
        memo: memo.to_owned(),
        currency: currency.to_owned(),
        postings: vec![p(debit, amount), p(credit, -amount)],
    })
}

/// Each account's balance per currency (debits positive).
pub fn balances<'a>(
    entries: impl IntoIterator<Item = &'a NewEntry>,
) -> BTreeMap<(String, String), Decimal> {
    let mut out = BTreeMap::new();
    for e in entries {
        for p in &e.postings {
            *out.entry((p.account.clone(), e.currency.clone()))
                .or_insert(Decimal::ZERO) += p.amount;
        }
    }
    out
}

#[cfg(test)]
#[path = "domain_tests.rs"]
mod tests;
