//! PURE: task health and the SOP checklist evaluated from observations.
//!
//! (Being built: issue #5.)
