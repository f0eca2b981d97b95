//! The one error of this crate: a policy file is missing, unreadable or wrong, at a file position.

use std::fmt;
use std::ops::Range;

use custodia_core::ErrorCode;

/// Why the policies could not be loaded, and where: the file and, when one value is at fault, its
/// 1-based line and column.
///
/// A bad policy stops start-up, so the message is written for the person who edits the files:
/// `policies/purposes.toml:12:18: unknown lawful basis `foo`; expected one of ...`. Policy files hold
/// no personal data, so messages may quote the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Location(self))]
pub struct PolicyError {
    /// The file as the caller named it: a path for [`crate::Policies::load_dir`], the bare file
    /// name for [`crate::Policies::from_sources`].
    pub file: String,
    /// The 1-based line of the offending value, if one value is at fault.
    pub line: Option<usize>,
    /// The 1-based column (in characters) of the offending value, if one value is at fault.
    pub column: Option<usize>,
    /// What is wrong, lower-case, without a trailing period.
    pub message: String,
}

impl PolicyError {
    /// The transport-neutral code: always [`ErrorCode::Internal`], since a bad policy is an
    /// operator's problem that stops start-up, never a client's.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }

    /// An error about a whole file (a missing file, a missing required entry).
    pub(crate) fn in_file(file: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error about the value at byte offset `span.start` of `text`.
    pub(crate) fn at(
        file: impl Into<String>,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = line_column(text, span.start);
        PolicyError {
            file: file.into(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }
}

/// Renders `file:line:column: message`, leaving out the parts that are not known.
struct Location<'a>(&'a PolicyError);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = self.0;
        f.write_str(&error.file)?;
        if let Some(line) = error.line {
            write!(f, ":{line}")?;
            if let Some(column) = error.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", error.message)
    }
}

/// The 1-based line and column (counted in characters, as editors do) of byte `offset` in `text`.
///
/// An offset past the end, or inside a multi-byte character, is moved back to the nearest
/// character boundary, so a slightly-off span from a parser still names a sensible place.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline_idx| newline_idx + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
