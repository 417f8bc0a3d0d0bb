//! Property tests of every vendor's checks and parsers: whatever a sender (or an attacker)
//! puts in the headers and the body, the answer is an event or an `InboundError`, never a
//! panic; a signature computed over a body verifies and no other body does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use hmac::{Hmac, Mac as _};
use proptest::prelude::*;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{generic, hubspot, salesforce, InboundError};

const SECRET: &str = "crm_props_secret";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

/// HubSpot v3: base64 HMAC-SHA256 of method + decoded URI + body + timestamp.
fn hubspot_v3(method: &str, uri: &str, body: &[u8], ts: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(method.as_bytes());
    mac.update(hubspot::decode_v3_uri(uri).as_bytes());
    mac.update(body);
    mac.update(ts.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// HubSpot v1: hex SHA-256 of secret + body.
fn hubspot_v1(body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(SECRET.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

fn flip(body: &[u8], at: prop::sample::Index, by: u8) -> Vec<u8> {
    let mut changed = body.to_vec();
    let i = at.index(changed.len());
    changed[i] ^= by;
    changed
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// JSON-ish text built from the keys the parsers look for, so the fuzzing reaches past the
/// first `from_slice`.
fn json_like() -> impl Strategy<Value = String> {
    "[\\[{]?(\"(id|type|eventId|objectId|subscriptionType|objectTypeId|propertyName|propertyValue|occurredAt|occurred_at|sequence|data|object|payload|ChangeEventHeader|entityName|changeType|recordIds|transactionKey|commitTimestamp|nulledFields|event|replayId)\":(\"[a-zA-Z0-9_.:-]{0,12}\"|-?[0-9]{1,22}(\\.[0-9])?|true|null|\\[|\\{|\\}|\\]|,)){0,14}[\\]}]{0,3}"
}

/// XML-ish text built from the elements of a Salesforce outbound message.
fn xml_like() -> impl Strategy<Value = String> {
    "(<(/)?(soapenv:)?(Envelope|Body|notifications|OrganizationId|ActionId|Notification|Id|sObject|sf:Id|sf:IsWon|sf:StageName)( xsi:type=\"sf:Opportunity\"| xsi:nil=\"true\")?(/)?>|00D5e000000KQ2e|Closed Won|&amp;|&#[0-9]{1,8};|&bogus;|<!DOCTYPE x>|<!\\[CDATA\\[x\\]\\]>|text){0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // ---- generic (X-Arbor-Signature) ----

    #[test]
    fn generic_any_header_and_body_are_answered_without_panicking(
        header in prop_oneof!["((t|v1|x)=([0-9a-f]{0,70}|-?[0-9]{1,25})?,?){0,5}", "\\PC{0,60}"],
        body in bytes(200),
        secret in bytes(20),
        tolerance in any::<i32>(),
    ) {
        let _ = generic::verify(&secret, &header, &body, now(), Duration::seconds(i64::from(tolerance)));
    }

    #[test]
    fn generic_a_signed_body_verifies_and_a_changed_byte_does_not(
        body in prop::collection::vec(any::<u8>(), 1..300),
        age in -300i64..=300,
        at in any::<prop::sample::Index>(),
        by in 1u8..=255,
    ) {
        let header = generic::sign(SECRET, now().timestamp() - age, &body);
        prop_assert_eq!(generic::verify(SECRET, &header, &body, now(), Duration::minutes(5)), Ok(()));
        prop_assert_eq!(
            generic::verify(SECRET, &header, &flip(&body, at, by), now(), Duration::minutes(5)),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn generic_any_body_parses_or_is_malformed(
        body in prop_oneof![bytes(300), json_like().prop_map(String::into_bytes)]
    ) {
        if let Err(e) = generic::parse(&body) {
            prop_assert!(matches!(e, InboundError::Malformed(_)), "{:?}", e);
        }
    }

    #[test]
    fn generic_a_generated_event_reads_back(
        id in "\\PC{1,30}",
        object in "[a-z]{1,10}",
        change in "[a-z_.]{1,12}",
        object_id in prop_oneof!["\\PC{1,20}".prop_map(|s| json!(s)), any::<i64>().prop_map(|n| json!(n))],
        sequence in prop::option::of(any::<i64>()),
        name in "\\PC{0,40}",
    ) {
        let body = json!({
            "id": id, "type": format!("{object}.{change}"), "sequence": sequence,
            "occurred_at": "2026-11-23T04:00:00Z",
            "data": { "object": { "id": object_id, "name": name } },
        });
        let e = generic::parse(body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&e.event_id, &id);
        prop_assert_eq!(&e.object_type, &object);
        prop_assert_eq!(&e.change, &change);
        prop_assert_eq!(e.sequence, sequence);
        let expected_id = object_id.as_str().map_or_else(|| object_id.to_string(), str::to_owned);
        prop_assert_eq!(&e.object_id, &expected_id);
        prop_assert_eq!(&e.fields["name"], &json!(name));
    }

    // ---- HubSpot ----

    #[test]
    fn hubspot_any_headers_and_body_are_answered_without_panicking(
        body in bytes(200),
        signature in prop_oneof!["[A-Za-z0-9+/=]{0,50}", "[0-9a-f]{0,70}", "\\PC{0,30}"],
        ts in prop_oneof!["-?[0-9]{0,22}", "\\PC{0,10}"],
        method in "[A-Z]{0,7}",
        uri in "(https?://[a-z.]{1,10})?(/|%[0-9a-fA-F]{0,2}|%|\\?|&|=|[a-z]|\\PC){0,30}",
    ) {
        let _ = hubspot::verify_v1(SECRET, &body, &signature);
        let _ = hubspot::verify_v2(SECRET, &method, &uri, &body, &signature);
        let _ = hubspot::verify_v3(SECRET, &method, &uri, &body, &ts, &signature, now());
        let _ = hubspot::decode_v3_uri(&uri);
    }

    #[test]
    fn hubspot_v3_a_signed_body_verifies_and_a_changed_byte_does_not(
        body in prop::collection::vec(any::<u8>(), 1..300),
        age_ms in -300_000i64..=300_000,
        uri in "https://arbor\\.example/hooks/t/crm/[a-z0-9]{1,10}(\\?[a-z]{1,5}=[a-z0-9%:/]{0,12})?",
        at in any::<prop::sample::Index>(),
        by in 1u8..=255,
    ) {
        let ts = (now().timestamp_millis() - age_ms).to_string();
        let sig = hubspot_v3("POST", &uri, &body, &ts);
        prop_assert_eq!(hubspot::verify_v3(SECRET, "POST", &uri, &body, &ts, &sig, now()), Ok(()));
        prop_assert_eq!(
            hubspot::verify_v3(SECRET, "POST", &uri, &flip(&body, at, by), &ts, &sig, now()),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn hubspot_v1_a_signed_body_verifies_and_a_changed_byte_does_not(
        body in prop::collection::vec(any::<u8>(), 1..300),
        at in any::<prop::sample::Index>(),
        by in 1u8..=255,
    ) {
        let sig = hubspot_v1(&body);
        prop_assert_eq!(hubspot::verify_v1(SECRET, &body, &sig), Ok(()));
        prop_assert_eq!(
            hubspot::verify_v1(SECRET, &flip(&body, at, by), &sig),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn hubspot_uri_decoding_keeps_text_without_escapes(uri in "[^%]{0,40}") {
        prop_assert_eq!(hubspot::decode_v3_uri(&uri), uri);
    }

    #[test]
    fn hubspot_any_body_parses_or_is_malformed(
        body in prop_oneof![bytes(300), json_like().prop_map(String::into_bytes)]
    ) {
        if let Err(e) = hubspot::parse_webhook(&body) {
            prop_assert!(matches!(e, InboundError::Malformed(_)), "{:?}", e);
        }
    }

    #[test]
    fn hubspot_generated_events_read_back(
        events in prop::collection::vec((any::<u32>(), any::<u32>(), "\\PC{0,20}", any::<i64>()), 1..5)
    ) {
        let body: Vec<_> = events
            .iter()
            .map(|(event_id, object_id, value, at)| json!({
                "eventId": event_id, "objectId": object_id, "occurredAt": at,
                "subscriptionType": "company.propertyChange",
                "propertyName": "name", "propertyValue": value,
            }))
            .collect();
        let parsed = hubspot::parse_webhook(json!(body).to_string().as_bytes()).unwrap();
        prop_assert_eq!(parsed.len(), events.len());
        for (e, (event_id, object_id, value, at)) in parsed.iter().zip(&events) {
            prop_assert_eq!(&e.event_id, &event_id.to_string());
            prop_assert_eq!(&e.object_id, &object_id.to_string());
            prop_assert_eq!(&e.object_type, "company");
            prop_assert_eq!(&e.change, "updated");
            prop_assert_eq!(e.sequence, Some(*at));
            prop_assert_eq!(&e.fields["name"], &json!(value));
        }
    }

    // ---- Salesforce ----

    #[test]
    fn salesforce_any_body_parses_or_is_refused(
        body in prop_oneof![
            bytes(300),
            xml_like().prop_map(String::into_bytes),
            json_like().prop_map(String::into_bytes),
        ],
        org in "(00D5e000000KQ2e|\\PC{0,18})",
    ) {
        let _ = salesforce::parse_outbound_message(&body, &org);
        let _ = salesforce::parse_outbound_sample(&body);
        if let Err(e) = salesforce::parse_cdc(&body) {
            prop_assert!(matches!(e, InboundError::Malformed(_)), "{:?}", e);
        }
        let _ = super::super::receive::sample_events("salesforce", &body);
    }

    #[test]
    fn salesforce_outbound_field_values_read_back_exactly(
        id in "[A-Za-z0-9]{15,18}",
        name in "\\PC{1,40}",
        amount in "[0-9]{1,12}(\\.[0-9]{1,4})?",
    ) {
        // Every value is written escaped, the way Salesforce writes it; whatever the text
        // (markup, entities, quotes), it comes back as sent.
        let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
        let xml = format!(
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
             <notifications><OrganizationId>00D5e000000KQ2eEAG</OrganizationId>\
             <ActionId>04k</ActionId><Notification><Id>N-{id}</Id>\
             <sObject xsi:type=\"sf:Account\"><sf:Id>{id}</sf:Id><sf:Name>{}</sf:Name>\
             <sf:Amount>{amount}</sf:Amount></sObject></Notification></notifications>\
             </soapenv:Body></soapenv:Envelope>",
            esc(&name)
        );
        let m = salesforce::parse_outbound_message(xml.as_bytes(), "00D5e000000KQ2e").unwrap();
        prop_assert_eq!(m.events.len(), 1);
        let e = &m.events[0];
        prop_assert_eq!(&e.event_id, &format!("N-{id}"));
        prop_assert_eq!(&e.object_id, &id);
        prop_assert_eq!(&e.object_type, "company");
        prop_assert_eq!(&e.fields["Name"], &json!(name));
        prop_assert_eq!(&e.fields["Amount"], &json!(amount));
    }

    #[test]
    fn sample_payloads_of_every_kind_never_panic(
        kind in "(hubspot|salesforce|generic|\\PC{0,8})",
        body in prop_oneof![bytes(200), json_like().prop_map(String::into_bytes), xml_like().prop_map(String::into_bytes)],
    ) {
        let _ = super::super::receive::sample_events(&kind, &body);
    }
}
