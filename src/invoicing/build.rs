//! Turning charges into invoice rows: taxes per line from the payer's profile, rounding per
//! line, totals from the rounded lines.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{
    domain::{self, TaxProfile, TaxRates},
    repo::{NewInvoice, NewLine},
};
use crate::{
    accounts::{
        domain::{PaymentTerms, TermsKind},
        repo::Account,
    },
    money::Currency,
    subscriptions::{charges::DraftLine, repo::Subscription},
};

/// Who pays, as far as an invoice needs to know.
#[derive(Debug, Clone)]
pub struct Payer {
    pub account_id: i64,
    pub tax: TaxProfile,
    pub terms: PaymentTerms,
}

impl Payer {
    pub fn of(a: &Account) -> Self {
        Self {
            account_id: a.id,
            tax: TaxProfile::from_account(&a.tax_mode, a.tax_rate),
            terms: PaymentTerms {
                kind: TermsKind::parse(&a.terms_kind).unwrap_or(TermsKind::Net),
                days: u16::try_from(a.terms_days).unwrap_or(30),
            },
        }
    }
}

/// The subscription's own terms, else the payer's.
pub fn terms_for(sub: &Subscription, payer: &Payer) -> PaymentTerms {
    match (
        sub.terms_kind.as_deref().and_then(TermsKind::parse),
        sub.terms_days,
    ) {
        (Some(kind), Some(days)) => PaymentTerms {
            kind,
            days: u16::try_from(days).unwrap_or(0),
        },
        _ => payer.terms,
    }
}

/// Rounded lines (invoice id 0 until inserted) and the header that totals them.
pub struct Built {
    pub invoice: NewInvoice,
    pub lines: Vec<NewLine>,
}

pub struct Header {
    pub kind: &'static str,
    pub source: &'static str,
    pub account_id: i64,
    pub subscription_id: Option<i64>,
    pub period: Option<(NaiveDate, NaiveDate)>,
    pub bill_run_id: Option<i64>,
    pub related_invoice_id: Option<i64>,
    pub currency: Currency,
    pub issue_date: NaiveDate,
    pub terms: PaymentTerms,
    pub po_number: Option<String>,
    pub notes: String,
}

pub fn build(h: Header, payer: &Payer, rates: TaxRates, drafts: &[DraftLine]) -> Built {
    let mut lines = Vec::with_capacity(drafts.len());
    let mut amounts = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.iter().enumerate() {
        let rate = payer.tax.rate(d.tax_category, rates);
        let a = domain::line(h.currency, d.amount, d.discount, rate);
        amounts.push(a);
        lines.push(NewLine {
            invoice_id: 0,
            position: i32::try_from(i + 1).unwrap_or(i32::MAX),
            kind: d.kind.as_str().to_owned(),
            description: d.description.chars().take(500).collect(),
            product_id: d.product_id,
            subscription_item_id: d.item_id,
            price_version_id: d.price_version_id,
            credited_line_id: None,
            period_start: d.period.map(|p| p.start),
            period_end: d.period.map(|p| p.last_day()),
            quantity: d.quantity,
            unit_price: d.unit_price(),
            amount: a.amount,
            discount: a.discount,
            net: a.net,
            tax_category: d.tax_category.as_str().to_owned(),
            tax_rate: rate,
            tax: a.tax,
            gl_account: d.gl_account.clone(),
        });
    }
    let t = domain::totals(&amounts);
    let invoice = NewInvoice {
        kind: h.kind.to_owned(),
        account_id: h.account_id,
        bill_to_account_id: payer.account_id,
        subscription_id: h.subscription_id,
        source: h.source.to_owned(),
        period_start: h.period.map(|p| p.0),
        period_end: h.period.map(|p| p.1),
        bill_run_id: h.bill_run_id,
        related_invoice_id: h.related_invoice_id,
        currency: h.currency.code().to_owned(),
        issue_date: h.issue_date,
        terms_kind: h.terms.kind.as_str().to_owned(),
        terms_days: i32::from(h.terms.days),
        po_number: h.po_number,
        notes: h.notes,
        subtotal: t.subtotal,
        tax_total: t.tax_total,
        total: t.total,
        amount_due: t.total.max(Decimal::ZERO),
    };
    Built { invoice, lines }
}
