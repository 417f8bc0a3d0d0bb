//! Rendering: a full page wraps a partial; htmx requests get the partial alone.

use std::fmt::Display;

use actix_web::{http::StatusCode, HttpRequest, HttpResponse};
use askama::{filters::HtmlSafeOutput, Template};

use super::layout::Layout;
use crate::error::{AppError, AppResult};

/// The full page around a partial. The partial escaped its own data when it rendered, so
/// it is marked safe here; no user data is ever marked safe directly.
#[derive(Template)]
#[template(path = "page.html")]
pub struct Page<T: Display> {
    pub layout: Layout,
    pub content: HtmlSafeOutput<T>,
}

pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("HX-Request") && !req.headers().contains_key("HX-Boosted")
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Vary", "HX-Request"))
        .body(body)
}

/// 200 for a clean form, 422 when it comes back with messages.
pub fn status_for(valid: bool) -> StatusCode {
    if valid {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// Renders a fragment on its own (htmx swaps such as a live preview).
pub fn fragment<T: Template>(partial: T) -> AppResult<HttpResponse> {
    let body = partial.render().map_err(AppError::internal)?;
    Ok(html(StatusCode::OK, body))
}

/// Renders `partial` alone for htmx, or inside the layout for a normal request.
pub fn page<T: Template>(req: &HttpRequest, layout: Layout, partial: T) -> AppResult<HttpResponse> {
    page_with_status(req, StatusCode::OK, layout, partial)
}

pub fn page_with_status<T: Template>(
    req: &HttpRequest,
    status: StatusCode,
    layout: Layout,
    partial: T,
) -> AppResult<HttpResponse> {
    let body = if is_htmx(req) {
        partial.render()
    } else {
        Page {
            layout,
            content: HtmlSafeOutput(partial),
        }
        .render()
    }
    .map_err(AppError::internal)?;
    Ok(html(status, body))
}

/// 303 to `to`; htmx follows `HX-Redirect` instead of swapping the redirect target in.
pub fn see_other(req: &HttpRequest, to: &str) -> HttpResponse {
    if is_htmx(req) {
        HttpResponse::Ok()
            .insert_header(("HX-Redirect", to))
            .finish()
    } else {
        HttpResponse::SeeOther()
            .insert_header(("Location", to))
            .finish()
    }
}
