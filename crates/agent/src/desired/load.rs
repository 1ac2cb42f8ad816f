//! Reading a document: bytes → JSON → validated [`DesiredState`].
//!
//! Owns: [`parse`] (a payload the central channel verified), [`load_local`] and
//! [`load_file`] (a local file, refused unless `--allow-unsigned`; a DSSE envelope is
//! unwrapped *without* verifying it).
//! Does not: check signatures or revisions (the central channel does).
//! Invariants: a repeated key in an envelope is refused before its payload is read.

use std::path::Path;

use super::envelope::{self, EnvelopeError};
use super::error::DesiredError;
use super::json;
use super::model::DesiredState;
use super::validate;
use crate::fs;

/// Parses and validates a document payload (already verified by the central channel,
/// or read from a local file).
pub fn parse(payload: &[u8]) -> Result<DesiredState, DesiredError> {
    let (value, duplicates) = json::parse(payload).map_err(|e| syntax(&e))?;
    validate::validate(&value, &duplicates)
}

/// Reads a local document: a plain JSON document or a DSSE envelope whose payload is
/// taken **without** verifying its signatures. Refused unless `allow_unsigned`.
pub fn load_local(bytes: &[u8], allow_unsigned: bool) -> Result<DesiredState, DesiredError> {
    let (value, duplicates) = json::parse(bytes).map_err(|e| syntax(&e))?;
    if !allow_unsigned {
        return Err(DesiredError::Unverified);
    }
    if envelope::looks_like_envelope(&value) {
        if let Some(key) = duplicates.first() {
            return Err(DesiredError::Envelope(EnvelopeError::DuplicateKey(
                key.clone(),
            )));
        }
        let payload = envelope::unwrap_unverified(&value).map_err(DesiredError::Envelope)?;
        return parse(&payload);
    }
    validate::validate(&value, &duplicates)
}

/// [`load_local`] from a file.
pub fn load_file(path: &Path, allow_unsigned: bool) -> Result<DesiredState, DesiredError> {
    let bytes = fs::read(path).map_err(DesiredError::Read)?;
    load_local(&bytes, allow_unsigned)
}

fn syntax(err: &serde_json::Error) -> DesiredError {
    DesiredError::Syntax {
        line: err.line(),
        column: err.column(),
    }
}
