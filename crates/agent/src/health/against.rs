//! PURE: one setting of the box judged against the SOP's value, with the document's value
//! only to tell a deliberate deviation apart from a failure — the arithmetic behind the
//! SOP checklist's items.
//!
//! Owns: [`Setting`] → [`Against`] (meets / deviates / fails), the wording of each
//! outcome, combining several settings of one object into one item ([`combine_lines`]),
//! and the value types whose equality is not plain (`Lifetime`: 2 WEEK = 14 DAY).
//! Does not: know which settings an item has or what its next step is (`checklist`).
//! Invariants: a setting meets the SOP only when the box holds the SOP's value; it
//! deviates only when the box holds the document's value and that departs from the SOP;
//! everything else fails. The document never turns a failure into a pass.
//! Limitations: values are compared as the agent normalises them (cron fields without
//! leading zeros, excludes as sets, lifetimes in hours for HOUR/DAY/WEEK only).

use std::fmt::Write as _;

use super::model::{Deviation, ItemStatus};
use crate::desired::HhMm;

/// What a rule found for one item.
pub(super) struct Judged {
    pub(super) status: ItemStatus,
    pub(super) detail: String,
    pub(super) deviations: Vec<Deviation>,
}

impl Judged {
    pub(super) fn new(status: ItemStatus, detail: String) -> Self {
        Self {
            status,
            detail,
            deviations: Vec::new(),
        }
    }

    pub(super) fn pass_fail(ok: bool, pass: String, fail: String) -> Self {
        if ok {
            Self::new(ItemStatus::Pass, pass)
        } else {
            Self::new(ItemStatus::Fail, fail)
        }
    }
}

/// One setting compared with the SOP and the document.
pub(super) struct Setting<'a, T> {
    /// The document's key (`cloud_sync.chunk_size_mib`).
    pub(super) key: &'a str,
    pub(super) have: &'a T,
    pub(super) sop: &'a T,
    pub(super) doc: &'a T,
}

/// How a setting relates to the SOP.
pub(super) enum Against {
    /// The box holds the SOP's value (`Some(doc)`: the document asks for another one).
    Meets(Option<String>),
    /// The box holds the document's value, which departs from the SOP.
    Deviates(Deviation),
    /// The box holds neither; `Some(doc)`: the document's value where it departs.
    Fails(Option<String>),
}

/// One setting's outcome with the box's and the SOP's values as shown.
pub(super) struct Line {
    against: Against,
    have: String,
    sop: String,
}

impl<T: PartialEq> Setting<'_, T> {
    /// [`Setting::judge`] with the values as shown.
    pub(super) fn line(&self, show: impl Fn(&T) -> String) -> Line {
        Line {
            against: self.judge(&show),
            have: show(self.have),
            sop: show(self.sop),
        }
    }

    /// The box against the SOP; the document only tells a deliberate deviation apart.
    pub(super) fn judge(&self, show: impl Fn(&T) -> String) -> Against {
        let doc_differs = self.doc != self.sop;
        match (self.have == self.sop, self.have == self.doc) {
            (true, _) => Against::Meets(doc_differs.then(|| show(self.doc))),
            (false, true) => Against::Deviates(Deviation {
                setting: self.key.to_owned(),
                document: show(self.doc),
                sop: show(self.sop),
            }),
            (false, false) => Against::Fails(doc_differs.then(|| show(self.doc))),
        }
    }

    /// One setting as a whole item.
    pub(super) fn item(&self, show: impl Fn(&T) -> String) -> Judged {
        let have = show(self.have);
        let sop = show(self.sop);
        match self.judge(show) {
            Against::Meets(None) => Judged::new(ItemStatus::Pass, have),
            Against::Meets(Some(doc)) => Judged::new(
                ItemStatus::Pass,
                format!(
                    "{have}, as the SOP says (the document asks for {doc} in {}: that is drift, \
                     and `apply` would change it)",
                    self.key
                ),
            ),
            Against::Deviates(d) => Judged {
                status: ItemStatus::Deviates,
                detail: format!("{DEVIATES}{}", deviation_text(&d)),
                deviations: vec![d],
            },
            Against::Fails(doc) => Judged::new(
                ItemStatus::Fail,
                format!(
                    "{have} — the SOP says {sop}{}",
                    doc.map_or_else(String::new, |d| format!(
                        "; the document sets {d} ({})",
                        self.key
                    ))
                ),
            ),
        }
    }
}

/// How the detail of a deviating item starts (the report carries it as `fail`).
pub(crate) const DEVIATES: &str = "DEVIATES from the SOP as the document asks: ";

/// One deviating setting: both values, the document's first.
pub(super) fn deviation_text(d: &Deviation) -> String {
    format!("{} = {} (the SOP says {})", d.setting, d.document, d.sop)
}

pub(super) fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// A snapshot lifetime; 2 WEEK, 14 DAY and 336 HOUR are the same retention.
#[derive(Debug)]
pub(super) struct Lifetime {
    pub(super) value: u64,
    pub(super) unit: String,
}

impl Lifetime {
    fn hours(&self) -> Option<u64> {
        let per = match self.unit.as_str() {
            "HOUR" => 1,
            "DAY" => 24,
            "WEEK" => 24 * 7,
            _ => return None,
        };
        self.value.checked_mul(per)
    }
}

impl PartialEq for Lifetime {
    fn eq(&self, other: &Self) -> bool {
        match (self.hours(), other.hours()) {
            (Some(a), Some(b)) => a == b,
            _ => self.value == other.value && self.unit == other.unit,
        }
    }
}

pub(super) fn show_lifetime(l: &Lifetime) -> String {
    match l.hours() {
        Some(h) if h % 24 == 0 && l.unit != "DAY" => {
            format!("{} {} ({} days)", l.value, l.unit, h / 24)
        }
        _ => format!("{} {}", l.value, l.unit),
    }
}

/// The time window a snapshot schedule fires in.
pub(super) type Window = (Option<HhMm>, Option<HhMm>);

pub(super) fn show_window(w: Window) -> String {
    let t = |t: Option<HhMm>| t.map_or_else(|| "?".to_owned(), |t| t.to_string());
    format!("window {}–{}", t(w.0), t(w.1))
}

/// Several settings of one object as one item (`what` names it: `task 7`): any
/// failing setting fails it, else any deviating one makes it deviate, else it passes.
pub(super) fn combine_lines(what: &str, lines: Vec<Line>) -> Judged {
    let mut wrong = Vec::new();
    let mut deviations = Vec::new();
    let mut seen = Vec::new();
    for line in lines {
        match line.against {
            Against::Meets(_) => {}
            Against::Deviates(d) => deviations.push(d),
            Against::Fails(doc) => wrong.push(format!(
                "{} (the SOP says {}{})",
                line.have,
                line.sop,
                doc.map_or_else(String::new, |d| format!("; the document sets {d}"))
            )),
        }
        seen.push(line.have);
    }
    let deviating = deviations
        .iter()
        .map(deviation_text)
        .collect::<Vec<_>>()
        .join("; ");
    if !wrong.is_empty() {
        let mut detail = format!("{what}: {}", wrong.join("; "));
        if !deviations.is_empty() {
            let _ = write!(
                detail,
                "; also deviates from the SOP as the document asks: {deviating}"
            );
        }
        Judged::new(ItemStatus::Fail, detail)
    } else if !deviations.is_empty() {
        Judged {
            status: ItemStatus::Deviates,
            detail: format!("{DEVIATES}{deviating} ({what})"),
            deviations,
        }
    } else {
        Judged::new(ItemStatus::Pass, format!("{what}: {}", seen.join(", ")))
    }
}
