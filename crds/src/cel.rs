//! The CRDs' CEL rules (`x-kubernetes-validations`): what the API server itself refuses, with a
//! message that names the fix. Only rules that need no lookup live here (immutable fields,
//! bounds, one field against another); what needs other objects stays in the webhook
//! (`usher_crds::rules`).

use schemars::Schema;
use serde_json::{Value, json};

/// One CEL rule with the message the API server shows when it is false. `field_path` (relative
/// to the schema node the rule sits on, such as `.gracePeriod`) makes the error name that field.
pub struct Rule {
    pub rule: String,
    pub message: &'static str,
    pub field_path: Option<&'static str>,
    pub reason: Option<&'static str>,
}

impl Rule {
    /// A rule on the node it is attached to.
    pub fn new(rule: impl Into<String>, message: &'static str) -> Self {
        Self {
            rule: rule.into(),
            message,
            field_path: None,
            reason: None,
        }
    }

    /// The error names `path` (relative, `.field`) instead of the node.
    pub fn at(mut self, path: &'static str) -> Self {
        self.field_path = Some(path);
        self
    }

    /// A transition rule (one reading `oldSelf`): the API server answers `FieldValueForbidden`.
    pub fn forbidden(mut self) -> Self {
        self.reason = Some("FieldValueForbidden");
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"rule": self.rule, "message": self.message});
        if let Some(path) = self.field_path {
            v["fieldPath"] = json!(path);
        }
        if let Some(reason) = self.reason {
            v["reason"] = json!(reason);
        }
        v
    }
}

/// Appends `rules` to the `x-kubernetes-validations` of `schema`.
pub fn add(schema: &mut Schema, rules: impl IntoIterator<Item = Rule>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let list = object
        .entry("x-kubernetes-validations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        list.extend(rules.into_iter().map(|r| r.to_json()));
    }
}

/// Appends `rules` to the property `name` of an object schema.
pub fn add_to_property(schema: &mut Schema, name: &str, rules: impl IntoIterator<Item = Rule>) {
    let property = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut(name))
        .and_then(|p| <&mut Schema>::try_from(p).ok());
    if let Some(property) = property {
        add(property, rules);
    }
}

/// A CEL expression for the milliseconds in `s`, a string of [`crate::duration`]'s syntax
/// (`1h30m`, `7d`, `1500ms`; each part 1 to 9 digits and a unit, parts in any order). CEL's own
/// `duration()` knows no `d`, so each unit is summed from the matches of its parts. Minutes are
/// `[0-9]+m` matches less those that are milliseconds (`[0-9]+ms` matches the same digits).
pub fn duration_millis(s: &str) -> String {
    let sum = |re: &str, unit_len: usize| {
        format!("{s}.findAll('{re}').map(p, int(p.substring(0, p.size() - {unit_len}))).sum()")
    };
    format!(
        "({d} * 86400000 + {h} * 3600000 + ({m} - {ms_as_m}) * 60000 + {sec} * 1000 + {ms})",
        d = sum("[0-9]+d", 1),
        h = sum("[0-9]+h", 1),
        m = sum("[0-9]+m", 1),
        ms_as_m = sum("[0-9]+ms", 2),
        sec = sum("[0-9]+s", 1),
        ms = sum("[0-9]+ms", 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_carries_its_message_path_and_reason() {
        let mut schema =
            schemars::json_schema!({"type": "object", "properties": {"a": {"type": "string"}}});
        add_to_property(
            &mut schema,
            "a",
            [Rule::new("self == oldSelf", "a cannot change").forbidden()],
        );
        add(&mut schema, [Rule::new("true", "never").at(".a")]);
        assert_eq!(
            schema.get("properties").unwrap()["a"]["x-kubernetes-validations"],
            json!([{"rule": "self == oldSelf", "message": "a cannot change", "reason": "FieldValueForbidden"}])
        );
        assert_eq!(
            schema.get("x-kubernetes-validations").unwrap(),
            &json!([{"rule": "true", "message": "never", "fieldPath": ".a"}])
        );
    }

    #[test]
    fn the_millis_expression_reads_every_unit() {
        let e = duration_millis("self");
        for part in ["[0-9]+d", "[0-9]+h", "[0-9]+m'", "[0-9]+s'", "[0-9]+ms"] {
            assert!(e.contains(part), "{part} in {e}");
        }
        // The API server evaluates it (crds/tests/schema/api_server.rs); here, only its shape.
        assert_eq!(e.matches(".sum()").count(), 6);
    }
}
