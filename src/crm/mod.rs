//! CRM connector (issue #8): a won deal becomes an account, its billing contact and a
//! subscription (or a one-off draft invoice) without retyping.
//!
//! Rules:
//! - Each connector (HubSpot, Salesforce, generic JSON webhook) has its own receiving URL
//!   `/hooks/<tenant>/crm/<token>`; its secret is sealed at rest. A request is verified (the
//!   vendor's signature scheme, or the Salesforce organization id), then every event in it is
//!   stored raw in `crm_inbox` keyed by the vendor's event id before anything else happens: a
//!   duplicate or replay only counts as one, and the answer comes back at once.
//! - Processing is a job per event; a worker takes a burst of them together (`batch`), each
//!   event in its own savepoint of one transaction. Events about one CRM record apply in order: one older
//!   than what was already applied is ignored, and a change to a deal not yet created waits
//!   (retried) and is held once it has waited too long.
//! - A won deal is completed from the CRM's API first when the connector has an access token:
//!   HubSpot's webhook names only the changed property (`hubspot_api`), a Salesforce message
//!   carries only Opportunity fields (`salesforce_api` adds the Account, the primary contact
//!   and the line items). Without a token the event's own fields are all there is.
//! - The connector's field mapping turns the CRM document into Arbor's account, contact and
//!   subscription fields; a deal missing a required billing field, or one whose account match
//!   is ambiguous, is held with the reasons. Fixing the mapping (or the CRM) and replaying
//!   applies it.
//! - Effects go through the same services as the forms (duplicate detection, validation,
//!   audit with the connector as actor), all or nothing per event.
//! - Back to the CRM and to any webhook subscriber: business events (invoice finalized, paid,
//!   overdue, payment failed...) fan out through the outbox in the transaction that raised
//!   them, signed, retried and logged (`outbound`).

pub mod batch;
pub mod handlers;
pub mod hubspot_api;
pub mod mapping;
pub mod outbound;
pub mod process;
pub mod receive;
pub mod repo;
pub mod salesforce_api;
pub mod updates;
pub mod vendors;

/// The connector kinds.
pub const KINDS: [(&str, &str); 3] = [
    ("hubspot", "HubSpot"),
    ("salesforce", "Salesforce"),
    ("generic", "Generic JSON webhook"),
];

pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("CRM", |(_, l)| l)
}
