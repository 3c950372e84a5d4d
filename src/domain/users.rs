//! App users as the REST API writes them: a JSON body becomes a validated
//! `UserPatch` (or a clear error naming the field), before anything is
//! stored.

use serde_json::{Map, Value as Json};

use super::{
    properties::{check_custom_name, parse_iso8601, Value, Version, MAX_CUSTOM_PROPERTIES},
    Invalid,
};

pub const MAX_USER_ID_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_EVENT_NAME_CHARS: usize = 128;

/// Changes to one user. `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub user_id: Option<String>,
    pub given_name: Option<Option<String>>,
    pub surname: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub signed_up_at: Option<i64>,
    pub app_version: Option<Option<String>>,
    pub platform: Option<Option<String>>,
    /// Custom properties to set (`Some`) or remove (`None`).
    pub properties: Vec<(String, Option<Value>)>,
}

fn short_text(field: &'static str, v: &Json, max: usize) -> Result<Option<String>, Invalid> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) if s.chars().count() > max => {
            Err(Invalid::new(field, format!("{field} must be at most {max} characters.")))
        }
        Json::String(s) if s.chars().any(char::is_control) => {
            Err(Invalid::new(field, format!("{field} cannot contain control characters.")))
        }
        Json::String(s) => Ok(Some(s.clone())),
        _ => Err(Invalid::new(field, format!("{field} must be a string."))),
    }
}

impl UserPatch {
    /// Reads a body such as `{"userId": "u1", "givenName": "Ada",
    /// "properties": {"plan": "gold"}}`. Unknown top-level fields are
    /// ignored (Smooch clients send some murmur does not keep).
    pub fn from_json(body: &Map<String, Json>) -> Result<UserPatch, Invalid> {
        let mut p = UserPatch::default();
        if let Some(v) = body.get("userId") {
            match short_text("userId", v, MAX_USER_ID_CHARS)? {
                Some(id) if !id.trim().is_empty() => p.user_id = Some(id),
                _ => return Err(Invalid::new("userId", "userId must be a non-empty string.")),
            }
        }
        for (key, slot) in [("givenName", &mut p.given_name), ("surname", &mut p.surname), ("email", &mut p.email)] {
            if let Some(v) = body.get(key) {
                *slot = Some(short_text(key, v, if key == "email" { 254 } else { MAX_NAME_CHARS })?);
            }
        }
        if let Some(v) = body.get("signedUpAt") {
            let ms = v.as_str().and_then(parse_iso8601).ok_or_else(|| {
                Invalid::new("signedUpAt", "signedUpAt must be an ISO 8601 date such as 2026-11-21T10:00:00Z.")
            })?;
            p.signed_up_at = Some(ms);
        }
        if let Some(v) = body.get("appVersion") {
            let version = short_text("appVersion", v, 64)?;
            if let Some(ver) = &version {
                if Version::parse(ver).is_none() {
                    return Err(Invalid::new("appVersion", "appVersion must look like 2.10.1."));
                }
            }
            p.app_version = Some(version);
        }
        if let Some(v) = body.get("platform") {
            p.platform = Some(short_text("platform", v, 32)?);
        }
        match body.get("properties") {
            None | Some(Json::Null) => {}
            Some(Json::Object(props)) => {
                if props.len() > MAX_CUSTOM_PROPERTIES {
                    return Err(Invalid::new(
                        "properties",
                        format!("A user can have at most {MAX_CUSTOM_PROPERTIES} custom properties."),
                    ));
                }
                for (name, value) in props {
                    check_custom_name(name)?;
                    let value = if value.is_null() { None } else { Some(Value::from_json(name, value)?) };
                    p.properties.push((name.clone(), value));
                }
            }
            Some(_) => return Err(Invalid::new("properties", "properties must be an object.")),
        }
        Ok(p)
    }
}

/// A user as a path or frame names them: their `userId` or murmur's `_id`
/// (1 to 128 characters, no control characters).
pub fn check_user_ref(user_ref: &str) -> Result<(), Invalid> {
    if user_ref.is_empty() || user_ref.chars().count() > MAX_USER_ID_CHARS {
        return Err(Invalid::new("userId", format!("A user id is 1 to {MAX_USER_ID_CHARS} characters.")));
    }
    super::text::refuse_control("userId", "A user id", user_ref, false)
}

/// A tracked event, validated: its name and its properties as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub properties: Option<String>,
}

impl Event {
    /// `name` and optional `properties` as a REST body or a widget frame gives them.
    pub fn parse(name: Option<&Json>, properties: Option<&Json>) -> Result<Event, Invalid> {
        let name = name.and_then(Json::as_str).ok_or_else(|| Invalid::new("name", "name is required."))?;
        check_event_name(name)?;
        Ok(Event { name: name.to_string(), properties: check_event_properties(properties)? })
    }
}

/// The values personalised text can use, by name: the built-ins the user
/// has, then their custom properties (as `props` reads them), as text.
pub fn personal_values<'a>(
    props: &impl super::conditions::UserProps,
    custom_names: impl Iterator<Item = &'a String>,
) -> Vec<(String, String)> {
    use super::properties::{value_text, BUILTINS};
    let mut values: Vec<(String, String)> =
        BUILTINS.iter().filter_map(|b| props.builtin(b).map(|v| (b.name.to_string(), value_text(v)))).collect();
    values.extend(custom_names.filter_map(|k| props.custom(k).map(|v| (k.clone(), value_text(v)))));
    values
}

/// Event names: 1 to 128 characters, no control characters.
pub fn check_event_name(name: &str) -> Result<(), Invalid> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > MAX_EVENT_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Invalid::new(
            "name",
            format!("Event names are 1 to {MAX_EVENT_NAME_CHARS} characters, without control characters."),
        ));
    }
    Ok(())
}

pub const MAX_EVENT_PROPERTIES: usize = 50;
pub const MAX_EVENT_PROPERTY_NAME_CHARS: usize = 64;
pub const MAX_EVENT_PROPERTY_TEXT_CHARS: usize = 200;

/// An event's optional properties: a flat object of at most 50 keys (names
/// of 1 to 64 characters), each value a string of at most 200 characters,
/// a number, a boolean or null; no control characters other than tabs and
/// line breaks in values. Returns the JSON text to store (under 64 KiB).
/// The limits are the OpenAPI description's (`api::openapi`), field by field.
pub fn check_event_properties(props: Option<&Json>) -> Result<Option<String>, Invalid> {
    let invalid = |m: String| Err(Invalid::new("properties", m));
    match props {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(m)) => {
            if m.len() > MAX_EVENT_PROPERTIES {
                return invalid(format!("An event has at most {MAX_EVENT_PROPERTIES} properties."));
            }
            for (k, v) in m {
                let n = k.chars().count();
                if n == 0 || n > MAX_EVENT_PROPERTY_NAME_CHARS {
                    return invalid(format!(
                        "Event property names are 1 to {MAX_EVENT_PROPERTY_NAME_CHARS} characters."
                    ));
                }
                super::text::refuse_control("properties", "Event property names", k, false)?;
                match v {
                    Json::String(t) if t.chars().count() > MAX_EVENT_PROPERTY_TEXT_CHARS => {
                        return invalid(format!(
                            "Event property {k:?} is longer than {MAX_EVENT_PROPERTY_TEXT_CHARS} characters."
                        ));
                    }
                    Json::String(t) => super::text::refuse_control("properties", "Event properties", t, true)?,
                    Json::Number(n) if n.as_f64().is_none_or(|f| f.abs() > super::properties::MAX_NUMBER) => {
                        return invalid(format!("Event property {k:?} must be a number from -1e300 to 1e300."));
                    }
                    Json::Number(_) | Json::Bool(_) | Json::Null => {}
                    Json::Array(_) | Json::Object(_) => {
                        return invalid(format!(
                            "Event property {k:?} must be a string, number, boolean or null (event properties are flat)."
                        ));
                    }
                }
            }
            Ok(Some(Json::Object(m.clone()).to_string()))
        }
        Some(_) => Err(Invalid::new("properties", "Event properties must be an object.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: Json) -> Result<UserPatch, Invalid> {
        UserPatch::from_json(v.as_object().unwrap())
    }

    #[test]
    fn reads_a_smooch_body() {
        let p = patch(json!({
            "userId": "u1", "givenName": "Ada", "surname": null, "email": "ada@example.com",
            "signedUpAt": "2026-01-02T03:04:05Z", "properties": {"plan": "gold", "seats": 3, "old": null}
        }))
        .unwrap();
        assert_eq!(p.user_id.as_deref(), Some("u1"));
        assert_eq!(p.given_name, Some(Some("Ada".into())));
        assert_eq!(p.surname, Some(None));
        assert_eq!(p.signed_up_at, parse_iso8601("2026-01-02T03:04:05Z"));
        assert_eq!(p.properties.len(), 3);
        assert!(p.properties.contains(&("old".to_string(), None)));
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(patch(json!({"userId": 5})).unwrap_err().field, "userId");
        assert_eq!(patch(json!({"userId": ""})).unwrap_err().field, "userId");
        assert_eq!(patch(json!({"givenName": ["x"]})).unwrap_err().field, "givenName");
        assert_eq!(patch(json!({"signedUpAt": "yesterday"})).unwrap_err().field, "signedUpAt");
        assert_eq!(patch(json!({"properties": [1]})).unwrap_err().field, "properties");
        let long = "p".repeat(129);
        assert!(patch(json!({"properties": {long: 1}})).unwrap_err().message.contains("1 to 128"));
        let many: Map<String, Json> = (0..101).map(|i| (format!("p{i}"), json!(i))).collect();
        assert!(patch(json!({"properties": many})).unwrap_err().message.contains("at most 100"));
        assert_eq!(patch(json!({"appVersion": "banana"})).unwrap_err().field, "appVersion");
    }

    #[test]
    fn event_names() {
        assert!(check_event_name("item-in-cart").is_ok());
        assert!(check_event_name("").is_err());
        assert!(check_event_name(&"e".repeat(129)).is_err());
    }

    #[test]
    fn event_properties() {
        assert_eq!(check_event_properties(None).unwrap(), None);
        assert_eq!(check_event_properties(Some(&json!({"sku": "A-1"}))).unwrap().as_deref(), Some(r#"{"sku":"A-1"}"#));
        assert!(check_event_properties(Some(&json!([1]))).is_err());
        assert!(check_event_properties(Some(&json!({"k": "a\u{0}b"}))).is_err());
        assert!(check_event_properties(Some(&json!({"k\u{0}": 1}))).is_err());
        assert!(check_event_properties(Some(&json!({"k": ["x", {"y": "\u{0}"}]}))).is_err());
        assert!(check_user_ref("a\u{0}b").is_err());
        assert!(check_user_ref("").is_err());
        assert!(check_user_ref("user-1").is_ok());
        assert!(patch(json!({"properties": {"k": "a\u{0}b"}})).is_err());
        assert!(check_event_properties(Some(&json!({"big": "x".repeat(9000)}))).is_err());
        let many: Map<String, Json> = (0..51).map(|i| (format!("p{i}"), json!(i))).collect();
        assert!(check_event_properties(Some(&Json::Object(many))).is_err());
        // Flat, field by field as the OpenAPI description says.
        let ok = json!({"a": "x".repeat(200), "b": 1.5, "c": true, "d": null, "e": "two\nlines"});
        assert!(check_event_properties(Some(&ok)).is_ok());
        assert!(check_event_properties(Some(&json!({"a": "x".repeat(201)}))).is_err());
        assert!(check_event_properties(Some(&json!({"k": ["x"]}))).is_err());
        assert!(check_event_properties(Some(&json!({"k": {"y": 1}}))).is_err());
        assert!(check_event_properties(Some(&json!({"": 1}))).is_err());
        assert!(check_event_properties(Some(&json!({"k".repeat(65): 1}))).is_err());
        // The largest allowed still fits a REST body (64 KiB).
        let widest: Map<String, Json> =
            (0..50).map(|i| (format!("{i:0>2}{}", "\u{10000}".repeat(62)), json!("\u{10000}".repeat(200)))).collect();
        let text = check_event_properties(Some(&Json::Object(widest))).unwrap().unwrap();
        assert!(text.len() < 60 * 1024, "{}", text.len());
    }
}
