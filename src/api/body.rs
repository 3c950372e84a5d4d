//! `JsonObject`: the request body as a JSON object, with the REST API's
//! errors — 415 for another content type, 413 over the size limit, 400
//! with line and column for malformed JSON.

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
};
use serde_json::{Map, Value};

use super::error::ApiError;

pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A batch of events may be larger (`POST /v1.1/events`).
pub const MAX_BATCH_BODY_BYTES: usize = 1024 * 1024;

pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        read_object(req, MAX_BODY_BYTES).await.map(JsonObject)
    }
}

/// A JSON object body of up to `MAX_BATCH_BODY_BYTES`, with the same rules.
pub struct JsonBatch(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBatch {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        read_object(req, MAX_BATCH_BODY_BYTES).await.map(JsonBatch)
    }
}

async fn read_object(req: Request<Body>, limit: usize) -> Result<Map<String, Value>, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body is larger than {limit} bytes."),
        )
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("Malformed JSON at line {} column {}: {e}", e.line(), e.column()))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request("The body must be a JSON object.")),
    }
}
