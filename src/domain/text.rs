//! Rules for text anyone typed. PostgreSQL cannot store U+0000 in text or
//! JSON, and other control characters are never meant: every string field
//! that reaches storage passes one of these checks first, so a bad value is
//! a clear 400 (or widget error) instead of a failed write.

use super::Invalid;

/// True if `s` holds a control character; `multiline` allows tab, line feed
/// and carriage return (message bodies, text property values).
pub fn has_control(s: &str, multiline: bool) -> bool {
    s.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
}

/// Refuses a control character in `s`, naming `what` (e.g. "Event names").
pub fn refuse_control(field: &'static str, what: &str, s: &str, multiline: bool) -> Result<(), Invalid> {
    if has_control(s, multiline) {
        let allowed = if multiline { " (other than tabs and line breaks)" } else { "" };
        return Err(Invalid::new(field, format!("{what} cannot contain control characters{allowed}.")));
    }
    Ok(())
}

/// Every key and string inside a JSON value, checked (keys single-line).
pub fn refuse_control_in_json(field: &'static str, what: &str, v: &serde_json::Value) -> Result<(), Invalid> {
    match v {
        serde_json::Value::String(s) => refuse_control(field, what, s, true),
        serde_json::Value::Array(items) => items.iter().try_for_each(|i| refuse_control_in_json(field, what, i)),
        serde_json::Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            refuse_control(field, what, k, false)?;
            refuse_control_in_json(field, what, v)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters() {
        assert!(has_control("a\u{0}b", true));
        assert!(has_control("a\u{7f}", true));
        assert!(has_control("a\nb", false));
        assert!(!has_control("a\nb\tc\r", true));
        assert!(!has_control("héllo ✓", false));
        assert!(refuse_control_in_json("p", "Properties", &json!({"k": ["ok", {"x": "a\u{0}"}]})).is_err());
        assert!(refuse_control_in_json("p", "Properties", &json!({"k\u{0}": 1})).is_err());
        assert!(refuse_control_in_json("p", "Properties", &json!({"k": "multi\nline"})).is_ok());
    }
}
