//! Arbor's generic JSON webhook, for CRMs without a dedicated connector.
//!
//! Signature header: `X-Arbor-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`
//! where each hex value is HMAC-SHA256(secret, "<t>.<raw body>"). During a
//! secret rotation the sender includes one `v1` per active secret; the request
//! is genuine if any of them matches. Unknown keys (future schemes) are ignored.
//! The signature is checked before the timestamp, so `Stale` always means a
//! genuine but old (or replayed) request.
//!
//! Payload:
//! `{"id": "evt_...", "type": "<object>.<change>", "occurred_at": RFC 3339,
//!   "sequence": i64 (optional), "data": {"object": {"id": ..., ...}}}`.
//! `object_type` is the part of `type` before the first dot, `change` the rest
//! (e.g. "deal.won" → deal/won, "deal.amended" → deal/amended), `object_id` is
//! `data.object.id` (string or integer) and `fields` is `data.object` as sent.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;

use super::{ct_eq, json_id, InboundError, InboundEvent};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Arbor-Signature";

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Result<Hmac<sha2::Sha256>, InboundError> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .map_err(|_| InboundError::BadSignature)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `X-Arbor-Signature` value for `body` sent at `t` (unix seconds).
pub fn sign(secret: impl AsRef<[u8]>, t: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty string
    // would simply never verify.
    let digest = mac(secret.as_ref(), t, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={t},v1={digest}")
}

/// Verifies an `X-Arbor-Signature` header against the raw body.
/// `secret` may be a `&str` or raw bytes.
/// `tolerance` bounds how far `t` may be from `now`, in either direction.
pub fn verify(
    secret: impl AsRef<[u8]>,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), InboundError> {
    if header.trim().is_empty() {
        return Err(InboundError::MissingSignature);
    }
    let mut t: Option<i64> = None;
    let mut candidates: Vec<&str> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(InboundError::Malformed(format!(
                "{SIGNATURE_HEADER} element {part:?} is not key=value"
            )));
        };
        match key.trim() {
            "t" => {
                if t.is_some() {
                    return Err(InboundError::Malformed(format!(
                        "{SIGNATURE_HEADER} has more than one t="
                    )));
                }
                t = Some(value.trim().parse().map_err(|_| {
                    InboundError::Malformed(format!("{SIGNATURE_HEADER} t= is not an integer"))
                })?);
            }
            "v1" => candidates.push(value.trim()),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| InboundError::Malformed(format!("{SIGNATURE_HEADER} has no t=")))?;
    if candidates.is_empty() {
        return Err(InboundError::MissingSignature);
    }

    let expected = mac(secret.as_ref(), t, body)?.finalize().into_bytes();
    // Check every candidate, without stopping at the first match, so timing
    // does not reveal which one matched.
    let mut matched = false;
    for candidate in candidates {
        if let Ok(given) = hex::decode(candidate) {
            matched |= ct_eq(&expected, &given);
        }
    }
    if !matched {
        return Err(InboundError::BadSignature);
    }

    let skew = i128::from(now.timestamp()) - i128::from(t);
    if skew.abs() > i128::from(tolerance.num_seconds().abs()) {
        return Err(InboundError::Stale(format!(
            "signed at t={t}, {skew} s from now, tolerance {} s",
            tolerance.num_seconds().abs()
        )));
    }
    Ok(())
}

/// Parses a generic webhook payload into one event.
pub fn parse(body: &[u8]) -> Result<InboundEvent, InboundError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("body is not JSON: {e}")))?;
    let root = value
        .as_object()
        .ok_or_else(|| InboundError::Malformed("body must be a JSON object".into()))?;

    let event_id = root
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| InboundError::Malformed("missing or empty \"id\" (string)".into()))?;
    let kind = root
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| InboundError::Malformed("missing \"type\" (string)".into()))?;
    let (object_type, change) = kind
        .split_once('.')
        .filter(|(o, c)| !o.is_empty() && !c.is_empty())
        .ok_or_else(|| {
            InboundError::Malformed(format!("\"type\" {kind:?} is not \"<object>.<change>\""))
        })?;
    let object = root
        .get("data")
        .and_then(|d| d.get("object"))
        .and_then(Value::as_object)
        .ok_or_else(|| InboundError::Malformed("missing \"data.object\" (object)".into()))?;
    let object_id = object.get("id").and_then(json_id).ok_or_else(|| {
        InboundError::Malformed("missing \"data.object.id\" (string or integer)".into())
    })?;

    let occurred_at = match root.get("occurred_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    InboundError::Malformed(format!("\"occurred_at\" is not RFC 3339: {e}"))
                })?
                .with_timezone(&Utc),
        ),
        Some(_) => {
            return Err(InboundError::Malformed(
                "\"occurred_at\" must be an RFC 3339 string".into(),
            ))
        }
    };
    let sequence = match root.get("sequence") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            InboundError::Malformed("\"sequence\" must be a 64-bit integer".into())
        })?),
    };

    Ok(InboundEvent {
        event_id: event_id.to_string(),
        object_type: object_type.to_string(),
        object_id,
        change: change.to_string(),
        occurred_at,
        sequence,
        fields: object.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &str = r#"{"id":"evt_1","type":"deal.won","occurred_at":"2026-11-23T04:00:00Z","data":{"object":{"id":"D-1","amount":"1200.00"}}}"#;
    // Computed independently with python3:
    // hmac.new(b"whsec_test_secret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    const PY_SIG: &str = "0b8a3bfc0aac07a067cbaadcd0480f9e284091a0d1481897cc968b470d2fb340";
    const T: i64 = 1_700_000_000;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn tol() -> Duration {
        Duration::minutes(5)
    }

    #[test]
    fn sign_matches_python_vector() {
        assert_eq!(
            sign(SECRET, T, BODY.as_bytes()),
            format!("t={T},v1={PY_SIG}")
        );
    }

    #[test]
    fn valid() {
        let header = sign(SECRET, T, BODY.as_bytes());
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), at(T + 10), tol()),
            Ok(())
        );
        // Whitespace and upper-case hex are tolerated.
        let loose = format!("t={T}, v1={}", PY_SIG.to_uppercase());
        assert_eq!(
            verify(SECRET, &loose, BODY.as_bytes(), at(T), tol()),
            Ok(())
        );
        // A `&str` secret works the same as its bytes.
        assert_eq!(
            verify("whsec_test_secret", &header, BODY.as_bytes(), at(T), tol()),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_timestamp_or_secret() {
        let header = sign(SECRET, T, BODY.as_bytes());
        let tampered = BODY.replace("1200.00", "12000.00");
        assert_eq!(
            verify(SECRET, &header, tampered.as_bytes(), at(T), tol()),
            Err(InboundError::BadSignature)
        );
        let moved = format!("t={},v1={PY_SIG}", T + 1);
        assert_eq!(
            verify(SECRET, &moved, BODY.as_bytes(), at(T), tol()),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify(b"other", &header, BODY.as_bytes(), at(T), tol()),
            Err(InboundError::BadSignature)
        );
        let junk = format!("t={T},v1=zz");
        assert_eq!(
            verify(SECRET, &junk, BODY.as_bytes(), at(T), tol()),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn stale_and_future() {
        let header = sign(SECRET, T, BODY.as_bytes());
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), at(T + 300), tol()),
            Ok(())
        );
        assert!(matches!(
            verify(SECRET, &header, BODY.as_bytes(), at(T + 301), tol()),
            Err(InboundError::Stale(_))
        ));
        assert!(matches!(
            verify(SECRET, &header, BODY.as_bytes(), at(T - 301), tol()),
            Err(InboundError::Stale(_))
        ));
        // Extreme timestamps don't overflow.
        let far = sign(SECRET, i64::MIN, BODY.as_bytes());
        assert!(matches!(
            verify(SECRET, &far, BODY.as_bytes(), at(T), tol()),
            Err(InboundError::Stale(_))
        ));
    }

    #[test]
    fn rotation_any_v1_may_match() {
        let old = sign(b"old-secret", T, BODY.as_bytes());
        let new = sign(SECRET, T, BODY.as_bytes());
        let old_sig = old.split("v1=").nth(1).unwrap();
        let new_sig = new.split("v1=").nth(1).unwrap();
        let header = format!("t={T},v1={old_sig},v1={new_sig},v0=legacy");
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), at(T), tol()),
            Ok(())
        );
        assert_eq!(
            verify(b"old-secret", &header, BODY.as_bytes(), at(T), tol()),
            Ok(())
        );
        assert_eq!(
            verify(b"third", &header, BODY.as_bytes(), at(T), tol()),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn malformed_headers() {
        let b = BODY.as_bytes();
        assert_eq!(
            verify(SECRET, "", b, at(T), tol()),
            Err(InboundError::MissingSignature)
        );
        assert_eq!(
            verify(SECRET, &format!("t={T}"), b, at(T), tol()),
            Err(InboundError::MissingSignature)
        );
        for header in [
            format!("v1={PY_SIG}"),
            format!("t=abc,v1={PY_SIG}"),
            format!("t={T},t={T},v1={PY_SIG}"),
            format!("t={T};v1={PY_SIG}"),
            "garbage".to_string(),
        ] {
            assert!(
                matches!(
                    verify(SECRET, &header, b, at(T), tol()),
                    Err(InboundError::Malformed(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn parses_payload() {
        let e = parse(BODY.as_bytes()).unwrap();
        assert_eq!(e.event_id, "evt_1");
        assert_eq!(e.object_type, "deal");
        assert_eq!(e.change, "won");
        assert_eq!(e.object_id, "D-1");
        assert_eq!(
            e.occurred_at,
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap())
        );
        assert_eq!(e.sequence, None);
        assert_eq!(
            Value::Object(e.fields),
            serde_json::json!({"id": "D-1", "amount": "1200.00"})
        );

        let nested = r#"{"id":"evt_2","type":"deal.amended","occurred_at":"2026-11-23T05:00:00+01:00","sequence":17,
            "data":{"object":{"id":4417,"lines":[{"sku":"A","qty":2}],"owner":{"email":"x@y.z"}}}}"#;
        let e = parse(nested.as_bytes()).unwrap();
        assert_eq!(e.change, "amended");
        assert_eq!(e.object_id, "4417");
        assert_eq!(e.sequence, Some(17));
        assert_eq!(
            e.occurred_at,
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap())
        );
        assert_eq!(e.fields["lines"][0]["qty"], Value::from(2));

        let bare = r#"{"id":"evt_3","type":"company.updated","data":{"object":{"id":"C1"}}}"#;
        let e = parse(bare.as_bytes()).unwrap();
        assert_eq!(
            (e.object_type.as_str(), e.change.as_str()),
            ("company", "updated")
        );
        assert_eq!(e.occurred_at, None);
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("", "not JSON"),
            ("[]", "JSON object"),
            (
                r#"{"type":"deal.won","data":{"object":{"id":"1"}}}"#,
                "\"id\"",
            ),
            (
                r#"{"id":"","type":"deal.won","data":{"object":{"id":"1"}}}"#,
                "\"id\"",
            ),
            (r#"{"id":"e","data":{"object":{"id":"1"}}}"#, "\"type\""),
            (
                r#"{"id":"e","type":"deal","data":{"object":{"id":"1"}}}"#,
                "\"type\"",
            ),
            (
                r#"{"id":"e","type":".won","data":{"object":{"id":"1"}}}"#,
                "\"type\"",
            ),
            (r#"{"id":"e","type":"deal.won"}"#, "data.object"),
            (
                r#"{"id":"e","type":"deal.won","data":{"object":[]}}"#,
                "data.object",
            ),
            (
                r#"{"id":"e","type":"deal.won","data":{"object":{}}}"#,
                "data.object.id",
            ),
            (
                r#"{"id":"e","type":"deal.won","data":{"object":{"id":1.5}}}"#,
                "data.object.id",
            ),
            (
                r#"{"id":"e","type":"deal.won","occurred_at":"yesterday","data":{"object":{"id":"1"}}}"#,
                "occurred_at",
            ),
            (
                r#"{"id":"e","type":"deal.won","occurred_at":1,"data":{"object":{"id":"1"}}}"#,
                "occurred_at",
            ),
            (
                r#"{"id":"e","type":"deal.won","sequence":"7","data":{"object":{"id":"1"}}}"#,
                "sequence",
            ),
        ];
        for (body, needle) in cases {
            match parse(body.as_bytes()) {
                Err(InboundError::Malformed(m)) => assert!(m.contains(needle), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let header = sign(SECRET, T, BODY.as_bytes());
        for input in super::super::test_support::garbage(BODY.as_bytes(), 17) {
            let _ = parse(&input);
            let s = String::from_utf8_lossy(&input);
            let _ = verify(SECRET, &s, BODY.as_bytes(), at(T), tol());
            let _ = verify(SECRET, &header, &input, at(T), tol());
            let _ = verify(&input, &header, &input, at(T), Duration::MAX);
        }
    }
}
