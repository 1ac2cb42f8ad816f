//! Pure parsing of what `zfs get -H -p -o name,property,source,value` and
//! `zpool list -H -o name` print, and classification of their error messages.
//!
//! Owns: [`PropertyReading`], [`PropSource`], [`parse_get`], [`parse_pool_list`],
//! [`classify_failure`].
//! Does not: run anything. Total functions over bytes, proptested/fuzz-friendly.
//! Invariants: a reading is only returned when the answer's first field is the dataset
//! asked for and the second the property asked for; `-` as source means unset.
//! Limitations: one dataset and one property per `zfs get` (that is all the wrapper asks
//! for), so a value that itself contains a newline is still read whole (everything after
//! the third tab), unless a later line looks like a second record.

use serde::{Deserialize, Serialize};

use super::names::{DatasetName, PoolName, UserPropKey, excerpt};

/// Where a property's value comes from, as `zfs get`'s SOURCE column says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PropSource {
    /// Not set on the dataset nor on any ancestor (`-`).
    None,
    /// Set on this dataset (`local`).
    Local,
    /// Set by `zfs receive` (`received`).
    Received,
    /// Inherited from an ancestor (`inherited from pool0`).
    Inherited {
        /// The ancestor, when the backend says which one.
        from: Option<String>,
    },
    /// The property's default (`default`; not used for user properties).
    Default,
    /// A temporary mount-time value (`temporary`).
    Temporary,
    /// The backend cannot tell: the middleware of TrueNAS 25.10 reports every user
    /// property as `LOCAL`, even inherited ones (REFERENCE §4.7).
    Unknown,
}

impl PropSource {
    /// True when the value is (or may be) stored on this very dataset rather than inherited.
    pub fn is_set_here(&self) -> bool {
        match self {
            PropSource::Local
            | PropSource::Received
            | PropSource::Temporary
            | PropSource::Unknown => true,
            PropSource::None | PropSource::Inherited { .. } | PropSource::Default => false,
        }
    }
}

impl std::fmt::Display for PropSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropSource::None => f.write_str("not set"),
            PropSource::Local => f.write_str("local"),
            PropSource::Received => f.write_str("received"),
            PropSource::Inherited { from: Some(from) } => write!(f, "inherited from {from}"),
            PropSource::Inherited { from: None } => f.write_str("inherited"),
            PropSource::Default => f.write_str("default"),
            PropSource::Temporary => f.write_str("temporary"),
            PropSource::Unknown => f.write_str("unknown (the backend does not tell)"),
        }
    }
}

/// One user property of one dataset, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyReading {
    pub dataset: DatasetName,
    pub property: UserPropKey,
    /// `None` when unset. An empty string is a value (`zfs set p= ds` stores one).
    pub value: Option<String>,
    pub source: PropSource,
}

/// An answer that does not have the expected shape. `Display` quotes at most a short,
/// sanitised excerpt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ParseError {
    pub detail: String,
}

impl ParseError {
    fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

/// Length of the excerpts quoted in errors.
pub const EXCERPT_LEN: usize = 120;

/// Parses the SOURCE column.
pub fn parse_source(column: &str) -> Option<PropSource> {
    Some(match column {
        "-" => PropSource::None,
        "local" => PropSource::Local,
        "received" => PropSource::Received,
        "default" => PropSource::Default,
        "temporary" => PropSource::Temporary,
        other => {
            let from = other.strip_prefix("inherited from ")?;
            PropSource::Inherited {
                from: Some(from.to_owned()),
            }
        }
    })
}

/// Parses the answer of `zfs get -H -p -o name,property,source,value KEY DATASET`.
pub fn parse_get(
    stdout: &[u8],
    dataset: &DatasetName,
    key: &UserPropKey,
) -> Result<PropertyReading, ParseError> {
    let body = stdout.strip_suffix(b"\n").unwrap_or(stdout);
    if body.is_empty() {
        return Err(ParseError::new("empty answer"));
    }
    let shown = || excerpt(&String::from_utf8_lossy(body), EXCERPT_LEN);
    // Value last: names, property names and sources never contain a tab, so the first
    // three tabs delimit the fields and the value keeps any tab of its own.
    let mut fields = body.splitn(4, |b| *b == b'\t');
    let (Some(name), Some(prop), Some(source), Some(value)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ParseError::new(format!(
            "expected 4 tab-separated fields, got `{}`",
            shown()
        )));
    };
    check_field(name, dataset.as_str(), "")?;
    check_field(prop, key.as_str(), "property ")?;
    let source = decode_source_column(source)?;
    let value = String::from_utf8_lossy(value).into_owned();
    let record_start = format!("\t{key}\t");
    if value
        .lines()
        .skip(1)
        .any(|line| line.contains(&record_start))
    {
        return Err(ParseError::new(format!(
            "several records in the answer: `{}`",
            shown()
        )));
    }
    let value = match (&source, value.as_str()) {
        (PropSource::None, "-") => None,
        (PropSource::None, _) => {
            return Err(ParseError::new(format!(
                "source `-` with a value: `{}`",
                shown()
            )));
        }
        _ => Some(value),
    };
    Ok(PropertyReading {
        dataset: dataset.clone(),
        property: key.clone(),
        value,
        source,
    })
}

/// The answer must be about what was asked (`what` prefixes the message: "property ").
fn check_field(field: &[u8], expected: &str, what: &str) -> Result<(), ParseError> {
    if field == expected.as_bytes() {
        return Ok(());
    }
    Err(ParseError::new(format!(
        "the answer is about {what}`{}`, not `{expected}`",
        excerpt(&String::from_utf8_lossy(field), EXCERPT_LEN)
    )))
}

fn decode_source_column(column: &[u8]) -> Result<PropSource, ParseError> {
    let text = String::from_utf8_lossy(column);
    parse_source(&text)
        .ok_or_else(|| ParseError::new(format!("unknown source `{}`", excerpt(&text, EXCERPT_LEN))))
}

/// Parses the answer of `zpool list -H -o name`: one pool per line, nothing at all when
/// no pool is imported.
pub fn parse_pool_list(stdout: &[u8]) -> Result<Vec<PoolName>, ParseError> {
    let text = std::str::from_utf8(stdout).map_err(|_| {
        ParseError::new(format!(
            "not UTF-8: `{}`",
            excerpt(&String::from_utf8_lossy(stdout), EXCERPT_LEN)
        ))
    })?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    // With -H, OpenZFS 2.3 prints nothing when no pool is imported; without -H it prints
    // "no pools available". Accept both rather than read the sentence as a pool name.
    if body.is_empty() || body == "no pools available" {
        return Ok(Vec::new());
    }
    body.split('\n')
        .map(|line| {
            PoolName::parse(line).map_err(|e| ParseError::new(format!("not a pool name line: {e}")))
        })
        .collect()
}

/// What a failed `zfs`/`zpool` run was about, judged from its stderr (the wrapper runs
/// them with `LC_ALL=C`, so the messages are OpenZFS's English ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `cannot set property for 'pool0': permission denied`, or libzfs refusing a
    /// non-root user ("Permission denied the ZFS utilities must be run as root.").
    PermissionDenied,
    /// `cannot open 'pool9': dataset does not exist`.
    NoSuchDataset,
    /// libzfs could not start: no `/dev/zfs` (a container), module not loaded.
    NotUsable,
    /// Anything else.
    Other,
}

/// Classifies a failure by its stderr. Messages are those of OpenZFS 2.x
/// (`lib/libzfs/libzfs_util.c`: `libzfs_error_init`, `zfs_standard_error`), checked
/// against OpenZFS 2.3.2 in the VM (docs/identity.md).
pub fn classify_failure(stderr: &str) -> Failure {
    const NOT_USABLE: [&str; 4] = [
        "/dev/zfs and /proc/self/mounts are required",
        "the zfs modules are not loaded",
        "the zfs modules cannot be auto-loaded",
        "failed to initialize the libzfs library",
    ];
    let text = stderr.to_ascii_lowercase();
    if NOT_USABLE.iter().any(|m| text.contains(m)) {
        Failure::NotUsable
    } else if text.contains("permission denied") {
        Failure::PermissionDenied
    } else if text.contains("dataset does not exist") || text.contains("no such pool") {
        Failure::NoSuchDataset
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ds(s: &str) -> DatasetName {
        DatasetName::parse(s).unwrap()
    }
    fn key() -> UserPropKey {
        UserPropKey::parse("com.dtctoday:device-guid").unwrap()
    }

    // Answers recorded from OpenZFS 2.3.2 in the VM (see docs/identity.md).
    const UNSET: &[u8] = b"pool0\tcom.dtctoday:device-guid\t-\t-\n";
    const LOCAL: &[u8] =
        b"pool0\tcom.dtctoday:device-guid\tlocal\t9babab19-acc0-4587-aa05-ccd8103a1148\n";
    const INHERITED: &[u8] = b"pool0/child/grand\tcom.dtctoday:device-guid\tinherited from pool0\t9babab19-acc0-4587-aa05-ccd8103a1148\n";

    #[test]
    fn unset_is_none() {
        let r = parse_get(UNSET, &ds("pool0"), &key()).unwrap();
        assert_eq!(r.value, None);
        assert_eq!(r.source, PropSource::None);
    }

    #[test]
    fn local_value() {
        let r = parse_get(LOCAL, &ds("pool0"), &key()).unwrap();
        assert_eq!(
            r.value.as_deref(),
            Some("9babab19-acc0-4587-aa05-ccd8103a1148")
        );
        assert_eq!(r.source, PropSource::Local);
        assert!(r.source.is_set_here());
    }

    #[test]
    fn inherited_value_names_the_ancestor() {
        let r = parse_get(INHERITED, &ds("pool0/child/grand"), &key()).unwrap();
        assert_eq!(
            r.source,
            PropSource::Inherited {
                from: Some("pool0".into())
            }
        );
        assert!(!r.source.is_set_here());
        assert_eq!(r.source.to_string(), "inherited from pool0");
    }

    #[test]
    fn values_keep_tabs_dashes_and_emptiness() {
        let r = parse_get(
            b"pool0\tcom.dtctoday:device-guid\tlocal\ta\tb\n",
            &ds("pool0"),
            &key(),
        )
        .unwrap();
        assert_eq!(r.value.as_deref(), Some("a\tb"));
        let r = parse_get(
            b"pool0\tcom.dtctoday:device-guid\tlocal\t-\n",
            &ds("pool0"),
            &key(),
        )
        .unwrap();
        assert_eq!(r.value.as_deref(), Some("-"), "a literal `-` set locally");
        let r = parse_get(
            b"pool0\tcom.dtctoday:device-guid\tlocal\t\n",
            &ds("pool0"),
            &key(),
        )
        .unwrap();
        assert_eq!(r.value.as_deref(), Some(""));
        let r = parse_get(
            b"pool0\tcom.dtctoday:device-guid\tlocal\ta\nb\n",
            &ds("pool0"),
            &key(),
        )
        .unwrap();
        assert_eq!(r.value.as_deref(), Some("a\nb"), "a value with a newline");
        let r = parse_get(
            b"pool0\tcom.dtctoday:device-guid\treceived\tx",
            &ds("pool0"),
            &key(),
        )
        .unwrap();
        assert_eq!(r.source, PropSource::Received);
    }

    #[test]
    fn wrong_or_weird_answers_are_refused() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"", "pool0", "empty answer"),
            (b"\n", "pool0", "empty answer"),
            (b"hello world\n", "pool0", "expected 4 tab-separated fields"),
            (b"pool0\tcom.dtctoday:device-guid\tlocal\n", "pool0", "expected 4"),
            (LOCAL, "pool1", "the answer is about `pool0`, not `pool1`"),
            (
                b"pool0\tcom.other:prop\tlocal\tx\n",
                "pool0",
                "property `com.other:prop`",
            ),
            (
                b"pool0\tcom.dtctoday:device-guid\tsideways\tx\n",
                "pool0",
                "unknown source `sideways`",
            ),
            (
                b"pool0\tcom.dtctoday:device-guid\t-\tx\n",
                "pool0",
                "source `-` with a value",
            ),
            (
                b"pool0\tcom.dtctoday:device-guid\tlocal\tx\npool1\tcom.dtctoday:device-guid\tlocal\ty\n",
                "pool0",
                "several records",
            ),
        ];
        for (answer, dataset, expected) in cases {
            let err = parse_get(answer, &ds(dataset), &key()).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{:?}: {err}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[test]
    fn error_excerpts_are_short_and_clean() {
        let mut answer = b"x".repeat(5000);
        answer.extend_from_slice(b"\x1b[31m\n");
        let err = parse_get(&answer, &ds("pool0"), &key()).unwrap_err();
        assert!(err.detail.len() < 300, "{}", err.detail.len());
        assert!(!err.detail.contains('\x1b'));
    }

    #[test]
    fn pool_lists() {
        assert_eq!(parse_pool_list(b"").unwrap(), Vec::<PoolName>::new());
        let pools = parse_pool_list(b"boot-pool\npool0\npool1\n").unwrap();
        let names: Vec<_> = pools.iter().map(PoolName::as_str).collect();
        assert_eq!(names, ["boot-pool", "pool0", "pool1"]);
        assert!(parse_pool_list(b"no pools available\n").unwrap().is_empty());
        assert!(
            parse_pool_list(b"pool0\n\npool1\n")
                .unwrap_err()
                .detail
                .contains("not a pool name line")
        );
        assert!(parse_pool_list(b"pool0\tONLINE\n").is_err());
        assert!(
            parse_pool_list(b"\xff\xfe\n")
                .unwrap_err()
                .detail
                .contains("UTF-8")
        );
    }

    #[test]
    fn failures_are_classified_from_real_messages() {
        // Recorded from OpenZFS 2.3.2 (see docs/identity.md).
        for (stderr, expected) in [
            (
                "cannot open 'pool9': dataset does not exist\n",
                Failure::NoSuchDataset,
            ),
            (
                "cannot set property for 'pool0': permission denied\n",
                Failure::PermissionDenied,
            ),
            (
                "cannot inherit com.dtctoday:device-guid for 'pool0': permission denied\n",
                Failure::PermissionDenied,
            ),
            (
                "Permission denied the ZFS utilities must be run as root.\n",
                Failure::PermissionDenied,
            ),
            (
                "/dev/zfs and /proc/self/mounts are required.\nTry running 'udevadm trigger' and 'mount -t proc proc /proc' as root.\n",
                Failure::NotUsable,
            ),
            (
                "The ZFS modules are not loaded.\nTry running 'modprobe zfs' as root to load them.\n",
                Failure::NotUsable,
            ),
            (
                "cannot set property for 'pool0': property value too long\n",
                Failure::Other,
            ),
            ("", Failure::Other),
        ] {
            assert_eq!(classify_failure(stderr), expected, "{stderr}");
        }
    }

    proptest! {
        #[test]
        fn parse_get_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_get(&bytes, &ds("pool0"), &key());
        }

        #[test]
        fn parse_pool_list_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_pool_list(&bytes);
        }

        #[test]
        fn any_single_line_value_round_trips(value in "[^\n]{0,200}", source in prop_oneof![
            Just("local".to_owned()), Just("received".to_owned()),
            "[a-z][a-z0-9/]{0,20}".prop_map(|p| format!("inherited from {p}")),
        ]) {
            let answer = format!("pool0/ds\tcom.dtctoday:device-guid\t{source}\t{value}\n");
            let r = parse_get(answer.as_bytes(), &ds("pool0/ds"), &key()).unwrap();
            prop_assert_eq!(r.value.as_deref(), Some(value.as_str()));
            prop_assert_eq!(Some(r.source), parse_source(&source));
        }

        #[test]
        fn a_first_field_other_than_the_dataset_is_refused(name in "[a-z][a-z0-9/]{0,20}") {
            prop_assume!(name != "pool0");
            let answer = format!("{name}\tcom.dtctoday:device-guid\tlocal\tx\n");
            prop_assert!(parse_get(answer.as_bytes(), &ds("pool0"), &key()).is_err());
        }

        #[test]
        fn errors_stay_short(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Err(e) = parse_get(&bytes, &ds("pool0"), &key()) {
                prop_assert!(e.detail.chars().count() < 2 * EXCERPT_LEN + 100);
                prop_assert!(!e.detail.chars().any(char::is_control));
            }
        }
    }
}
