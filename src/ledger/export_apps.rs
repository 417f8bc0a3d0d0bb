//! Journal entries and invoice documents in the shapes QuickBooks Online and Xero accept.
//! Pure builders over [`export::Entry`] and an invoice with its lines.
//!
//! Rules:
//! - QBO `JournalEntry`: every line carries a positive `Amount` and `PostingType` Debit or
//!   Credit; `AccountRef.value` is the chart code (keep the codes equal to the accounting
//!   system's account ids); `DocNumber` is `JE-<entry id>` (QBO allows 21 characters), the
//!   idempotency handle a repeated push is recognized by.
//! - Xero `ManualJournal`: signed `LineAmount` (debit positive, credit negative) summing to
//!   zero, `AccountCode` from the chart, no tax on journal lines.
//! - Invoices: QBO `Invoice` / `CreditMemo` with `SalesItemLineDetail` lines and the tax
//!   total in `TxnTaxDetail`; Xero `Invoices` of type `ACCREC` and `CreditNotes` of type
//!   `ACCRECCREDIT`, tax-exclusive lines with their own `TaxAmount`. Amounts are JSON numbers
//!   with at most 4 decimals, written from `Decimal` (never through floating point).

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::export::{Account, Entry};
use crate::invoicing::repo::{Invoice, Line};

/// A decimal as a JSON number, exactly as written (e.g. `12.50` → `12.5`).
pub fn num(d: Decimal) -> Value {
    let s = d.normalize().to_string();
    serde_json::from_str(&s).unwrap_or(Value::String(s))
}

fn account_name(accounts: &[Account], code: &str) -> String {
    accounts
        .iter()
        .find(|a| a.code == code)
        .map(|a| a.name.clone())
        .unwrap_or_default()
}

/// The document number a pushed entry goes by.
pub fn entry_number(e: &Entry) -> String {
    format!("JE-{}", e.id)
}

fn entry_note(e: &Entry) -> String {
    let mut note = format!("{} {}: {}", e.source_type, e.document, e.memo);
    note.truncate(note.floor_char_boundary(4000));
    note
}

/// One QBO JournalEntry object.
pub fn qbo_journal_entry(accounts: &[Account], e: &Entry) -> Value {
    let lines: Vec<Value> = e
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let posting = if l.amount.is_sign_negative() {
                "Credit"
            } else {
                "Debit"
            };
            let mut description = if l.memo.is_empty() {
                e.memo.clone()
            } else {
                l.memo.clone()
            };
            description.truncate(description.floor_char_boundary(4000));
            json!({
                "Id": (i + 1).to_string(),
                "Description": description,
                "Amount": num(l.amount.abs()),
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {
                    "PostingType": posting,
                    "AccountRef": {
                        "value": l.account_code,
                        "name": account_name(accounts, &l.account_code),
                    },
                },
            })
        })
        .collect();
    json!({
        "DocNumber": entry_number(e),
        "TxnDate": e.date.to_string(),
        "PrivateNote": entry_note(e),
        "CurrencyRef": { "value": e.currency },
        "Line": lines,
    })
}

/// One Xero ManualJournal object.
pub fn xero_manual_journal(e: &Entry) -> Value {
    let lines: Vec<Value> = e
        .lines
        .iter()
        .map(|l| {
            let description = if l.memo.is_empty() { &e.memo } else { &l.memo };
            json!({
                "LineAmount": num(l.amount),
                "AccountCode": l.account_code,
                "Description": description,
            })
        })
        .collect();
    json!({
        "Narration": format!("{} {}", entry_number(e), entry_note(e)),
        "Date": e.date.to_string(),
        "Status": "POSTED",
        "LineAmountTypes": "NoTax",
        "Url": Value::Null,
        "JournalLines": lines,
    })
}

/// A file of QBO journal entries: `{"JournalEntry": [...]}` (one object per entry; QBO's
/// batch endpoint takes them one by one).
pub fn qbo_journal(accounts: &[Account], entries: &[Entry]) -> Value {
    json!({
        "JournalEntry": entries.iter().map(|e| qbo_journal_entry(accounts, e)).collect::<Vec<_>>(),
    })
}

/// A file of Xero manual journals: `{"ManualJournals": [...]}`, the body Xero's PUT takes.
pub fn xero_journal(entries: &[Entry]) -> Value {
    json!({ "ManualJournals": entries.iter().map(xero_manual_journal).collect::<Vec<_>>() })
}

/// An invoice or credit note with what the document shapes need beyond the document row.
#[derive(Debug, Clone)]
pub struct InvoiceDoc {
    pub invoice: Invoice,
    pub lines: Vec<Line>,
    /// Per line id: the revenue (or deferred revenue) account its journal entry credited.
    pub line_accounts: Vec<(i64, String)>,
    /// Per product id: (SKU or code, name).
    pub products: Vec<(i64, String, String)>,
}

impl InvoiceDoc {
    fn bill_to(&self, field: &str) -> String {
        self.invoice
            .bill_to
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn account_of(&self, line: &Line) -> String {
        self.line_accounts
            .iter()
            .find(|(id, _)| *id == line.id)
            .map(|(_, a)| a.clone())
            .or_else(|| line.gl_account.clone())
            .unwrap_or_default()
    }

    fn product(&self, line: &Line) -> Option<(String, String)> {
        let id = line.product_id?;
        self.products
            .iter()
            .find(|p| p.0 == id)
            .map(|p| (p.1.clone(), p.2.clone()))
    }

    fn number(&self) -> String {
        self.invoice.label()
    }
}

/// QBO `Invoice` (or `CreditMemo` for a credit note): credit note amounts are positive.
pub fn qbo_invoice(doc: &InvoiceDoc) -> Value {
    let inv = &doc.invoice;
    let mut lines: Vec<Value> = doc
        .lines
        .iter()
        .map(|l| {
            let mut detail = Map::new();
            if let Some((sku, name)) = doc.product(l) {
                detail.insert("ItemRef".into(), json!({ "value": sku, "name": name }));
            }
            detail.insert("Qty".into(), num(l.quantity.abs()));
            detail.insert("UnitPrice".into(), num(l.unit_price.abs()));
            detail.insert(
                "TaxCodeRef".into(),
                json!({ "value": if l.tax.is_zero() { "NON" } else { "TAX" } }),
            );
            detail.insert(
                "ItemAccountRef".into(),
                json!({ "value": doc.account_of(l) }),
            );
            if let Some(start) = l.period_start {
                detail.insert("ServiceDate".into(), json!(start.to_string()));
            }
            json!({
                "LineNum": l.position,
                "Description": l.description,
                "Amount": num(l.net.abs()),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": Value::Object(detail),
            })
        })
        .collect();
    lines.push(json!({ "Amount": num(inv.subtotal.abs()), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {} }));
    let mut out = json!({
        "DocNumber": doc.number(),
        "TxnDate": inv.issue_date.to_string(),
        "CustomerRef": { "value": doc.bill_to("account_number"), "name": doc.bill_to("name") },
        "CurrencyRef": { "value": inv.currency },
        "Line": lines,
        "TxnTaxDetail": { "TotalTax": num(inv.tax_total.abs()) },
        "TotalAmt": num(inv.total.abs()),
        "PrivateNote": inv.notes,
    });
    if let Some(obj) = out.as_object_mut() {
        if let Some(due) = inv.due_date {
            obj.insert("DueDate".into(), json!(due.to_string()));
        }
        if let Some(po) = &inv.po_number {
            obj.insert(
                "CustomField".into(),
                json!([{ "DefinitionId": "1", "Name": "PO Number", "Type": "StringType", "StringValue": po }]),
            );
        }
        if let Some(to) = inv.recipients.first() {
            obj.insert("BillEmail".into(), json!({ "Address": to }));
        }
    }
    out
}

/// Xero `Invoice` (type `ACCREC`) or `CreditNote` (type `ACCRECCREDIT`).
pub fn xero_invoice(doc: &InvoiceDoc) -> Value {
    let inv = &doc.invoice;
    let credit = inv.is_credit_note();
    let lines: Vec<Value> = doc
        .lines
        .iter()
        .map(|l| {
            let mut item = json!({
                "Description": l.description,
                "Quantity": num(l.quantity.abs()),
                "UnitAmount": num(l.unit_price.abs()),
                "DiscountAmount": num(l.discount.abs()),
                "LineAmount": num(l.net.abs()),
                "TaxAmount": num(l.tax.abs()),
                "AccountCode": doc.account_of(l),
            });
            if let (Some((sku, _)), Some(obj)) = (doc.product(l), item.as_object_mut()) {
                obj.insert("ItemCode".into(), json!(sku));
            }
            item
        })
        .collect();
    let status = match inv.status.as_str() {
        "void" => "VOIDED",
        "paid" => "PAID",
        "draft" => "DRAFT",
        _ => "AUTHORISED",
    };
    let mut out = json!({
        "Type": if credit { "ACCRECCREDIT" } else { "ACCREC" },
        "Contact": { "ContactNumber": doc.bill_to("account_number"), "Name": doc.bill_to("name") },
        "Date": inv.issue_date.to_string(),
        "CurrencyCode": inv.currency,
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "LineItems": lines,
        "SubTotal": num(inv.subtotal.abs()),
        "TotalTax": num(inv.tax_total.abs()),
        "Total": num(inv.total.abs()),
    });
    if let Some(obj) = out.as_object_mut() {
        let number_field = if credit {
            "CreditNoteNumber"
        } else {
            "InvoiceNumber"
        };
        obj.insert(number_field.into(), json!(doc.number()));
        if let Some(due) = inv.due_date.filter(|_| !credit) {
            obj.insert("DueDate".into(), json!(due.to_string()));
        }
        if let Some(po) = &inv.po_number {
            obj.insert("Reference".into(), json!(po));
        }
    }
    out
}

/// `{"Invoice": [...], "CreditMemo": [...]}` for QBO.
pub fn qbo_invoices(docs: &[InvoiceDoc]) -> Value {
    let (credits, invoices): (Vec<&InvoiceDoc>, Vec<&InvoiceDoc>) =
        docs.iter().partition(|d| d.invoice.is_credit_note());
    json!({
        "Invoice": invoices.into_iter().map(qbo_invoice).collect::<Vec<_>>(),
        "CreditMemo": credits.into_iter().map(qbo_invoice).collect::<Vec<_>>(),
    })
}

/// `{"Invoices": [...], "CreditNotes": [...]}` for Xero.
pub fn xero_invoices(docs: &[InvoiceDoc]) -> Value {
    let (credits, invoices): (Vec<&InvoiceDoc>, Vec<&InvoiceDoc>) =
        docs.iter().partition(|d| d.invoice.is_credit_note());
    json!({
        "Invoices": invoices.into_iter().map(xero_invoice).collect::<Vec<_>>(),
        "CreditNotes": credits.into_iter().map(xero_invoice).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::ledger::export::Line as JLine;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn chart() -> Vec<Account> {
        [
            ("1200", "Accounts receivable", "asset"),
            ("4000", "Subscription revenue", "income"),
            ("2200", "Sales tax payable", "liability"),
        ]
        .iter()
        .map(|(c, n, k)| Account {
            code: (*c).into(),
            name: (*n).into(),
            kind: (*k).into(),
        })
        .collect()
    }

    fn entry() -> Entry {
        let line = |code: &str, amount: &str| JLine {
            account_code: code.into(),
            amount: d(amount),
            source_line: None,
            memo: String::new(),
        };
        Entry {
            id: 42,
            date: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            source_type: "invoice".into(),
            source_id: 7,
            document: "INV-000007".into(),
            memo: "Invoice to Acme".into(),
            currency: "USD".into(),
            lines: vec![
                line("1200", "110.0000"),
                line("4000", "-100.0000"),
                line("2200", "-10.0000"),
            ],
        }
    }

    fn sum_where(lines: &[Value], posting: &str) -> Decimal {
        lines
            .iter()
            .filter(|l| l["JournalEntryLineDetail"]["PostingType"] == posting)
            .map(|l| l["Amount"].to_string().parse::<Decimal>().unwrap())
            .sum()
    }

    #[test]
    fn qbo_lines_are_positive_and_debits_equal_credits() {
        let v = qbo_journal_entry(&chart(), &entry());
        assert_eq!(v["DocNumber"], "JE-42");
        assert_eq!(v["TxnDate"], "2026-03-31");
        assert_eq!(v["CurrencyRef"]["value"], "USD");
        let lines = v["Line"].as_array().unwrap();
        assert_eq!(lines.len(), 3);
        for l in lines {
            assert_eq!(l["DetailType"], "JournalEntryLineDetail");
            assert!(l["Amount"].as_f64().unwrap() > 0.0, "{l}");
        }
        assert_eq!(sum_where(lines, "Debit"), d("110"));
        assert_eq!(sum_where(lines, "Credit"), d("110"));
        assert_eq!(
            lines[1]["JournalEntryLineDetail"]["AccountRef"],
            json!({"value": "4000", "name": "Subscription revenue"})
        );
        assert_eq!(lines[1]["JournalEntryLineDetail"]["PostingType"], "Credit");
    }

    #[test]
    fn xero_line_amounts_are_signed_and_sum_to_zero() {
        let v = xero_journal(&[entry()]);
        let j = &v["ManualJournals"][0];
        assert_eq!(j["Date"], "2026-03-31");
        assert!(j["Narration"].as_str().unwrap().starts_with("JE-42 "));
        let lines = j["JournalLines"].as_array().unwrap();
        let amounts: Vec<Decimal> = lines
            .iter()
            .map(|l| l["LineAmount"].to_string().parse().unwrap())
            .collect();
        assert_eq!(amounts, vec![d("110"), d("-100"), d("-10")]);
        assert_eq!(amounts.iter().sum::<Decimal>(), Decimal::ZERO);
        assert_eq!(lines[2]["AccountCode"], "2200");
    }

    #[test]
    fn amounts_are_exact_numbers_not_floats() {
        assert_eq!(num(d("0.1000")).to_string(), "0.1");
        assert_eq!(num(d("1234567.8912")).to_string(), "1234567.8912");
        assert_eq!(num(d("-5.50")).to_string(), "-5.5");
    }
}
