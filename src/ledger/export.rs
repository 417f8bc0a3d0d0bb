//! Journal exports: CSV, an hledger journal and a beancount file. Pure text builders.
//!
//! Both plain-text formats declare every account (and hledger every commodity), so they pass
//! `hledger check --strict` and `bean-check`; an altered amount makes an entry unbalanced and
//! both tools reject the file.

use std::{collections::BTreeSet, fmt::Write};

use chrono::NaiveDate;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
pub struct Account {
    pub code: String,
    pub name: String,
    pub kind: String,
}

impl Account {
    /// `assets:1200 Accounts receivable`: the chart's names never hold `:`, `;` or two spaces
    /// (a check on `gl_accounts`), which hledger would read as structure.
    pub fn hledger_name(&self) -> String {
        let top = match self.kind.as_str() {
            "asset" => "assets",
            "liability" => "liabilities",
            "equity" => "equity",
            "income" => "revenues",
            _ => "expenses",
        };
        format!("{top}:{} {}", self.code, self.name)
    }

    /// `Assets:1200-Accounts-Receivable`: beancount components take ASCII letters, digits and
    /// dashes only.
    pub fn beancount_name(&self) -> String {
        let top = match self.kind.as_str() {
            "asset" => "Assets",
            "liability" => "Liabilities",
            "equity" => "Equity",
            "income" => "Income",
            _ => "Expenses",
        };
        let mut parts = vec![self.code.replace('_', "-")];
        for word in self.name.split(|c: char| !c.is_ascii_alphanumeric()) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                parts.push(first.to_ascii_uppercase().to_string() + chars.as_str());
            }
        }
        format!("{top}:{}", parts.join("-"))
    }
}

#[derive(Debug, Clone)]
pub struct Line {
    pub account_code: String,
    pub amount: Decimal,
    pub source_line: Option<i64>,
    pub memo: String,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    pub date: NaiveDate,
    pub source_type: String,
    pub source_id: i64,
    pub document: String,
    pub memo: String,
    pub currency: String,
    pub lines: Vec<Line>,
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn quoted(s: &str) -> String {
    format!(
        "\"{}\"",
        one_line(s).replace('\\', "\\\\").replace('"', "\\\"")
    )
}

fn find<'a>(accounts: &'a [Account], code: &str) -> Option<&'a Account> {
    accounts.iter().find(|a| a.code == code)
}

pub fn hledger(accounts: &[Account], entries: &[Entry]) -> String {
    let mut out = String::from("; Arbor journal export\n\n");
    for a in accounts {
        let _ = writeln!(out, "account {}", a.hledger_name());
    }
    let currencies: BTreeSet<&str> = entries.iter().map(|e| e.currency.as_str()).collect();
    for c in currencies {
        let _ = writeln!(out, "commodity 1000.0000 {c}");
    }
    for e in entries {
        let _ = writeln!(
            out,
            "\n{} ({}) {}  ; entry:{}, source:{} {}",
            e.date,
            one_line(&e.document).replace(')', "]"),
            one_line(&e.memo).replace(';', ","),
            e.id,
            e.source_type,
            e.source_id
        );
        for l in &e.lines {
            let name = find(accounts, &l.account_code)
                .map(Account::hledger_name)
                .unwrap_or_else(|| l.account_code.clone());
            let line = l
                .source_line
                .map(|s| format!(" line:{s}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {name}  {} {}  ;{line} {}",
                l.amount,
                e.currency,
                one_line(&l.memo)
            );
        }
    }
    out
}

pub fn beancount(accounts: &[Account], entries: &[Entry]) -> String {
    let mut out = String::from("; Arbor journal export\noption \"title\" \"Arbor ledger\"\n\n");
    let opened = entries
        .iter()
        .map(|e| e.date)
        .min()
        .unwrap_or_default()
        .min(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default());
    for a in accounts {
        let _ = writeln!(out, "{opened} open {}", a.beancount_name());
    }
    for e in entries {
        let _ = writeln!(
            out,
            "\n{} * {} {}\n  entry: \"{}\"\n  source: \"{} {}\"",
            e.date,
            quoted(&e.document),
            quoted(&e.memo),
            e.id,
            e.source_type,
            e.source_id
        );
        for l in &e.lines {
            let name = find(accounts, &l.account_code)
                .map(Account::beancount_name)
                .unwrap_or_else(|| l.account_code.clone());
            let _ = writeln!(out, "  {name}  {} {}", l.amount, e.currency);
            if let Some(s) = l.source_line {
                let _ = writeln!(out, "    line: \"{s}\"");
            }
        }
    }
    out
}

pub fn csv(accounts: &[Account], entries: &[Entry]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "entry_id",
        "date",
        "source_type",
        "source_id",
        "document",
        "memo",
        "account_code",
        "account_name",
        "debit",
        "credit",
        "currency",
        "source_line",
        "line_memo",
    ])?;
    for e in entries {
        for l in &e.lines {
            let (debit, credit) = if l.amount.is_sign_negative() {
                (String::new(), (-l.amount).to_string())
            } else {
                (l.amount.to_string(), String::new())
            };
            let name = find(accounts, &l.account_code)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            w.write_record([
                e.id.to_string(),
                e.date.to_string(),
                e.source_type.clone(),
                e.source_id.to_string(),
                crate::accounts::csv_io::cell(&e.document),
                crate::accounts::csv_io::cell(&e.memo),
                l.account_code.clone(),
                crate::accounts::csv_io::cell(&name),
                debit,
                credit,
                e.currency.clone(),
                l.source_line.map(|s| s.to_string()).unwrap_or_default(),
                crate::accounts::csv_io::cell(&l.memo),
            ])?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beancount_names_are_valid_components() {
        let a = Account {
            code: "4_000".into(),
            name: "Revenue – EU (SaaS)".into(),
            kind: "income".into(),
        };
        assert_eq!(a.beancount_name(), "Income:4-000-Revenue-EU-SaaS");
        assert_eq!(a.hledger_name(), "revenues:4_000 Revenue – EU (SaaS)");
    }
}
