//! Reading a won deal from the HubSpot CRM API: HubSpot's webhooks carry only the property
//! that changed, so the deal, its company, its contact and its line items are fetched with the
//! connector's private-app token before the mapping runs.
//!
//! Only the properties the mapping reads are requested (`deal.*`, `company.*`, `contact.*`
//! paths and the line item sub-paths), plus `hs_object_id`. The document has the shape the
//! mapping expects: `{"deal": {...}, "company": {...}, "contact": {...}, "line_items": [...]}`
//! with HubSpot's property values as they come (strings).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::mapping::Spec;

/// What went wrong reading the deal: worth retrying (network, 429, 5xx) or not (the deal is
/// gone, the token is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Retry(String),
    Hold(String),
}

/// The property names the mapping reads under `object.` (e.g. `deal`), with `hs_object_id`.
pub fn properties(spec: &Spec, object: &str) -> Vec<String> {
    let prefix = format!("{object}.");
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.insert("hs_object_id".into());
    for r in &spec.fields {
        for part in r.source.split('+').map(str::trim) {
            if let Some(p) = part.strip_prefix(&prefix) {
                if let Some(name) = p.split('.').next().filter(|n| !n.is_empty()) {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The line item properties the mapping reads.
pub fn line_properties(spec: &Spec) -> Vec<String> {
    let l = &spec.lines;
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.insert("hs_object_id".into());
    for p in [
        &l.sku,
        &l.quantity,
        &l.unit_price,
        &l.discount,
        &l.description,
    ] {
        if let Some(name) = p.split('.').next().filter(|n| !n.is_empty()) {
            out.insert(name.to_owned());
        }
    }
    out.into_iter().collect()
}

/// Whose API a read goes to, for the reasons a held or retried event shows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Vendor {
    pub name: &'static str,
    /// What to fix when the token is refused.
    pub token_hint: &'static str,
}

pub(super) const HUBSPOT: Vendor = Vendor {
    name: "HubSpot",
    token_hint: "set a private-app token with CRM read scopes on the connector, then replay.",
};

/// Sends `req` with the bearer token; a refused token, a missing record or another client
/// error holds the event with the reason, anything transient is retried.
pub(super) async fn get_json(
    vendor: Vendor,
    token: &str,
    req: reqwest::RequestBuilder,
) -> Result<Value, FetchError> {
    let name = vendor.name;
    let resp = req
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| FetchError::Retry(format!("{name} API unreachable: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    match status {
        200..=299 => serde_json::from_str(&body).map_err(|e| {
            FetchError::Retry(format!("{name} API answered with unreadable JSON: {e}"))
        }),
        401 | 403 => Err(FetchError::Hold(format!(
            "{name} refused the access token (HTTP {status}); {}",
            vendor.token_hint
        ))),
        404 => Err(FetchError::Hold(format!(
            "{name} has no such record any more (HTTP 404)."
        ))),
        429 | 500..=599 => Err(FetchError::Retry(format!("{name} API HTTP {status}"))),
        _ => Err(FetchError::Hold(format!(
            "{name} API HTTP {status}: {}",
            crate::integrations::http::snippet(&body)
        ))),
    }
}

fn props(v: &Value) -> Value {
    v.get("properties")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
}

fn first_association(v: &Value, kind: &str) -> Option<String> {
    v["associations"][kind]["results"]
        .as_array()?
        .iter()
        .find_map(|r| {
            r["id"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| r["id"].as_i64().map(|i| i.to_string()))
        })
}

fn all_associations(v: &Value, kind: &str) -> Vec<String> {
    v["associations"][kind]["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    r["id"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| r["id"].as_i64().map(|i| i.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the deal with its first company, first contact and all line items.
pub async fn deal_document(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    spec: &Spec,
    deal_id: &str,
) -> Result<Value, FetchError> {
    let base = base.trim_end_matches('/');
    let deal = get_json(
        HUBSPOT,
        token,
        client
            .get(format!("{base}/crm/v3/objects/deals/{deal_id}"))
            .query(&[
                ("properties", properties(spec, "deal").join(",")),
                ("associations", "companies,contacts,line_items".to_owned()),
            ]),
    )
    .await?;
    let mut doc = json!({ "deal": props(&deal), "company": {}, "contact": {}, "line_items": [] });
    if let Some(id) = first_association(&deal, "companies") {
        let c = get_json(
            HUBSPOT,
            token,
            client
                .get(format!("{base}/crm/v3/objects/companies/{id}"))
                .query(&[("properties", properties(spec, "company").join(","))]),
        )
        .await?;
        doc["company"] = props(&c);
    }
    if let Some(id) = first_association(&deal, "contacts") {
        let c = get_json(
            HUBSPOT,
            token,
            client
                .get(format!("{base}/crm/v3/objects/contacts/{id}"))
                .query(&[("properties", properties(spec, "contact").join(","))]),
        )
        .await?;
        doc["contact"] = props(&c);
    }
    let items = all_associations(&deal, "line_items");
    if !items.is_empty() {
        let batch = get_json(
            HUBSPOT,
            token,
            client
                .post(format!("{base}/crm/v3/objects/line_items/batch/read"))
                .json(&json!({
                    "properties": line_properties(spec),
                    "inputs": items.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
                })),
        )
        .await?;
        let lines: Vec<Value> = batch["results"]
            .as_array()
            .map(|a| a.iter().map(props).collect())
            .unwrap_or_default();
        doc["line_items"] = Value::Array(lines);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mapped_properties_are_requested() {
        let spec = super::super::mapping::default_spec("hubspot");
        let deal = properties(&spec, "deal");
        assert!(deal.contains(&"deal_currency_code".to_owned()));
        assert!(deal.contains(&"closedate".to_owned()));
        assert!(
            !deal.contains(&"name".to_owned()),
            "company.name is not a deal property"
        );
        let contact = properties(&spec, "contact");
        assert!(
            contact.contains(&"firstname".to_owned()) && contact.contains(&"lastname".to_owned())
        );
        let lines = line_properties(&spec);
        assert!(
            lines.contains(&"hs_sku".to_owned())
                && lines.contains(&"hs_discount_percentage".to_owned())
        );
    }

    #[test]
    fn associations_are_read_from_the_v3_shape() {
        let v = json!({"associations": {"companies": {"results": [{"id": "55", "type": "deal_to_company"}]},
                                         "line_items": {"results": [{"id": "7"}, {"id": "8"}]}}});
        assert_eq!(first_association(&v, "companies").as_deref(), Some("55"));
        assert_eq!(first_association(&v, "contacts"), None);
        assert_eq!(all_associations(&v, "line_items"), vec!["7", "8"]);
    }
}
