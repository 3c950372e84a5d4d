//! Small building blocks shared by the pages: forms that call their server
//! function, labelled fields with their error message, form-level errors,
//! loading and error states.

use leptos::{prelude::*, server_fn::ServerFn};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A form that calls its server function with the fields it holds. As
/// Leptos' `ActionForm`, it is a real `<form action=… method="post">` (it
/// posts itself before the client has started) and, once the client runs,
/// it dispatches `action` instead; but the fields become the function's
/// arguments through JSON (`fields_json`, read by serde_json, which the
/// client has for every answer) rather than serde_qs' parser: that parser
/// and `ActionForm`, per server function, were 15 KB of the settings
/// page's download (BENCHMARKS.md, "The dashboard's weight").
#[component]
pub fn Form<S>(action: ServerAction<S>, children: Children) -> impl IntoView
where
    S: ServerFn<Error = AppError> + DeserializeOwned + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
{
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        if ev.default_prevented() {
            return;
        }
        ev.prevent_default();
        let args = submitted_fields(&ev)
            .and_then(|fields| fields_json(&fields))
            .and_then(|json| serde_json::from_str::<S>(&json).map_err(|e| e.to_string()));
        match args {
            Ok(args) => {
                action.dispatch(args);
            }
            Err(e) => action.value().set(Some(Err(AppError::Request(e)))),
        }
    };
    view! { <form action=S::url() method="post" on:submit=on_submit>{children()}</form> }
}

/// The (name, value) pairs a submitted form sends, as the browser makes
/// them (`FormData`: named, enabled fields; a checkbox only when checked).
#[cfg(feature = "hydrate")]
fn submitted_fields(ev: &leptos::ev::SubmitEvent) -> Result<Vec<(String, String)>, String> {
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::{js_sys, FormData, HtmlFormElement};
    let form: HtmlFormElement =
        ev.target().and_then(|t| t.dyn_into().ok()).ok_or("the event did not come from a form")?;
    let data = FormData::new_with_form(&form).map_err(|e| format!("{e:?}"))?;
    let mut fields = vec![];
    for entry in js_sys::try_iter(&data).map_err(|e| format!("{e:?}"))?.into_iter().flatten() {
        let entry = entry.map_err(|e| format!("{e:?}"))?;
        let pair: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            return Err("a field that is not text".into());
        };
        fields.push((name, value));
    }
    Ok(fields)
}

/// Only the browser submits forms.
#[cfg(not(feature = "hydrate"))]
fn submitted_fields(_ev: &leptos::ev::SubmitEvent) -> Result<Vec<(String, String)>, String> {
    Err("forms are submitted in the browser".into())
}

/// A form's fields as the JSON of its server function's arguments:
/// `input[host]=x` (the names murmur's forms use) becomes
/// `{"input":{"host":"x"}}`; a plain name a top-level argument. Every value
/// is a string, as the form sent it; a name given twice keeps its last
/// value. Any other shape of name is refused.
pub fn fields_json(fields: &[(String, String)]) -> Result<String, String> {
    use std::collections::BTreeMap;
    #[derive(Default)]
    struct Arg(Option<String>, BTreeMap<String, String>);
    let mut args: BTreeMap<&str, Arg> = BTreeMap::new();
    for (name, value) in fields {
        match name.split_once('[') {
            None => args.entry(name).or_default().0 = Some(value.clone()),
            Some((arg, rest)) => {
                let key = rest.strip_suffix(']').filter(|k| !k.is_empty() && !k.contains(['[', ']']));
                let key = key.ok_or_else(|| format!("a field name murmur does not use: {name:?}"))?;
                args.entry(arg).or_default().1.insert(key.to_string(), value.clone());
            }
        }
    }
    let mut out = String::from("{");
    for (i, (arg, Arg(plain, nested))) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, arg);
        out.push(':');
        match plain {
            Some(v) if nested.is_empty() => push_json_string(&mut out, v),
            Some(_) => return Err(format!("{arg:?} is both a field and a group of fields")),
            None => {
                out.push('{');
                for (k, (key, v)) in nested.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    push_json_string(&mut out, key);
                    out.push(':');
                    push_json_string(&mut out, v);
                }
                out.push('}');
            }
        }
    }
    out.push('}');
    Ok(out)
}

/// `s` as a JSON string.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The error of an action's last result, if it failed.
pub fn last_error<T: Clone + Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
) -> Signal<Option<AppError>> {
    Signal::derive(move || value.get().and_then(|r| r.err()))
}

/// A labelled input whose server-side message shows beside it.
#[component]
pub fn Field(
    /// Unique on the page: the input's id and error id derive from it.
    id: &'static str,
    label: &'static str,
    /// Form field name, e.g. `input[email]`.
    name: &'static str,
    /// Which `AppError` field this input reports (`email`, `name`, …).
    field: &'static str,
    error: Signal<Option<AppError>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(default = "off")] autocomplete: &'static str,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(optional)] inputmode: Option<&'static str>,
) -> impl IntoView {
    let message = move || error.get().and_then(|e| e.field_message(field));
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = if hint.is_some() { format!("{hint_id} {error_id}") } else { error_id.clone() };
    view! {
        <div class="field">
            <label for=id>{label}</label>
            {hint.map(|h| view! { <p class="hint" id=hint_id.clone()>{h}</p> })}
            <input
                id=id
                name=name
                type=kind
                inputmode=inputmode
                autocomplete=autocomplete
                aria-invalid=move || if message().is_some() { "true" } else { "false" }
                aria-describedby=described
            />
            <p class="field-error" id=error_id aria-live="polite">{message}</p>
        </div>
    }
}

/// A message for the whole form (throttling, wrong password, conflicts).
#[component]
pub fn FormError(error: Signal<Option<AppError>>) -> impl IntoView {
    move || error.get().and_then(|e| e.form_message()).map(|m| view! { <p class="form-error" role="alert">{m}</p> })
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}

/// An error that stops a page from showing.
#[component]
pub fn PageError(error: AppError) -> impl IntoView {
    let text = match &error {
        AppError::NotFound => "This app does not exist, or you do not have access to it.".to_string(),
        other => other.to_string(),
    };
    view! {
        <section class="card" role="alert">
            <h1>"Cannot show this page"</h1>
            <p>{text}</p>
            <p><a href="/">"Go to the dashboard"</a></p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::fields_json;
    use crate::pages::office_hours::SaveOfficeHours;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const DAYS: [(&str, &str); 7] = [
        ("input[monday]", "09:00-12:00, 13:00-17:30"),
        ("input[tuesday]", ""),
        ("input[wednesday]", ""),
        ("input[thursday]", ""),
        ("input[friday]", ""),
        ("input[saturday]", ""),
        ("input[sunday]", ""),
    ];

    #[test]
    fn a_forms_fields_become_its_server_functions_arguments() {
        let mut pairs = vec![("input[app_id]", "app \"1\" \\ </script>"), ("input[time_zone]", "Europe/Paris")];
        pairs.extend(DAYS);
        pairs.push(("input[reply]", "Back soon,\n{{ firstName || there }}\t\u{1}é"));
        let args: SaveOfficeHours = serde_json::from_str(&fields_json(&fields(&pairs)).unwrap()).unwrap();
        assert_eq!(args.input.app_id, "app \"1\" \\ </script>");
        assert_eq!(args.input.enabled, None, "an unchecked checkbox is not sent");
        assert_eq!(args.input.monday, "09:00-12:00, 13:00-17:30");
        assert_eq!(args.input.reply, "Back soon,\n{{ firstName || there }}\t\u{1}é");
        // A checked checkbox; a name given twice keeps its last value.
        pairs.push(("input[enabled]", "on"));
        pairs.push(("input[time_zone]", "UTC"));
        let args: SaveOfficeHours = serde_json::from_str(&fields_json(&fields(&pairs)).unwrap()).unwrap();
        assert_eq!(args.input.enabled.as_deref(), Some("on"));
        assert_eq!(args.input.time_zone, "UTC");
        // Plain names are top-level arguments.
        assert_eq!(fields_json(&fields(&[("a", "1"), ("b[c]", "2")])).unwrap(), r#"{"a":"1","b":{"c":"2"}}"#);
        assert_eq!(fields_json(&[]).unwrap(), "{}");
    }

    #[test]
    fn field_names_of_other_shapes_are_refused() {
        for bad in [
            &[("input[a][b]", "x")][..],
            &[("input[]", "x")],
            &[("input[a", "x")],
            &[("input", "x"), ("input[a]", "y")],
        ] {
            assert!(fields_json(&fields(bad)).is_err(), "{bad:?}");
        }
    }
}
