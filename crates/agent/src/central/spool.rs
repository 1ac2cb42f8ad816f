//! The durable, bounded on-disk queue of reports waiting for central.
//!
//! Owns: `reports.spool` in the state directory — an append-only log of checksummed
//! records — and its in-memory index: which reports are still pending, in order, how
//! many were lost (dropped for the cap or torn) and not yet announced, and compaction.
//! Does not: build reports (`report`) or talk HTTP (`outbox`); it stores opaque bytes.
//!
//! Record format (all integers big-endian):
//! `"TAS1" | kind u8 | seq u64 | aux u64 | len u32 | payload[len] | sha256(kind…payload)[..8]`,
//! with kinds `R` (a report: payload = its JSON, `aux` = how many lost reports it
//! announces), `A` (report `seq` is gone: delivered, rejected for good, or dropped for the
//! cap) and `L` (`seq` holds a count of lost reports that no later report announces yet).
//!
//! Invariants:
//! - every append is one `write` + `fdatasync`; a report is on disk before [`Spool::push`]
//!   returns, and is removed only by [`Spool::remove`] (after a 2xx or a permanent 4xx) or
//!   by the cap;
//! - the live reports never take more than the cap; when a new one does not fit, the
//!   oldest are dropped and the count is handed to the new report's encoder, so the
//!   report that follows a drop says how many were dropped. Announcements are carried
//!   forward: dropping (or losing, or having central reject) a report that announced `n`
//!   losses passes those `n` on, so the reports central finally receives announce every
//!   loss exactly once;
//! - decoding ([`decode_log`]) is pure and total: a record with a bad magic, length or
//!   checksum is skipped (resynchronising on the next valid record), never a panic; a
//!   torn tail is cut off at open by an atomic rewrite. Skipped bytes are counted as
//!   bytes; only report records among them (a report header whose number no valid
//!   record accounts for, or a number missing between valid reports) count as lost
//!   reports — garbage that held no report loses none;
//! - compaction is an atomic rewrite (temp + fsync + rename), so a crash at any point
//!   leaves either the old or the new log;
//! - the file stays below about twice the cap plus 64 KiB.
//!
//! Limitations: single process (the daemon); blocking file I/O with fsync — a few ms per
//! call; a report record whose header is damaged too is recognised only by its missing
//! number between valid reports, so one at the very start or end of the log (with no
//! valid report after it) is counted as skipped bytes, not as a lost report.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::fault::Fault;
use crate::fs::{self, FsError};

/// File name inside the state directory.
pub const SPOOL_FILE: &str = "reports.spool";

/// Largest payload a record may carry (central refuses bodies over 1 MiB anyway).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

const MAGIC: &[u8; 4] = b"TAS1";
const HEADER: usize = 4 + 1 + 8 + 8 + 4;
const CHECKSUM: usize = 8;
const OVERHEAD: usize = HEADER + CHECKSUM;
const COMPACT_SLACK: u64 = 64 * 1024;

/// A spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("report spool I/O failed")]
    Io(#[from] FsError),
    #[error("report of {size} bytes is larger than the {limit}-byte limit and cannot be spooled")]
    TooLarge { size: usize, limit: u64 },
    #[error("report spool has no pending report #{seq}")]
    UnknownSeq { seq: u64 },
}

impl SpoolError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            // The state directory lives on the NAS; a failing disk is the NAS's problem.
            SpoolError::Io(_) => Fault::Nas,
            // The agent built an oversized report or lost track of its own queue.
            SpoolError::TooLarge { .. } | SpoolError::UnknownSeq { .. } => Fault::Bug,
        }
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A report (JSON bytes) with its sequence number and the number of lost reports it
    /// announces (its `agent.dropped_reports`).
    Report {
        seq: u64,
        announced: u64,
        payload: Vec<u8>,
    },
    /// Report `seq` is no longer pending.
    Removed { seq: u64 },
    /// `count` reports were lost and no later report has said so yet.
    Lost { count: u64 },
}

impl Record {
    fn parts(&self) -> (u8, u64, u64, &[u8]) {
        match self {
            Record::Report {
                seq,
                announced,
                payload,
            } => (b'R', *seq, *announced, payload),
            Record::Removed { seq } => (b'A', *seq, 0, &[]),
            Record::Lost { count } => (b'L', *count, 0, &[]),
        }
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (kind, seq, aux, payload) = self.parts();
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.push(kind);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&aux.to_be_bytes());
        #[allow(
            clippy::expect_used,
            reason = "invariant: payloads are checked against MAX_PAYLOAD (1 MiB) before encoding"
        )]
        let len = u32::try_from(payload.len()).expect("invariant: payload ≤ MAX_PAYLOAD");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        let sum = checksum(&out[start + MAGIC.len()..]);
        out.extend_from_slice(&sum);
    }

    /// The encoded record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM] {
    let digest = Sha256::digest(body);
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&digest[..CHECKSUM]);
    out
}

/// Encoded size of a report record with a payload of `len` bytes.
pub fn record_len(len: usize) -> u64 {
    (len + OVERHEAD) as u64
}

/// A record and where it sits in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub offset: u64,
    pub len: u64,
    pub record: Record,
}

/// What [`decode_log`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedLog {
    /// Valid records in file order.
    pub records: Vec<Located>,
    /// Unreadable regions skipped in the middle of the log.
    pub corrupt_regions: u64,
    /// Offset where the valid prefix of the log ends when the tail is torn; `None` when
    /// the log ends on a record boundary.
    pub torn_at: Option<u64>,
    /// Whether the torn tail holds (the start of) a report record.
    pub torn_report: bool,
    /// Bytes that are not part of any valid record (unreadable regions and the torn tail).
    pub skipped_bytes: u64,
    /// Report records among the skipped bytes that nothing else accounts for: each
    /// report header (`TAS1` + `R`) found in them whose sequence number has no valid
    /// record, plus each sequence number missing between the valid reports. Garbage
    /// without a report in it loses no report.
    pub lost_reports: u64,
}

/// Decodes one record at the start of `bytes`: `None` when there is no complete valid
/// record there.
pub fn decode_record(bytes: &[u8]) -> Option<(Record, usize)> {
    if bytes.len() < OVERHEAD || &bytes[..4] != MAGIC {
        return None;
    }
    let kind = bytes[4];
    let seq = u64::from_be_bytes(bytes[5..13].try_into().ok()?);
    let aux = u64::from_be_bytes(bytes[13..21].try_into().ok()?);
    let len = u32::from_be_bytes(bytes[21..25].try_into().ok()?) as usize;
    if len > MAX_PAYLOAD || (kind != b'R' && (len != 0 || aux != 0)) {
        return None;
    }
    let end = HEADER + len;
    if bytes.len() < end + CHECKSUM || checksum(&bytes[4..end]) != bytes[end..end + CHECKSUM] {
        return None;
    }
    let record = match kind {
        b'R' => Record::Report {
            seq,
            announced: aux,
            payload: bytes[HEADER..end].to_vec(),
        },
        b'A' => Record::Removed { seq },
        b'L' => Record::Lost { count: seq },
        _ => return None,
    };
    Some((record, end + CHECKSUM))
}

/// Decodes a whole log. Pure and total: never panics, whatever the bytes.
pub fn decode_log(bytes: &[u8]) -> DecodedLog {
    let mut out = DecodedLog::default();
    // Unreadable byte ranges, in order.
    let mut skipped: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        if let Some((record, used)) = decode_record(&bytes[pos..]) {
            out.records.push(Located {
                offset: pos as u64,
                len: used as u64,
                record,
            });
            pos += used;
            continue;
        }
        // Resynchronise on the next magic that starts a valid record.
        if let Some(next) = next_valid(bytes, pos + 1) {
            out.corrupt_regions += 1;
            skipped.push((pos, next));
            pos = next;
            continue;
        }
        out.torn_at = Some(pos as u64);
        skipped.push((pos, bytes.len()));
        break;
    }
    out.skipped_bytes = skipped.iter().map(|(a, b)| (b - a) as u64).sum();
    let (lost, torn_report) = lost_reports(bytes, &out.records, &skipped);
    out.lost_reports = lost;
    out.torn_report = torn_report;
    out
}

/// How many report records the `skipped` ranges held that no valid record accounts for,
/// and whether the last range (the torn tail, if any) held a report header.
fn lost_reports(bytes: &[u8], records: &[Located], skipped: &[(usize, usize)]) -> (u64, bool) {
    use std::collections::BTreeSet;
    let mut reports = BTreeSet::new();
    let mut accounted = BTreeSet::new();
    for located in records {
        match located.record {
            Record::Report { seq, .. } => {
                reports.insert(seq);
                accounted.insert(seq);
            }
            Record::Removed { seq } => {
                accounted.insert(seq);
            }
            Record::Lost { .. } => {}
        }
    }
    let mut lost = BTreeSet::new();
    let mut anonymous = 0u64;
    let mut tail_report = false;
    for (i, &(start, end)) in skipped.iter().enumerate() {
        let region = &bytes[start..end];
        for at in region
            .windows(MAGIC.len() + 1)
            .enumerate()
            .filter(|(_, w)| w.starts_with(MAGIC) && w[MAGIC.len()] == b'R')
            .map(|(at, _)| start + at)
        {
            if i + 1 == skipped.len() && end == bytes.len() {
                tail_report = true;
            }
            // The sequence number, when the header got that far.
            match bytes.get(at + 5..at + 13).and_then(|b| b.try_into().ok()) {
                Some(seq) => {
                    let seq = u64::from_be_bytes(seq);
                    if !accounted.contains(&seq) {
                        lost.insert(seq);
                    }
                }
                None => anonymous += 1,
            }
        }
    }
    // Reports are numbered one after another from the oldest record the log keeps, so a
    // number missing between two valid records is a report record that was damaged
    // beyond recognition.
    if !skipped.is_empty() {
        if let (Some(&first), Some(&last)) = (reports.first(), accounted.last()) {
            let missing = (first..last).filter(|seq| !accounted.contains(seq));
            // Bounded by the damage: at most one report per skipped record's worth of bytes.
            let bound = skipped
                .iter()
                .map(|(a, b)| ((b - a) / OVERHEAD).max(1))
                .sum::<usize>();
            lost.extend(missing.take(bound));
        }
    }
    (lost.len() as u64 + anonymous, tail_report)
}

fn next_valid(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + MAGIC.len() <= bytes.len() {
        let found = bytes[at..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        let candidate = at + found;
        if decode_record(&bytes[candidate..]).is_some() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

/// What [`Spool::make_room`] decided.
struct Room {
    payload: Vec<u8>,
    /// How many of the oldest reports go.
    victims: usize,
    /// Losses the new report must announce for them (each victim and its announcements).
    carried: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    seq: u64,
    offset: u64,
    len: u64,
    /// Lost reports this one announces (passed on if it is lost too).
    announced: u64,
}

/// What happened when a report was pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// The report's sequence number in the spool.
    pub seq: u64,
    /// Reports dropped (oldest first) to make room for it.
    pub dropped: u64,
    /// The lost count handed to the encoder: earlier unannounced losses, the dropped
    /// reports, and what the dropped reports themselves announced.
    pub announced_lost: u64,
}

/// Counters since the spool was opened (the caller persists totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Reports dropped because the spool was full.
    pub dropped_for_cap: u64,
    /// Report records lost to torn or corrupt data found at open or read.
    pub lost_corrupt: u64,
    /// Unreadable bytes skipped at open (garbage, torn or damaged records), whether or
    /// not they held a report.
    pub skipped_bytes: u64,
}

/// The open spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    path: PathBuf,
    cap: u64,
    /// An append failed part-way (disk full…): the index may not match the file, so it
    /// is rebuilt from the file before the next operation.
    stale: bool,
    pending: VecDeque<Entry>,
    live_bytes: u64,
    file_len: u64,
    next_seq: u64,
    pending_lost: u64,
    stats: SpoolStats,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` with a cap of `cap` bytes of live reports.
    /// A torn tail is cut off (atomically) and counted as a lost report.
    pub fn open(dir: &Path, cap: u64) -> Result<Self, SpoolError> {
        let path = dir.join(SPOOL_FILE);
        let bytes = fs::read_optional(&path)?.unwrap_or_default();
        let log = decode_log(&bytes);
        let mut spool = Self {
            dir: dir.to_owned(),
            path,
            cap,
            stale: false,
            pending: VecDeque::new(),
            live_bytes: 0,
            file_len: bytes.len() as u64,
            next_seq: 1,
            pending_lost: 0,
            stats: SpoolStats::default(),
        };
        spool.replay(&log);
        // Only report records count as lost; other unreadable bytes are just skipped.
        let lost = log.lost_reports;
        spool.pending_lost += lost;
        spool.stats.lost_corrupt += lost;
        spool.stats.skipped_bytes += log.skipped_bytes;
        if log.torn_at.is_some() || log.corrupt_regions > 0 {
            // Rewrite without the damage so later appends follow a clean record boundary.
            spool.compact()?;
        }
        // Reports beyond a (lowered) cap are dropped now, oldest first.
        let over = spool.drop_over_cap();
        if over > 0 {
            spool.compact()?;
        }
        Ok(spool)
    }

    fn replay(&mut self, log: &DecodedLog) {
        for located in &log.records {
            match &located.record {
                Record::Report { seq, announced, .. } => {
                    self.pending.push_back(Entry {
                        seq: *seq,
                        offset: located.offset,
                        len: located.len,
                        announced: *announced,
                    });
                    self.live_bytes += located.len;
                    // A report announces every loss before it.
                    self.pending_lost = 0;
                    self.next_seq = self.next_seq.max(seq.saturating_add(1));
                }
                Record::Removed { seq } => {
                    if let Some(i) = self.pending.iter().position(|e| e.seq == *seq) {
                        if let Some(e) = self.pending.remove(i) {
                            self.live_bytes -= e.len;
                        }
                    }
                    self.next_seq = self.next_seq.max(seq.saturating_add(1));
                }
                Record::Lost { count } => {
                    self.pending_lost = self.pending_lost.saturating_add(*count);
                }
            }
        }
    }

    /// Appends a report. `encode(lost)` builds its bytes, where `lost` is how many earlier
    /// reports were dropped or lost and not yet announced; it may be called more than
    /// once (the count can grow while making room).
    pub fn push(&mut self, encode: impl Fn(u64) -> Vec<u8>) -> Result<Pushed, SpoolError> {
        self.reload_if_stale()?;
        let room = self.make_room(&encode)?;
        let seq = self.next_seq;
        let mut batch = Vec::with_capacity(room.payload.len() + OVERHEAD * (2 + room.victims));
        for victim in self.pending.iter().take(room.victims) {
            Record::Removed { seq: victim.seq }.encode_into(&mut batch);
        }
        if room.carried > 0 {
            // Remembered in case the report after it is torn by a crash.
            Record::Lost {
                count: room.carried,
            }
            .encode_into(&mut batch);
        }
        let record_offset = self.file_len + batch.len() as u64;
        let announced = self.pending_lost + room.carried;
        Record::Report {
            seq,
            announced,
            payload: room.payload,
        }
        .encode_into(&mut batch);
        self.append(&batch)?;
        for _ in 0..room.victims {
            if let Some(e) = self.pending.pop_front() {
                self.live_bytes -= e.len;
            }
        }
        let len = self.file_len - record_offset;
        self.pending.push_back(Entry {
            seq,
            offset: record_offset,
            len,
            announced,
        });
        self.live_bytes += len;
        self.next_seq += 1;
        self.pending_lost = 0;
        let dropped = room.victims as u64;
        self.stats.dropped_for_cap += dropped;
        self.maybe_compact();
        Ok(Pushed {
            seq,
            dropped,
            announced_lost: announced,
        })
    }

    /// Encodes the new report, counting how many of the oldest reports must go for it
    /// to fit under the cap. Nothing is changed yet.
    fn make_room(&self, encode: &impl Fn(u64) -> Vec<u8>) -> Result<Room, SpoolError> {
        let mut room = Room {
            payload: Vec::new(),
            victims: 0,
            carried: 0,
        };
        let mut freed = 0u64;
        loop {
            let payload = encode(self.pending_lost + room.carried);
            let need = record_len(payload.len());
            if payload.len() > MAX_PAYLOAD || need > self.cap {
                return Err(SpoolError::TooLarge {
                    size: payload.len(),
                    limit: self.cap.min(MAX_PAYLOAD as u64),
                });
            }
            // Once every pending report is counted, `need ≤ cap` guarantees a fit.
            match self.pending.get(room.victims) {
                Some(victim) if self.live_bytes - freed + need > self.cap => {
                    freed += victim.len;
                    room.victims += 1;
                    room.carried += 1 + victim.announced;
                }
                Some(_) | None => {
                    room.payload = payload;
                    return Ok(room);
                }
            }
        }
    }

    /// The oldest pending report: its sequence number and bytes. A record that no longer
    /// decodes (disk corruption since open) is dropped, counted as lost, and skipped.
    pub fn oldest(&mut self) -> Result<Option<(u64, Vec<u8>)>, SpoolError> {
        self.reload_if_stale()?;
        while let Some(entry) = self.pending.front().copied() {
            let len = usize::try_from(entry.len).unwrap_or(usize::MAX);
            let bytes = fs::read_range(&self.path, entry.offset, len)?;
            if let Some((Record::Report { seq, payload, .. }, _)) = decode_record(&bytes) {
                if seq == entry.seq {
                    return Ok(Some((seq, payload)));
                }
            }
            self.stats.lost_corrupt += 1;
            self.discard(entry.seq, 1 + entry.announced)?;
        }
        Ok(None)
    }

    /// Removes a report central accepted (2xx).
    pub fn remove(&mut self, seq: u64) -> Result<(), SpoolError> {
        self.discard(seq, 0)
    }

    /// Removes a report central rejected for good (4xx): the losses it announced were
    /// not recorded by central, so the next report announces them again.
    pub fn reject(&mut self, seq: u64) -> Result<(), SpoolError> {
        let announced = self
            .pending
            .iter()
            .find(|e| e.seq == seq)
            .ok_or(SpoolError::UnknownSeq { seq })?
            .announced;
        self.discard(seq, announced)
    }

    /// Appends "gone" for `seq` (and "`lost` more to announce"), fsynced, then updates
    /// the index.
    fn discard(&mut self, seq: u64, lost: u64) -> Result<(), SpoolError> {
        self.reload_if_stale()?;
        let index = self
            .pending
            .iter()
            .position(|e| e.seq == seq)
            .ok_or(SpoolError::UnknownSeq { seq })?;
        let mut bytes = Record::Removed { seq }.encode();
        if lost > 0 {
            Record::Lost { count: lost }.encode_into(&mut bytes);
        }
        self.append(&bytes)?;
        if let Some(e) = self.pending.remove(index) {
            self.live_bytes -= e.len;
        }
        self.pending_lost += lost;
        self.maybe_compact();
        Ok(())
    }

    /// Appends (fsync). A failure may have left part of `bytes` in the file, so the
    /// index is marked stale and rebuilt from the file next time.
    fn append(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        if let Err(e) = fs::append_synced(&self.path, bytes, 0o600) {
            self.stale = true;
            return Err(e.into());
        }
        self.file_len += bytes.len() as u64;
        Ok(())
    }

    fn reload_if_stale(&mut self) -> Result<(), SpoolError> {
        if !self.stale {
            return Ok(());
        }
        let mut fresh = Spool::open(&self.dir, self.cap)?;
        fresh.stats.dropped_for_cap += self.stats.dropped_for_cap;
        fresh.stats.lost_corrupt += self.stats.lost_corrupt;
        fresh.stats.skipped_bytes += self.stats.skipped_bytes;
        *self = fresh;
        Ok(())
    }

    /// Number of pending reports.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes taken by pending reports (what the cap limits).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Size of the log file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Reports lost (cap or corruption) that the next report will announce.
    pub fn unannounced_lost(&self) -> u64 {
        self.pending_lost
    }

    /// Counters since open.
    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn drop_over_cap(&mut self) -> u64 {
        let mut dropped = 0;
        while self.live_bytes > self.cap {
            let Some(e) = self.pending.pop_front() else {
                break;
            };
            self.live_bytes -= e.len;
            self.pending_lost += 1 + e.announced;
            dropped += 1;
        }
        self.stats.dropped_for_cap += dropped;
        dropped
    }

    /// Compacts when delivered records outweigh pending ones. A failure is not an error
    /// of the operation that triggered it: the log stays valid, just longer.
    fn maybe_compact(&mut self) {
        let dead = self.file_len - self.live_bytes;
        let worth_it = if self.pending.is_empty() {
            self.file_len > 0 && self.pending_lost == 0
        } else {
            dead > self.live_bytes.max(COMPACT_SLACK)
        };
        if worth_it {
            if let Err(e) = self.compact() {
                tracing::warn!(error = %crate::fault::error_chain(&e), "cannot compact the report spool; will retry");
            }
        }
    }

    /// Rewrites the log with only the pending reports (and the unannounced lost count),
    /// atomically. Memory is updated only once the new file is in place.
    fn compact(&mut self) -> Result<(), SpoolError> {
        let mut out = Vec::with_capacity(usize::try_from(self.live_bytes).unwrap_or(0));
        let mut fresh = VecDeque::with_capacity(self.pending.len());
        let mut lost = 0u64;
        let mut corrupt = 0u64;
        for entry in &self.pending {
            let len = usize::try_from(entry.len).unwrap_or(usize::MAX);
            let bytes = fs::read_range(&self.path, entry.offset, len)?;
            match decode_record(&bytes) {
                Some((Record::Report { seq, announced, .. }, used)) if seq == entry.seq => {
                    fresh.push_back(Entry {
                        seq,
                        offset: out.len() as u64,
                        len: used as u64,
                        announced,
                    });
                    out.extend_from_slice(&bytes[..used]);
                }
                _ => {
                    corrupt += 1;
                    lost += 1 + entry.announced;
                }
            }
        }
        let pending_lost = self.pending_lost + lost;
        if pending_lost > 0 {
            Record::Lost {
                count: pending_lost,
            }
            .encode_into(&mut out);
        }
        fs::write_atomic(&self.path, &out, 0o600)?;
        self.stats.lost_corrupt += corrupt;
        self.pending_lost = pending_lost;
        self.live_bytes = fresh.iter().map(|e| e.len).sum();
        self.pending = fresh;
        self.file_len = out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
