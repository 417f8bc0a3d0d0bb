//! Invoices and credit notes: drafts from the bill run or by hand, finalization with gapless
//! numbers, credit notes and account credit, PDF, email and the hosted invoice page.
//!
//! Rules: a draft is editable; a finalized document is immutable (a database trigger refuses
//! changes to its number, amounts, dates and snapshot) and corrections are credit notes.
//! Every line keeps its source (subscription item, period, price version, GL account, tax
//! category). Rounding is per line (see [`domain`]). Status moves draft → open → paid (or
//! void / uncollectible); partial payment leaves it open with a smaller amount due.

pub mod billrun;
pub mod build;
pub mod demo_data;
pub mod domain;
pub mod email;
pub mod finalize;
pub mod handlers;
pub mod hosted;
pub mod list;
pub mod pdf;
pub mod pdf_doc;
pub mod repo;
pub mod runs;
pub mod statement;
pub mod writeoff;
