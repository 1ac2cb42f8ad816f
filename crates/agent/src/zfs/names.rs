//! Validated names and values for the `zfs` wrapper.
//!
//! Owns: [`UserPropKey`], [`DatasetName`], [`PoolName`] and [`PropValue`], each built only
//! through a `parse` that applies the ZFS rules (and ours, where stricter).
//! Does not: talk to ZFS. Pure and total; every rejection names the rule it broke.
//! Invariants: a value of these types can be passed as one argv element to `zfs`/`zpool`
//! without being mistaken for an option (nothing starts with `-`) and without breaking the
//! tab/line framing of `zfs get -H` (no tab, newline or other control character).
//! Limitations: dataset names exclude snapshots/bookmarks (`@`, `#`) and the `%` that ZFS
//! reserves for temporary clones: the agent never targets those.

use serde::{Deserialize, Serialize};

/// ZFS's `MAXNAMELEN` is 256 including the terminating NUL
/// (`module/zcommon/zfs_namecheck.c`), so names have at most 255 bytes.
pub(crate) const MAX_NAME_LEN: usize = 255;

/// Our cap on the values we write. ZFS itself allows 8191 bytes
/// (`ZAP_MAXVALUELEN`; `zfs set` answers "property value too long" beyond it); the agent
/// only ever writes a UUID or a 64-hex host hash, so a much lower cap catches mistakes.
pub(crate) const MAX_VALUE_LEN: usize = 1024;

/// The default user property that carries the device GUID (SOP phase 2).
pub const DEFAULT_GUID_PROPERTY: &str = "com.dtctoday:device-guid";

/// Pool names TrueNAS uses for its boot pool (SCALE, and CORE/older releases). The
/// middleware's `BOOT_POOL_NAME_VALID` lists the same two.
pub(crate) const BOOT_POOL_NAMES: [&str; 2] = ["boot-pool", "freenas-boot"];

/// A name or value that broke a rule. `Display` quotes a sanitised excerpt of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{shown}` {rule}")]
pub struct NameError {
    /// What was being validated, e.g. "user property name".
    pub what: &'static str,
    /// A short, printable excerpt of the rejected input.
    pub shown: String,
    /// The rule, phrased to follow the quoted input ("must contain `:`").
    pub rule: String,
}

impl NameError {
    fn new(what: &'static str, input: &str, rule: impl Into<String>) -> Self {
        Self {
            what,
            shown: excerpt(input, 64),
            rule: rule.into(),
        }
    }
}

/// A printable, single-line excerpt of at most `max` characters: control characters are
/// escaped, a longer input is cut and marked with `…`. Used in every error that quotes
/// input or command output.
pub fn excerpt(input: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in input.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A ZFS user property name: `[a-z0-9:._-]+` containing a `:`, at most 255 bytes, not
/// starting with `-` (it would read as an option). Same rule as the middleware's
/// `RE_ZFS_USER_PROP` (`plugins/pool_/utils.py`) and `zfs_prop_user()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserPropKey(String);

impl UserPropKey {
    /// Validates a user property name.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        const WHAT: &str = "user property name";
        if input.is_empty() {
            return Err(NameError::new(WHAT, input, "must not be empty"));
        }
        if input.len() > MAX_NAME_LEN {
            return Err(NameError::new(
                WHAT,
                input,
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | ':' | '.' | '_' | '-'))
        {
            return Err(NameError::new(
                WHAT,
                input,
                format!(
                    "may contain only a-z, 0-9, `:`, `.`, `_` and `-` (found {})",
                    bad.escape_default()
                ),
            ));
        }
        if !input.contains(':') {
            return Err(NameError::new(
                WHAT,
                input,
                "must contain `:` (e.g. `com.example:name`)",
            ));
        }
        if input.starts_with('-') {
            return Err(NameError::new(WHAT, input, "must not start with `-`"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: everything before the first `:` (`com.dtctoday`).
    pub fn namespace(&self) -> &str {
        // invariant: parse() guarantees a ':'; split_once cannot fail, fall back to all.
        self.0.split_once(':').map_or(self.0.as_str(), |(ns, _)| ns)
    }
}

impl Default for UserPropKey {
    fn default() -> Self {
        Self(DEFAULT_GUID_PROPERTY.to_owned())
    }
}

impl std::fmt::Display for UserPropKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserPropKey {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserPropKey> for String {
    fn from(value: UserPropKey) -> Self {
        value.0
    }
}

/// ZFS's `valid_char()` (`module/zcommon/zfs_namecheck.c`): alphanumerics, `-_.:` and space.
fn zfs_valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | ' ')
}

/// A pool name by `pool_namecheck()`: ZFS characters only, starts with a letter, at most 255
/// bytes, not `mirror`/`raidz`/`draid`, not disk-like (`c0…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolName(String);

impl PoolName {
    /// Validates a pool name.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        const WHAT: &str = "pool name";
        let first = input.chars().next();
        if first.is_none() {
            return Err(NameError::new(WHAT, input, "must not be empty"));
        }
        if input.len() > MAX_NAME_LEN {
            return Err(NameError::new(
                WHAT,
                input,
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        if let Some(bad) = input.chars().find(|c| !zfs_valid_char(*c)) {
            return Err(NameError::new(
                WHAT,
                input,
                format!(
                    "may contain only letters, digits, space, `-`, `_`, `.` and `:` (found {})",
                    bad.escape_default()
                ),
            ));
        }
        if !first.is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(NameError::new(WHAT, input, "must start with a letter"));
        }
        if matches!(input, "mirror" | "raidz" | "draid") {
            return Err(NameError::new(WHAT, input, "is reserved by ZFS"));
        }
        let mut chars = input.chars();
        if chars.next() == Some('c') && chars.next().is_some_and(|c| c.is_ascii_digit()) {
            return Err(NameError::new(
                WHAT,
                input,
                "looks like a disk name (`c` followed by a digit), which ZFS refuses",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for TrueNAS's boot pool (`boot-pool`, `freenas-boot`): never a data pool.
    pub fn is_boot_pool(&self) -> bool {
        BOOT_POOL_NAMES.contains(&self.0.as_str())
    }

    /// The pool's root dataset (same name).
    pub fn root_dataset(&self) -> DatasetName {
        DatasetName(self.0.clone())
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PoolName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PoolName> for String {
    fn from(value: PoolName) -> Self {
        value.0
    }
}

/// A filesystem or volume name: `pool[/component]*` by `dataset_namecheck()`, without a
/// snapshot/bookmark part and without `%`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

impl DatasetName {
    /// Validates a dataset name.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        const WHAT: &str = "dataset name";
        if input.len() > MAX_NAME_LEN {
            return Err(NameError::new(
                WHAT,
                input,
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        if let Some(bad) = input.chars().find(|c| !zfs_valid_char(*c) && *c != '/') {
            return Err(NameError::new(
                WHAT,
                input,
                format!(
                    "may contain only letters, digits, space, `-`, `_`, `.`, `:` and `/` (found {}); snapshots and bookmarks are not datasets here",
                    bad.escape_default()
                ),
            ));
        }
        let mut components = input.split('/');
        let pool = components.next().unwrap_or_default();
        PoolName::parse(pool).map_err(|e| {
            NameError::new(WHAT, input, format!("has an invalid pool part: {}", e.rule))
        })?;
        for component in components {
            if component.is_empty() {
                return Err(NameError::new(
                    WHAT,
                    input,
                    "must not have an empty component (`//` or a trailing `/`)",
                ));
            }
            if component == "." || component == ".." {
                return Err(NameError::new(
                    WHAT,
                    input,
                    "must not have `.` or `..` components",
                ));
            }
            if let Some(bad) = component.chars().find(|c| !zfs_valid_char(*c)) {
                return Err(NameError::new(
                    WHAT,
                    input,
                    format!(
                        "may contain only letters, digits, space, `-`, `_`, `.`, `:` and `/` (found {})",
                        bad.escape_default()
                    ),
                ));
            }
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool the dataset lives in.
    pub fn pool(&self) -> PoolName {
        let pool = self.0.split('/').next().unwrap_or_default();
        PoolName(pool.to_owned())
    }

    /// True when this is a pool's root dataset (no `/`).
    pub fn is_pool_root(&self) -> bool {
        !self.0.contains('/')
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DatasetName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

/// A value the agent writes into a user property: 1..=1024 bytes, no control characters
/// (a tab or newline would break the framing of `zfs get -H`), not starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropValue(String);

impl PropValue {
    /// Validates a value to write.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        const WHAT: &str = "property value";
        if input.is_empty() {
            return Err(NameError::new(WHAT, input, "must not be empty"));
        }
        if input.len() > MAX_VALUE_LEN {
            return Err(NameError::new(
                WHAT,
                input,
                format!("must be at most {MAX_VALUE_LEN} bytes"),
            ));
        }
        if input.chars().any(char::is_control) {
            return Err(NameError::new(
                WHAT,
                input,
                "must not contain control characters (tab, newline, …)",
            ));
        }
        if input.starts_with('-') {
            return Err(NameError::new(WHAT, input, "must not start with `-`"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PropValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_property_names() {
        assert!(UserPropKey::parse("com.dtctoday:device-guid").is_ok());
        assert!(UserPropKey::parse("a:b").is_ok());
        assert_eq!(
            UserPropKey::parse("com.dtctoday:device-guid")
                .unwrap()
                .namespace(),
            "com.dtctoday"
        );
        for (bad, rule) in [
            ("", "must not be empty"),
            ("nocolon", "must contain `:`"),
            ("Com.x:y", "may contain only"),
            ("com.x:a b", "may contain only"),
            ("com.x:a\tb", "found \\t"),
            ("-com.x:y", "must not start with `-`"),
        ] {
            let err = UserPropKey::parse(bad).unwrap_err();
            assert!(err.to_string().contains(rule), "{bad:?}: {err}");
            assert!(err.to_string().starts_with("user property name `"), "{err}");
        }
        let long = format!("com.x:{}", "a".repeat(250));
        assert!(
            UserPropKey::parse(&long)
                .unwrap_err()
                .rule
                .contains("at most 255")
        );
        assert!(UserPropKey::parse(&long[..255]).is_ok());
    }

    #[test]
    fn pool_names() {
        for good in ["pool0", "tank", "boot-pool", "My Pool", "a:b.c_d-e"] {
            assert!(PoolName::parse(good).is_ok(), "{good}");
        }
        for (bad, rule) in [
            ("", "must not be empty"),
            ("0pool", "must start with a letter"),
            ("pool/x", "may contain only"),
            ("pool@s", "may contain only"),
            ("mirror", "reserved"),
            ("raidz", "reserved"),
            ("draid", "reserved"),
            ("c0t0d0", "disk name"),
            ("-x", "must start with a letter"),
            ("pool%x", "may contain only"),
        ] {
            let err = PoolName::parse(bad).unwrap_err();
            assert!(err.rule.contains(rule), "{bad:?}: {err}");
        }
        assert!(PoolName::parse("boot-pool").unwrap().is_boot_pool());
        assert!(PoolName::parse("freenas-boot").unwrap().is_boot_pool());
        assert!(!PoolName::parse("pool0").unwrap().is_boot_pool());
    }

    #[test]
    fn dataset_names() {
        for good in ["pool0", "pool0/child", "pool0/child/grand", "tank/My Data"] {
            let ds = DatasetName::parse(good).unwrap();
            assert_eq!(ds.pool().as_str(), good.split('/').next().unwrap());
        }
        assert!(DatasetName::parse("pool0").unwrap().is_pool_root());
        assert!(!DatasetName::parse("pool0/a").unwrap().is_pool_root());
        for (bad, rule) in [
            ("", "must not be empty"),
            ("/pool0", "must not be empty"),
            ("pool0/", "empty component"),
            ("pool0//a", "empty component"),
            ("pool0/./a", "`.` or `..`"),
            ("pool0/..", "`.` or `..`"),
            ("pool0@snap", "may contain only"),
            ("pool0/a#b", "may contain only"),
            ("pool0/a%b", "may contain only"),
            ("pool0/a\nb", "found \\n"),
            ("-pool", "must start with a letter"),
        ] {
            let err = DatasetName::parse(bad).unwrap_err();
            assert!(err.rule.contains(rule), "{bad:?}: {err}");
            assert!(err.to_string().starts_with("dataset name `"), "{err}");
        }
    }

    #[test]
    fn values() {
        assert!(PropValue::parse("9babab19-acc0-4587-aa05-ccd8103a1148").is_ok());
        assert!(PropValue::parse("a b=c:d").is_ok());
        for (bad, rule) in [
            ("", "must not be empty"),
            ("a\tb", "control characters"),
            ("a\nb", "control characters"),
            ("a\u{7f}b", "control characters"),
            ("-x", "must not start with `-`"),
        ] {
            let err = PropValue::parse(bad).unwrap_err();
            assert!(err.rule.contains(rule), "{bad:?}: {err}");
        }
        assert!(PropValue::parse(&"a".repeat(MAX_VALUE_LEN)).is_ok());
        assert!(PropValue::parse(&"a".repeat(MAX_VALUE_LEN + 1)).is_err());
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        assert_eq!(excerpt("a\tb\nc", 10), "a\\tb\\nc");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("", 3), "");
    }

    #[test]
    fn serde_validates() {
        let ok: UserPropKey = serde_json::from_str("\"com.x:y\"").unwrap();
        assert_eq!(ok.as_str(), "com.x:y");
        assert!(serde_json::from_str::<UserPropKey>("\"nocolon\"").is_err());
        assert!(serde_json::from_str::<PoolName>("\"0x\"").is_err());
    }

    proptest! {
        #[test]
        fn accepted_keys_match_the_rule(s in "\\PC{0,300}") {
            let ok = UserPropKey::parse(&s).is_ok();
            let rule = !s.is_empty()
                && s.len() <= MAX_NAME_LEN
                && s.contains(':')
                && !s.starts_with('-')
                && s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | ':' | '.' | '_' | '-'));
            prop_assert_eq!(ok, rule);
        }

        #[test]
        fn generated_keys_are_accepted(s in "[a-z0-9._][a-z0-9._-]{0,100}:[a-z0-9:._-]{0,100}") {
            prop_assert!(UserPropKey::parse(&s).is_ok());
        }

        #[test]
        fn accepted_datasets_are_argv_safe(s in "\\PC{0,300}") {
            if let Ok(ds) = DatasetName::parse(&s) {
                prop_assert!(!ds.as_str().starts_with('-'));
                prop_assert!(!ds.as_str().chars().any(|c| c.is_control() || c == '@' || c == '#' || c == '%'));
                prop_assert!(ds.as_str().len() <= MAX_NAME_LEN);
                prop_assert!(PoolName::parse(ds.pool().as_str()).is_ok());
            }
        }

        #[test]
        fn generated_datasets_are_accepted(s in "[a-bd-z][a-zA-Z0-9_.:-]{0,20}(/[a-zA-Z0-9_:-][a-zA-Z0-9 _.:-]{0,20}){0,4}") {
            prop_assume!(!matches!(s.split('/').next(), Some("mirror" | "raidz" | "draid")));
            prop_assert!(DatasetName::parse(&s).is_ok(), "{}", s);
        }

        #[test]
        fn accepted_values_are_frame_safe(s in "\\PC{0,1100}|[\\x00-\\x7f]{0,40}") {
            if let Ok(v) = PropValue::parse(&s) {
                prop_assert!(!v.as_str().contains('\t') && !v.as_str().contains('\n'));
                prop_assert!(!v.as_str().is_empty() && v.as_str().len() <= MAX_VALUE_LEN);
            }
        }

        #[test]
        fn excerpt_never_has_control_chars(s in "\\PC{0,200}|[\\x00-\\x7f]{0,200}", max in 0usize..80) {
            let e = excerpt(&s, max);
            prop_assert!(!e.chars().any(char::is_control));
            // `\u{10ffff}` is the longest escape: 10 characters.
            prop_assert!(e.chars().count() <= max * 10 + 1);
        }
    }
}
