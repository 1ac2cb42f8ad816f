//! PURE: "Encryption really on" — recognises rclone crypt objects by name, size and header.
//!
//! Owns: the rclone crypt format facts the verifier relies on (`RCLONE\0\0` magic + 24-byte
//! nonce header, the encrypted-size rule, `.bin` names with filename encryption off,
//! base32hex names with it on; `shared/b2/REFERENCE.md` §4), the choice of which listed
//! object to sample, and the per-pool finding.
//! Does not: do I/O (the caller lists and downloads the first bytes), or decrypt: proving
//! the *right* password would need the task's password, which the agent does not handle.
//! Invariants: a plaintext object is always `Fail` (SOP 7.3), whatever its name; an empty
//! folder (nothing uploaded yet) is `Unknown`, never `Pass`.
//! Limitations: one object per pool is downloaded (the one most likely to be plaintext:
//! a name without `.bin` is preferred); an object that merely starts with the magic and
//! has a crypt-compatible size passes.

use super::api::FileEntry;
use super::findings::{CheckId, Expected, Fetch, Finding, PoolObservation, Sample, Status, why};

/// rclone crypt file magic (`backend/crypt/cipher.go` `fileMagic`).
pub const MAGIC: &[u8; 8] = b"RCLONE\0\0";
/// Magic + 24-byte nonce: the bytes to download.
pub const HEADER_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Plaintext bytes per chunk, and per-chunk overhead (secretbox tag).
const BLOCK_DATA: u64 = 64 * 1024;
const BLOCK_OVERHEAD: u64 = 16;
/// rclone crypt's suffix with filename encryption off (TrueNAS never changes it).
const BIN_SUFFIX: &str = ".bin";

/// Encrypted size of `n` plaintext bytes (`cipher.go` `EncryptedSize`).
pub fn encrypted_size(n: u64) -> u64 {
    let full = n / BLOCK_DATA;
    let rest = n % BLOCK_DATA;
    HEADER_LEN as u64
        + full * (BLOCK_DATA + BLOCK_OVERHEAD)
        + if rest == 0 { 0 } else { rest + BLOCK_OVERHEAD }
}

/// Plaintext size of an object of `size` bytes, or `None` when no rclone crypt file can
/// have that size (`cipher.go` `DecryptedSize`).
pub fn decrypted_size(size: u64) -> Option<u64> {
    let body = size.checked_sub(HEADER_LEN as u64)?;
    let chunk = BLOCK_DATA + BLOCK_OVERHEAD;
    let (full, rest) = (body / chunk, body % chunk);
    match rest {
        0 => Some(full * BLOCK_DATA),
        r if r > BLOCK_OVERHEAD => Some(full * BLOCK_DATA + r - BLOCK_OVERHEAD),
        _ => None,
    }
}

/// How an object's name (relative to the pool folder) looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm {
    /// `photo.jpg.bin`: rclone crypt with filename encryption off (the SOP setting).
    BinSuffix,
    /// Every segment is base32hex of whole AES blocks: filename encryption on.
    Encrypted,
    /// Neither: not written by an rclone crypt remote (likely a plaintext upload).
    Plain,
}

/// Classifies `name` (a full object name) below `prefix`.
pub fn name_form(name: &str, prefix: &str) -> NameForm {
    let relative = name.strip_prefix(prefix).unwrap_or(name);
    let last = relative.rsplit('/').next().unwrap_or(relative);
    if last.len() > BIN_SUFFIX.len() && last.ends_with(BIN_SUFFIX) {
        return NameForm::BinSuffix;
    }
    if !relative.is_empty() && relative.split('/').all(is_encrypted_segment) {
        return NameForm::Encrypted;
    }
    NameForm::Plain
}

/// A name segment rclone's "standard" filename encryption could have produced: lower-case
/// base32hex without padding of a positive multiple of 16 bytes, at most 2048 bytes.
pub fn is_encrypted_segment(segment: &str) -> bool {
    let alphabet_ok = segment
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
    let decoded = segment.len() * 5 / 8;
    alphabet_ok
        && decoded > 0
        && decoded % 16 == 0
        && decoded <= 2048
        && (decoded * 8).div_ceil(5) == segment.len()
}

/// What the first bytes of an object say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderVerdict {
    /// `RCLONE\0\0` and a non-zero 24-byte nonce.
    Crypt,
    /// The magic, but a nonce of zeros: rclone takes nonces from the OS RNG.
    ZeroNonce,
    /// The magic, but the object is shorter than a crypt header.
    Truncated,
    /// Does not start with the magic: plaintext (or another format).
    NoMagic,
}

/// Judges the first (up to [`HEADER_LEN`]) bytes of an object.
pub fn inspect_header(head: &[u8]) -> HeaderVerdict {
    if head.len() < MAGIC.len() {
        // An object shorter than the magic cannot be a crypt file either way.
        return if !head.is_empty() && MAGIC.starts_with(head) {
            HeaderVerdict::Truncated
        } else {
            HeaderVerdict::NoMagic
        };
    }
    if !head.starts_with(MAGIC) {
        return HeaderVerdict::NoMagic;
    }
    if head.len() < HEADER_LEN {
        return HeaderVerdict::Truncated;
    }
    let nonce = &head[MAGIC.len()..MAGIC.len() + NONCE_LEN];
    if nonce.iter().all(|&b| b == 0) {
        HeaderVerdict::ZeroNonce
    } else {
        HeaderVerdict::Crypt
    }
}

/// A real upload (not a folder marker, hide marker, unfinished large file, or the
/// `.bzEmpty` placeholder the B2 web UI creates for folders).
pub fn is_backup_object(file: &FileEntry) -> bool {
    let last = file.name.rsplit('/').next().unwrap_or_default();
    file.action == "upload" && last != ".bzEmpty"
}

/// The object to download: the first one whose name does not look like rclone crypt
/// (the most likely plaintext), else the first real upload.
pub fn pick_sample<'a>(files: &'a [FileEntry], prefix: &str) -> Option<&'a FileEntry> {
    let mut uploads = files.iter().filter(|f| is_backup_object(f));
    let first = uploads.clone().next()?;
    Some(
        uploads
            .find(|f| name_form(&f.name, prefix) == NameForm::Plain)
            .unwrap_or(first),
    )
}

/// The per-pool "Encryption really on" finding.
pub fn evaluate_pool(expected: &Expected, pool: &PoolObservation) -> Finding {
    let unknown = |detail: String| {
        Finding::for_pool(
            CheckId::PoolEncryptionOn,
            &pool.pool,
            Status::Unknown,
            detail,
        )
    };
    let files = match &pool.listing {
        Fetch::Got(files) => files,
        Fetch::Failed(e) => {
            return unknown(format!("listing `{}` failed: {}", pool.prefix, why(e)));
        }
        Fetch::Skipped(reason) => return unknown(reason.clone()),
    };
    let Some(sample) = &pool.sample else {
        let placeholders = if files.is_empty() {
            String::new()
        } else {
            " (only folder placeholders or unfinished uploads)".to_owned()
        };
        return unknown(format!(
            "Nothing uploaded yet under `{}/{}`{placeholders}: run the first sync \
             (SOP 7.1, Cloud Sync Tasks → Run Now), then check again.",
            expected.bucket, pool.prefix
        ));
    };
    let form = name_form(&sample.name, &pool.prefix);
    match &sample.head {
        Fetch::Got(read) => judge_sample(expected, pool, sample, form, &read.bytes),
        Fetch::Failed(e) => unknown(format!(
            "could not read the first bytes of `{}`: {}{}",
            sample.name,
            why(e),
            if form == NameForm::Plain {
                "; its name has no `.bin` suffix, which suggests a plaintext upload"
            } else {
                ""
            }
        )),
        Fetch::Skipped(reason) => unknown(reason.clone()),
    }
}

fn judge_sample(
    expected: &Expected,
    pool: &PoolObservation,
    sample: &Sample,
    form: NameForm,
    head: &[u8],
) -> Finding {
    let verdict = inspect_header(head);
    let size_ok = decrypted_size(sample.content_length).is_some();
    let name = &sample.name;
    let size = sample.content_length;
    let (status, detail) = match (verdict, size_ok) {
        (HeaderVerdict::Crypt, true) => (
            Status::Pass,
            format!(
                "`{name}` ({size} bytes) starts with rclone's crypt header (`RCLONE\\0\\0` + \
                 24-byte nonce) and its size fits the crypt format: Remote Encryption is on.{}",
                name_note(form)
            ),
        ),
        (HeaderVerdict::Crypt, false) => (
            Status::Fail,
            format!(
                "`{name}` starts with rclone's crypt header but {size} bytes is not a possible \
                 crypt size: the object is truncated or was not written by rclone crypt, and \
                 cannot be restored. Check the task log, and what else writes to `{}`.",
                pool.prefix
            ),
        ),
        (HeaderVerdict::ZeroNonce, _) => (
            Status::Fail,
            format!(
                "`{name}` starts with rclone's magic but its nonce is all zeros, which rclone \
                 crypt never writes: it is not a real crypt file. Check what writes to `{}`.",
                pool.prefix
            ),
        ),
        (HeaderVerdict::NoMagic | HeaderVerdict::Truncated, _) => {
            (Status::Fail, plaintext_detail(expected, pool, name, form))
        }
    };
    Finding::for_pool(CheckId::PoolEncryptionOn, &pool.pool, status, detail)
}

fn name_note(form: NameForm) -> &'static str {
    match form {
        NameForm::BinSuffix => {
            " Names keep the `.bin` suffix of Filename Encryption off, as the SOP wants."
        }
        NameForm::Encrypted => {
            " Note: the names are encrypted, i.e. Filename Encryption is on; the SOP says off \
             (restores need the same setting)."
        }
        NameForm::Plain => {
            " Note: the name lacks the `.bin` suffix, so rclone (Filename Encryption off) will \
             skip this object on restore; check what uploaded it."
        }
    }
}

fn plaintext_detail(
    expected: &Expected,
    pool: &PoolObservation,
    name: &str,
    form: NameForm,
) -> String {
    let bin_note = if form == NameForm::BinSuffix {
        " (a `.bin` name alone proves nothing)"
    } else {
        ""
    };
    format!(
        "`{name}` in bucket `{}` is NOT encrypted: it does not start with rclone's crypt header \
         `RCLONE\\0\\0`{bin_note}, so anyone with access to the bucket can read it (SOP 7.3). \
         Stop and fix before calling the backup operational: on the Cloud Sync task for pool \
         `{}` turn Remote Encryption on (Filename Encryption off) with the password and salt \
         from IT Glue (SOP 5.2), run the task again, then have the plaintext objects under \
         `{}` removed (Object Lock keeps them until their retention ends).",
        expected.bucket, pool.pool, pool.prefix
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PREFIX: &str = "9babab19-acc0-4587-aa05-ccd8103a1148/pool0/";

    /// Lower-case base32hex without padding, as rclone writes encrypted name segments.
    fn base32hex(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
        let mut out = String::new();
        for chunk in bytes.chunks(5) {
            let mut buf = [0u8; 5];
            buf[..chunk.len()].copy_from_slice(chunk);
            let bits = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let chars = (chunk.len() * 8).div_ceil(5);
            for i in 0..chars {
                let index = (bits >> (35 - 5 * i)) & 31;
                out.push(char::from(ALPHABET[usize::try_from(index).unwrap()]));
            }
        }
        out
    }

    fn header(nonce_byte: u8) -> Vec<u8> {
        let mut head = MAGIC.to_vec();
        head.extend(std::iter::repeat_n(nonce_byte, NONCE_LEN));
        head
    }

    #[test]
    fn real_rclone_fixtures_are_recognised() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/b2");
        let crypt = std::fs::read(data.join("crypt-invoice.txt.bin")).unwrap();
        let empty = std::fs::read(data.join("crypt-empty.txt.bin")).unwrap();
        let plain = std::fs::read(data.join("plain-invoice.txt")).unwrap();
        assert_eq!(inspect_header(&crypt[..HEADER_LEN]), HeaderVerdict::Crypt);
        assert_eq!(inspect_header(&empty), HeaderVerdict::Crypt);
        assert_eq!(inspect_header(&plain[..HEADER_LEN]), HeaderVerdict::NoMagic);
        let plain_len = u64::try_from(plain.len()).unwrap();
        let crypt_len = u64::try_from(crypt.len()).unwrap();
        assert_eq!(encrypted_size(plain_len), crypt_len);
        assert_eq!(decrypted_size(crypt_len), Some(plain_len));
        assert_eq!(decrypted_size(32), Some(0));
    }

    #[test]
    fn documented_sizes_match() {
        // REFERENCE §4.1: 0 → 32, 1 → 49, 65537 → 65601, 1 MiB → 1048864.
        assert_eq!(encrypted_size(0), 32);
        assert_eq!(encrypted_size(1), 49);
        assert_eq!(encrypted_size(65_537), 65_601);
        assert_eq!(encrypted_size(1 << 20), 1_048_864);
        for impossible in [0, 31, 33, 48, 32 + 65_552 + 16] {
            assert_eq!(decrypted_size(impossible), None, "{impossible}");
        }
    }

    #[test]
    fn real_rclone_standard_names_are_encrypted_form() {
        for name in [
            "ba6706js64tivq79820gr2f3as",
            "e0ht5gecakn8id9n92puukaq00/jnqrpjo9829mdjlooktf711ius",
        ] {
            assert_eq!(
                name_form(&format!("{PREFIX}{name}"), PREFIX),
                NameForm::Encrypted,
                "{name}"
            );
        }
    }

    #[test]
    fn names_are_classified() {
        let form = |n: &str| name_form(&format!("{PREFIX}{n}"), PREFIX);
        assert_eq!(form("docs/invoice.txt.bin"), NameForm::BinSuffix);
        assert_eq!(form("docs/invoice.txt"), NameForm::Plain);
        assert_eq!(form(".bin"), NameForm::Plain);
        assert_eq!(form("Archive"), NameForm::Plain);
        // Upper case is not base32hex as rclone writes it.
        assert_eq!(form("BA6706JS64TIVQ79820GR2F3AS"), NameForm::Plain);
    }

    #[test]
    fn headers_are_judged() {
        assert_eq!(inspect_header(&header(7)), HeaderVerdict::Crypt);
        assert_eq!(inspect_header(&header(0)), HeaderVerdict::ZeroNonce);
        assert_eq!(inspect_header(&MAGIC[..]), HeaderVerdict::Truncated);
        assert_eq!(inspect_header(b"RCL"), HeaderVerdict::Truncated);
        assert_eq!(inspect_header(b""), HeaderVerdict::NoMagic);
        assert_eq!(
            inspect_header(b"%PDF-1.7 hello world, not crypt"),
            HeaderVerdict::NoMagic
        );
    }

    fn entry(name: &str, action: &str) -> FileEntry {
        FileEntry {
            name: format!("{PREFIX}{name}"),
            action: action.to_owned(),
            content_length: 49,
            encryption_mode: Some("SSE-B2".to_owned()),
        }
    }

    #[test]
    fn sample_prefers_a_plaintext_looking_name_and_skips_placeholders() {
        let files = [
            entry(".bzEmpty", "upload"),
            entry("a.txt.bin", "upload"),
            entry("b/", "folder"),
            entry("c.txt", "upload"),
        ];
        assert_eq!(
            pick_sample(&files, PREFIX).unwrap().name,
            format!("{PREFIX}c.txt")
        );
        assert_eq!(
            pick_sample(&files[..3], PREFIX).unwrap().name,
            format!("{PREFIX}a.txt.bin")
        );
        assert_eq!(pick_sample(&files[..1], PREFIX), None);
        assert_eq!(pick_sample(&[], PREFIX), None);
    }

    proptest! {
        #[test]
        fn encrypted_sizes_round_trip(n in 0u64..(1 << 40)) {
            prop_assert_eq!(decrypted_size(encrypted_size(n)), Some(n));
        }

        #[test]
        fn every_possible_size_comes_from_a_plaintext_size(size in 0u64..(1 << 40)) {
            if let Some(n) = decrypted_size(size) {
                prop_assert_eq!(encrypted_size(n), size);
            }
        }

        #[test]
        fn bin_suffix_names_are_recognised(name in "[A-Za-z0-9 _.-]{1,40}(/[A-Za-z0-9 _.-]{1,20}){0,3}") {
            let full = format!("{PREFIX}{name}.bin");
            prop_assert_eq!(name_form(&full, PREFIX), NameForm::BinSuffix);
        }

        #[test]
        fn encrypted_segments_are_recognised(blocks in 1usize..8, seed in any::<u64>(), depth in 1usize..4) {
            let segment = |salt: u64| {
                let bytes: Vec<u8> = (0..blocks * 16)
                    .map(|i| u8::try_from((seed.wrapping_add(salt).wrapping_mul(i as u64 + 1) >> 13) & 0xff).unwrap())
                    .collect();
                base32hex(&bytes)
            };
            let path: Vec<String> = (0..depth as u64).map(segment).collect();
            let full = format!("{PREFIX}{}", path.join("/"));
            prop_assert_eq!(name_form(&full, PREFIX), NameForm::Encrypted);
        }

        #[test]
        fn any_header_with_magic_and_nonzero_nonce_is_crypt(nonce in proptest::collection::vec(any::<u8>(), NONCE_LEN), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(nonce.iter().any(|&b| b != 0));
            let mut head = MAGIC.to_vec();
            head.extend(&nonce);
            head.extend(&tail);
            prop_assert_eq!(inspect_header(&head[..HEADER_LEN]), HeaderVerdict::Crypt);
        }

        #[test]
        fn anything_without_the_magic_is_not_crypt(head in proptest::collection::vec(any::<u8>(), 8..64)) {
            prop_assume!(!head.starts_with(MAGIC));
            prop_assert_eq!(inspect_header(&head), HeaderVerdict::NoMagic);
        }
    }
}
