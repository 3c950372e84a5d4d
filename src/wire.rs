//! The wire format of the dashboard's server functions: JSON, as server_fn's
//! own `Json`, but read in the browser from text (`serde_json::from_str`).
//!
//! The browser decodes each type a page loads twice over: from the page
//! (a resource's value, serialised into the HTML and read with `from_str`)
//! and from a server function's answer. server_fn's `JsonEncoding` reads the
//! answer with `from_slice`, another reader type, so the WASM carried two
//! copies of every type's deserialiser (BENCHMARKS.md, "one JSON reader").
//! Reading both from text keeps one. Same bytes on the wire, same content
//! type: callers outside the dashboard see no difference.

use leptos::server_fn::{
    codec::Post, error::ServerFnErrorErr, Bytes, ContentType, Decodes, Encodes, Format, FormatType,
};
use serde::{de::DeserializeOwned, Serialize};

/// JSON read from text (see the module's comment).
pub struct TextJson;

/// A server function's answer as JSON, read from text in the browser:
/// `#[server(..., output = crate::wire::Json)]`.
pub type Json = Post<TextJson>;

impl ContentType for TextJson {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for TextJson {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for TextJson {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for TextJson {
    type Error = ServerFnErrorErr;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(|e| ServerFnErrorErr::Deserialization(e.to_string()))?;
        serde_json::from_str(text).map_err(|e| ServerFnErrorErr::Deserialization(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;

    #[test]
    fn reads_what_it_writes_and_refuses_what_is_not_json() {
        let e = AppError::Field { field: "name".into(), message: "Give it a name".into() };
        let bytes = <TextJson as Encodes<AppError>>::encode(&e).unwrap();
        assert_eq!(&bytes[..], serde_json::to_vec(&e).unwrap().as_slice());
        assert_eq!(<TextJson as Decodes<AppError>>::decode(bytes).unwrap(), e);
        let bad = <TextJson as Decodes<AppError>>::decode(Bytes::from_static(b"\xff{")).unwrap_err();
        assert!(matches!(bad, ServerFnErrorErr::Deserialization(_)), "{bad:?}");
        let bad = <TextJson as Decodes<Vec<u8>>>::decode(Bytes::from_static(b"{")).unwrap_err();
        assert!(matches!(bad, ServerFnErrorErr::Deserialization(_)), "{bad:?}");
    }

    /// Every server function the browser calls answers with this encoding:
    /// one left on server_fn's default would bring the second reader back.
    #[test]
    fn every_dashboard_server_function_answers_with_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pages");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().filter(|l| l.trim_start().starts_with("#[server")) {
                seen += 1;
                assert!(line.contains("output = crate::wire::Json"), "{}: {line}", path.display());
            }
        }
        assert!(seen > 50, "only {seen} server functions found in {}", dir.display());
    }
}
