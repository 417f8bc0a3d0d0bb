//! The OpenAPI 3.1 document of `/api/v1`, written by hand and served publicly.
//!
//! Rule: every route in `API_ROUTES` is described here (a test checks it), with its
//! parameters, schemas and the bearer security scheme.

use actix_web::HttpResponse;
use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(desc: &str, schema: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn list_params() -> Value {
    json!([
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 } },
        { "name": "starting_after", "in": "query", "description": "Cursor: the last id of the previous page.", "schema": { "type": "integer" } }
    ])
}

fn id_param() -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }])
}

fn idem_param() -> Value {
    json!([{ "name": "Idempotency-Key", "in": "header", "description": "Same key and body within 24 h return the stored response; a different body is 422.", "schema": { "type": "string", "maxLength": 255 } }])
}

fn invoice_params() -> Value {
    let mut p = list_params();
    if let Some(a) = p.as_array_mut() {
        a.push(json!({ "name": "account_id", "in": "query", "schema": { "type": "integer" } }));
        a.push(json!({ "name": "status", "in": "query", "schema": { "type": "string", "enum": ["draft", "open", "paid", "void", "uncollectible"] } }));
    }
    p
}

fn contact_params() -> Value {
    let mut p = id_param();
    if let (Some(a), Some(more)) = (p.as_array_mut(), list_params().as_array()) {
        a.extend(more.iter().cloned());
    }
    p
}

fn list_of(schema: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "object": { "const": "list" },
            "data": { "type": "array", "items": { "$ref": format!("#/components/schemas/{schema}") } },
            "has_more": { "type": "boolean" }
        }
    })
}

fn auth_errors(mut responses: Value) -> Value {
    responses["401"] = err("Missing, invalid or revoked API key");
    responses
}

/// One entry per route of `API_ROUTES`.
fn paths() -> Value {
    json!({
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": { "200": { "description": "OpenAPI document" } }
                }
            },
            "/api/v1/accounts": {
                "get": {
                    "summary": "List accounts",
                    "parameters": list_params(),
                    "responses": auth_errors(json!({ "200": ok("A page of accounts", "AccountList") }))
                },
                "post": {
                    "summary": "Create an account (write key)",
                    "parameters": idem_param(),
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/AccountCreate" } } } },
                    "responses": auth_errors(json!({
                        "201": ok("Created", "Account"),
                        "403": err("Read-only key"),
                        "409": err("Looks like an existing account"),
                        "422": err("Invalid fields, or Idempotency-Key reused with another body")
                    }))
                }
            },
            "/api/v1/accounts/{id}": {
                "get": {
                    "summary": "Fetch an account",
                    "parameters": id_param(),
                    "responses": auth_errors(json!({ "200": ok("The account", "Account"), "404": err("No such account") }))
                }
            },
            "/api/v1/accounts/{id}/contacts": {
                "get": {
                    "summary": "List an account's contacts",
                    "parameters": contact_params(),
                    "responses": auth_errors(json!({ "200": ok("A page of contacts", "ContactList"), "404": err("No such account") }))
                },
                "post": {
                    "summary": "Add a contact to an account (write key)",
                    "parameters": [id_param()[0].clone(), idem_param()[0].clone()],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ContactCreate" } } } },
                    "responses": auth_errors(json!({
                        "201": ok("Created", "Contact"),
                        "403": err("Read-only key"),
                        "404": err("No such account"),
                        "422": err("Invalid fields, or Idempotency-Key reused with another body")
                    }))
                }
            },
            "/api/v1/invoices": {
                "get": {
                    "summary": "List invoices and credit notes",
                    "parameters": invoice_params(),
                    "responses": auth_errors(json!({ "200": ok("A page of invoices", "InvoiceList") }))
                }
            },
            "/api/v1/invoices/{id}": {
                "get": {
                    "summary": "Fetch an invoice",
                    "parameters": id_param(),
                    "responses": auth_errors(json!({ "200": ok("The invoice", "Invoice"), "404": err("No such invoice") }))
                }
            },
            "/api/v1/payments": {
                "get": {
                    "summary": "List payments",
                    "parameters": list_params(),
                    "responses": auth_errors(json!({ "200": ok("A page of payments", "PaymentList") }))
                }
            },
            "/api/v1/usage_records": {
                "post": {
                    "summary": "Record metered usage (write key); a repeated external_id answers the existing record with 200",
                    "parameters": idem_param(),
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/UsageRecordCreate" } } } },
                    "responses": auth_errors(json!({
                        "200": ok("Already recorded", "UsageRecord"),
                        "201": ok("Recorded", "UsageRecord"),
                        "403": err("Read-only key"),
                        "404": err("No such subscription"),
                        "409": err("external_id used for another subscription"),
                        "422": err("Invalid fields, or Idempotency-Key reused with another body")
                    }))
                }
            },
            "/api/v1/subscriptions": {
                "get": {
                    "summary": "List subscriptions",
                    "parameters": list_params(),
                    "responses": auth_errors(json!({ "200": ok("A page of subscriptions", "SubscriptionList") }))
                },
                "post": {
                    "summary": "Create a subscription (write key); prices must be in the account's currency",
                    "parameters": idem_param(),
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SubscriptionCreate" } } } },
                    "responses": auth_errors(json!({
                        "201": ok("Created", "Subscription"),
                        "403": err("Read-only key"),
                        "404": err("No such account"),
                        "422": err("Invalid fields, or Idempotency-Key reused with another body")
                    }))
                }
            }
    })
}

fn schemas() -> Value {
    json!({
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "properties": {
                        "type": { "type": "string", "enum": ["unauthorized", "forbidden", "not_found", "bad_request", "validation", "idempotency_mismatch", "conflict", "unavailable", "internal"] },
                        "message": { "type": "string" },
                        "fields": { "type": "object", "additionalProperties": { "type": "string" } }
                    } } }
                },
                "Address": { "type": "object", "additionalProperties": { "type": "string" } },
                "Account": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "object": { "const": "account" },
                        "account_number": { "type": "string" },
                        "legal_name": { "type": "string" },
                        "display_name": { "type": "string" },
                        "status": { "type": "string", "enum": ["active", "on_hold", "closed"] },
                        "currency": { "type": "string" },
                        "tax_id": { "type": ["string", "null"] },
                        "tax_mode": { "type": "string" },
                        "tax_rate": { "type": ["string", "null"], "description": "decimal" },
                        "terms_kind": { "type": "string" },
                        "terms_days": { "type": "integer" },
                        "invoice_delivery": { "type": "string" },
                        "domain": { "type": ["string", "null"] },
                        "po_number": { "type": ["string", "null"] },
                        "parent_id": { "type": ["integer", "null"] },
                        "bill_to_parent": { "type": "boolean" },
                        "billing_address": { "$ref": "#/components/schemas/Address" },
                        "shipping_address": { "$ref": "#/components/schemas/Address" },
                        "custom_fields": { "type": "object" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "AccountList": {
                    "type": "object",
                    "properties": {
                        "object": { "const": "list" },
                        "data": { "type": "array", "items": { "$ref": "#/components/schemas/Account" } },
                        "has_more": { "type": "boolean" }
                    }
                },
                "Invoice": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "object": { "const": "invoice" },
                        "kind": { "type": "string", "description": "invoice or credit_note" },
                        "number": { "type": ["string", "null"], "description": "Assigned at finalization" },
                        "status": { "type": "string" },
                        "account_id": { "type": "integer" },
                        "subscription_id": { "type": ["integer", "null"] },
                        "currency": { "type": "string" },
                        "issue_date": { "type": "string", "format": "date" },
                        "due_date": { "type": ["string", "null"], "format": "date" },
                        "subtotal": { "type": "string" },
                        "tax_total": { "type": "string" },
                        "total": { "type": "string" },
                        "amount_paid": { "type": "string" },
                        "amount_due": { "type": "string" }
                    }
                },
                "InvoiceList": list_of("Invoice"),
                "Contact": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "object": { "const": "contact" },
                        "account_id": { "type": "integer" },
                        "name": { "type": "string" },
                        "email": { "type": ["string", "null"] },
                        "phone": { "type": ["string", "null"] },
                        "job_title": { "type": ["string", "null"] },
                        "roles": { "type": "array", "items": { "type": "string" } },
                        "receives_invoices": { "type": "boolean" },
                        "receives_reminders": { "type": "boolean" },
                        "status": { "type": "string" }
                    }
                },
                "ContactList": list_of("Contact"),
                "Payment": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "object": { "const": "payment" },
                        "account_id": { "type": "integer" },
                        "method": { "type": "string" },
                        "currency": { "type": "string" },
                        "amount": { "type": "string" },
                        "refunded": { "type": "string" },
                        "received_on": { "type": "string", "format": "date" },
                        "reference": { "type": "string" },
                        "status": { "type": "string" },
                        "created_at": { "type": "string", "format": "date-time" }
                    }
                },
                "PaymentList": list_of("Payment"),
                "Subscription": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "object": { "const": "subscription" },
                        "number": { "type": "string" },
                        "account_id": { "type": "integer" },
                        "currency": { "type": "string" },
                        "status": { "type": "string" },
                        "start_date": { "type": "string", "format": "date" },
                        "end_date": { "type": ["string", "null"], "format": "date" },
                        "interval_months": { "type": "integer" },
                        "auto_renew": { "type": "boolean" },
                        "billed_through": { "type": "string", "format": "date" }
                    }
                },
                "SubscriptionList": list_of("Subscription"),
                "ContactCreate": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": { "type": "string" },
                        "email": { "type": "string", "format": "email" },
                        "phone": { "type": "string" },
                        "job_title": { "type": "string" },
                        "roles": { "type": "string", "description": "comma-separated: billing, technical, executive, other" },
                        "receives_invoices": { "type": "boolean" },
                        "receives_reminders": { "type": "boolean" }
                    }
                },
                "SubscriptionCreate": {
                    "type": "object",
                    "required": ["account_id", "items"],
                    "properties": {
                        "account_id": { "type": "integer" },
                        "start_date": { "type": "string", "format": "date", "description": "Defaults to today" },
                        "cycle": { "type": "string", "enum": ["1", "3", "6", "12"], "description": "months per billing period" },
                        "timing": { "type": "string", "enum": ["advance", "arrears"] },
                        "term_months": { "type": "integer" },
                        "auto_renew": { "type": "boolean" },
                        "po_number": { "type": "string" },
                        "items": { "type": "array", "minItems": 1, "items": { "type": "object", "required": ["price_id"], "properties": {
                            "price_id": { "type": "integer" },
                            "quantity": { "type": ["string", "number"] },
                            "discount": { "type": "string", "description": "an amount per period, or a percentage like \"10%\"" }
                        } } }
                    }
                },
                "UsageRecordCreate": {
                    "type": "object",
                    "required": ["subscription_id", "subscription_item_id", "quantity", "external_id"],
                    "properties": {
                        "subscription_id": { "type": "integer" },
                        "subscription_item_id": { "type": "integer" },
                        "quantity": { "type": ["string", "number"], "description": "decimal, zero or more" },
                        "usage_date": { "type": "string", "format": "date", "description": "Defaults to today" },
                        "external_id": { "type": "string", "maxLength": 200, "description": "Your unique id; makes resends harmless" }
                    }
                },
                "UsageRecord": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "object": { "const": "usage_record" },
                        "subscription_id": { "type": "integer" },
                        "subscription_item_id": { "type": "integer" },
                        "product_id": { "type": "integer" },
                        "usage_date": { "type": "string", "format": "date" },
                        "quantity": { "type": "string" },
                        "external_id": { "type": "string" },
                        "source": { "type": "string" }
                    }
                },
                "AccountCreate": {
                    "type": "object",
                    "required": ["legal_name"],
                    "description": "Flat fields as on the account form.",
                    "properties": {
                        "legal_name": { "type": "string" },
                        "display_name": { "type": "string" },
                        "account_number": { "type": "string" },
                        "tax_id": { "type": "string" },
                        "domain": { "type": "string" },
                        "po_number": { "type": "string" },
                        "status": { "type": "string" },
                        "parent": { "type": "string", "description": "Parent account number" },
                        "owner": { "type": "string", "description": "Member email" },
                        "currency": { "type": "string" },
                        "tax_mode": { "type": "string" },
                        "tax_rate": { "type": "string" },
                        "terms_kind": { "type": "string" },
                        "terms_days": { "type": "integer" },
                        "invoice_delivery": { "type": "string" },
                        "bill_to_parent": { "type": "boolean" },
                        "notes": { "type": "string" },
                        "confirm_duplicates": { "type": "boolean" }
                    },
                    "additionalProperties": { "type": ["string", "number", "boolean"] }
                }
    })
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Arbor API",
            "version": "1",
            "description": "Per-tenant JSON API. Money is a decimal string, dates ISO 8601. Lists page by id with `limit` and `starting_after`. POSTs honour Idempotency-Key for 24 hours."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key from Settings → API keys: arb_<workspace>_<prefix>_<secret>" }
            },
            "schemas": schemas()
        }
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
