//! `AppError`: the one error type of every server function. The browser
//! matches on variants (a field message goes beside its field); internal
//! causes are logged on the server and never sent.

use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

use crate::domain::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Bad input in one field of a form (422).
    #[error("{message}")]
    Field { field: String, message: String },
    /// The input clashes with what exists, e.g. a duplicate email (409).
    #[error("{message}")]
    Conflict { field: String, message: String },
    #[error("Please sign in.")]
    Unauthenticated,
    /// Sign-in with an unknown email or a wrong password (which one is not said).
    #[error("Wrong email or password.")]
    BadCredentials,
    #[error("You do not have access to this.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    #[error("Too many attempts. Try again in {retry_after_secs} seconds.")]
    Throttled { retry_after_secs: u64 },
    /// Something failed on the server; details are in the server log only.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request itself could not be decoded or delivered.
    #[error("The request could not be completed: {0}")]
    Request(String),
}

impl AppError {
    /// The message to show beside `field`, if this error is about it.
    pub fn for_field(&self, field: &str) -> Option<String> {
        match self {
            AppError::Field { field: f, message } | AppError::Conflict { field: f, message } if f == field => {
                Some(message.clone())
            }
            _ => None,
        }
    }

    /// HTTP status for this error when it answers a request.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Field { .. } => 422,
            AppError::Conflict { .. } => 409,
            AppError::Unauthenticated | AppError::BadCredentials => 401,
            AppError::Forbidden => 403,
            AppError::NotFound => 404,
            AppError::Throttled { .. } => 429,
            AppError::Internal => 500,
            AppError::Request(_) => 400,
        }
    }

    /// Several field problems at once: carried as the first (forms show it
    /// beside its field); `fields` joins the rest so none is lost.
    pub fn from_invalid(mut errs: Vec<Invalid>) -> Self {
        if errs.len() <= 1 {
            return errs.pop().map(Into::into).unwrap_or(AppError::Request("invalid input".into()));
        }
        let field = errs.iter().map(|e| e.field).collect::<Vec<_>>().join(",");
        let message = errs.iter().map(|e| format!("{}\u{1f}{}", e.field, e.message)).collect::<Vec<_>>().join("\u{1e}");
        AppError::Field { field, message }
    }

    /// Message for one field out of a (possibly multi-field) error.
    pub fn field_message(&self, field: &str) -> Option<String> {
        if let Some(m) = self.for_field(field) {
            return Some(m);
        }
        if let AppError::Field { field: fields, message } = self {
            if fields.split(',').any(|f| f == field) {
                return message
                    .split('\u{1e}')
                    .filter_map(|part| part.split_once('\u{1f}'))
                    .find(|(f, _)| *f == field)
                    .map(|(_, m)| m.to_string());
            }
        }
        None
    }

    /// A message for the whole form when the error is not about one field.
    pub fn form_message(&self) -> Option<String> {
        match self {
            AppError::Field { .. } => None,
            AppError::Conflict { field, message } if field == "form" => Some(message.clone()),
            AppError::Conflict { .. } => None,
            other => Some(other.to_string()),
        }
    }
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        AppError::Field { field: e.field.to_string(), message: e.message }
    }
}

impl FromServerFnError for AppError {
    /// Read from text in the browser, as every answer is (`crate::wire`).
    type Encoder = crate::wire::TextJson;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Request(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_invalid_fields_each_find_their_message() {
        let e =
            AppError::from_invalid(vec![Invalid::new("name", "Enter a name."), Invalid::new("email", "Bad email.")]);
        assert_eq!(e.field_message("name").as_deref(), Some("Enter a name."));
        assert_eq!(e.field_message("email").as_deref(), Some("Bad email."));
        assert_eq!(e.field_message("password"), None);
        assert_eq!(e.form_message(), None);
        assert_eq!(e.status(), 422);
    }

    #[test]
    fn one_invalid_field_is_plain() {
        let e = AppError::from_invalid(vec![Invalid::new("name", "Enter a name.")]);
        assert_eq!(e, AppError::Field { field: "name".into(), message: "Enter a name.".into() });
    }

    #[test]
    fn internal_error_says_nothing_specific() {
        assert_eq!(AppError::Internal.form_message().unwrap(), "Something went wrong on our side. Please try again.");
    }
}
