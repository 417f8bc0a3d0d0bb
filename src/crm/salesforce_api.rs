//! Completing a won Salesforce Opportunity from the Salesforce REST API: an Outbound Message
//! or a Change Data Capture event carries only Opportunity fields (CDC only the changed ones),
//! so the Opportunity, its Account, its primary contact and its line items are read with the
//! connector's access token before the mapping runs.
//!
//! - Reads: the Opportunity and the Account as sObject rows (every field, so a mapping may use
//!   any custom field), the contact through `OpportunityContactRole` (the primary one first,
//!   else the oldest), and the line items by SOQL with only the fields the line mapping reads.
//! - The document has the shape the Salesforce mapping expects: `{"Opportunity": {...},
//!   "Account": {...}, "Contact": {...}, "OpportunityLineItems": [...]}`. The Opportunity is
//!   the message's fields with the API's values laid over them; a field the API leaves null
//!   keeps the message's value.
//! - Record ids go into URLs and SOQL, so anything but a 15- or 18-character Salesforce id
//!   holds the event instead of being sent.

use serde_json::{json, Map, Value};

use super::hubspot_api::{get_json, FetchError, Vendor};
use super::mapping::Spec;

const SALESFORCE: Vendor = Vendor {
    name: "Salesforce",
    token_hint: "set an access token with API scope on the connector, then replay.",
};

/// The REST API version, the same as the write-back's.
const API: &str = "/services/data/v60.0";

/// A Salesforce record id: 15 or 18 letters and digits.
fn record_id(id: &str) -> Result<&str, FetchError> {
    let ok = matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(id)
    } else {
        Err(FetchError::Hold(format!(
            "\"{}\" is not a Salesforce record id, so it was not looked up.",
            id.chars().take(40).collect::<String>()
        )))
    }
}

/// A field name (or relationship path) the SOQL may name; anything else is left out and the
/// mapping reports the field as missing.
fn soql_field(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// `Id` and the line item fields the mapping reads, each once.
pub fn line_fields(spec: &Spec) -> Vec<String> {
    let l = &spec.lines;
    let mut out = vec!["Id".to_owned()];
    for f in [
        &l.sku,
        &l.quantity,
        &l.unit_price,
        &l.discount,
        &l.description,
    ] {
        let f = f.trim();
        if soql_field(f) && !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
            out.push(f.to_owned());
        }
    }
    out
}

/// A record without its `attributes` (type and URL), as the mapping sees records.
fn record(mut v: Value) -> Value {
    match v.as_object_mut() {
        Some(o) => {
            o.remove("attributes");
            v
        }
        None => Value::Object(Map::new()),
    }
}

fn records(v: &Value) -> Vec<Value> {
    v["records"]
        .as_array()
        .map(|a| a.iter().cloned().map(record).collect())
        .unwrap_or_default()
}

/// The message's Opportunity fields with the API's non-null values laid over them.
fn overlay(message: &Map<String, Value>, api: Value) -> Value {
    let mut out = message.clone();
    if let Value::Object(fields) = api {
        for (k, v) in fields {
            if !v.is_null() || !out.contains_key(&k) {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// One record by id (every field, without `attributes`); the id is checked first.
async fn sobject(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kind: &str,
    id: &str,
) -> Result<Value, FetchError> {
    let id = record_id(id)?;
    let url = format!("{base}{API}/sobjects/{kind}/{id}");
    get_json(SALESFORCE, token, client.get(url))
        .await
        .map(record)
}

/// The records a SOQL query finds (its first page: an Opportunity's roles and line items
/// fit), each without `attributes`.
async fn query(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    soql: &str,
) -> Result<Vec<Value>, FetchError> {
    let req = client
        .get(format!("{base}{API}/query"))
        .query(&[("q", soql)]);
    get_json(SALESFORCE, token, req).await.map(|v| records(&v))
}

/// Reads the Opportunity with its Account, primary contact and line items.
pub async fn opportunity_document(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    spec: &Spec,
    opportunity_id: &str,
    message: &Map<String, Value>,
) -> Result<Value, FetchError> {
    let base = base.trim_end_matches('/');
    // Checked here as well: the id also goes into the SOQL below.
    let id = record_id(opportunity_id)?;
    let opp = sobject(client, base, token, "Opportunity", id).await?;
    let mut doc = json!({
        "Opportunity": overlay(message, opp),
        "Account": {},
        "Contact": {},
        "OpportunityLineItems": [],
    });
    if let Some(account) = doc["Opportunity"]["AccountId"].as_str().map(str::to_owned) {
        doc["Account"] = sobject(client, base, token, "Account", &account).await?;
    }
    let roles = query(
        client,
        base,
        token,
        &format!(
            "SELECT ContactId FROM OpportunityContactRole WHERE OpportunityId = '{id}' \
             ORDER BY IsPrimary DESC, CreatedDate ASC LIMIT 1"
        ),
    )
    .await?;
    let contact = roles
        .first()
        .and_then(|r| r["ContactId"].as_str().map(str::to_owned));
    if let Some(contact) = contact {
        doc["Contact"] = sobject(client, base, token, "Contact", &contact).await?;
    }
    let items = query(
        client,
        base,
        token,
        &format!(
            "SELECT {} FROM OpportunityLineItem WHERE OpportunityId = '{id}' \
             ORDER BY SortOrder, CreatedDate",
            line_fields(spec).join(", ")
        ),
    )
    .await?;
    doc["OpportunityLineItems"] = Value::Array(items);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_salesforce_ids_are_looked_up() {
        assert!(record_id("0065e00000AbCdEAAV").is_ok());
        assert!(record_id("0065e00000AbCdE").is_ok());
        for bad in [
            "",
            "006' OR Id != '",
            "0065e00000AbCdEAA",
            "0065e00000AbCd/AAV",
        ] {
            assert!(
                matches!(record_id(bad), Err(FetchError::Hold(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn the_line_query_names_the_mapped_fields_once_and_nothing_else() {
        let mut spec = super::super::mapping::default_spec("salesforce");
        assert_eq!(
            line_fields(&spec),
            [
                "Id",
                "ProductCode",
                "Quantity",
                "UnitPrice",
                "Discount",
                "Name"
            ]
        );
        spec.lines.sku = "PricebookEntry.Product2.ProductCode".into();
        spec.lines.description = "Name FROM Account --".into();
        spec.lines.discount = "quantity".into();
        assert_eq!(
            line_fields(&spec),
            [
                "Id",
                "PricebookEntry.Product2.ProductCode",
                "Quantity",
                "UnitPrice"
            ]
        );
    }

    #[test]
    fn the_api_overlays_the_message_but_a_null_keeps_what_the_message_said() {
        let mut message = Map::new();
        message.insert("Id".into(), json!("0065e00000AbCdEAAV"));
        message.insert("PO_Number__c".into(), json!("PO-1"));
        message.insert("StageName".into(), json!("Negotiation"));
        let api = record(json!({
            "attributes": {"type": "Opportunity"},
            "StageName": "Closed Won",
            "PO_Number__c": null,
            "CurrencyIsoCode": "EUR",
            "Description": null
        }));
        let o = overlay(&message, api);
        assert_eq!(o["StageName"], "Closed Won");
        assert_eq!(o["PO_Number__c"], "PO-1");
        assert_eq!(o["CurrencyIsoCode"], "EUR");
        assert!(o["Description"].is_null());
        assert!(o.get("attributes").is_none());
    }
}
