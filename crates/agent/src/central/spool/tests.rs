use super::*;
use proptest::prelude::*;

/// A report body that carries its number and the lost count, like the real encoder.
fn body(n: u32, lost: u64) -> Vec<u8> {
    format!(
        "{{\"n\":{n},\"lost\":{lost},\"pad\":\"{}\"}}",
        "x".repeat(40)
    )
    .into_bytes()
}

fn parse_body(bytes: &[u8]) -> (u32, u64) {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    (
        u32::try_from(v["n"].as_u64().unwrap()).unwrap(),
        v["lost"].as_u64().unwrap(),
    )
}

fn drain(spool: &mut Spool) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while let Some((seq, bytes)) = spool.oldest().unwrap() {
        out.push(parse_body(&bytes));
        spool.remove(seq).unwrap();
    }
    out
}

const BODY_RECORD: u64 = 98; // record_len(body(..).len()) for one-digit numbers

#[test]
fn record_round_trip_and_layout() {
    let r = Record::Report {
        seq: 7,
        announced: 2,
        payload: b"{}".to_vec(),
    };
    let bytes = r.encode();
    assert_eq!(&bytes[..4], b"TAS1");
    assert_eq!(bytes[4], b'R');
    assert_eq!(bytes.len() as u64, record_len(2));
    assert_eq!(decode_record(&bytes), Some((r, bytes.len())));
    for r in [Record::Removed { seq: 3 }, Record::Lost { count: 9 }] {
        let bytes = r.encode();
        assert_eq!(decode_record(&bytes), Some((r, bytes.len())));
    }
    assert_eq!(record_len(body(1, 0).len()), BODY_RECORD);
}

#[test]
fn a_flipped_bit_fails_the_checksum() {
    let bytes = Record::Report {
        seq: 1,
        announced: 0,
        payload: b"hello".to_vec(),
    }
    .encode();
    for i in 4..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(decode_record(&bad).is_none(), "byte {i}");
    }
}

#[test]
fn delivered_oldest_first_and_removed_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    for n in 1..=3 {
        spool.push(|lost| body(n, lost)).unwrap();
    }
    // Looking does not remove.
    let (seq, bytes) = spool.oldest().unwrap().unwrap();
    assert_eq!(parse_body(&bytes), (1, 0));
    assert_eq!(spool.oldest().unwrap().unwrap().0, seq);
    assert_eq!(spool.len(), 3);
    spool.remove(seq).unwrap();
    assert!(matches!(
        spool.remove(seq),
        Err(SpoolError::UnknownSeq { .. })
    ));
    assert_eq!(drain(&mut spool), vec![(2, 0), (3, 0)]);
    assert!(spool.is_empty());
    // Fully drained: compacted to an empty file.
    assert_eq!(spool.file_len(), 0);
}

#[test]
fn survives_a_restart_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=5 {
            spool.push(|lost| body(n, lost)).unwrap();
        }
        let (seq, _) = spool.oldest().unwrap().unwrap();
        spool.remove(seq).unwrap();
    }
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.len(), 4);
    spool.push(|lost| body(6, lost)).unwrap();
    assert_eq!(
        drain(&mut spool),
        vec![(2, 0), (3, 0), (4, 0), (5, 0), (6, 0)]
    );
    let (_, mode) = fs::owner_and_mode(spool.path()).unwrap_or((0, 0o600));
    assert_eq!(mode, 0o600);
}

#[test]
fn full_spool_drops_oldest_and_the_next_report_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    // Room for exactly three reports.
    let mut spool = Spool::open(dir.path(), 3 * BODY_RECORD).unwrap();
    for n in 1..=3 {
        assert_eq!(spool.push(|lost| body(n, lost)).unwrap().dropped, 0);
    }
    let pushed = spool.push(|lost| body(4, lost)).unwrap();
    assert_eq!(pushed.dropped, 1);
    assert_eq!(pushed.announced_lost, 1);
    assert!(spool.live_bytes() <= 3 * BODY_RECORD);
    assert_eq!(spool.stats().dropped_for_cap, 1);
    // The report that caused the drop carries the count; the next one starts from zero.
    spool.push(|lost| body(5, lost)).unwrap();
    spool.push(|lost| body(6, lost)).unwrap();
    // Dropping report 4 (which announced one loss) passes that loss on: 7 announces 2.
    let pushed = spool.push(|lost| body(7, lost)).unwrap();
    assert_eq!((pushed.dropped, pushed.announced_lost), (1, 2));
    let delivered = drain(&mut spool);
    assert_eq!(delivered, vec![(5, 1), (6, 1), (7, 2)]);
    // Every one of the four dropped reports is announced exactly once.
    assert_eq!(delivered.iter().map(|(_, l)| l).sum::<u64>(), 4);
}

#[test]
fn a_rejected_report_passes_its_announcement_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
    for n in 1..=3 {
        spool.push(|lost| body(n, lost)).unwrap();
    }
    let (two, _) = spool.oldest().unwrap().unwrap();
    spool.remove(two).unwrap();
    let (three, bytes) = spool.oldest().unwrap().unwrap();
    assert_eq!(parse_body(&bytes), (3, 1));
    spool.reject(three).unwrap();
    assert_eq!(spool.unannounced_lost(), 1);
    drop(spool);
    // Persisted: still owed after a restart.
    let mut spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
    assert_eq!(spool.unannounced_lost(), 1);
    spool.push(|lost| body(4, lost)).unwrap();
    assert_eq!(drain(&mut spool), vec![(4, 1)]);
}

#[test]
fn drop_count_survives_a_restart_through_the_report() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
        for n in 1..=4 {
            spool.push(|lost| body(n, lost)).unwrap();
        }
    }
    let mut spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
    assert_eq!(spool.unannounced_lost(), 0);
    assert_eq!(drain(&mut spool), vec![(3, 1), (4, 1)]);
}

#[test]
fn a_lowered_cap_drops_at_open_and_announces_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=4 {
            spool.push(|lost| body(n, lost)).unwrap();
        }
    }
    let spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
    assert_eq!(spool.len(), 2);
    assert_eq!(spool.unannounced_lost(), 2);
    // Still announced after another restart (kept as an `L` record).
    drop(spool);
    let mut spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
    assert_eq!(spool.unannounced_lost(), 2);
    spool.push(|lost| body(5, lost)).unwrap();
    assert_eq!(drain(&mut spool), vec![(4, 0), (5, 3)]);
}

#[test]
fn torn_tail_is_discarded_counted_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=2 {
            spool.push(|lost| body(n, lost)).unwrap();
        }
    }
    // A crash in the middle of appending report 3: half a record at the end.
    let path = dir.path().join(SPOOL_FILE);
    let torn = Record::Report {
        seq: 3,
        announced: 0,
        payload: body(3, 0),
    }
    .encode();
    fs::append_synced(&path, &torn[..torn.len() / 2], 0o600).unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.len(), 2);
    assert_eq!(spool.stats().lost_corrupt, 1);
    assert_eq!(spool.unannounced_lost(), 1);
    // The file was cut back to a record boundary, so new appends decode.
    spool.push(|lost| body(4, lost)).unwrap();
    drop(spool);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.stats().lost_corrupt, 0);
    assert_eq!(drain(&mut spool), vec![(1, 0), (2, 0), (4, 1)]);
}

#[test]
fn a_torn_ack_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.push(|lost| body(1, lost)).unwrap();
    }
    let path = dir.path().join(SPOOL_FILE);
    let ack = Record::Removed { seq: 1 }.encode();
    fs::append_synced(&path, &ack[..ack.len() - 3], 0o600).unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.unannounced_lost(), 0);
    // The report is delivered again (central de-duplicates on report_id).
    assert_eq!(drain(&mut spool), vec![(1, 0)]);
}

#[test]
fn corruption_in_the_middle_resynchronises() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=3 {
            spool.push(|lost| body(n, lost)).unwrap();
        }
    }
    let path = dir.path().join(SPOOL_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let second = usize::try_from(BODY_RECORD).unwrap() + 30;
    bytes[second] ^= 0xff;
    fs::write_atomic(&path, &bytes, 0o600).unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.stats().lost_corrupt, 1);
    spool.push(|lost| body(4, lost)).unwrap();
    assert_eq!(drain(&mut spool), vec![(1, 0), (3, 0), (4, 1)]);
}

#[test]
fn corruption_after_open_is_skipped_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    for n in 1..=2 {
        spool.push(|lost| body(n, lost)).unwrap();
    }
    let path = dir.path().join(SPOOL_FILE);
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0xff;
    fs::write_atomic(&path, &bytes, 0o600).unwrap();
    let (_, first) = spool.oldest().unwrap().unwrap();
    assert_eq!(parse_body(&first), (2, 0));
    assert_eq!(spool.unannounced_lost(), 1);
}

/// Garbage that never held a report loses none: it is skipped and counted as bytes.
#[test]
fn garbage_file_opens_empty_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SPOOL_FILE);
    fs::write_atomic(&path, &[0u8; 1000], 0o600).unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.unannounced_lost(), 0);
    assert_eq!(spool.stats().lost_corrupt, 0);
    assert_eq!(spool.stats().skipped_bytes, 1000);
    spool.push(|lost| body(1, lost)).unwrap();
    assert_eq!(
        drain(&mut spool),
        vec![(1, 0)],
        "the next report announces no loss"
    );
}

#[test]
fn garbage_between_and_after_records_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.push(|lost| body(1, lost)).unwrap();
    }
    let path = dir.path().join(SPOOL_FILE);
    let junk = b"\n{not a record}\x00\x01TAS\xff".to_vec();
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&junk);
    Record::Report {
        seq: 2,
        announced: 0,
        payload: body(2, 0),
    }
    .encode_into(&mut bytes);
    bytes.extend_from_slice(&junk);
    fs::write_atomic(&path, &bytes, 0o600).unwrap();
    let log = decode_log(&bytes);
    assert_eq!((log.corrupt_regions, log.lost_reports), (1, 0));
    assert_eq!(log.skipped_bytes, 2 * junk.len() as u64);
    assert!(!log.torn_report);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.unannounced_lost(), 0);
    assert_eq!(drain(&mut spool), vec![(1, 0), (2, 0)]);
}

/// A report whose header is damaged too (its magic) is still counted: its number is
/// missing between the valid reports around it.
#[test]
fn a_report_with_a_damaged_header_is_counted_by_its_missing_number() {
    let mut bytes = Vec::new();
    for seq in 1..=3 {
        Record::Report {
            seq,
            announced: 0,
            payload: body(1, 0),
        }
        .encode_into(&mut bytes);
    }
    let second = usize::try_from(BODY_RECORD).unwrap();
    bytes[second] ^= 0xff; // the `T` of report 2's magic
    let log = decode_log(&bytes);
    assert_eq!(log.records.len(), 2);
    assert_eq!(log.lost_reports, 1);
    // Delivered reports' numbers are accounted for by their removal records.
    let mut bytes = Vec::new();
    Record::Report {
        seq: 5,
        announced: 0,
        payload: body(5, 0),
    }
    .encode_into(&mut bytes);
    Record::Removed { seq: 5 }.encode_into(&mut bytes);
    bytes.extend_from_slice(b"junk junk junk junk junk junk junk junk");
    Record::Report {
        seq: 6,
        announced: 0,
        payload: body(6, 0),
    }
    .encode_into(&mut bytes);
    assert_eq!(decode_log(&bytes).lost_reports, 0);
}

#[test]
fn a_torn_report_header_counts_even_without_its_number() {
    let mut bytes = Record::Report {
        seq: 1,
        announced: 0,
        payload: body(1, 0),
    }
    .encode();
    bytes.extend_from_slice(b"TAS1R\x00\x00");
    let log = decode_log(&bytes);
    assert!(log.torn_report);
    assert_eq!((log.lost_reports, log.skipped_bytes), (1, 7));
    // A torn magic alone says nothing about what was being written: skipped, not lost.
    let mut bytes = Record::Report {
        seq: 1,
        announced: 0,
        payload: body(1, 0),
    }
    .encode();
    bytes.extend_from_slice(b"TAS");
    let log = decode_log(&bytes);
    assert_eq!((log.lost_reports, log.skipped_bytes), (0, 3));
}

#[test]
fn oversized_report_is_refused_without_dropping_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 2 * BODY_RECORD).unwrap();
    spool.push(|lost| body(1, lost)).unwrap();
    let err = spool.push(|_| vec![b'x'; 500]).unwrap_err();
    assert!(matches!(err, SpoolError::TooLarge { size: 500, .. }));
    assert_eq!(err.fault(), Fault::Bug);
    assert_eq!(spool.len(), 1);
}

#[test]
fn compaction_keeps_the_file_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    for n in 0..600u32 {
        spool.push(|lost| body(n % 10, lost)).unwrap();
        if n % 3 != 0 {
            let (seq, _) = spool.oldest().unwrap().unwrap();
            spool.remove(seq).unwrap();
        }
        assert!(spool.file_len() <= 2 * spool.live_bytes() + COMPACT_SLACK + 200);
    }
    let len = spool.len();
    drop(spool);
    assert_eq!(Spool::open(dir.path(), 1 << 20).unwrap().len(), len);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let log = decode_log(&bytes);
        // Valid records never overlap and lie inside the input.
        let mut end = 0;
        for r in &log.records {
            prop_assert!(r.offset >= end);
            end = r.offset + r.len;
        }
        prop_assert!(end <= bytes.len() as u64);
    }

    #[test]
    fn records_round_trip(seq in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..300), kind in 0u8..3) {
        let record = match kind {
            0 => Record::Report { seq, announced: seq / 3, payload },
            1 => Record::Removed { seq },
            _ => Record::Lost { count: seq },
        };
        let bytes = record.encode();
        prop_assert_eq!(decode_record(&bytes), Some((record, bytes.len())));
    }

    /// Bytes without a report header, inserted between the records of a valid log, are
    /// skipped: every record still decodes and no report counts as lost.
    #[test]
    fn garbage_never_counts_as_a_lost_report(
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..4),
        slots in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let records: Vec<Record> = (1..=4u64)
            .map(|seq| Record::Report { seq, announced: 0, payload: body(1, 0) })
            .collect();
        let mut chunks: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
        let mut inserted = 0u64;
        for (junk, slot) in junk.iter().zip(&slots) {
            // No report header and no magic at all: what a stray write leaves.
            let junk: Vec<u8> = junk.iter().map(|b| if *b == b'T' { b'x' } else { *b }).collect();
            let at = slot.index(chunks.len() + 1);
            inserted += junk.len() as u64;
            chunks.insert(at, junk);
        }
        let bytes = chunks.concat();
        let log = decode_log(&bytes);
        let got: Vec<Record> = log.records.into_iter().map(|l| l.record).collect();
        prop_assert_eq!(got, records);
        prop_assert_eq!(log.lost_reports, 0);
        prop_assert_eq!(log.skipped_bytes, inserted);
    }

    /// Any truncation of a valid log decodes to a prefix of its records.
    #[test]
    fn truncation_yields_a_prefix(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let records: Vec<Record> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Record::Report { seq: i as u64, announced: 0, payload })
            .collect();
        let mut bytes = Vec::new();
        for r in &records {
            r.encode_into(&mut bytes);
        }
        let cut = cut.index(bytes.len() + 1);
        let log = decode_log(&bytes[..cut]);
        let got: Vec<Record> = log.records.into_iter().map(|l| l.record).collect();
        prop_assert_eq!(&got[..], &records[..got.len()]);
        let consumed: usize = got.iter().map(|r| r.encode().len()).sum();
        prop_assert_eq!(log.torn_at.is_some(), consumed != cut);
    }

}

proptest! {
    // Few cases: every operation fsyncs.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The spool behaves like a FIFO queue across pushes, removals and restarts, as long
    /// as the cap is never hit.
    #[test]
    fn spool_matches_a_fifo_model(ops in proptest::collection::vec(0u8..3, 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let mut model = std::collections::VecDeque::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                0 => {
                    let n = next % 10;
                    next += 1;
                    spool.push(|lost| body(n, lost)).unwrap();
                    model.push_back(n);
                }
                1 => {
                    let got = spool.oldest().unwrap();
                    prop_assert_eq!(got.as_ref().map(|(_, b)| parse_body(b).0), model.front().copied());
                    if let Some((seq, _)) = got {
                        spool.remove(seq).unwrap();
                        model.pop_front();
                    }
                }
                _ => {
                    drop(spool);
                    spool = Spool::open(dir.path(), 1 << 20).unwrap();
                }
            }
            prop_assert_eq!(spool.len(), model.len());
        }
    }
}

/// A failed append (disk full, I/O error) may leave part of a record behind; the spool
/// rebuilds its index from the file before the next operation instead of trusting offsets.
#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test swaps the file to make an append fail"
)]
fn a_failed_partial_append_is_recovered_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SPOOL_FILE);
    let aside = dir.path().join("aside");
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    for n in 1..=2 {
        spool.push(|lost| body(n, lost)).unwrap();
    }
    // Make the next append fail: a directory where the log was.
    std::fs::rename(&path, &aside).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = spool.push(|lost| body(3, lost)).unwrap_err();
    assert!(matches!(err, SpoolError::Io(_)), "{err:?}");
    assert_eq!(err.fault(), Fault::Nas);
    // Put the log back with half of report 3 at its end, as a partial write would.
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    let torn = Record::Report {
        seq: 3,
        announced: 0,
        payload: body(3, 0),
    }
    .encode();
    fs::append_synced(&path, &torn[..torn.len() / 2], 0o600).unwrap();
    spool.push(|lost| body(4, lost)).unwrap();
    assert_eq!(drain(&mut spool), vec![(1, 0), (2, 0), (4, 1)]);
}
