//! One error type for the whole application and how each kind reaches the user.
//!
//! Policy: user mistakes are never 500s. Missing or foreign records are 404 (we do not reveal
//! whether another tenant's record exists), permission failures 403, bad input 422 with the
//! messages next to the fields, an unreachable database 503 (retry later), and only genuinely
//! unexpected failures 500 with a generic page. `Debug` prints the whole error chain so logs
//! say what happened; responses never do.

use std::fmt;

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use askama::Template;

use crate::web::layout::Layout;

#[derive(thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("sign-in required")]
    Unauthenticated,
    #[error("two-factor enrollment required by this workspace")]
    MfaEnrollmentRequired,
    #[error("too many requests")]
    TooManyRequests,
    #[error("the form has expired or did not come from this site")]
    Csrf,
    #[error("invalid input")]
    Validation(FieldErrors),
    #[error("{0}")]
    Conflict(String),
    /// The body is over the endpoint's limit; the message names the limit (see `web::body`).
    #[error("request body too large")]
    PayloadTooLarge(String),
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

/// Messages keyed by form field, in the order they were found.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
    /// Errors for `field`, empty when it is valid; templates call this next to each input.
    pub fn for_field(&self, field: &str) -> &str {
        self.get(field).unwrap_or("")
    }
    pub fn into_result(self) -> AppResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self))
        }
    }
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }
}

/// Walks the `source()` chain so logs show the root cause.
pub fn error_chain_fmt(e: &impl std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        writeln!(f, "Caused by:\n\t{cause}")?;
        current = cause.source();
    }
    Ok(())
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Internal(e) | Self::Unavailable(e) => write!(f, "{self}: {e:?}"),
            Self::Validation(v) => write!(f, "invalid input: {v:?}"),
            _ => error_chain_fmt(self, f),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => Self::NotFound,
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Self::Unavailable(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    heading: &'a str,
    message: &'a str,
    fields: &'a [(String, String)],
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden | Self::Csrf => StatusCode::FORBIDDEN,
            Self::Unauthenticated | Self::MfaEnrollmentRequired => StatusCode::SEE_OTHER,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Internal(_) => tracing::error!(error = ?self, "request failed"),
            Self::Unavailable(_) => tracing::warn!(error = ?self, "dependency unavailable"),
            _ => {}
        }
        let redirect = match self {
            Self::Unauthenticated => Some("/login"),
            Self::MfaEnrollmentRequired => Some("/account/security?required=1"),
            _ => None,
        };
        if let Some(to) = redirect {
            return HttpResponse::SeeOther()
                .insert_header(("Location", to))
                .insert_header(("HX-Redirect", to))
                .finish();
        }
        let (heading, message) = match self {
            Self::NotFound => ("Page not found", "There is nothing here, or you do not have access to it."),
            Self::Forbidden => ("Not allowed", "Your role does not allow this action. Ask an admin of this workspace if you need it."),
            Self::Csrf => ("Form expired", "This form has expired or did not come from this site. Reload the page and try again."),
            Self::Validation(_) => ("Please check your input", "Some fields need attention."),
            Self::Conflict(m) => ("Conflict", m.as_str()),
            Self::PayloadTooLarge(m) => ("Too large", m.as_str()),
            Self::TooManyRequests => ("Slow down", "Too many attempts from your address. Wait a minute and try again."),
            Self::Unavailable(_) => ("Temporarily unavailable", "Arbor cannot reach its database right now. Nothing was changed; please try again in a moment."),
            Self::Internal(_) | Self::Unauthenticated | Self::MfaEnrollmentRequired => ("Something went wrong", "An unexpected error occurred. It has been logged; please try again."),
        };
        let fields: &[(String, String)] = match self {
            Self::Validation(f) => &f.0,
            _ => &[],
        };
        let page = ErrorPage {
            layout: Layout::bare(heading),
            status: status.as_u16(),
            heading,
            message,
            fields,
        };
        let body = page.render().unwrap_or_else(|_| heading.to_owned());
        let mut resp = HttpResponse::build(status);
        if matches!(self, Self::Unavailable(_)) {
            resp.insert_header(("Retry-After", "5"));
        }
        resp.content_type("text/html; charset=utf-8").body(body)
    }
}
