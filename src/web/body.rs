//! Request bodies with a size limit. Every endpoint that reads a body itself (JSON API,
//! webhooks, uploads) goes through here, so an oversized body is always a 413 with the limit
//! in the message, whether the client announced its length or streamed it.

use actix_web::{
    http::header,
    web::{self, Bytes, BytesMut},
    HttpRequest,
};
use futures_util::StreamExt as _;

use crate::error::{AppError, AppResult};

/// `1 MB`, `256 KB`, `100 bytes`: limits as people read them.
pub fn human(limit: usize) -> String {
    if limit >= 1024 * 1024 && limit.is_multiple_of(1024 * 1024) {
        format!("{} MB", limit / 1024 / 1024)
    } else if limit >= 1024 && limit.is_multiple_of(1024) {
        format!("{} KB", limit / 1024)
    } else {
        format!("{limit} bytes")
    }
}

/// The error for a body over `limit` bytes.
pub fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge(format!(
        "The request body is larger than {}, the most this endpoint accepts.",
        human(limit)
    ))
}

/// The body's announced length, when it is announced and readable.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Refuses a body whose announced length is over `limit` before reading any of it.
pub fn check_declared(req: &HttpRequest, limit: usize) -> AppResult<()> {
    match declared_length(req) {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
pub async fn read(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> AppResult<Bytes> {
    check_declared(req, limit)?;
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::internal(anyhow::anyhow!("reading body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_in_the_largest_whole_unit() {
        assert_eq!(human(10 * 1024 * 1024), "10 MB");
        assert_eq!(human(256 * 1024), "256 KB");
        assert_eq!(human(1500), "1500 bytes");
    }

    #[test]
    fn the_message_names_the_limit() {
        let AppError::PayloadTooLarge(m) = too_large(1024 * 1024) else {
            panic!("wrong kind");
        };
        assert!(m.contains("1 MB"), "{m}");
    }
}
