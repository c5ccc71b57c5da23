//! Argument templates: a JSON object with placeholders, rendered per request without parsing.
//! `{{seq}}` becomes the request's number on its connection, `{{conn}}` the connection's
//! index, so a run can vary what it sends (`{"message":"m{{seq}}"}`, `{"n":{{seq}}}`).

/// A parsed template: literal text between placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Box<[u8]>),
    Seq,
    Conn,
}

impl Template {
    /// Parses `text`; it must be a JSON object once its placeholders are replaced by numbers.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                break;
            };
            let part = match after[..close].trim() {
                "seq" => Part::Seq,
                "conn" => Part::Conn,
                // Not ours (`{{` can occur in JSON, e.g. `{"a":{"b":1}}`): keep it as text.
                _ => {
                    parts.push(Part::Text(rest.as_bytes()[..open + 2].into()));
                    rest = after;
                    continue;
                }
            };
            if open > 0 {
                parts.push(Part::Text(rest.as_bytes()[..open].into()));
            }
            parts.push(part);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.as_bytes().into()));
        }
        let t = Template { parts };
        let mut probe = Vec::new();
        t.render(&mut probe, 0, 0);
        match serde_json::from_slice::<serde_json::Value>(&probe) {
            Ok(serde_json::Value::Object(_)) => Ok(t),
            Ok(_) => Err("the arguments must be a JSON object".into()),
            Err(e) => Err(format!("the arguments are not JSON: {e}")),
        }
    }

    /// Appends the template with `seq` and `conn` filled in.
    pub fn render(&self, out: &mut Vec<u8>, seq: u64, conn: usize) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Seq => ringmux_core::http::write_usize(out, seq as usize),
                Part::Conn => ringmux_core::http::write_usize(out, conn),
            }
        }
    }

    /// Whether the rendering depends on the request (it has placeholders).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, seq: u64, conn: usize) -> String {
        let mut out = Vec::new();
        Template::parse(t).unwrap().render(&mut out, seq, conn);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn placeholders_are_filled_in() {
        assert_eq!(
            render(r#"{"message":"m{{seq}}-{{ conn }}","n":{{seq}}}"#, 42, 3),
            r#"{"message":"m42-3","n":42}"#
        );
        assert_eq!(render(r#"{"a":{"b":{}}}"#, 1, 1), r#"{"a":{"b":{}}}"#);
        assert!(Template::parse(r#"{"a":1}"#).unwrap().is_constant());
        assert!(!Template::parse(r#"{"a":{{conn}}}"#).unwrap().is_constant());
    }

    #[test]
    fn unknown_braces_stay_text() {
        assert_eq!(
            render(r#"{"t":"{{name}} {{seq}}"}"#, 7, 0),
            r#"{"t":"{{name}} 7"}"#
        );
        assert_eq!(render(r#"{"t":"{{"}"#, 7, 0), r#"{"t":"{{"}"#);
    }

    #[test]
    fn only_objects_are_accepted() {
        assert!(Template::parse("[1]").is_err());
        assert!(Template::parse(r#"{"a":}"#).is_err());
        assert!(Template::parse(r#"{"a":{{what}}}"#).is_err());
    }
}
