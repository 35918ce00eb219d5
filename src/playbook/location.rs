//! Source locations: where in a playbook file a value came from, so every problem can be
//! reported as `file:line:column`.

use std::fmt;

/// A line and column (both 1-based) in a playbook file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Location {
    /// A location from a 1-based line and column.
    pub fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }

    /// The start of a YAML node's span (line 1, column 1 when the parser gave none).
    pub fn of_span(span: &marked_yaml::Span) -> Self {
        span.start()
            .map(Self::of_marker)
            .unwrap_or(Self { line: 1, column: 1 })
    }

    /// The location of a YAML marker.
    pub fn of_marker(marker: &marked_yaml::Marker) -> Self {
        Self {
            line: marker.line().max(1),
            column: marker.column().max(1),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.line, self.column)
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub location: Location,
}

impl<T> Spanned<T> {
    /// Wrap a value with its location.
    pub fn new(value: T, location: Location) -> Self {
        Self { value, location }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}
