//! Reports (issue #7). First: accounts-receivable aging as of any date.
//!
//! Rules of the aging report:
//! - Receivables are invoices (`kind = 'invoice'`) issued on or before the as-of date, owed by
//!   their payer (`bill_to_account_id`). Drafts never count; void invoices never count, even if
//!   voided after the date (a void invoice is treated as never issued, as on statements).
//!   Credit notes are not aged themselves, and unapplied cash or account credit is not netted
//!   against the buckets (it shows on the customer statement).
//! - The balance as of D is reconstructed, not read from today's `amount_due`:
//!   `total − credit_applied − credit notes against it issued ≤ D − cash applied ≤ D`.
//!   Account credit drawn at finalization counts from the issue date. A credit note settles
//!   its invoice on its issue date; the part that settled the invoice is
//!   `min(amount_credited, Σ totals of its credit notes issued ≤ D)` (a note only spills
//!   over into account credit once the invoice is settled, so this is exact). Cash counts on
//!   the same day the statement uses: an application written with its payment counts on the
//!   payment's `received_on`; one made later (applying unapplied cash, unapplying, a
//!   reversal's negative row) counts on the UTC day it was made.
//!   Computed as today's `amount_due` plus every settlement dated after D, so a report as of
//!   today reads only the open invoices and the few late settlements.
//! - Uncollectible invoices stay in the report with their balance until the day they were
//!   written off (the `invoice.written_off` event); from that day on they are out of AR.
//! - Days past due = D − due date (the issue date when an invoice has none). Buckets: Current
//!   (≤ 0), 1–30, 31–60, 61–90, 91–120, 120+ ([`aging::Bucket`]).
//! - Amounts are never summed across currencies: every block, total and chart is per currency.
//! - Grouping by account rolls up the hierarchy: a parent's row includes its descendants'
//!   invoices, so rows overlap and each currency's total row is computed from the invoices.
//!   By owner, an invoice belongs to the owner of its payer account.
//! - Filters (all in the query string, so a view is bookmarkable): `as_of`, `currency`,
//!   `owner` (a member id or `none`), `account` (the account and its descendants), `from`/`to`
//!   (issue date), `bucket` (detail view). Sales see only accounts they own. The CSV holds
//!   exactly the rows of the page (ids kept, plain decimals, UTF-8).

pub mod aging;
pub mod aging_handlers;
pub mod aging_repo;
pub mod aging_summary;
pub mod aging_view;
pub mod collections;
pub mod collections_handlers;
pub mod collections_lists;
pub mod collections_repo;
pub mod collections_view;
pub mod filters;
pub mod mrr;
pub mod mrr_handlers;
pub mod mrr_month;
pub mod mrr_repo;
pub mod mrr_view;
pub mod status_by_rep;
pub mod status_repo;
