//! Catalog pages: product list, product detail with its prices and their versions.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::json;

use super::{
    domain::{ModelKind, PriceInput, PriceTerms, ProductInput, Recognition},
    pricing::{self, PriceModel},
    repo::{self, PriceVersion, PriceWithCurrent, Product},
};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    invoicing::domain::TaxCategory,
    money::Currency,
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

/// Select options shared by the catalog forms.
pub struct CatalogOptions {
    pub tax_categories: Vec<(&'static str, &'static str)>,
    pub recognitions: Vec<(&'static str, &'static str)>,
    pub models: Vec<(&'static str, &'static str)>,
    pub currencies: Vec<(&'static str, &'static str)>,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            tax_categories: TaxCategory::options(),
            recognitions: Recognition::options(),
            models: ModelKind::options(),
            currencies: Currency::all().collect(),
        }
    }
}

pub struct PriceView {
    pub id: i64,
    pub nickname: String,
    pub currency: String,
    pub status: String,
    pub summary: String,
    pub version: i32,
}

impl PriceView {
    fn new(p: &PriceWithCurrent) -> Self {
        Self {
            id: p.price.id,
            nickname: p.price.nickname.clone(),
            currency: p.price.currency.clone(),
            status: p.price.status.clone(),
            summary: p.current.as_ref().map(terms_summary).unwrap_or_default(),
            version: p.current.as_ref().map_or(0, |v| v.version),
        }
    }
}

/// "12.00 per unit, per 1 month, minimum 500.00".
pub fn terms_summary(v: &PriceVersion) -> String {
    let t = &v.terms;
    let mut s = t.model.summary();
    if !t.model.is_usage() {
        s.push_str(&if t.interval_months == 1 {
            " / month".to_owned()
        } else {
            format!(" / {} months", t.interval_months)
        });
    }
    if let Some(m) = t.minimum_commit {
        s.push_str(&format!("; minimum commit {}", m.normalize()));
    }
    s
}

#[derive(Template)]
#[template(path = "catalog/list_partial.html")]
pub struct ListPartial {
    pub base: String,
    pub csrf_token: String,
    pub products: Vec<(Product, Vec<PriceView>)>,
    pub show_archived: bool,
    pub can_manage: bool,
    pub form: Fields,
    pub errors: FieldErrors,
    pub opts: CatalogOptions,
}

#[derive(serde::Deserialize)]
pub struct ListParams {
    #[serde(default)]
    pub archived: bool,
}

async fn render_list(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    show_archived: bool,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let (products, prices) = ctx
        .db(state, move |c| {
            Ok((
                repo::list_products(c, show_archived)?,
                repo::prices_with_current(c, None, None, false)?,
            ))
        })
        .await?;
    let products = products
        .into_iter()
        .map(|p| {
            let views = prices
                .iter()
                .filter(|x| x.price.product_id == p.id)
                .map(PriceView::new)
                .collect();
            (p, views)
        })
        .collect();
    let status = render::status_for(errors.is_empty());
    let partial = ListPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        products,
        show_archived,
        can_manage: ctx.can(Permission::CatalogManage),
        form,
        errors,
        opts: CatalogOptions::default(),
    };
    render::page_with_status(req, status, ctx.layout(req, "Catalog", "catalog"), partial)
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let mut form = Fields::default();
    form.set("tax_category", "standard");
    form.set("revenue_recognition", "ratable");
    render_list(
        &req,
        &ctx,
        &state,
        params.archived,
        form,
        FieldErrors::default(),
    )
    .await
}

pub async fn create_product(
    req: HttpRequest,
    ctx: Allowed<can::CatalogManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let input = match ProductInput::parse(&form) {
        Ok(i) => i,
        Err(e) => return render_list(&req, &ctx, &state, false, form, e).await,
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let saved = ctx
        .db(&state, move |c| {
            if repo::sku_taken(c, &input.sku, None)? {
                let mut e = FieldErrors::default();
                e.add(
                    "sku",
                    format!("SKU {} is already in the catalog.", input.sku),
                );
                return Ok(Err(e));
            }
            let id = repo::insert_product(c, &input)?;
            audit::record(
                c,
                &actor,
                &Entry::new("product.created", "product", id).after(product_json(&input)),
            )?;
            Ok(Ok(id))
        })
        .await?;
    match saved {
        Ok(id) => Ok(render::see_other(
            &req,
            &format!("{}/catalog/products/{id}", ctx.base()),
        )),
        Err(e) => render_list(&req, &ctx, &state, false, form, e).await,
    }
}

fn product_json(p: &ProductInput) -> serde_json::Value {
    json!({
        "sku": p.sku, "name": p.name, "description": p.description,
        "gl_revenue_account": p.gl_revenue_account, "tax_category": p.tax_category.as_str(),
        "revenue_recognition": p.recognition.as_str(),
    })
}

fn product_fields(p: &Product) -> Fields {
    let mut f = Fields::default();
    f.set("sku", &p.sku);
    f.set("name", &p.name);
    f.set("description", &p.description);
    f.set("gl_revenue_account", &p.gl_revenue_account);
    f.set("tax_category", &p.tax_category);
    f.set("revenue_recognition", &p.revenue_recognition);
    f.set("status", &p.status);
    f.set("version", p.version.to_string());
    f
}

pub struct PriceDetail {
    pub view: PriceView,
    pub versions: Vec<(i32, String, String)>,
    /// The change form, pre-filled with the current version.
    pub form: Fields,
}

#[derive(Template)]
#[template(path = "catalog/product_partial.html")]
pub struct ProductPartial {
    pub base: String,
    pub csrf_token: String,
    pub product: Product,
    pub prices: Vec<PriceDetail>,
    pub can_manage: bool,
    pub form: Fields,
    pub errors: FieldErrors,
    pub price_form: Fields,
    pub price_errors: FieldErrors,
    pub opts: CatalogOptions,
    pub message: String,
}

pub struct ProductForms {
    pub form: Option<Fields>,
    pub errors: FieldErrors,
    pub price_form: Option<Fields>,
    pub price_errors: FieldErrors,
    pub message: String,
}

impl ProductForms {
    fn blank() -> Self {
        Self {
            form: None,
            errors: FieldErrors::default(),
            price_form: None,
            price_errors: FieldErrors::default(),
            message: String::new(),
        }
    }
}

async fn render_product(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    forms: ProductForms,
) -> AppResult<HttpResponse> {
    let (product, prices) = ctx
        .db(state, move |c| {
            let product = repo::get_product(c, id)?;
            let prices = repo::prices_with_current(c, Some(id), None, false)?;
            let mut out = Vec::new();
            for p in prices {
                let versions = repo::versions_of(c, p.price.id)?
                    .iter()
                    .map(|v| {
                        (
                            v.version,
                            terms_summary(v),
                            v.created_at.format("%Y-%m-%d").to_string(),
                        )
                    })
                    .collect();
                let form = p
                    .current
                    .as_ref()
                    .map(|v| terms_fields(&v.terms))
                    .unwrap_or_default();
                out.push(PriceDetail {
                    view: PriceView::new(&p),
                    versions,
                    form,
                });
            }
            Ok((product, out))
        })
        .await?;
    let ok = forms.errors.is_empty() && forms.price_errors.is_empty();
    let mut price_form = forms.price_form.unwrap_or_default();
    if price_form.get("interval_months").is_empty() {
        price_form.set("interval_months", "1");
        price_form.set("model", "flat");
    }
    let partial = ProductPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        form: forms.form.unwrap_or_else(|| product_fields(&product)),
        errors: forms.errors,
        price_form,
        price_errors: forms.price_errors,
        can_manage: ctx.can(Permission::CatalogManage),
        opts: CatalogOptions::default(),
        message: forms.message,
        prices,
        product,
    };
    let title = partial.product.name.clone();
    render::page_with_status(
        req,
        render::status_for(ok),
        ctx.layout(req, title, "catalog"),
        partial,
    )
}

pub async fn product(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    render_product(&req, &ctx, &state, path.1, ProductForms::blank()).await
}

pub async fn update_product(
    req: HttpRequest,
    ctx: Allowed<can::CatalogManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let status = if form.get("status") == "archived" {
        "archived"
    } else {
        "active"
    };
    let version: i32 = form.get("version").parse().unwrap_or(0);
    let input = match ProductInput::parse(&form) {
        Ok(i) => i,
        Err(errors) => {
            let forms = ProductForms {
                form: Some(form),
                errors,
                ..ProductForms::blank()
            };
            return render_product(&req, &ctx, &state, id, forms).await;
        }
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let outcome = ctx
        .db(&state, move |c| {
            let before = repo::get_product(c, id)?;
            if repo::sku_taken(c, &input.sku, Some(id))? {
                let mut e = FieldErrors::default();
                e.add("sku", format!("SKU {} is already in the catalog.", input.sku));
                return Ok(Err(e));
            }
            if !repo::update_product(c, id, version, &input, status)? {
                return Err(AppError::Conflict(
                    "Someone else changed this product since you opened it. Reload to see their changes.".into(),
                ));
            }
            let mut after = product_json(&input);
            after["status"] = json!(status);
            let mut was = product_json(&ProductInput::parse(&product_fields(&before)).map_err(AppError::Validation)?);
            was["status"] = json!(before.status);
            audit::record(c, &actor, &Entry::new("product.updated", "product", id).before(was).after(after))?;
            Ok(Ok(()))
        })
        .await?;
    match outcome {
        Ok(()) => Ok(render::see_other(
            &req,
            &format!("{}/catalog/products/{id}", ctx.base()),
        )),
        Err(errors) => {
            let forms = ProductForms {
                form: Some(form),
                errors,
                ..ProductForms::blank()
            };
            render_product(&req, &ctx, &state, id, forms).await
        }
    }
}

fn terms_json(t: &PriceTerms) -> serde_json::Value {
    json!({ "model": t.model, "interval_months": t.interval_months, "minimum_commit": t.minimum_commit })
}

pub async fn add_price(
    req: HttpRequest,
    ctx: Allowed<can::CatalogManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let input = match PriceInput::parse(&form) {
        Ok(i) => i,
        Err(price_errors) => {
            let forms = ProductForms {
                price_form: Some(form),
                price_errors,
                ..ProductForms::blank()
            };
            return render_product(&req, &ctx, &state, id, forms).await;
        }
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let uid = ctx.user.id;
    ctx.db(&state, move |c| {
        repo::get_product(c, id)?;
        let price_id = repo::insert_price(c, id, &input, Some(uid))?;
        let mut after = terms_json(&input.terms);
        after["nickname"] = json!(input.nickname);
        after["currency"] = json!(input.currency.code());
        after["product_id"] = json!(id);
        audit::record(
            c,
            &actor,
            &Entry::new("price.created", "price", price_id).after(after),
        )
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/catalog/products/{id}", ctx.base()),
    ))
}

/// Fields pre-filled from a version, for the "change price" form.
pub fn terms_fields(t: &PriceTerms) -> Fields {
    let mut f = Fields::default();
    f.set("model", t.model.kind());
    f.set("interval_months", t.interval_months.to_string());
    if let Some(m) = t.minimum_commit {
        f.set("minimum_commit", m.normalize().to_string());
    }
    match &t.model {
        PriceModel::Flat { amount } => f.set("amount", amount.normalize().to_string()),
        PriceModel::PerUnit { unit_amount } => {
            f.set("unit_amount", unit_amount.normalize().to_string())
        }
        PriceModel::Usage {
            unit_amount,
            included,
        } => {
            f.set("unit_amount", unit_amount.normalize().to_string());
            f.set("included", included.normalize().to_string());
        }
        PriceModel::Tiered { tiers } | PriceModel::Volume { tiers } => {
            f.set("tiers", pricing::format_tiers(tiers))
        }
    }
    f
}

/// A new version of an existing price (a price change). Subscriptions keep their version.
pub async fn change_price(
    req: HttpRequest,
    ctx: Allowed<can::CatalogManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let price_id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let price = ctx
        .db(&state, move |c| repo::get_price(c, price_id))
        .await?;
    let archive = form.get("action") == "archive" || form.get("action") == "activate";
    let actor = Actor::from_ctx(&ctx, &req);
    let uid = ctx.user.id;
    if archive {
        let status = if form.get("action") == "archive" {
            "archived"
        } else {
            "active"
        };
        ctx.db(&state, move |c| {
            repo::set_price_status(c, price_id, status)?;
            audit::record(
                c,
                &actor,
                &Entry::new("price.status", "price", price_id).after(json!({ "status": status })),
            )
        })
        .await?;
    } else {
        let terms = match PriceTerms::parse(&form) {
            Ok(t) => t,
            Err(errors) => {
                let forms = ProductForms {
                    message: format!(
                        "The new version of {} was not saved: {}",
                        price.nickname,
                        errors
                            .0
                            .iter()
                            .map(|(_, m)| m.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    ..ProductForms::blank()
                };
                let mut resp = render_product(&req, &ctx, &state, price.product_id, forms).await?;
                *resp.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
                return Ok(resp);
            }
        };
        ctx.db(&state, move |c| {
            let v = repo::add_version(c, price_id, &terms, Some(uid))?;
            audit::record(
                c,
                &actor,
                &Entry::new("price.versioned", "price", price_id).after({
                    let mut a = terms_json(&terms);
                    a["version"] = json!(v.version);
                    a
                }),
            )
        })
        .await?;
    }
    Ok(render::see_other(
        &req,
        &format!("{}/catalog/products/{}", ctx.base(), price.product_id),
    ))
}
