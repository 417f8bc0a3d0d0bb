//! Inbound CRM webhooks: signature checks and payload parsing, with no I/O.
//!
//! Each vendor module turns a raw request (headers already extracted, body as
//! the exact bytes received) into [`InboundEvent`]s, or an [`InboundError`]
//! the HTTP layer maps to a status code. Rules shared by all vendors:
//!
//! - Verify the signature on the raw body *before* parsing it; never re-serialize.
//! - Every signature comparison is constant-time (`subtle`).
//! - Parsers never panic, whatever the input; bad input is `Malformed`.
//! - `event_id` is the vendor's idempotency key: a retry carries the same one,
//!   so the caller de-duplicates on (tenant, vendor, event_id).

pub mod generic;
pub mod hubspot;
pub mod salesforce;

use subtle::ConstantTimeEq;

/// One CRM change, normalized from any vendor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InboundEvent {
    /// The vendor's event id: the idempotency key (a replay/duplicate has the same one).
    pub event_id: String,
    /// "deal", "company" or "contact" (Salesforce Opportunity→deal, Account→company,
    /// Contact→contact; others keep their lower-cased sObject name).
    pub object_type: String,
    /// The CRM record id.
    pub object_id: String,
    /// "created", "updated", "won", "deleted" (a deal entering a won stage is "won").
    /// Vendor-specific extras: "restored" (HubSpot restore, Salesforce UNDELETE),
    /// "gap" (Salesforce CDC gap events), "merged", "association_changed", or the
    /// vendor's own verb lower-cased. Callers should ignore changes they don't know.
    pub change: String,
    /// When the change happened at the vendor (ordering).
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Per-object ordering hint when the vendor gives one (CDC sequenceNumber /
    /// replayId, HubSpot occurredAt ms).
    pub sequence: Option<i64>,
    /// The record's fields carried by the event (see each vendor module for types).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Why an inbound webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InboundError {
    #[error("signature missing")]
    MissingSignature,
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp outside the allowed window ({0})")]
    Stale(String),
    #[error("unknown organization")]
    WrongOrganization,
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Constant-time byte comparison. Only the length may leak, and lengths of
/// digests are public anyway.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Maps a vendor object name to Arbor's vocabulary; unknown names are lower-cased.
pub(crate) fn normalize_object_type(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "opportunity" | "deal" | "deals" => "deal".to_string(),
        "account" | "company" | "companies" => "company".to_string(),
        "contact" | "contacts" => "contact".to_string(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch to a UTC instant; `None` when out of chrono's range.
pub(crate) fn from_millis(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
}

/// An integer carried either as a JSON number or as a numeric string
/// (vendors and their client libraries disagree on which).
pub(crate) fn json_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id carried either as a JSON string or as an integer.
pub(crate) fn json_id(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Deterministic xorshift generator so the garbage-input tests are reproducible
    /// without pulling in a property-testing crate.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        pub fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Garbage inputs: random bytes, every prefix of `valid`, and random
    /// single-byte mutations of `valid`.
    pub fn garbage(valid: &[u8], seed: u64) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for len in [0usize, 1, 2, 7, 64, 512] {
            out.push(rng.bytes(len));
        }
        for cut in 0..valid.len() {
            out.push(valid[..cut].to_vec());
        }
        for _ in 0..400 {
            let mut v = valid.to_vec();
            for _ in 0..=rng.below(4) {
                if v.is_empty() {
                    break;
                }
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            out.push(v);
        }
        // Deep nesting must not blow the stack.
        out.push(b"[".repeat(100_000));
        out.push(b"<a>".repeat(100_000));
        out
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_type_mapping() {
        assert_eq!(normalize_object_type("Opportunity"), "deal");
        assert_eq!(normalize_object_type("Account"), "company");
        assert_eq!(normalize_object_type("Contact"), "contact");
        assert_eq!(normalize_object_type("Invoice__c"), "invoice__c");
        assert_eq!(normalize_object_type("Lead"), "lead");
    }

    #[test]
    fn ct_eq_behaves() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn json_helpers() {
        assert_eq!(json_i64(&serde_json::json!(5)), Some(5));
        assert_eq!(json_i64(&serde_json::json!("6")), Some(6));
        assert_eq!(json_i64(&serde_json::json!(1.5)), None);
        assert_eq!(json_id(&serde_json::json!(12)), Some("12".into()));
        assert_eq!(json_id(&serde_json::json!("a")), Some("a".into()));
        assert_eq!(json_id(&serde_json::json!("")), None);
        assert_eq!(json_id(&serde_json::json!(null)), None);
    }
}
