//! A small type language for middleware method params and its checker.
//!
//! Owns: [`Ty`] (strings, integers, booleans, lists, objects, unions, enums), the
//! constructors the per-method tables in `validate.rs` are written with, and [`check`],
//! which walks a JSON value against a [`Ty`] and reports every problem with the
//! attribute path and message the real middleware would use ([`Style::Pydantic`] for
//! the 25.04+ models, [`Style::Legacy`] for `middlewared.schema`).
//! Does not: know any method, cross-field rule or state (see `validate.rs`).
//! Invariants: checking is total (never panics on any JSON input); types are strict on
//! both styles (no `"3"` for an int, no `1` for a bool — see Limitations); paths are
//! dotted, list indexes are numbers, tagged unions insert the tag (pydantic does).
//! Limitations: the legacy schema coerces numeric strings to ints and ints to strings;
//! the simulator does not (it is stricter than a 24.10/25.04 box on purpose: the agent
//! must send exact JSON types, REFERENCE §6 step 4). Messages for untagged unions are the
//! first member's, where pydantic lists one per member.

use serde_json::{Map, Value};

/// Which validator family a method uses on the real box (decides message texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Pydantic models (`MW/api/v25_*`): "Field required", "Extra inputs are not permitted"…
    Pydantic,
    /// Legacy `middlewared.schema`: "attribute required", "Field was not expected"…
    Legacy,
}

/// One validation problem: `[attribute path, message, errno]` as the middleware sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
    pub errno: i64,
}

impl Issue {
    /// An `EINVAL` issue.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            errno: EINVAL,
        }
    }
}

/// errno 22.
pub const EINVAL: i64 = 22;

/// A custom value check: `Err(text)` becomes `Value error, text` (pydantic) or `text` (legacy).
pub type Check = fn(&Value) -> Result<(), String>;

/// A parameter type.
#[derive(Debug, Clone)]
pub enum Ty {
    /// Anything (JSON Schema `{}`).
    Any,
    Str(StrTy),
    Int(IntTy),
    Bool,
    /// One of these exact JSON values (pydantic `Literal`, legacy `enum=`).
    Enum(Vec<Value>),
    List(Box<Ty>),
    Obj(ObjTy),
    /// `T | None`.
    Nullable(Box<Ty>),
    /// Untagged union: valid when any member is.
    AnyOf(Vec<Ty>),
    /// Objects discriminated by the string field `tag`.
    Tagged {
        tag: &'static str,
        variants: Vec<(&'static str, ObjTy)>,
    },
    /// A type plus a custom check run only when the type itself is fine.
    Checked(Box<Ty>, Check),
}

/// String constraints.
#[derive(Debug, Clone, Default)]
pub struct StrTy {
    pub min_len: usize,
    /// `None` = the default cap (1024, REFERENCE §5.1); `Some(0)` = unlimited ("long string").
    pub max_len: Option<usize>,
    /// A pattern check and the pattern text shown in the message.
    pub pattern: Option<Pattern>,
}

/// A pattern check and the pattern text shown in messages.
pub type Pattern = (&'static str, fn(&str) -> bool);

/// Integer constraints.
#[derive(Debug, Clone, Default)]
pub struct IntTy {
    pub ge: Option<i64>,
    pub gt: Option<i64>,
    pub le: Option<i64>,
}

/// One object field.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

/// An object: its fields, whether other keys are allowed, and an optional check of the
/// whole object (pydantic `model_validator`, legacy `Cron.validate`).
#[derive(Debug, Clone, Default)]
pub struct ObjTy {
    pub fields: Vec<Field>,
    pub extra: bool,
    pub check: Option<Check>,
}

// ---- constructors ---------------------------------------------------------------

/// A plain string (capped at 1024 characters).
pub fn s() -> Ty {
    Ty::Str(StrTy::default())
}

/// A non-empty string.
pub fn s1() -> Ty {
    Ty::Str(StrTy {
        min_len: 1,
        ..StrTy::default()
    })
}

/// A "long string" (scripts, `args`, SNMP `options`): no 1024 cap.
pub fn long_s() -> Ty {
    Ty::Str(StrTy {
        max_len: Some(0),
        ..StrTy::default()
    })
}

/// A string with a maximum length.
pub fn s_max(max: usize) -> Ty {
    Ty::Str(StrTy {
        max_len: Some(max),
        ..StrTy::default()
    })
}

/// A string that must satisfy `ok`; `shown` is the pattern text used in messages.
pub fn s_pattern(shown: &'static str, ok: fn(&str) -> bool) -> Ty {
    Ty::Str(StrTy {
        pattern: Some((shown, ok)),
        ..StrTy::default()
    })
}

/// Any integer.
pub fn int() -> Ty {
    Ty::Int(IntTy::default())
}

/// An integer `>= min`.
pub fn int_ge(min: i64) -> Ty {
    Ty::Int(IntTy {
        ge: Some(min),
        ..IntTy::default()
    })
}

/// An integer `> min`.
pub fn int_gt(min: i64) -> Ty {
    Ty::Int(IntTy {
        gt: Some(min),
        ..IntTy::default()
    })
}

/// An integer in `min..=max`.
pub fn int_range(min: i64, max: i64) -> Ty {
    Ty::Int(IntTy {
        ge: Some(min),
        le: Some(max),
        ..IntTy::default()
    })
}

/// A boolean.
pub fn b() -> Ty {
    Ty::Bool
}

/// One of these strings.
pub fn one_of(items: &[&str]) -> Ty {
    Ty::Enum(items.iter().map(|s| Value::from(*s)).collect())
}

/// A list of `item`.
pub fn list(item: Ty) -> Ty {
    Ty::List(Box::new(item))
}

/// `ty | None`.
pub fn nullable(ty: Ty) -> Ty {
    Ty::Nullable(Box::new(ty))
}

/// `ty` plus a custom check.
pub fn checked(ty: Ty, check: Check) -> Ty {
    Ty::Checked(Box::new(ty), check)
}

/// A required field.
pub fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

/// An optional field.
pub fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

/// An object that refuses unknown keys.
pub fn obj(fields: Vec<Field>) -> ObjTy {
    ObjTy {
        fields,
        extra: false,
        check: None,
    }
}

impl ObjTy {
    /// The same object with every top-level field optional (update payloads).
    #[must_use]
    pub fn partial(mut self) -> Self {
        for f in &mut self.fields {
            f.required = false;
        }
        self
    }

    /// Allows keys that are not listed.
    #[must_use]
    pub fn allow_extra(mut self) -> Self {
        self.extra = true;
        self
    }

    /// Adds a whole-object check.
    #[must_use]
    pub fn with_check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// As a [`Ty`].
    pub fn ty(self) -> Ty {
        Ty::Obj(self)
    }

    /// The field called `name`, if listed.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

// ---- checking -------------------------------------------------------------------

/// Checks `value` against `ty`, appending every problem under `path`.
pub fn check(ty: &Ty, value: &Value, path: &str, style: Style, out: &mut Vec<Issue>) {
    match ty {
        Ty::Any => {}
        Ty::Str(st) => check_str(st, value, path, style, out),
        Ty::Int(it) => check_int(it, value, path, style, out),
        Ty::Bool => {
            if !value.is_boolean() {
                out.push(type_issue(path, style, value, "boolean"));
            }
        }
        Ty::Enum(items) => {
            if !items.contains(value) {
                out.push(Issue::new(path, enum_message(items, value, style)));
            }
        }
        Ty::List(item) => check_list(item, value, path, style, out),
        Ty::Obj(o) => check_obj(o, value, path, style, out),
        Ty::Nullable(inner) => {
            if !value.is_null() {
                check(inner, value, path, style, out);
            }
        }
        Ty::AnyOf(members) => check_any_of(members, value, path, style, out),
        Ty::Tagged { tag, variants } => check_tagged(tag, variants, value, path, style, out),
        Ty::Checked(inner, custom) => {
            let before = out.len();
            check(inner, value, path, style, out);
            if out.len() == before {
                if let Err(text) = custom(value) {
                    out.push(Issue::new(path, value_error(style, &text)));
                }
            }
        }
    }
}

/// Formats a custom validator's text the way each style reports it.
pub fn value_error(style: Style, text: &str) -> String {
    match style {
        Style::Pydantic => format!("Value error, {text}"),
        Style::Legacy => text.to_owned(),
    }
}

/// Joins a parent path and a child component.
pub fn join(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_owned()
    } else {
        format!("{path}.{child}")
    }
}

fn type_issue(path: &str, style: Style, value: &Value, kind: &str) -> Issue {
    let message = match (style, kind, value.is_null()) {
        (Style::Legacy, _, true) => "null not allowed".to_owned(),
        (Style::Legacy, "string", false) => "Not a string".to_owned(),
        (Style::Legacy, "integer", false) => "Not an integer".to_owned(),
        (Style::Legacy, "boolean", false) => "Not a boolean".to_owned(),
        (Style::Legacy, "list", false) => "Not a list".to_owned(),
        (Style::Legacy, _, false) => "A dict was expected".to_owned(),
        (Style::Pydantic, "dictionary", _) => "Input should be a valid dictionary".to_owned(),
        (Style::Pydantic, kind, _) => format!("Input should be a valid {kind}"),
    };
    Issue::new(path, message)
}

fn check_str(st: &StrTy, value: &Value, path: &str, style: Style, out: &mut Vec<Issue>) {
    let Some(text) = value.as_str() else {
        out.push(type_issue(path, style, value, "string"));
        return;
    };
    let chars = text.chars().count();
    let max = match st.max_len {
        None => Some(1024),
        Some(0) => None,
        Some(n) => Some(n),
    };
    if chars < st.min_len {
        let message = match style {
            Style::Pydantic => format!(
                "String should have at least {} character{}",
                st.min_len,
                if st.min_len == 1 { "" } else { "s" }
            ),
            // middleware: schema/string_schema.py `empty=False`
            Style::Legacy => "Empty value not allowed".to_owned(),
        };
        out.push(Issue::new(path, message));
    } else if let Some(max) = max.filter(|m| chars > *m) {
        let message = match style {
            Style::Pydantic => format!("String should have at most {max} characters"),
            Style::Legacy => format!("The value may not be longer than {max} characters"),
        };
        out.push(Issue::new(path, message));
    } else if let Some((shown, ok)) = st.pattern {
        if !ok(text) {
            let message = match style {
                Style::Pydantic => format!("String should match pattern '{shown}'"),
                // middleware: validators.py `Match`
                Style::Legacy => format!("Value does not match '{shown}' pattern"),
            };
            out.push(Issue::new(path, message));
        }
    }
}

fn check_int(it: &IntTy, value: &Value, path: &str, style: Style, out: &mut Vec<Issue>) {
    // A JSON float such as 1.0 is not an int for a strict pydantic model either.
    let Some(n) = value.as_i64() else {
        out.push(type_issue(path, style, value, "integer"));
        return;
    };
    let bound = |op: &str, limit: i64| match style {
        Style::Pydantic => format!("Input should be {op} {limit}"),
        // middleware: validators.py `Range` ("Should be greater than or equal to 5")
        Style::Legacy => format!("Should be {op} {limit}"),
    };
    if let Some(ge) = it.ge.filter(|ge| n < *ge) {
        out.push(Issue::new(path, bound("greater than or equal to", ge)));
    } else if let Some(gt) = it.gt.filter(|gt| n <= *gt) {
        let message = match style {
            Style::Pydantic => bound("greater than", gt),
            Style::Legacy => bound("greater than or equal to", gt + 1),
        };
        out.push(Issue::new(path, message));
    } else if let Some(le) = it.le.filter(|le| n > *le) {
        out.push(Issue::new(path, bound("less than or equal to", le)));
    }
}

fn check_list(item: &Ty, value: &Value, path: &str, style: Style, out: &mut Vec<Issue>) {
    let Some(items) = value.as_array() else {
        out.push(type_issue(path, style, value, "list"));
        return;
    };
    for (i, v) in items.iter().enumerate() {
        check(item, v, &join(path, &i.to_string()), style, out);
    }
}

fn check_obj(o: &ObjTy, value: &Value, path: &str, style: Style, out: &mut Vec<Issue>) {
    let Some(map) = value.as_object() else {
        out.push(type_issue(path, style, value, "dictionary"));
        return;
    };
    let before = out.len();
    check_fields(o, map, path, style, out);
    if out.len() == before {
        if let Some(custom) = o.check {
            if let Err(text) = custom(value) {
                out.push(Issue::new(path, value_error(style, &text)));
            }
        }
    }
}

fn check_fields(
    o: &ObjTy,
    map: &Map<String, Value>,
    path: &str,
    style: Style,
    out: &mut Vec<Issue>,
) {
    for field in &o.fields {
        match map.get(field.name) {
            Some(v) => check(&field.ty, v, &join(path, field.name), style, out),
            None if field.required => out.push(Issue::new(
                join(path, field.name),
                match style {
                    Style::Pydantic => "Field required",
                    Style::Legacy => "attribute required",
                },
            )),
            None => {}
        }
    }
    if !o.extra {
        for key in map.keys().filter(|k| o.field(k).is_none()) {
            out.push(Issue::new(
                join(path, key),
                match style {
                    Style::Pydantic => "Extra inputs are not permitted",
                    Style::Legacy => "Field was not expected",
                },
            ));
        }
    }
}

fn check_any_of(members: &[Ty], value: &Value, path: &str, style: Style, out: &mut Vec<Issue>) {
    let mut first: Option<Vec<Issue>> = None;
    for member in members {
        let mut issues = Vec::new();
        check(member, value, path, style, &mut issues);
        if issues.is_empty() {
            return;
        }
        first.get_or_insert(issues);
    }
    out.extend(first.unwrap_or_default());
}

fn check_tagged(
    tag: &str,
    variants: &[(&'static str, ObjTy)],
    value: &Value,
    path: &str,
    style: Style,
    out: &mut Vec<Issue>,
) {
    let Some(map) = value.as_object() else {
        out.push(type_issue(path, style, value, "dictionary"));
        return;
    };
    let Some(given) = map.get(tag) else {
        // middleware: api/base/handler/accept.py turns `union_tag_not_found` into
        // `<path>.<discriminator>: Field required`.
        out.push(Issue::new(join(path, tag), "Field required"));
        return;
    };
    let found = given
        .as_str()
        .and_then(|g| variants.iter().find(|(name, _)| *name == g));
    if let Some((name, o)) = found {
        check_obj(o, value, &join(path, name), style, out);
        return;
    }
    let expected = variants
        .iter()
        .map(|(n, _)| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    out.push(Issue::new(
        path,
        format!(
            "Input tag '{}' found using '{tag}' does not match any of the expected tags: {expected}",
            given.as_str().map_or_else(|| given.to_string(), str::to_owned)
        ),
    ));
}

fn enum_message(items: &[Value], value: &Value, style: Style) -> String {
    match style {
        Style::Pydantic => {
            let shown: Vec<String> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => format!("'{s}'"),
                    Value::Null => "None".to_owned(),
                    other => other.to_string(),
                })
                .collect();
            let list = match shown.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                Some((last, _)) => last.clone(),
                None => String::new(),
            };
            format!("Input should be {list}")
        }
        // middleware: schema/enum.py
        Style::Legacy => format!(
            "Invalid choice: {}",
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned)
        ),
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines, clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(ty: &Ty, v: Value, style: Style) -> Vec<(String, String)> {
        let mut out = Vec::new();
        check(ty, &v, "p", style, &mut out);
        out.into_iter().map(|i| (i.path, i.message)).collect()
    }

    #[test]
    fn object_rules_in_both_styles() {
        let ty = obj(vec![req("a", int()), opt("b", b())]).ty();
        assert_eq!(
            run(&ty, json!({"x": 1}), Style::Pydantic),
            vec![
                ("p.a".into(), "Field required".into()),
                ("p.x".into(), "Extra inputs are not permitted".into())
            ]
        );
        assert_eq!(
            run(&ty, json!({"x": 1}), Style::Legacy),
            vec![
                ("p.a".into(), "attribute required".into()),
                ("p.x".into(), "Field was not expected".into())
            ]
        );
        assert_eq!(
            run(&ty, json!({"a": "3", "b": 1}), Style::Pydantic),
            vec![
                ("p.a".into(), "Input should be a valid integer".into()),
                ("p.b".into(), "Input should be a valid boolean".into())
            ]
        );
        assert_eq!(
            run(&ty, json!([]), Style::Legacy),
            vec![("p".into(), "A dict was expected".into())]
        );
    }

    #[test]
    fn scalars_and_bounds() {
        assert_eq!(
            run(&int_gt(0), json!(0), Style::Pydantic),
            vec![("p".into(), "Input should be greater than 0".into())]
        );
        assert_eq!(
            run(&int_ge(5), json!(4), Style::Legacy),
            vec![("p".into(), "Should be greater than or equal to 5".into())]
        );
        assert_eq!(
            run(&s1(), json!(""), Style::Pydantic),
            vec![("p".into(), "String should have at least 1 character".into())]
        );
        assert_eq!(
            run(&s_max(20), json!("x".repeat(21)), Style::Pydantic),
            vec![(
                "p".into(),
                "String should have at most 20 characters".into()
            )]
        );
        assert_eq!(run(&s(), json!("x".repeat(1024)), Style::Pydantic), vec![]);
        assert_eq!(run(&s(), json!("x".repeat(1025)), Style::Pydantic).len(), 1);
        assert_eq!(
            run(&long_s(), json!("x".repeat(5000)), Style::Pydantic),
            vec![]
        );
        assert_eq!(
            run(&one_of(&["PUSH", "PULL"]), json!("X"), Style::Pydantic),
            vec![("p".into(), "Input should be 'PUSH' or 'PULL'".into())]
        );
        assert_eq!(
            run(&one_of(&["PUSH", "PULL"]), json!("X"), Style::Legacy),
            vec![("p".into(), "Invalid choice: X".into())]
        );
        assert_eq!(
            run(&int(), json!(null), Style::Legacy),
            vec![("p".into(), "null not allowed".into())]
        );
        assert_eq!(run(&nullable(int()), json!(null), Style::Legacy), vec![]);
        assert_eq!(run(&int(), json!(1.5), Style::Pydantic).len(), 1);
    }

    #[test]
    fn lists_unions_and_tags() {
        let ty = list(obj(vec![req("t", s())]).ty());
        assert_eq!(
            run(&ty, json!([{"t": "a"}, {}]), Style::Pydantic),
            vec![("p.1.t".into(), "Field required".into())]
        );
        let tagged = Ty::Tagged {
            tag: "type",
            variants: vec![("B2", obj(vec![req("type", s()), req("key", s1())]))],
        };
        assert_eq!(
            run(&tagged, json!({"type": "B2"}), Style::Pydantic),
            vec![("p.B2.key".into(), "Field required".into())]
        );
        assert_eq!(
            run(&tagged, json!({}), Style::Pydantic),
            vec![("p.type".into(), "Field required".into())]
        );
        assert!(
            run(&tagged, json!({"type": "S4"}), Style::Pydantic)[0]
                .1
                .contains("'B2'")
        );
        let any = Ty::AnyOf(vec![int(), one_of(&["INHERIT"])]);
        assert_eq!(run(&any, json!("INHERIT"), Style::Pydantic), vec![]);
        assert_eq!(run(&any, json!("x"), Style::Pydantic).len(), 1);
    }

    #[test]
    fn custom_checks_run_after_the_type() {
        fn no_x(v: &Value) -> Result<(), String> {
            if v.as_str() == Some("x") {
                Err("x is bad".into())
            } else {
                Ok(())
            }
        }
        let ty = checked(s(), no_x);
        assert_eq!(
            run(&ty, json!("x"), Style::Pydantic),
            vec![("p".into(), "Value error, x is bad".into())]
        );
        assert_eq!(
            run(&ty, json!("x"), Style::Legacy),
            vec![("p".into(), "x is bad".into())]
        );
        assert_eq!(
            run(&ty, json!(3), Style::Legacy),
            vec![("p".into(), "Not a string".into())]
        );
    }
}
