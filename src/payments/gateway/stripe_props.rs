//! Property tests of the webhook checks: whatever arrives, the signature check and the event
//! parser answer without panicking, and only the exact signed body verifies.

use hmac::Mac as _;
use proptest::prelude::*;
use serde_json::json;

use super::*;

const SECRET: &str = "whsec_props_secret";
const NOW: i64 = 1_800_000_000;

/// What Stripe sends: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn signed(t: i64, body: &[u8], secret: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Header-shaped text: known keys and values, separators, and noise.
fn header_like() -> impl Strategy<Value = String> {
    "((t|v1|v0|x| t)=?([0-9a-f]{0,70}|-?[0-9]{1,20}|\\PC{0,5})?,?){0,6}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_header_body_and_secret_are_answered_without_panicking(
        header in prop_oneof![header_like(), "\\PC{0,80}"],
        body in prop::collection::vec(any::<u8>(), 0..200),
        secret in "\\PC{0,20}",
        now in any::<i64>(),
        tolerance in any::<i64>(),
    ) {
        let _ = verify_signature(&header, &body, &secret, now, tolerance);
    }

    #[test]
    fn a_signature_over_the_body_verifies(
        body in prop::collection::vec(any::<u8>(), 0..300), age in -300i64..=300
    ) {
        let t = NOW - age;
        let header = signed(t, &body, SECRET);
        prop_assert_eq!(verify_signature(&header, &body, SECRET, NOW, TOLERANCE_SECS), Ok(t));
    }

    #[test]
    fn any_single_byte_change_of_the_body_fails(
        body in prop::collection::vec(any::<u8>(), 1..300),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let header = signed(NOW, &body, SECRET);
        let mut tampered = body.clone();
        let i = at.index(tampered.len());
        tampered[i] ^= flip;
        prop_assert_eq!(
            verify_signature(&header, &tampered, SECRET, NOW, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_body_with_a_byte_added_or_removed_fails(
        body in prop::collection::vec(any::<u8>(), 1..300), extra in any::<u8>()
    ) {
        let header = signed(NOW, &body, SECRET);
        let mut longer = body.clone();
        longer.push(extra);
        let shorter = &body[..body.len() - 1];
        for other in [longer.as_slice(), shorter] {
            prop_assert_eq!(
                verify_signature(&header, other, SECRET, NOW, TOLERANCE_SECS),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn another_secret_never_verifies(
        body in prop::collection::vec(any::<u8>(), 0..100), other in "whsec_[a-z0-9]{1,20}"
    ) {
        prop_assume!(other != SECRET);
        let header = signed(NOW, &body, &other);
        prop_assert_eq!(
            verify_signature(&header, &body, SECRET, NOW, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_body_is_an_event_or_an_error(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_event(&body);
    }

    #[test]
    fn json_shaped_bodies_are_an_event_or_an_error(
        body in "\\{(\"(id|type|created|data|object)\":(\"[a-z_.]{0,8}\"|-?[0-9]{1,25}|null|\\[|\\{|\\}|\\]|,)){0,12}"
    ) {
        let _ = parse_event(body.as_bytes());
    }

    #[test]
    fn a_generated_event_reads_back(
        id in "evt_[A-Za-z0-9]{1,24}",
        event_type in "[a-z_]{1,20}\\.[a-z_.]{1,30}",
        created in any::<i64>(),
        attempt in any::<i64>(),
        reason in "\\PC{0,30}",
    ) {
        let object = json!({
            "object": "payment_intent", "id": "pi_1", "reason": reason,
            "metadata": { "attempt_id": attempt.to_string() }
        });
        let body = json!({ "id": id, "type": event_type, "created": created, "data": { "object": object } });
        let event = parse_event(body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&event.id, &id);
        prop_assert_eq!(&event.event_type, &event_type);
        prop_assert_eq!(event.created, created);
        prop_assert_eq!(metadata_i64(&event.object, "attempt_id"), Some(attempt));
        prop_assert_eq!(payment_intent_id(&event.object), Some("pi_1"));
    }

    #[test]
    fn metadata_of_any_shape_is_read_without_panicking(value in "\\PC{0,30}", n in any::<f64>()) {
        for object in [json!({"metadata": {"k": value}}), json!({"metadata": {"k": n}}), json!({"metadata": value})] {
            let _ = metadata_i64(&object, "k");
            let _ = metadata_str(&object, "k");
            let _ = payment_intent_id(&object);
        }
    }
}
