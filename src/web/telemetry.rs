//! Logs: one span per request carrying the request id, tenant and user (filled in by the
//! extractors once known). Secrets never enter spans.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    Error, HttpMessage,
};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpan, RootSpanBuilder};
use tracing_subscriber::{fmt::format::FmtSpan, EnvFilter};

pub fn init_subscriber(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Span CLOSE events are what print the request line (with its latency) in plain fmt.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_target(false)
        .try_init();
}

pub struct ArborRootSpan;

impl RootSpanBuilder for ArborRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(
            request,
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Records a field on the request's root span.
pub fn record(req: &actix_web::HttpRequest, field: &str, value: &str) {
    if let Some(span) = req.extensions().get::<RootSpan>() {
        span.record(field, value);
    }
}
