//! Query filters and options, as every `*.query` method applies them (REFERENCE §4.1).
//!
//! Owns: [`run`] — filter a list of entries, order, page, select, and answer `count` /
//! `get` — and [`get_path`], the dotted-path lookup (`credentials.id`, `arguments.0`,
//! `a\.b` for a literal dot) shared with the handlers.
//! Does not: validate the shape of `filters`/`options` (the params schema did) or know
//! any entry type.
//! Invariants: pure and total; a bad operator or filter is a [`QueryError`], never a panic.
//! Ops: `=`, `!=`, `>`, `>=`, `<`, `<=`, `~` (anchored regex), `in`, `nin`, `rin`, `rnin`,
//! `^`, `!^`, `$`, `!$`, a `C` prefix for case-insensitive string ops, `["OR", [...]]`.
//! Limitations: `relationships`, `extend`, `extend_context`, `prefix` and
//! `force_sql_filters` are accepted and ignored (they change nothing visible here).

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A query that the middleware would refuse (it answers these as `EINVAL` call errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A filter is not `[field, op, value]` / `["OR", [...]]`.
    #[error("Invalid filter {0}")]
    InvalidFilter(String),
    /// Unknown operator.
    #[error("Invalid operation: {0}")]
    InvalidOperation(String),
    /// `~` with a pattern that does not compile.
    #[error("Invalid regular expression: {0}")]
    InvalidRegex(String),
    /// `get: true` and nothing matched (Python's `MatchNotFound()`).
    #[error("MatchNotFound()")]
    MatchNotFound,
}

impl QueryError {
    /// Who has to act: a malformed query is the caller's bug; no match is the box's answer.
    pub fn fault(&self) -> truenas_agent::fault::Fault {
        match self {
            QueryError::InvalidFilter(_)
            | QueryError::InvalidOperation(_)
            | QueryError::InvalidRegex(_) => truenas_agent::fault::Fault::Bug,
            QueryError::MatchNotFound => truenas_agent::fault::Fault::Nas,
        }
    }
}

/// Applies `filters` and `options` to `entries` and returns the query result: a list,
/// the first entry (`get`), or a number (`count`).
pub fn run(entries: Vec<Value>, filters: &Value, options: &Value) -> Result<Value, QueryError> {
    let empty = Vec::new();
    let filters = filters.as_array().unwrap_or(&empty);
    let mut kept = Vec::new();
    for entry in entries {
        if matches_all(&entry, filters)? {
            kept.push(entry);
        }
    }
    let opts = options.as_object().cloned().unwrap_or_default();
    if opts.get("count").and_then(Value::as_bool) == Some(true) {
        return Ok(Value::from(kept.len()));
    }
    order(&mut kept, &opts);
    let offset = opts.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let limit = opts.get("limit").and_then(Value::as_u64).unwrap_or(0);
    let mut page: Vec<Value> = kept
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .collect();
    if limit > 0 {
        page.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    if let Some(select) = opts
        .get("select")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        page = page.iter().map(|e| select_fields(e, select)).collect();
    }
    if opts.get("get").and_then(Value::as_bool) == Some(true) {
        return page.into_iter().next().ok_or(QueryError::MatchNotFound);
    }
    Ok(Value::Array(page))
}

/// Looks a dotted path up (`a.b.0.c`; `\.` is a literal dot; numbers index lists).
pub fn get_path<'a>(entry: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = entry;
    for part in split_path(path) {
        cur = match cur {
            Value::Object(map) => map.get(&part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn split_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push('.');
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    parts
}

fn matches_all(entry: &Value, filters: &[Value]) -> Result<bool, QueryError> {
    for f in filters {
        if !matches(entry, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn matches(entry: &Value, filter: &Value) -> Result<bool, QueryError> {
    let Some(parts) = filter.as_array() else {
        return Err(QueryError::InvalidFilter(filter.to_string()));
    };
    match parts.as_slice() {
        [Value::String(or), Value::Array(alternatives)] if or == "OR" => {
            for alt in alternatives {
                // An OR member is one filter or a list of filters (an AND group).
                let hit = match alt.as_array().and_then(|a| a.first()) {
                    Some(Value::Array(_)) => {
                        matches_all(entry, alt.as_array().map_or(&[][..], Vec::as_slice))?
                    }
                    _ => matches(entry, alt)?,
                };
                if hit {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        [Value::String(field), Value::String(op), value] => {
            let left = get_path(entry, field).unwrap_or(&Value::Null);
            compare(left, op, value)
        }
        _ => Err(QueryError::InvalidFilter(filter.to_string())),
    }
}

fn compare(left: &Value, op: &str, right: &Value) -> Result<bool, QueryError> {
    let (case_insensitive, base) = match op.strip_prefix('C') {
        Some(rest) if !rest.is_empty() && rest != "~" => (true, rest),
        _ => (false, op),
    };
    let fold = |v: &Value| -> Value {
        match v {
            Value::String(s) if case_insensitive => Value::String(s.to_lowercase()),
            Value::Array(items) if case_insensitive => Value::Array(
                items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Value::String(s.to_lowercase()),
                        other => other.clone(),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    let (l, r) = (fold(left), fold(right));
    let result = match base {
        "=" => l == r,
        "!=" => l != r,
        ">" => order_of(&l, &r) == Some(Ordering::Greater),
        ">=" => matches!(order_of(&l, &r), Some(Ordering::Greater | Ordering::Equal)),
        "<" => order_of(&l, &r) == Some(Ordering::Less),
        "<=" => matches!(order_of(&l, &r), Some(Ordering::Less | Ordering::Equal)),
        "~" => regex_match(&l, &r)?,
        "in" => contains(&r, &l),
        "nin" => !contains(&r, &l),
        "rin" => contains(&l, &r),
        "rnin" => !contains(&l, &r),
        "^" => str_pair(&l, &r).is_some_and(|(a, b)| a.starts_with(b)),
        "!^" => !str_pair(&l, &r).is_some_and(|(a, b)| a.starts_with(b)),
        "$" => str_pair(&l, &r).is_some_and(|(a, b)| a.ends_with(b)),
        "!$" => !str_pair(&l, &r).is_some_and(|(a, b)| a.ends_with(b)),
        other => return Err(QueryError::InvalidOperation(other.to_owned())),
    };
    Ok(result)
}

fn str_pair<'a>(l: &'a Value, r: &'a Value) -> Option<(&'a str, &'a str)> {
    Some((l.as_str()?, r.as_str()?))
}

fn regex_match(l: &Value, r: &Value) -> Result<bool, QueryError> {
    let (Some(text), Some(pattern)) = (l.as_str(), r.as_str()) else {
        return Ok(false);
    };
    // Python's re.match anchors at the start only.
    let re = regex::Regex::new(&format!("^(?:{pattern})"))
        .map_err(|e| QueryError::InvalidRegex(e.to_string()))?;
    Ok(re.is_match(text))
}

/// `needle in haystack` with Python semantics for lists and strings.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::Array(items) => items.contains(needle),
        Value::String(s) => needle.as_str().is_some_and(|n| s.contains(n)),
        Value::Object(map) => needle.as_str().is_some_and(|n| map.contains_key(n)),
        _ => false,
    }
}

fn order_of(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn order(entries: &mut [Value], opts: &Map<String, Value>) {
    let Some(keys) = opts.get("order_by").and_then(Value::as_array) else {
        return;
    };
    // Apply the sort keys from last to first with a stable sort: same result as a
    // lexicographic multi-key sort.
    for key in keys.iter().rev().filter_map(Value::as_str) {
        let (nulls_first, key) = match key.strip_prefix("nulls_first:") {
            Some(rest) => (Some(true), rest),
            None => (
                key.strip_prefix("nulls_last:").map(|_| false),
                key.trim_start_matches("nulls_last:"),
            ),
        };
        let (desc, field) = match key.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, key),
        };
        entries.sort_by(|a, b| {
            let (x, y) = (get_path(a, field), get_path(b, field));
            let null = |v: Option<&Value>| v.is_none_or(Value::is_null);
            match (null(x), null(y)) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if nulls_first.unwrap_or(!desc) {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if nulls_first.unwrap_or(!desc) {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let o = x
                        .zip(y)
                        .and_then(|(x, y)| order_of(x, y))
                        .unwrap_or(Ordering::Equal);
                    if desc { o.reverse() } else { o }
                }
            }
        });
    }
}

fn select_fields(entry: &Value, select: &[Value]) -> Value {
    let mut out = Map::new();
    for item in select {
        // A select item is a dotted path, or `[path, new_name]`.
        let (path, rename) = match item {
            Value::String(p) => (p.as_str(), None),
            Value::Array(pair) => match (
                pair.first().and_then(Value::as_str),
                pair.get(1).and_then(Value::as_str),
            ) {
                (Some(p), Some(n)) => (p, Some(n)),
                _ => continue,
            },
            _ => continue,
        };
        let Some(value) = get_path(entry, path) else {
            continue;
        };
        match rename {
            Some(name) => {
                out.insert(name.to_owned(), value.clone());
            }
            None => insert_path(&mut out, &split_path(path), value.clone()),
        }
    }
    Value::Object(out)
}

fn insert_path(out: &mut Map<String, Value>, parts: &[String], value: Value) {
    match parts {
        [] => {}
        [last] => {
            out.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let child = out
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert_path(child, rest, value);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines, clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Vec<Value> {
        vec![
            json!({"id": 1, "name": "pool0 backup", "credentials": {"id": 7}, "tags": ["a", "b"], "job": null}),
            json!({"id": 2, "name": "Pool1 Backup", "credentials": {"id": 8}, "tags": ["b"], "job": {"state": "FAILED"}}),
            json!({"id": 3, "name": "other", "credentials": {"id": 7}, "tags": [], "job": {"state": "SUCCESS"}}),
        ]
    }

    fn ids(v: &Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn each_operator() {
        let cases: Vec<(Value, Vec<i64>)> = vec![
            (json!([["id", "=", 2]]), vec![2]),
            (json!([["id", "!=", 2]]), vec![1, 3]),
            (json!([["id", ">", 1]]), vec![2, 3]),
            (json!([["id", "<=", 2]]), vec![1, 2]),
            (json!([["credentials.id", "=", 7]]), vec![1, 3]),
            (json!([["id", "in", [1, 3]]]), vec![1, 3]),
            (json!([["id", "nin", [1, 3]]]), vec![2]),
            (json!([["tags", "rin", "b"]]), vec![1, 2]),
            (json!([["tags", "rnin", "a"]]), vec![2, 3]),
            (json!([["name", "rin", "ack"]]), vec![1, 2]),
            (json!([["name", "^", "pool"]]), vec![1]),
            (json!([["name", "C^", "pool"]]), vec![1, 2]),
            (json!([["name", "!^", "pool"]]), vec![2, 3]),
            (json!([["name", "$", "backup"]]), vec![1]),
            (json!([["name", "C$", "BACKUP"]]), vec![1, 2]),
            (json!([["name", "!$", "backup"]]), vec![2, 3]),
            (json!([["name", "~", "[pP]ool[01]"]]), vec![1, 2]),
            (json!([["name", "~", "ool"]]), vec![]),
            (json!([["job.state", "=", "FAILED"]]), vec![2]),
            (json!([["job", "=", null]]), vec![1]),
            (json!([["tags.0", "=", "b"]]), vec![2]),
            (
                json!([["OR", [["id", "=", 1], ["id", "=", 3]]]]),
                vec![1, 3],
            ),
            (
                json!([[
                    "OR",
                    [[["id", "=", 1]], [["id", ">", 2], ["name", "=", "other"]]]
                ]]),
                vec![1, 3],
            ),
            (json!([["credentials.id", "=", 7], ["id", ">", 1]]), vec![3]),
        ];
        for (filters, want) in cases {
            let got = run(data(), &filters, &json!({})).unwrap();
            assert_eq!(ids(&got), want, "filters {filters}");
        }
    }

    #[test]
    fn options() {
        let desc = run(data(), &json!([]), &json!({"order_by": ["-id"]})).unwrap();
        assert_eq!(ids(&desc), vec![3, 2, 1]);
        let by_name = run(data(), &json!([]), &json!({"order_by": ["name"]})).unwrap();
        assert_eq!(ids(&by_name), vec![2, 3, 1]);
        let paged = run(data(), &json!([]), &json!({"offset": 1, "limit": 1})).unwrap();
        assert_eq!(ids(&paged), vec![2]);
        assert_eq!(
            run(data(), &json!([["id", ">", 1]]), &json!({"count": true})).unwrap(),
            json!(2)
        );
        assert_eq!(
            run(data(), &json!([["id", "=", 3]]), &json!({"get": true})).unwrap()["name"],
            "other"
        );
        assert_eq!(
            run(data(), &json!([["id", "=", 9]]), &json!({"get": true})),
            Err(QueryError::MatchNotFound)
        );
        let sel = run(
            data(),
            &json!([["id", "=", 2]]),
            &json!({"select": ["id", "credentials.id", ["name", "n"]]}),
        )
        .unwrap();
        assert_eq!(
            sel,
            json!([{"id": 2, "credentials": {"id": 8}, "n": "Pool1 Backup"}])
        );
        let nulls = run(
            data(),
            &json!([]),
            &json!({"order_by": ["nulls_last:job.state"]}),
        )
        .unwrap();
        assert_eq!(ids(&nulls), vec![2, 3, 1]);
    }

    #[test]
    fn bad_filters_are_errors() {
        assert!(matches!(
            run(data(), &json!([["id", "==", 1]]), &json!({})),
            Err(QueryError::InvalidOperation(_))
        ));
        assert!(matches!(
            run(data(), &json!([["id"]]), &json!({})),
            Err(QueryError::InvalidFilter(_))
        ));
        assert!(matches!(
            run(data(), &json!([1]), &json!({})),
            Err(QueryError::InvalidFilter(_))
        ));
        assert!(matches!(
            run(data(), &json!([["name", "~", "("]]), &json!({})),
            Err(QueryError::InvalidRegex(_))
        ));
    }

    #[test]
    fn escaped_dots() {
        let e = json!({"user_properties": {"com.dtctoday:device-guid": {"value": "x"}}});
        assert_eq!(
            get_path(&e, "user_properties.com\\.dtctoday:device-guid.value"),
            Some(&json!("x"))
        );
    }
}
