//! General ledger (issue #9, part 1): chart of accounts, GL mapping rules, and a balanced
//! journal entry for every billing event, written in the same transaction as the event.
//!
//! Rules:
//! - Amounts are signed (debit positive, credit negative), NUMERIC(19,4), one currency per
//!   entry. A deferred constraint trigger refuses, at commit, any entry whose lines do not sum
//!   to zero per currency; `domain` refuses them before they are written. The journal is
//!   append-only: corrections are new entries.
//! - Events and their entries (`post`): invoice finalized — Dr AR total, Cr revenue (deferred
//!   revenue for a ratable product) by the line's gross amount, Dr discounts, Cr sales tax per
//!   line, and account credit drawn moves from customer credit to AR; credit note — the mirror
//!   image, crediting AR by what reduced its invoice and customer credit by the rest; payment
//!   received — Dr cash / Cr unapplied cash; applied (or unapplied, negative) — Dr unapplied
//!   cash / Cr AR; refund and reversal — Dr unapplied cash / Cr cash; write-off — Dr bad
//!   debt / Cr AR; late-fee lines credit late fee income. A document written without lines
//!   posts its subtotal and tax as one line without a product. Every entry names its source
//!   document; revenue, discount and tax lines name their invoice line.
//! - Revenue accounts come from mapping rules keyed by product, entity (the account number of
//!   the customer or its payer) and currency; NULL matches anything and the most specific
//!   active rule wins (product > entity > currency). The all-NULL rule is the required
//!   fallback (seeded; it can be changed, not removed). With no matching rule the billing
//!   action fails with a 422 naming the product and currency: never a silent catch-all.
//! - Rules are versioned: a change retires the active row and adds the next version; every
//!   change to the chart or the rules is audited.
//! - Hence AR in the ledger equals the sum of open invoice balances, unapplied cash equals
//!   what payments have left, and customer credit equals account credit; the reconciliation
//!   page shows each pair per currency.
//! - Part 3: QuickBooks Online and Xero shapes of entries and invoices (`export_apps`), and the
//!   push of every entry to an accounting endpoint through the outbox (`push`).
//! - Part 2: ratable revenue is recognized month by month from schedules (`revrec`), and a
//!   closed month takes no entries: they post on the first day of the next open month.

pub mod domain;
pub mod export;
pub mod export_apps;
pub mod handlers;
pub mod journal;
pub mod post;
pub mod push;
pub mod repo;
pub mod revenue;
pub mod revenue_handlers;
pub mod revrec;
