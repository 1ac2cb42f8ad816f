//! Classification table tests. The texts follow the exact formats of rclone (log line
//! `YYYY/MM/DD HH:MM:SS LEVEL : object: message`, B2 errors as `<message> (<status>
//! <code>)`, cmd.go's attempt/summary lines) and the middleware (`rclone()` raising the
//! last five output lines; "Dataset is locked"); see the module doc for the sources.

use super::*;
use secrecy::SecretString;

const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

fn run(error: &str, logs: &str) -> Classified {
    classify(Some(error), Some(logs), false, &Redactor::default())
}

/// A sync whose only errors are deletes B2 refused under Object Lock.
fn retention_only() -> (String, String) {
    let error = format!(
        "2026/11/23 00:14:02 ERROR : Documents/old-report.docx.bin: Couldn't delete: failed to hide \"{GUID}/pool0/Documents/old-report.docx.bin\": file is protected by object lock retention (403 access_denied)\n\
         2026/11/23 00:14:02 ERROR : Documents/q3.xlsx.bin: Couldn't delete: failed to hide \"{GUID}/pool0/Documents/q3.xlsx.bin\": access denied (403 access_denied)\n\
         2026/11/23 00:14:03 ERROR : Attempt 3/3 failed with 2 errors and: failed to delete 2 files\n\
         2026/11/23 00:14:03 NOTICE: Failed to sync: failed to delete 2 files\n"
    );
    let logs = "2026/11/23 00:00:01 INFO  : Documents/new.pdf.bin: Copied (new)\n\
                Transferred:   \t   12.345 MiB / 12.345 MiB, 100%, 1.2 MiB/s, ETA 0s\n\
                Errors:                 2 (retrying may help)\n\
                Checks:              1042 / 1042, 100%\n"
        .to_owned();
    (error, logs)
}

#[test]
fn retention_locked_deletes_are_expected() {
    let (error, logs) = retention_only();
    let c = run(&error, &logs);
    assert_eq!(c.class, ErrorClass::RetentionLocked);
    assert!(c.class.is_expected());
    assert!(
        c.summary
            .starts_with("Documents/old-report.docx.bin: Couldn't delete")
    );
    assert!(c.excerpt.contains("failed to delete 2 files"));
}

#[test]
fn already_hidden_counts_as_lock_noise() {
    let error = format!(
        "2026/11/23 00:14:02 ERROR : a.bin: Couldn't delete: failed to hide \"{GUID}/pool0/a.bin\": File already hidden: {GUID}/pool0/a.bin (400 already_hidden)\n\
         2026/11/23 00:14:03 NOTICE: Failed to sync: failed to delete 1 files"
    );
    assert_eq!(run(&error, "").class, ErrorClass::RetentionLocked);
}

#[test]
fn a_real_error_next_to_locked_deletes_is_a_failure() {
    let (error, logs) = retention_only();
    let error = format!(
        "2026/11/23 00:10:00 ERROR : Projects/big.iso.bin: Failed to copy: Post \"https://pod-000-1101-13.backblaze.com/b2api/v1/b2_upload_file/x\": storage cap exceeded (403 storage_cap_exceeded)\n{error}"
    );
    let c = run(&error, &logs);
    assert_eq!(c.class, ErrorClass::Other);
    assert!(!c.class.is_expected());
    assert!(c.summary.contains("storage_cap_exceeded"), "{}", c.summary);
}

#[test]
fn a_delete_refused_for_another_reason_is_not_retention() {
    // The object's *name* contains "locked"; the error is a missing capability.
    let error = format!(
        "2026/11/23 00:14:02 ERROR : unlocked.txt.bin: Couldn't delete: failed to hide \"{GUID}/pool0/unlocked.txt.bin\": (401 unauthorized)\n\
         2026/11/23 00:14:03 NOTICE: Failed to sync: failed to delete 1 files"
    );
    assert_eq!(run(&error, "").class, ErrorClass::Auth);
}

#[test]
fn auth_failures() {
    let cases = [
        // Wrong key ID / key (v1 sign-in, as TrueNAS's rclone does it).
        "2026/11/23 00:00:01 CRITICAL: Failed to create file system for \"encrypted:/\": failed to make remote \"remote:truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9/9babab19-acc0-4587-aa05-ccd8103a1148/pool0\" to wrap: failed to authorize account: failed to authenticate: (401 unauthorized)",
        // A key B2 accepts only on API v4.
        "2026/11/23 00:00:01 CRITICAL: Failed to create file system for \"encrypted:/\": failed to make remote \"remote:truenas-x/g/pool0\" to wrap: failed to authorize account: failed to authenticate: This request is not currently supported on API version number 1 (400 bad_request)",
        // Key without writeFiles / outside its bucket restriction.
        "2026/11/23 00:02:11 ERROR : a.bin: Failed to copy: failed to get upload URL: (401 unauthorized)",
        "2026/11/23 00:02:11 ERROR : Attempt 1/3 failed with 1 errors and: (401 bad_auth_token)",
    ];
    for case in cases {
        let c = run(case, "");
        assert_eq!(c.class, ErrorClass::Auth, "{case}");
    }
}

#[test]
fn network_failures() {
    let cases = [
        "2026/11/23 00:00:31 CRITICAL: Failed to create file system for \"encrypted:/\": failed to make remote \"remote:b/g/p\" to wrap: failed to authorize account: failed to authenticate: Post \"https://api.backblazeb2.com/b2api/v1/b2_authorize_account\": dial tcp: lookup api.backblazeb2.com on 127.0.0.53:53: no such host",
        "2026/11/23 00:05:00 ERROR : x.bin: Failed to copy: Post \"https://pod-000-1101-13.backblaze.com/b2api/v1/b2_upload_file/x\": dial tcp 149.137.128.10:443: i/o timeout",
        "2026/11/23 00:05:00 ERROR : x.bin: Failed to copy: Post \"https://pod/b2api/v1/b2_upload_file/x\": read tcp 10.0.0.5:51234->149.137.128.10:443: read: connection reset by peer",
        "2026/11/23 00:05:00 ERROR : Attempt 2/3 failed with 1 errors and: Post \"https://api\": net/http: TLS handshake timeout",
        "2026/11/23 00:05:00 ERROR : x.bin: Failed to copy: service unavailable (503 service_unavailable)",
        "2026/11/23 00:05:00 ERROR : x.bin: Failed to copy: dial tcp 149.137.128.10:443: connect: network is unreachable",
    ];
    for case in cases {
        assert_eq!(run(case, "").class, ErrorClass::Network, "{case}");
    }
}

#[test]
fn dataset_locked() {
    assert_eq!(
        run("Dataset is locked", "").class,
        ErrorClass::DatasetLocked
    );
    let flagged = classify(Some("rclone failed"), None, true, &Redactor::default());
    assert_eq!(flagged.class, ErrorClass::DatasetLocked);
    assert_eq!(flagged.summary, "the task's dataset is locked");
    assert_eq!(
        run("[EDATASETISLOCKED] Dataset pool0/secure is locked", "").class,
        ErrorClass::DatasetLocked
    );
}

#[test]
fn other_failures_keep_the_text() {
    let c = run("Directory '/mnt/pool0' does not exist", "");
    assert_eq!(c.class, ErrorClass::Other);
    assert_eq!(c.summary, "Directory '/mnt/pool0' does not exist");
    // No text at all.
    let empty = classify(None, None, false, &Redactor::default());
    assert_eq!(empty.class, ErrorClass::Other);
    assert_eq!(empty.summary, "the run failed without an error text");
    // The exit-code line alone is a summary; the job error is still kept as the summary.
    let c = run("rclone failed with exit code 7", "");
    assert_eq!(c.class, ErrorClass::Other);
    assert_eq!(c.summary, "rclone failed with exit code 7");
}

#[test]
fn line_kinds() {
    let cases = [
        (
            "2026/11/23 00:00:01 INFO  : a.bin: Copied (new)",
            LineKind::Noise,
        ),
        ("<6>INFO  : a.bin: Copied (new)", LineKind::Noise),
        ("Transferred:   1 / 1, 100%", LineKind::Noise),
        (
            "2026/11/23 00:00:01 NOTICE: Encrypted drive 'encrypted:/': --checksum is in use",
            LineKind::Noise,
        ),
        (
            "2026/11/23 00:14:03 NOTICE: Failed to sync: failed to delete 2 files",
            LineKind::Summary,
        ),
        (
            "2026/11/23 00:14:03 ERROR : Attempt 1/3 failed with 2 errors",
            LineKind::Summary,
        ),
        (
            "2026/11/23 00:14:03 ERROR : Local file system at /mnt/pool0: not deleting files as there were IO errors",
            LineKind::Summary,
        ),
        ("rclone failed with exit code 3", LineKind::Summary),
        (
            "2026/11/23 00:14:03 NOTICE: Failed to sync with 3 errors: last error was: (401 unauthorized)",
            LineKind::Auth,
        ),
        (
            "2026/11/23 00:14:03 ERROR : x: Failed to copy: checksum mismatch",
            LineKind::Other,
        ),
    ];
    for (line, kind) in cases {
        assert_eq!(line_kind(line), kind, "{line}");
    }
}

#[test]
fn excerpts_are_bounded() {
    let many: String = (0..50)
        .map(|i| format!("2026/11/23 00:00:{i:02} ERROR : f{i}: Failed to copy: x"))
        .collect::<Vec<_>>()
        .join("\n");
    let c = run(&many, "");
    assert_eq!(c.excerpt.lines().count(), EXCERPT_LINES);
    assert!(c.excerpt.ends_with("f49: Failed to copy: x"));
    let long = "x".repeat(2000);
    assert!(run(&long, "").summary.chars().count() <= LINE_CHARS + 1);
}

#[test]
fn known_secrets_and_key_like_values_are_scrubbed() {
    let known = SecretString::from("CANARY-ENC-PASSWORD-2b8e41");
    let redactor = Redactor::new([&known]);
    let text = "crypt password CANARY-ENC-PASSWORD-2b8e41 rejected; \
                account=0051a2b3c4d5e6f key=K005AbCdEfGhIjKlMnOpQrStUvWxYz0 \
                Authorization: Bearer 4_0051a2b3c4d5e6f0000000002_01b2c3d4_a1b2c3_acct_AbCdEf= \
                token: s3cr3tValue bucket truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9 \
                folder 9babab19-acc0-4587-aa05-ccd8103a1148/pool0 \
                file 4_z56b124abe83975857ab70118_f11658776f00f68f9_d20211007_m005928_c000 \
                stray K005ZyXwVuTsRqPoNmLkJiHgFe9";
    let out = redactor.scrub(text);
    for secret in [
        "CANARY-ENC-PASSWORD-2b8e41",
        "K005AbCdEfGhIjKlMnOpQrStUvWxYz0",
        "acct_AbCdEf",
        "s3cr3tValue",
        "K005ZyXwVuTsRqPoNmLkJiHgFe9",
    ] {
        assert!(!out.contains(secret), "{secret} survived: {out}");
    }
    // Identifiers a technician needs stay.
    for kept in [
        "account=0051a2b3c4d5e6f",
        "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9",
        "9babab19-acc0-4587-aa05-ccd8103a1148/pool0",
        "4_z56b124abe83975857ab70118_f11658776f00f68f9",
    ] {
        assert!(out.contains(kept), "{kept} was lost: {out}");
    }
}

#[test]
fn short_known_secrets_are_not_searched() {
    let short = SecretString::from("abc");
    let r = Redactor::new([&short]);
    assert_eq!(r.scrub("abc def"), "abc def");
    assert!(format!("{r:?}").contains("0 secrets"));
}

#[test]
fn classification_redacts_summary_and_excerpt() {
    let known = SecretString::from("CANARY-B2-APPKEY-7f3a9c");
    let redactor = Redactor::new([&known]);
    let c = classify(
        Some(
            "2026/11/23 00:00:01 CRITICAL: Failed to create file system: failed to authorize account: key CANARY-B2-APPKEY-7f3a9c (401 unauthorized)",
        ),
        Some("debug key=CANARY-B2-APPKEY-7f3a9c"),
        false,
        &redactor,
    );
    assert_eq!(c.class, ErrorClass::Auth);
    assert!(!c.summary.contains("CANARY"));
    assert!(!c.excerpt.contains("CANARY"));
}
