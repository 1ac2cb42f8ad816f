//! Values derived from the document exactly as the SOP computes them by hand.
//!
//! Owns: the bucket name (SOP 3.2), folder per pool (SOP 3.3), task description and
//! mount path (SOP 5.2), the bandwidth timetable in bytes per second, the snapshot
//! lifetime unit ([`LifetimeUnit`]), `HH:MM` times and cron fields (parse, validate,
//! normalise).
//! Does not: decide which pools are managed or read anything from the NAS.
//! Invariants: every function is pure and total; a value that passes these checks is
//! accepted by the middleware's own validators (REFERENCE §5.3): zero-padded times,
//! strictly increasing `bwlimit` times, bandwidth > 0, cron fields in range.
//! Limitations: cron fields accept numbers, `*`, ranges, steps and lists — not month or
//! weekday names (`jan`, `mon`), which the middleware would accept but the SOP never uses.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Snapshot lifetime unit (the middleware's enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LifetimeUnit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl LifetimeUnit {
    /// The middleware's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LifetimeUnit::Hour => "HOUR",
            LifetimeUnit::Day => "DAY",
            LifetimeUnit::Week => "WEEK",
            LifetimeUnit::Month => "MONTH",
            LifetimeUnit::Year => "YEAR",
        }
    }

    /// Parses the middleware's spelling.
    pub fn parse(text: &str) -> Option<LifetimeUnit> {
        match text {
            "HOUR" => Some(LifetimeUnit::Hour),
            "DAY" => Some(LifetimeUnit::Day),
            "WEEK" => Some(LifetimeUnit::Week),
            "MONTH" => Some(LifetimeUnit::Month),
            "YEAR" => Some(LifetimeUnit::Year),
            _ => None,
        }
    }
}

/// Prefix of every SOP bucket name (SOP 3.2).
pub const BUCKET_PREFIX: &str = "truenas-";
/// The SOP's own bucket-name ceiling (SOP 3.2 "50 characters or fewer").
pub const SOP_BUCKET_MAX: usize = 50;

/// Bucket name by the SOP formula: `truenas-` + the location UUID lower-cased without
/// dashes. Computed from the text as given so that a malformed UUID yields a name the
/// length/charset rules can reject (the SOP: "if you get a longer result, stop").
pub fn bucket_name(location_uuid: &str) -> String {
    let flat: String = location_uuid
        .chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    format!("{BUCKET_PREFIX}{flat}")
}

/// Every rule a bucket name breaks: the SOP's ≤ 50 characters, and B2's naming rules
/// (b2/REFERENCE §3: 6–63 characters, lower-case letters, digits and `-`, not `b2-…`).
pub fn bucket_name_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let len = name.chars().count();
    if len > SOP_BUCKET_MAX {
        problems.push(format!(
            "bucket name would be {len} characters; the SOP allows at most {SOP_BUCKET_MAX}"
        ));
    }
    if !(6..=63).contains(&len) {
        problems.push(format!(
            "bucket name would be {len} characters; B2 needs 6 to 63"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problems.push(
            "bucket name may contain only lower-case letters, digits and `-` (B2 naming rules)"
                .to_owned(),
        );
    }
    if name.starts_with("b2-") {
        problems.push("bucket names must not start with `b2-` (reserved by B2)".to_owned());
    }
    problems
}

/// Parses a UUID in its canonical hyphenated 8-4-4-4-12 form (any case).
/// Braced, URN and dash-less forms are refused: the SOP's formula strips dashes from the
/// hyphenated form, so any other spelling would produce a different bucket name.
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    let groups: Vec<&str> = text.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let hex = groups
        .iter()
        .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
    if lens != [8, 4, 4, 4, 12] || !hex {
        return None;
    }
    Uuid::parse_str(text).ok()
}

/// Cloud Sync folder for a pool: `/{device-guid}/{pool}` (SOP 3.3; the leading slash is
/// what the SOP types; the middleware strips it when it builds the remote path).
pub fn folder(device_guid: &Uuid, pool: &str) -> String {
    format!("/{}/{pool}", device_guid.hyphenated())
}

/// Cloud Sync description: the pool name with its first letter capitalised, plus
/// ` Cloud Backup` (`pool0` → `Pool0 Cloud Backup`).
pub fn description(pool: &str) -> String {
    let mut chars = pool.chars();
    let capitalised: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{capitalised} Cloud Backup")
}

/// Local path of a pool's root dataset (`/mnt/P`).
pub fn pool_path(pool: &str) -> String {
    format!("/mnt/{pool}")
}

/// A time of day as the middleware wants it: zero-padded 24-hour `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HhMm {
    hour: u8,
    minute: u8,
}

impl HhMm {
    /// Midnight, `00:00`.
    pub const MIDNIGHT: HhMm = HhMm { hour: 0, minute: 0 };

    /// A time from hour and minute, if in range.
    pub fn new(hour: u8, minute: u8) -> Option<HhMm> {
        (hour < 24 && minute < 60).then_some(HhMm { hour, minute })
    }

    /// Strict parse: exactly `HH:MM`, zero-padded, 00:00–23:59.
    pub fn parse(text: &str) -> Option<HhMm> {
        let bytes = text.as_bytes();
        if bytes.len() != 5 || bytes[2] != b':' {
            return None;
        }
        let hour = two_digits(&text[0..2])?;
        let minute = two_digits(&text[3..5])?;
        HhMm::new(hour, minute)
    }

    /// Lenient parse for values read back from the middleware (`8:00`, `08:00:00`).
    pub fn parse_lenient(text: &str) -> Option<HhMm> {
        let mut parts = text.trim().split(':');
        let hour = parts.next()?.parse().ok()?;
        let minute = parts.next()?.parse().ok()?;
        match parts.next() {
            None | Some("00") => HhMm::new(hour, minute),
            Some(_) => None,
        }
    }
}

fn two_digits(text: &str) -> Option<u8> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

impl fmt::Display for HhMm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Serialize for HhMm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HhMm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HhMm::parse(&text).ok_or_else(|| serde::de::Error::custom("expected HH:MM"))
    }
}

/// One entry of the middleware's `bwlimit` timetable: from `time` on, at most
/// `bandwidth` bytes per second (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BwLimit {
    pub time: HhMm,
    pub bandwidth: Option<u64>,
}

impl fmt::Display for BwLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bandwidth {
            Some(bytes) => write!(f, "{},{bytes}B/s", self.time),
            None => write!(f, "{},off", self.time),
        }
    }
}

/// Bytes per second for `percent` % of an uplink of `uplink_kbps` kilobits per second.
///
/// 1 Mbit/s = 1 000 000 bit/s = 125 000 B/s, so `kbit/s × 1000 / 8 × percent / 100`
/// = `kbit/s × percent × 5 / 4`, rounded down, never below 1 (the middleware refuses 0).
pub fn share_bytes_per_second(uplink_kbps: u64, percent: u8) -> u64 {
    (uplink_kbps * u64::from(percent) * 5 / 4).max(1)
}

/// The Cloud Sync `bwlimit` list for business hours `[start, end)` at `business_percent`
/// of the uplink and `off_percent` the rest of the day. Times are strictly increasing and
/// the list starts at `00:00`. `start > end` is a window across midnight (a night shift).
/// Callers guarantee `start != end`.
pub fn bandwidth_timetable(
    uplink_kbps: u64,
    start: HhMm,
    end: HhMm,
    business_percent: u8,
    off_percent: u8,
) -> Vec<BwLimit> {
    let business = Some(share_bytes_per_second(uplink_kbps, business_percent));
    let off = Some(share_bytes_per_second(uplink_kbps, off_percent));
    let slot = |time, bandwidth| BwLimit { time, bandwidth };
    let mut table = if start < end {
        vec![
            slot(HhMm::MIDNIGHT, off),
            slot(start, business),
            slot(end, off),
        ]
    } else {
        vec![
            slot(HhMm::MIDNIGHT, business),
            slot(end, off),
            slot(start, business),
        ]
    };
    // A window starting (or ending) at midnight makes the first slot redundant: drop the
    // earlier of two entries at the same time so times stay strictly increasing.
    if table.len() > 1 && table[0].time == table[1].time {
        table.remove(0);
    }
    table
}

/// Which of the five cron fields a value is for (ranges per croniter / the middleware).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    Dom,
    Month,
    Dow,
}

impl CronField {
    /// The five fields in crontab order.
    pub const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::Dom,
        CronField::Month,
        CronField::Dow,
    ];

    /// The middleware's key for this field.
    pub fn key(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::Dom => "dom",
            CronField::Month => "month",
            CronField::Dow => "dow",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::Dom => (1, 31),
            CronField::Month => (1, 12),
            // 0 and 7 are both Sunday.
            CronField::Dow => (0, 7),
        }
    }
}

/// Checks one cron field: `*`, `N`, `A-B`, each optionally `/STEP`, comma-separated.
pub fn check_cron_field(field: CronField, text: &str) -> Result<(), String> {
    let (lo, hi) = field.range();
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match parse_num(step) {
                Some(n) if n >= 1 => {}
                _ => return Err(format!("`{item}`: step must be a number ≥ 1")),
            }
        }
        if base == "*" {
            continue;
        }
        let (a, b) = match base.split_once('-') {
            Some((a, b)) => (parse_num(a), parse_num(b)),
            None => (parse_num(base), parse_num(base)),
        };
        let (Some(a), Some(b)) = (a, b) else {
            return Err(format!(
                "`{item}`: expected `*`, a number, or a range like `1-5`"
            ));
        };
        if a < lo || b > hi || a > b {
            return Err(format!(
                "`{item}`: {} must be within {lo}-{hi}",
                field.key()
            ));
        }
    }
    Ok(())
}

fn parse_num(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Canonical spelling of a cron field for comparison: numbers without leading zeros
/// (the middleware's default minute is `"00"`, the SOP writes `0`).
pub fn normalise_cron_field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            let trimmed = digits.trim_start_matches('0');
            out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
            digits.clear();
        }
    };
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// A five-field cron schedule in canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cron {
    pub minute: String,
    pub hour: String,
    pub dom: String,
    pub month: String,
    pub dow: String,
}

impl Cron {
    /// Builds a schedule from five field texts, normalising each.
    pub fn from_fields(minute: &str, hour: &str, dom: &str, month: &str, dow: &str) -> Cron {
        Cron {
            minute: normalise_cron_field(minute),
            hour: normalise_cron_field(hour),
            dom: normalise_cron_field(dom),
            month: normalise_cron_field(month),
            dow: normalise_cron_field(dow),
        }
    }

    /// The field value for `field`.
    pub fn get(&self, field: CronField) -> &str {
        match field {
            CronField::Minute => &self.minute,
            CronField::Hour => &self.hour,
            CronField::Dom => &self.dom,
            CronField::Month => &self.month,
            CronField::Dow => &self.dow,
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.minute, self.hour, self.dom, self.month, self.dow
        )
    }
}

/// Splits a crontab line into its five fields; `None` unless there are exactly five.
pub fn split_cron_line(line: &str) -> Option<[&str; 5]> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    <[&str; 5]>::try_from(fields).ok()
}

/// Every rule a periodic-snapshot naming schema breaks (zettarepl `snapshot/name.py`,
/// REFERENCE §5.3): allowed characters, known `%` tokens, no `%%`, must contain
/// `%Y %m %d %H %M` (or use `%s`), `%z` not combined with `:`.
pub fn naming_schema_problems(schema: &str) -> Vec<String> {
    const TOKENS: &str = "aAbBdHIjmMpSUwWyYzs";
    let mut problems = Vec::new();
    if schema.is_empty() {
        problems.push("must not be empty".to_owned());
        return problems;
    }
    if let Some(bad) = schema
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " %_.:-".contains(*c)))
    {
        problems.push(format!(
            "character `{bad}` is not allowed (only letters, digits, space and `% _ . : -`)"
        ));
    }
    if schema.contains("%%") {
        problems.push("`%%` is not allowed".to_owned());
    }
    let mut chars = schema.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(t) if TOKENS.contains(t) => {}
                Some('%') => {}
                Some(t) => problems.push(format!("unknown token `%{t}`")),
                None => problems.push("ends with a lone `%`".to_owned()),
            }
        }
    }
    let has_all = ["%Y", "%m", "%d", "%H", "%M"]
        .iter()
        .all(|t| schema.contains(t));
    if !has_all && !schema.contains("%s") {
        problems.push("must contain %Y, %m, %d, %H and %M (or %s)".to_owned());
    }
    if schema.contains("%z") && schema.contains(':') {
        problems.push("`%z` cannot be combined with `:`".to_owned());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_name_matches_the_sop_example() {
        // SOP 3.2: Get-TrueNASBucketName "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9"
        let name = bucket_name("a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9");
        assert_eq!(name, "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9");
        assert_eq!(name.len(), 40);
        assert!(bucket_name_problems(&name).is_empty());
    }

    #[test]
    fn bucket_name_is_lower_case() {
        assert_eq!(
            bucket_name("A1B2C3D4-E5F6-7071-8293-A4B5C6D7E8F9"),
            "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9"
        );
    }

    #[test]
    fn bucket_rules() {
        let long = format!("truenas-{}", "a".repeat(43));
        assert_eq!(
            bucket_name_problems(&long).len(),
            1,
            "51 chars: SOP rule only"
        );
        let very_long = format!("truenas-{}", "a".repeat(60));
        assert_eq!(
            bucket_name_problems(&very_long).len(),
            2,
            "SOP and B2 length"
        );
        assert_eq!(bucket_name_problems("truenas-{x}").len(), 1);
        assert_eq!(bucket_name_problems("b2-abcdef").len(), 1);
        assert_eq!(bucket_name_problems("abc").len(), 1);
    }

    #[test]
    fn uuid_forms() {
        assert!(parse_uuid("9babab19-acc0-4587-aa05-ccd8103a1148").is_some());
        assert!(parse_uuid("9BABAB19-ACC0-4587-AA05-CCD8103A1148").is_some());
        assert!(parse_uuid("9babab19acc04587aa05ccd8103a1148").is_none());
        assert!(parse_uuid("{9babab19-acc0-4587-aa05-ccd8103a1148}").is_none());
        assert!(parse_uuid("urn:uuid:9babab19-acc0-4587-aa05-ccd8103a1148").is_none());
        assert!(parse_uuid("9babab19-acc0-4587-aa05-ccd8103a114g").is_none());
        assert!(parse_uuid("").is_none());
    }

    #[test]
    fn folder_description_path() {
        let guid = parse_uuid("9babab19-acc0-4587-aa05-ccd8103a1148").unwrap();
        assert_eq!(
            folder(&guid, "pool0"),
            "/9babab19-acc0-4587-aa05-ccd8103a1148/pool0"
        );
        assert_eq!(description("pool0"), "Pool0 Cloud Backup");
        assert_eq!(description("Tank"), "Tank Cloud Backup");
        assert_eq!(description("ünterwasser"), "Ünterwasser Cloud Backup");
        assert_eq!(pool_path("pool1"), "/mnt/pool1");
    }

    #[test]
    fn times() {
        assert_eq!(HhMm::parse("08:00").unwrap().to_string(), "08:00");
        assert_eq!(HhMm::parse("23:59").unwrap().to_string(), "23:59");
        for bad in [
            "8:00", "24:00", "12:60", "0800", "08:00:00", "ab:cd", "", "08-00",
        ] {
            assert!(HhMm::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(HhMm::parse_lenient("8:00").unwrap().to_string(), "08:00");
        assert_eq!(
            HhMm::parse_lenient("08:00:00").unwrap().to_string(),
            "08:00"
        );
        assert!(HhMm::parse_lenient("08:00:30").is_none());
    }

    #[test]
    fn sop_example_in_bytes_per_second() {
        // 100 Mbit/s uplink, business 08:00–18:00 at 20 %, off-hours 80 %.
        // 100 Mbit/s = 12 500 000 B/s; 20 % = 2 500 000 B/s; 80 % = 10 000 000 B/s.
        // (The SOP's "80M" would be rclone's 80 MiB/s = 83 886 080 B/s: wrong unit.)
        let table = bandwidth_timetable(
            100_000,
            HhMm::parse("08:00").unwrap(),
            HhMm::parse("18:00").unwrap(),
            20,
            80,
        );
        let shown: Vec<String> = table.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["00:00,10000000B/s", "08:00,2500000B/s", "18:00,10000000B/s"]
        );
    }

    #[test]
    fn windows_at_midnight_and_across_it() {
        let t = |s| HhMm::parse(s).unwrap();
        let starts_at_midnight = bandwidth_timetable(8_000, t("00:00"), t("06:00"), 50, 100);
        assert_eq!(
            starts_at_midnight,
            vec![
                BwLimit {
                    time: t("00:00"),
                    bandwidth: Some(500_000)
                },
                BwLimit {
                    time: t("06:00"),
                    bandwidth: Some(1_000_000)
                },
            ]
        );
        let night = bandwidth_timetable(8_000, t("22:00"), t("06:00"), 50, 100);
        let times: Vec<String> = night.iter().map(|s| s.time.to_string()).collect();
        assert_eq!(times, ["00:00", "06:00", "22:00"]);
        assert_eq!(night[0].bandwidth, Some(500_000));
        assert_eq!(night[1].bandwidth, Some(1_000_000));
        let ends_at_midnight = bandwidth_timetable(8_000, t("18:00"), t("00:00"), 50, 100);
        let times: Vec<String> = ends_at_midnight
            .iter()
            .map(|s| s.time.to_string())
            .collect();
        assert_eq!(times, ["00:00", "18:00"]);
        assert_eq!(ends_at_midnight[0].bandwidth, Some(1_000_000));
    }

    #[test]
    fn tiny_uplink_never_yields_zero() {
        assert_eq!(share_bytes_per_second(1, 1), 1);
    }

    #[test]
    fn cron_fields() {
        assert!(check_cron_field(CronField::Minute, "0").is_ok());
        assert!(check_cron_field(CronField::Minute, "00").is_ok());
        assert!(check_cron_field(CronField::Minute, "*/15").is_ok());
        assert!(check_cron_field(CronField::Hour, "8-18/2,22").is_ok());
        assert!(check_cron_field(CronField::Dow, "0,7").is_ok());
        assert!(check_cron_field(CronField::Minute, "60").is_err());
        assert!(check_cron_field(CronField::Hour, "24").is_err());
        assert!(check_cron_field(CronField::Dom, "0").is_err());
        assert!(check_cron_field(CronField::Month, "13").is_err());
        assert!(check_cron_field(CronField::Minute, "*/0").is_err());
        assert!(check_cron_field(CronField::Minute, "5-1").is_err());
        assert!(check_cron_field(CronField::Minute, "").is_err());
        assert!(check_cron_field(CronField::Minute, "a").is_err());
        assert!(check_cron_field(CronField::Month, "jan").is_err());
    }

    #[test]
    fn cron_normalisation() {
        assert_eq!(normalise_cron_field("00"), "0");
        assert_eq!(normalise_cron_field("08-18/02"), "8-18/2");
        assert_eq!(normalise_cron_field("*"), "*");
        assert_eq!(normalise_cron_field("0,30"), "0,30");
        assert_eq!(normalise_cron_field(" 10 "), "10");
        let c = Cron::from_fields("00", "0", "*", "*", "*");
        assert_eq!(c.to_string(), "0 0 * * *");
        assert_eq!(
            split_cron_line("0 0 * * *"),
            Some(["0", "0", "*", "*", "*"])
        );
        assert_eq!(split_cron_line("0 0 * *"), None);
    }

    #[test]
    fn naming_schemas() {
        assert!(naming_schema_problems("auto-%Y-%m-%d_%H-%M").is_empty());
        assert!(naming_schema_problems("auto-%s").is_empty());
        assert!(!naming_schema_problems("auto-%Y-%m-%d").is_empty());
        assert!(!naming_schema_problems("auto/%Y-%m-%d_%H-%M").is_empty());
        assert!(!naming_schema_problems("auto-%Y-%m-%d_%H-%M%%").is_empty());
        assert!(!naming_schema_problems("auto-%Y-%m-%d_%H-%M-%q").is_empty());
        assert!(!naming_schema_problems("auto-%Y-%m-%d_%H:%M%z").is_empty());
        assert!(!naming_schema_problems("").is_empty());
    }

    proptest! {
        #[test]
        fn timetables_are_strictly_increasing_and_positive(
            kbps in 1u64..10_000_000,
            a in 0u8..24, am in 0u8..60, b in 0u8..24, bm in 0u8..60,
            bp in 1u8..=100, op in 1u8..=100,
        ) {
            let start = HhMm::new(a, am).unwrap();
            let end = HhMm::new(b, bm).unwrap();
            prop_assume!(start != end);
            let table = bandwidth_timetable(kbps, start, end, bp, op);
            prop_assert_eq!(table[0].time, HhMm::MIDNIGHT);
            for pair in table.windows(2) {
                // The middleware compares the strings; zero padding makes that the
                // same order as the times.
                prop_assert!(pair[0].time.to_string() < pair[1].time.to_string());
            }
            for slot in &table {
                prop_assert!(slot.bandwidth.unwrap() > 0);
            }
        }

        #[test]
        fn normalised_cron_fields_stay_valid(n in 0u32..60, pad in 0usize..3) {
            let text = format!("{}{n}", "0".repeat(pad));
            prop_assert!(check_cron_field(CronField::Minute, &text).is_ok());
            prop_assert_eq!(normalise_cron_field(&text), n.to_string());
        }
    }
}
