//! Conversation messages: who wrote them, what a body may hold, and the
//! name shown beside a user's message.

use serde::{Deserialize, Serialize};

use super::{text::refuse_control, Invalid};

pub const MAX_MESSAGE_CHARS: usize = 4096;
pub const MAX_AUTHOR_NAME_CHARS: usize = 128;

/// Who wrote a message: the end user or the team (Smooch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "appUser")]
    AppUser,
    #[serde(rename = "appMaker")]
    AppMaker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AppUser => "appUser",
            Role::AppMaker => "appMaker",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "appUser" => Some(Role::AppUser),
            "appMaker" => Some(Role::AppMaker),
            _ => None,
        }
    }
}

/// A message body: 1 to 4096 characters, not blank, no control characters
/// other than tabs and line breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: &str) -> Result<MessageText, Invalid> {
        if raw.trim().is_empty() || raw.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Invalid::new("text", format!("A message is 1 to {MAX_MESSAGE_CHARS} characters.")));
        }
        refuse_control("text", "A message", raw, true)?;
        Ok(MessageText(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An optional author name given with a message (at most 128 characters).
pub fn parse_author_name(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    match raw {
        None => Ok(None),
        Some(n) if n.chars().count() > MAX_AUTHOR_NAME_CHARS => {
            Err(Invalid::new("name", format!("name must be a string of at most {MAX_AUTHOR_NAME_CHARS} characters.")))
        }
        Some(n) => {
            refuse_control("name", "A name", n, false)?;
            Ok(Some(n.to_string()))
        }
    }
}

/// The name a user goes by: given name and surname, whichever are set;
/// `None` when neither is (callers pick their own fallback).
pub fn display_name(given: Option<&str>, surname: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [given, surname].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies() {
        assert!(MessageText::parse("hello\nthere").is_ok());
        assert!(MessageText::parse("  ").is_err());
        assert!(MessageText::parse(&"x".repeat(4097)).is_err());
        assert!(MessageText::parse("a\u{0}b").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(display_name(Some("Ada"), Some("Lovelace")).as_deref(), Some("Ada Lovelace"));
        assert_eq!(display_name(None, Some("Lovelace")).as_deref(), Some("Lovelace"));
        assert_eq!(display_name(Some(" "), None), None);
        assert!(parse_author_name(Some("a\u{0}")).is_err());
        assert_eq!(Role::parse("appMaker"), Some(Role::AppMaker));
        assert_eq!(serde_json::to_string(&Role::AppUser).unwrap(), "\"appUser\"");
    }
}
