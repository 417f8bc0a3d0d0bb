//! Salesforce: workflow Outbound Messages (SOAP) and Change Data Capture (JSON).
//!
//! Outbound Messages are not signed. They are authenticated by the secret-bearing
//! endpoint URL / TLS and by `OrganizationId`, which must equal the tenant's
//! configured org id; ids are compared on their first 15 characters, case-
//! sensitively, because Salesforce uses both the 15-char (case-sensitive) and
//! 18-char (checksum-suffixed) forms of the same id. Elements are matched by
//! local name, so any namespace prefix (`soapenv:`, `sf:`, `xsi:`) works.
//! Field values are JSON strings exactly as sent (xsd booleans stay "true"/"false",
//! numbers stay decimal text, so nothing is lost to float rounding); `xsi:nil`
//! becomes JSON null. The endpoint must answer with [`ack`], otherwise Salesforce
//! keeps retrying (with the same Notification Id, our idempotency key) for 24 hours.
//!
//! CDC events (`/data/<Entity>ChangeEvent`) are accepted bare or in the CometD
//! `{"data": ..., "channel": ...}` wrapper, singly or as an array. Fields are
//! the JSON values Salesforce sent (only changed fields on UPDATE). Gap events
//! (`GAP_*`) carry no field values: they come back as change "gap" so the caller
//! can hold the record for a person to re-sync rather than guess.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};

use super::{ct_eq, from_millis, json_i64, normalize_object_type, InboundError, InboundEvent};

/// The `Content-Type` to answer with alongside [`ack`].
pub const ACK_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// Nesting deeper than any real SOAP message; bounds memory and recursion.
const MAX_DEPTH: usize = 32;

/// One parsed `notifications` call.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    pub organization_id: String,
    /// The workflow action that sent the message.
    pub action_id: String,
    /// Only present when the message is configured to send one; never log it.
    pub session_id: Option<String>,
    pub enterprise_url: Option<String>,
    pub partner_url: Option<String>,
    /// One per `Notification`, in document order.
    pub events: Vec<InboundEvent>,
}

/// Parses an Outbound Message and checks it comes from `expected_org_id`.
///
/// Each `Notification` becomes an event: `event_id` = Notification `Id`,
/// `object_id` = sObject `Id`, `object_type` from `xsi:type`, change "won" for an
/// Opportunity with `IsWon` true or `StageName` "Closed Won", else "updated"
/// (Outbound Messages don't say what changed). `occurred_at` is the sObject's
/// `LastModifiedDate` when it was included; `sequence` is always `None`.
pub fn parse_outbound_message(
    xml: &[u8],
    expected_org_id: &str,
) -> Result<OutboundMessage, InboundError> {
    parse_outbound(xml, Some(expected_org_id))
}

fn parse_outbound(
    xml: &[u8],
    expected_org_id: Option<&str>,
) -> Result<OutboundMessage, InboundError> {
    let root = parse_xml(xml)?;
    if root.name != "Envelope" {
        return Err(malformed("root element is not a SOAP Envelope"));
    }
    let notifications = root
        .child("Body")
        .and_then(|b| b.child("notifications"))
        .ok_or_else(|| malformed("no Envelope/Body/notifications element"))?;

    let organization_id = notifications
        .child_text("OrganizationId")
        .ok_or_else(|| malformed("missing OrganizationId"))?;
    if let Some(expected) = expected_org_id {
        if !same_org(&organization_id, expected) {
            return Err(InboundError::WrongOrganization);
        }
    }
    let action_id = notifications
        .child_text("ActionId")
        .ok_or_else(|| malformed("missing ActionId"))?;

    let events = notifications
        .children
        .iter()
        .filter(|c| c.name == "Notification")
        .enumerate()
        .map(|(i, n)| {
            notification_event(n).map_err(|e| match e {
                InboundError::Malformed(m) => malformed(&format!("Notification [{i}]: {m}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if events.is_empty() {
        return Err(malformed("no Notification elements"));
    }

    Ok(OutboundMessage {
        organization_id,
        action_id,
        session_id: notifications.child_text("SessionId"),
        enterprise_url: notifications.child_text("EnterpriseUrl"),
        partner_url: notifications.child_text("PartnerUrl"),
        events,
    })
}

/// Parses an Outbound Message *without* the organization check, for previewing
/// a pasted sample (e.g. on a field-mapping page). Never use it on live traffic:
/// [`parse_outbound_message`] with an empty expected org id refuses everything,
/// on purpose, so an unconfigured connector cannot accept any org's messages.
pub fn parse_outbound_sample(xml: &[u8]) -> Result<OutboundMessage, InboundError> {
    parse_outbound(xml, None)
}

/// The SOAP response Salesforce expects. `ack(true)` acknowledges every
/// notification in the message; `ack(false)` makes Salesforce retry later.
pub fn ack(ok: bool) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            r#"<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
            "<Ack>{}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
        ),
        ok
    )
}

/// Salesforce ids are 15 case-sensitive chars, optionally followed by a
/// 3-char case-folding checksum; the first 15 identify the record.
fn same_org(received: &str, expected: &str) -> bool {
    let prefix = |s: &str| -> Vec<u8> { s.trim().bytes().take(15).collect() };
    let (r, e) = (prefix(received), prefix(expected));
    !e.is_empty() && ct_eq(&r, &e)
}

fn notification_event(n: &Node) -> Result<InboundEvent, InboundError> {
    let event_id = n.child_text("Id").ok_or_else(|| malformed("missing Id"))?;
    let sobject = n
        .child("sObject")
        .ok_or_else(|| malformed("missing sObject"))?;
    let sobject_type = sobject
        .attr("type")
        .map(|t| t.rsplit(':').next().unwrap_or(t).to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("sObject has no xsi:type"))?;
    let object_type = normalize_object_type(&sobject_type);

    let mut fields = Map::new();
    for f in &sobject.children {
        fields.insert(f.name.clone(), f.to_json());
    }
    let object_id = fields
        .get("Id")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("sObject has no Id"))?;

    let change = if object_type == "deal" && is_won(&fields) {
        "won"
    } else {
        "updated"
    };
    let occurred_at = fields
        .get("LastModifiedDate")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|d| d.with_timezone(&chrono::Utc));

    Ok(InboundEvent {
        event_id,
        object_type,
        object_id,
        change: change.to_string(),
        occurred_at,
        sequence: None,
        fields,
    })
}

/// `IsWon` may arrive as a JSON bool (CDC) or as xsd:boolean text (SOAP).
fn is_won(fields: &Map<String, Value>) -> bool {
    let is_won = match fields.get("IsWon") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.trim(), "true" | "1"),
        _ => false,
    };
    is_won || fields.get("StageName").and_then(Value::as_str) == Some("Closed Won")
}

fn malformed(msg: &str) -> InboundError {
    InboundError::Malformed(msg.to_string())
}

/// A minimal element tree keyed by local names; enough for SOAP messages of
/// bounded depth, without mapping the WSDL into types.
#[derive(Debug, Default)]
struct Node {
    name: String,
    /// (local name, unescaped value)
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_nil(&self) -> bool {
        matches!(self.attr("nil").map(str::trim), Some("true" | "1"))
    }

    /// Trimmed text of a child element; `None` when absent, nil or blank.
    fn child_text(&self, name: &str) -> Option<String> {
        self.child(name)
            .filter(|c| !c.is_nil())
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    fn to_json(&self) -> Value {
        if self.is_nil() {
            Value::Null
        } else if self.children.is_empty() {
            Value::String(self.text.clone())
        } else {
            // Compound values (e.g. an address) keep their structure.
            let mut map = Map::new();
            for c in &self.children {
                map.insert(c.name.clone(), c.to_json());
            }
            Value::Object(map)
        }
    }
}

fn local(name: &[u8]) -> Result<String, InboundError> {
    std::str::from_utf8(name)
        .map(str::to_string)
        .map_err(|_| malformed("element name is not UTF-8"))
}

fn open(e: &quick_xml::events::BytesStart<'_>) -> Result<Node, InboundError> {
    let mut node = Node {
        name: local(e.local_name().as_ref())?,
        ..Node::default()
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|err| malformed(&format!("bad attribute: {err}")))?;
        let key = local(attr.key.local_name().as_ref())?;
        let value = attr
            .unescape_value()
            .map_err(|err| malformed(&format!("bad attribute value: {err}")))?;
        node.attrs.push((key, value.into_owned()));
    }
    Ok(node)
}

fn parse_xml(xml: &[u8]) -> Result<Node, InboundError> {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            malformed(&format!(
                "XML error at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let closed = match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("XML nested too deeply"));
                }
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                stack.push(open(&e)?);
                None
            }
            Event::Empty(e) => Some(open(&e)?),
            Event::End(_) => stack.pop(),
            Event::Text(t) => {
                let text = t
                    .xml10_content()
                    .map_err(|e| malformed(&format!("bad text: {e}")))?;
                push_text(&mut stack, &text)?;
                None
            }
            Event::CData(t) => {
                let text = t
                    .decode()
                    .map_err(|e| malformed(&format!("bad CDATA: {e}")))?;
                push_text(&mut stack, &text)?;
                None
            }
            Event::GeneralRef(r) => {
                // quick-xml reports `&amp;`/`&#233;` separately from the text around them.
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r
                            .decode()
                            .map_err(|e| malformed(&format!("bad entity: {e}")))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(&format!("unknown entity &{name};")))?
                            .to_string()
                    }
                    Err(e) => return Err(malformed(&format!("bad character reference: {e}"))),
                };
                push_text(&mut stack, &resolved)?;
                None
            }
            // A DTD could declare entities; SOAP forbids it, and so do we.
            Event::DocType(_) => return Err(malformed("DOCTYPE is not allowed")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => None,
            Event::Eof => break,
        };
        if let Some(node) = closed {
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None if root.is_none() => root = Some(node),
                None => return Err(malformed("more than one root element")),
            }
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unexpected end of XML"));
    }
    root.ok_or_else(|| malformed("empty XML document"))
}

fn push_text(stack: &mut [Node], text: &str) -> Result<(), InboundError> {
    match stack.last_mut() {
        Some(node) => {
            node.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

/// Parses Change Data Capture event(s) into one [`InboundEvent`] per record id.
///
/// `event_id` = `"<transactionKey>:<sequenceNumber>:<recordId>"` (a redelivery
/// repeats all three); `sequence` = `sequenceNumber`, else `commitNumber`, else
/// `replayId`; `occurred_at` = `commitTimestamp`. Changes: CREATE→created,
/// UPDATE→updated (won for an Opportunity whose changed fields show StageName
/// "Closed Won" or IsWon true), DELETE→deleted, UNDELETE→restored, GAP_*→gap
/// (with object id "*" if the gap names no records); anything else is
/// lower-cased. Fields listed in `nulledFields` but absent are set to null.
pub fn parse_cdc(json: &[u8]) -> Result<Vec<InboundEvent>, InboundError> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| malformed(&format!("CDC body is not JSON: {e}")))?;
    match &value {
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let events = cdc_message(item).map_err(|e| match e {
                    InboundError::Malformed(m) => malformed(&format!("message [{i}]: {m}")),
                    other => other,
                })?;
                out.extend(events);
            }
            Ok(out)
        }
        _ => cdc_message(&value),
    }
}

fn cdc_message(message: &Value) -> Result<Vec<InboundEvent>, InboundError> {
    // CometD wraps the event as {"data": {...}, "channel": "/data/..."}.
    let event = match message.get("data") {
        Some(data) if data.is_object() => data,
        _ => message,
    };
    let payload = event
        .get("payload")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("missing payload"))?;
    let header = payload
        .get("ChangeEventHeader")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("missing payload.ChangeEventHeader"))?;
    let text = |key: &str| -> Result<&str, InboundError> {
        header
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed(&format!("missing ChangeEventHeader.{key}")))
    };
    let entity = text("entityName")?;
    let change_type = text("changeType")?;
    let replay_id = event
        .get("event")
        .and_then(|e| e.get("replayId"))
        .and_then(json_i64);
    let sequence_number = header.get("sequenceNumber").and_then(json_i64);
    let commit_number = header.get("commitNumber").and_then(json_i64);
    let transaction = match (
        header.get("transactionKey").and_then(Value::as_str),
        replay_id,
    ) {
        (Some(tk), _) if !tk.is_empty() => tk.to_string(),
        (_, Some(replay)) => format!("replay-{replay}"),
        _ => return Err(malformed("missing ChangeEventHeader.transactionKey")),
    };
    let seq_part = sequence_number
        .or(commit_number)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let is_gap = change_type.starts_with("GAP_");

    let mut record_ids = match header.get("recordIds") {
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                id.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| malformed("recordIds must be non-empty strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) if is_gap => Vec::new(),
        _ => return Err(malformed("missing ChangeEventHeader.recordIds")),
    };
    if record_ids.is_empty() {
        if is_gap {
            record_ids.push("*".to_string());
        } else {
            return Err(malformed("ChangeEventHeader.recordIds is empty"));
        }
    }

    let mut fields: Map<String, Value> = payload
        .iter()
        .filter(|(k, _)| k.as_str() != "ChangeEventHeader")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(Value::Array(nulled)) = header.get("nulledFields") {
        for name in nulled.iter().filter_map(Value::as_str) {
            fields.entry(name.to_string()).or_insert(Value::Null);
        }
    }

    let object_type = normalize_object_type(entity);
    let change = match change_type {
        "CREATE" => "created".to_string(),
        "UPDATE" if object_type == "deal" && is_won(&fields) => "won".to_string(),
        "UPDATE" => "updated".to_string(),
        "DELETE" => "deleted".to_string(),
        "UNDELETE" => "restored".to_string(),
        _ if is_gap => "gap".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let occurred_at = header
        .get("commitTimestamp")
        .and_then(json_i64)
        .and_then(from_millis);
    let sequence = sequence_number.or(commit_number).or(replay_id);

    Ok(record_ids
        .into_iter()
        .map(|record_id| InboundEvent {
            event_id: format!("{transaction}:{seq_part}:{record_id}"),
            object_type: object_type.clone(),
            object_id: record_id,
            change: change.clone(),
            occurred_at,
            sequence,
            fields: fields.clone(),
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const ORG18: &str = "00D5e000000KQ2eEAG";

    // Shape from the Outbound Messaging WSDL
    // (https://developer.salesforce.com/docs/platform/api/guide/sforce-api-om-outboundmessaging-wsdl.html):
    // notifications{OrganizationId, ActionId, SessionId (nillable), EnterpriseUrl,
    // PartnerUrl, Notification[1..100]{Id, sObject}}, with the sObject's own
    // `xmlns:sf="urn:sobject.enterprise.soap.sforce.com"` as Salesforce sends it.
    fn opportunity_message(org: &str, stage: &str, is_won: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5e000000CaRkAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5e000000KQ2e</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5e000000KQ2e</PartnerUrl>
   <Notification>
    <Id>04l5e00000Gx7QzAAJ</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0065e00000AbCdEAAV</sf:Id>
     <sf:AccountId>0015e00000ZkM3hAAF</sf:AccountId>
     <sf:Amount>125000.5</sf:Amount>
     <sf:CloseDate>2026-11-20</sf:CloseDate>
     <sf:CurrencyIsoCode xsi:nil="true"/>
     <sf:IsWon>{is_won}</sf:IsWon>
     <sf:LastModifiedDate>2026-11-20T16:42:07.000Z</sf:LastModifiedDate>
     <sf:Name>Acme &amp; Sons &#8211; 50,000 widgets</sf:Name>
     <sf:StageName>{stage}</sf:StageName>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
        )
    }

    #[test]
    fn parses_won_opportunity() {
        let xml = opportunity_message(ORG18, "Closed Won", "true");
        let m = parse_outbound_message(xml.as_bytes(), ORG18).unwrap();
        assert_eq!(m.organization_id, ORG18);
        assert_eq!(m.action_id, "04k5e000000CaRkAAK");
        assert_eq!(m.session_id, None);
        assert_eq!(
            m.partner_url.as_deref(),
            Some("https://acme.my.salesforce.com/services/Soap/u/62.0/00D5e000000KQ2e")
        );
        assert_eq!(m.events.len(), 1);
        let e = &m.events[0];
        assert_eq!(e.event_id, "04l5e00000Gx7QzAAJ");
        assert_eq!(e.object_type, "deal");
        assert_eq!(e.object_id, "0065e00000AbCdEAAV");
        assert_eq!(e.change, "won");
        assert_eq!(e.sequence, None);
        assert_eq!(
            e.occurred_at,
            Some(
                chrono::Utc
                    .with_ymd_and_hms(2026, 11, 20, 16, 42, 7)
                    .unwrap()
            )
        );
        assert_eq!(e.fields["Amount"], Value::from("125000.5"));
        assert_eq!(e.fields["IsWon"], Value::from("true"));
        assert_eq!(e.fields["CurrencyIsoCode"], Value::Null);
        assert_eq!(
            e.fields["Name"],
            Value::from("Acme & Sons \u{2013} 50,000 widgets")
        );
    }

    #[test]
    fn won_by_either_rule_and_not_otherwise() {
        let by_flag = opportunity_message(ORG18, "Signed (custom)", "true");
        let by_stage = opportunity_message(ORG18, "Closed Won", "false");
        let open = opportunity_message(ORG18, "Negotiation/Review", "false");
        let change = |xml: &str| {
            parse_outbound_message(xml.as_bytes(), ORG18)
                .unwrap()
                .events[0]
                .change
                .clone()
        };
        assert_eq!(change(&by_flag), "won");
        assert_eq!(change(&by_stage), "won");
        assert_eq!(change(&open), "updated");
    }

    #[test]
    fn org_id_rules() {
        let xml = opportunity_message(ORG18, "Closed Won", "true");
        // 15- and 18-char forms of the same org match.
        assert!(parse_outbound_message(xml.as_bytes(), &ORG18[..15]).is_ok());
        let xml15 = opportunity_message(&ORG18[..15], "Closed Won", "true");
        assert!(parse_outbound_message(xml15.as_bytes(), ORG18).is_ok());
        // Case matters in the 15-char id.
        assert_eq!(
            parse_outbound_message(xml.as_bytes(), "00D5e000000kq2eEAG"),
            Err(InboundError::WrongOrganization)
        );
        assert_eq!(
            parse_outbound_message(xml.as_bytes(), "00D5e000000KQ2fEAG"),
            Err(InboundError::WrongOrganization)
        );
        assert_eq!(
            parse_outbound_message(xml.as_bytes(), ""),
            Err(InboundError::WrongOrganization)
        );
        // Previewing a sample skips the org check but nothing else.
        let sample = parse_outbound_sample(xml.as_bytes()).unwrap();
        assert_eq!(sample.events[0].change, "won");
        assert!(matches!(
            parse_outbound_sample(b"<x/>"),
            Err(InboundError::Malformed(_))
        ));
    }

    #[test]
    fn multiple_notifications_and_other_prefixes() {
        let xml = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
<S:Body><o:notifications xmlns:o="http://soap.sforce.com/2005/09/outbound">
<o:OrganizationId>00D5e000000KQ2e</o:OrganizationId><o:ActionId>04k5e000000CaRk</o:ActionId>
<o:SessionId>00D5e000000KQ2e!AQ0AQ.secret</o:SessionId>
<o:EnterpriseUrl>https://x/c</o:EnterpriseUrl><o:PartnerUrl>https://x/u</o:PartnerUrl>
<o:Notification><o:Id>04l000000000001</o:Id>
 <o:sObject i:type="ens:Account" xmlns:ens="urn:sobject.enterprise.soap.sforce.com">
  <ens:Id>0015e00000ZkM3hAAF</ens:Id><ens:Name><![CDATA[Acme <Holdings>]]></ens:Name>
  <ens:BillingAddress><ens:city>Lyon</ens:city><ens:country i:nil="true"/></ens:BillingAddress>
 </o:sObject></o:Notification>
<o:Notification><o:Id>04l000000000002</o:Id>
 <o:sObject i:type="ens:Contact" xmlns:ens="urn:sobject.enterprise.soap.sforce.com"><ens:Id>0035e00000AAAAAAA1</ens:Id><ens:Email>a@b.c</ens:Email></o:sObject></o:Notification>
<o:Notification><o:Id>04l000000000003</o:Id>
 <o:sObject i:type="ens:Invoice__c" xmlns:ens="urn:sobject.enterprise.soap.sforce.com"><ens:Id>a065e00000QZaIAM</ens:Id></o:sObject></o:Notification>
</o:notifications></S:Body></S:Envelope>"#;
        let m = parse_outbound_message(xml.as_bytes(), ORG18).unwrap();
        assert_eq!(
            m.session_id.as_deref(),
            Some("00D5e000000KQ2e!AQ0AQ.secret")
        );
        let kinds: Vec<_> = m
            .events
            .iter()
            .map(|e| {
                (
                    e.event_id.as_str(),
                    e.object_type.as_str(),
                    e.change.as_str(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("04l000000000001", "company", "updated"),
                ("04l000000000002", "contact", "updated"),
                ("04l000000000003", "invoice__c", "updated"),
            ]
        );
        assert_eq!(m.events[0].fields["Name"], Value::from("Acme <Holdings>"));
        assert_eq!(
            m.events[0].fields["BillingAddress"],
            serde_json::json!({"city": "Lyon", "country": null})
        );
    }

    #[test]
    fn malformed_messages() {
        let good = opportunity_message(ORG18, "Closed Won", "true");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("not xml".into(), "text outside"),
            ("<a><b></a>".into(), "XML error"),
            ("<Envelope/>".into(), "notifications"),
            ("<x:Foo xmlns:x=\"u\"/>".into(), "Envelope"),
            (good.replace("</soapenv:Envelope>", ""), "unexpected end"),
            (good.replace("<OrganizationId>", "<OrgId>").replace("</OrganizationId>", "</OrgId>"), "OrganizationId"),
            (good.replace("<sf:Id>0065e00000AbCdEAAV</sf:Id>", ""), "no Id"),
            (good.replace(" xsi:type=\"sf:Opportunity\"", ""), "xsi:type"),
            (good.replace("<Id>04l5e00000Gx7QzAAJ</Id>", ""), "missing Id"),
            (good.replace("&amp;", "&bogus;"), "unknown entity"),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><soapenv:Envelope xmlns:soapenv=\"s\"/>".into(),
                "DOCTYPE",
            ),
            (format!("{good}<extra/>"), "root"),
            (
                r#"<Envelope><Body><notifications><OrganizationId>00D5e000000KQ2e</OrganizationId><ActionId>x</ActionId></notifications></Body></Envelope>"#.into(),
                "no Notification",
            ),
        ];
        for (xml, needle) in cases {
            match parse_outbound_message(xml.as_bytes(), ORG18) {
                Err(InboundError::Malformed(m)) => assert!(m.contains(needle), "{needle}: {m}"),
                other => panic!("{needle}: {other:?}"),
            }
        }
    }

    #[test]
    fn ack_is_the_documented_response() {
        assert_eq!(
            ack(true),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
                r#"<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
                r#"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#
            )
        );
        assert!(ack(false).contains("<Ack>false</Ack>"));
        // Our own parser reads it back as well-formed XML.
        assert_eq!(parse_xml(ack(true).as_bytes()).unwrap().name, "Envelope");
    }

    // Layout from "Change Event Message Structure"
    // (https://developer.salesforce.com/docs/atlas.en-us.232.0.change_data_capture.meta/change_data_capture/cdc_message_structure.htm),
    // CometD-wrapped, with header fields as documented in "ChangeEventHeader Fields".
    const CDC_UPDATE_WON: &str = r#"{
      "data": {
        "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
        "payload": {
          "ChangeEventHeader": {
            "entityName": "Opportunity",
            "recordIds": ["0065e00000AbCdEAAV"],
            "changeType": "UPDATE",
            "changeOrigin": "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/",
            "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad",
            "sequenceNumber": 2,
            "commitTimestamp": 1763656927000,
            "commitNumber": 10921027053,
            "commitUser": "0055e000001tGxAAAU",
            "changedFields": ["StageName", "IsWon", "IsClosed", "LastModifiedDate"],
            "nulledFields": ["NextStep"]
          },
          "StageName": "Closed Won",
          "IsWon": true,
          "IsClosed": true,
          "LastModifiedDate": "2025-11-20T16:42:07.000Z"
        },
        "event": { "replayId": 6 }
      },
      "channel": "/data/OpportunityChangeEvent"
    }"#;

    #[test]
    fn cdc_update_won() {
        let events = parse_cdc(CDC_UPDATE_WON.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            e.event_id,
            "0002343d-9d90-e395-ed20-cf416ba652ad:2:0065e00000AbCdEAAV"
        );
        assert_eq!(e.object_type, "deal");
        assert_eq!(e.object_id, "0065e00000AbCdEAAV");
        assert_eq!(e.change, "won");
        assert_eq!(e.sequence, Some(2));
        assert_eq!(
            e.occurred_at,
            Some(chrono::Utc.timestamp_millis_opt(1_763_656_927_000).unwrap())
        );
        assert_eq!(e.fields["IsWon"], Value::Bool(true));
        assert_eq!(e.fields["NextStep"], Value::Null);
        assert!(!e.fields.contains_key("ChangeEventHeader"));
    }

    #[test]
    fn cdc_bare_create_multi_record_and_other_changes() {
        let msg = |change: &str, entity: &str, extra: &str| {
            format!(
                r#"{{"schema":"s","payload":{{"ChangeEventHeader":{{"entityName":"{entity}","recordIds":["001A","001B"],"changeType":"{change}","changeOrigin":"","transactionKey":"tk","sequenceNumber":1,"commitTimestamp":1700000000000,"commitNumber":99,"commitUser":"005x","changedFields":[]}}{extra}}},"event":{{"replayId":42}}}}"#
            )
        };
        let created = parse_cdc(msg("CREATE", "Account", r#","Name":"Acme""#).as_bytes()).unwrap();
        assert_eq!(created.len(), 2);
        assert_eq!(created[1].event_id, "tk:1:001B");
        assert_eq!(created[0].object_type, "company");
        assert_eq!(created[0].change, "created");
        assert_eq!(created[0].fields["Name"], Value::from("Acme"));
        // A deal *created* closed-won is reported as created, not won.
        let opp =
            parse_cdc(msg("CREATE", "Opportunity", r#","StageName":"Closed Won""#).as_bytes())
                .unwrap();
        assert_eq!(opp[0].change, "created");
        let upd = parse_cdc(msg("UPDATE", "Opportunity", r#","Amount":10"#).as_bytes()).unwrap();
        assert_eq!(upd[0].change, "updated");
        assert_eq!(
            parse_cdc(msg("DELETE", "Contact", "").as_bytes()).unwrap()[0].change,
            "deleted"
        );
        assert_eq!(
            parse_cdc(msg("UNDELETE", "Contact", "").as_bytes()).unwrap()[0].change,
            "restored"
        );
        let gap = parse_cdc(msg("GAP_UPDATE", "Opportunity", "").as_bytes()).unwrap();
        assert_eq!(gap[0].change, "gap");
        assert_eq!(gap[0].sequence, Some(1));
    }

    #[test]
    fn cdc_gap_overflow_without_records_and_array_delivery() {
        let body = r#"[
          {"payload":{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":[],"changeType":"GAP_OVERFLOW","transactionKey":"tk9","commitTimestamp":1700000000000}},"event":{"replayId":77}},
          {"payload":{"ChangeEventHeader":{"entityName":"Contact","recordIds":["003A"],"changeType":"UPDATE","commitNumber":"55"}},"event":{"replayId":78}}
        ]"#;
        let ev = parse_cdc(body.as_bytes()).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].object_id, "*");
        assert_eq!(ev[0].change, "gap");
        assert_eq!(ev[0].sequence, Some(77));
        assert_eq!(ev[0].event_id, "tk9::*");
        // No transactionKey/sequenceNumber: fall back to replayId and commitNumber.
        assert_eq!(ev[1].event_id, "replay-78:55:003A");
        assert_eq!(ev[1].sequence, Some(55));
    }

    #[test]
    fn cdc_malformed() {
        let cases: &[(&str, &str)] = &[
            ("{", "not JSON"),
            ("{}", "payload"),
            (r#"{"payload":{}}"#, "ChangeEventHeader"),
            (
                r#"{"payload":{"ChangeEventHeader":{"recordIds":["1"],"changeType":"CREATE","transactionKey":"t"}}}"#,
                "entityName",
            ),
            (
                r#"{"payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":["1"],"transactionKey":"t"}}}"#,
                "changeType",
            ),
            (
                r#"{"payload":{"ChangeEventHeader":{"entityName":"Account","changeType":"CREATE","transactionKey":"t"}}}"#,
                "recordIds",
            ),
            (
                r#"{"payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":[],"changeType":"CREATE","transactionKey":"t"}}}"#,
                "empty",
            ),
            (
                r#"{"payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":[1],"changeType":"CREATE","transactionKey":"t"}}}"#,
                "recordIds",
            ),
            (
                r#"{"payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":["1"],"changeType":"CREATE"}}}"#,
                "transactionKey",
            ),
            (r#"[{"payload":{}}]"#, "message [0]"),
        ];
        for (body, needle) in cases {
            match parse_cdc(body.as_bytes()) {
                Err(InboundError::Malformed(m)) => assert!(m.contains(needle), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let xml = opportunity_message(ORG18, "Closed Won", "true");
        for input in super::super::test_support::garbage(xml.as_bytes(), 11) {
            let _ = parse_outbound_message(&input, ORG18);
            let _ = parse_outbound_sample(&input);
            let _ = parse_outbound_message(&input, &String::from_utf8_lossy(&input));
        }
        for input in super::super::test_support::garbage(CDC_UPDATE_WON.as_bytes(), 13) {
            let _ = parse_cdc(&input);
        }
    }
}
