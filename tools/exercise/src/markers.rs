//! Exercise markers in a source file, and the file with their bodies taken out.
//!
//! A marked region is comment lines around the statements of a function body,
//! with the signature outside it, so that a stub in their place still compiles:
//!
//! ```text
//! pub fn from_bytes(bytes: &[u8]) -> Result<Message, RecordError> {
//!     // EXERCISE: from_bytes
//!     // HINT: read the header first, then check the payload is all there.
//!     let header = ...;
//!     ...
//!     // EXERCISE_END
//! }
//! ```
//!
//! The stub keeps the marker and hint lines, and puts in place of the lines
//! between them one statement, `panic!("exercise from_bytes is yours to
//! write: <hint>");`, at the marker's indentation: the learner's test fails
//! with the exercise's name and hint. A region may also be the last
//! statements of a body, or a match arm's block, as long as nothing after it
//! uses a name it defines: code after the panic is unreachable, which is a
//! warning (allowed in the copy), not an error. Rejected: the standard
//! "not yet implemented" macro, which reads as unfinished work in the
//! repository's own code.

use std::fmt;

/// The line that opens a region, followed by the exercise's name.
pub const OPEN: &str = "// EXERCISE:";
/// A line of the hint, right after the opening line.
pub const HINT: &str = "// HINT:";
/// The line that closes a region.
pub const CLOSE: &str = "// EXERCISE_END";

/// One marked region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The exercise's name: lowercase letters, digits and `_`, so that a
    /// test named `exercise_<name>_...` names it.
    pub name: String,
    /// The hint lines, joined by spaces (empty if there are none).
    pub hint: String,
    /// Line number (from 1) of the opening marker.
    pub line: usize,
    /// Index (from 0) of the first line of the body, after the hints.
    body_start: usize,
    /// Index (from 0) of the closing marker.
    close: usize,
    /// The opening marker's indentation, given to the stub.
    indent: String,
}

impl Region {
    /// How many lines the stub replaces.
    pub fn body_lines(&self) -> usize {
        self.close - self.body_start
    }

    /// The statement that replaces the body: a panic naming the exercise
    /// ([`stub_message`]) and its hint.
    pub fn stub(&self) -> String {
        let mut message = stub_message(&self.name);
        if !self.hint.is_empty() {
            message = format!("{message}: {}", self.hint);
        }
        // `panic!` formats its message: braces are doubled, and `{:?}` gives a
        // string literal with every quote and backslash escaped.
        let literal = format!("{:?}", message.replace('{', "{{").replace('}', "}}"));
        format!("{}panic!({literal});", self.indent)
    }
}

/// How a stubbed body's panic message starts: the grader finds a test that
/// stopped in another exercise's stub by it.
pub fn stub_message(name: &str) -> String {
    format!("exercise {name} is yours to write")
}

/// A marker out of place, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for MarkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Whether `name` can be an exercise's name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

/// The regions of `source`, in order.
pub fn regions(source: &str) -> Result<Vec<Region>, MarkerError> {
    let lines: Vec<&str> = source.lines().collect();
    let mut regions = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        let trimmed = line.trim();
        let error = |reason: String| MarkerError {
            line: n + 1,
            reason,
        };
        if let Some(name) = trimmed.strip_prefix(OPEN) {
            if let Some((name, at, _)) = &open {
                return Err(error(format!(
                    "exercise {name} (line {at}) is not closed before this one opens"
                )));
            }
            let name = name.trim();
            if !valid_name(name) {
                return Err(error(format!(
                    "{name:?} is not an exercise name (lowercase letters, digits and single `_`)"
                )));
            }
            let indent = line[..line.len() - line.trim_start().len()].to_string();
            open = Some((name.to_string(), n + 1, indent));
        } else if trimmed.starts_with(HINT) {
            let after_open = open
                .as_ref()
                .is_some_and(|(_, at, _)| lines[*at..n].iter().all(|l| l.trim().starts_with(HINT)));
            if !after_open {
                return Err(error(format!(
                    "`{HINT}` belongs right after an `{OPEN}` line"
                )));
            }
        } else if trimmed == CLOSE {
            let Some((name, at, indent)) = open.take() else {
                return Err(error(format!("`{CLOSE}` with no `{OPEN}` before it")));
            };
            let hints: Vec<&str> = lines[at..n]
                .iter()
                .map(|l| l.trim())
                .take_while(|l| l.starts_with(HINT))
                .map(|l| l[HINT.len()..].trim())
                .collect();
            let body_start = at + hints.len();
            let has_code = lines[body_start..n].iter().any(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with("//")
            });
            if !has_code {
                return Err(error(format!("exercise {name} has no code to take out")));
            }
            regions.push(Region {
                name,
                hint: hints.join(" "),
                line: at,
                body_start,
                close: n,
                indent,
            });
        } else if trimmed.starts_with("// EXERCISE") {
            return Err(error(format!(
                "a marker is `{OPEN} name` or `{CLOSE}`, not {trimmed:?}"
            )));
        }
        n += 1;
    }
    match open {
        Some((name, at, _)) => Err(MarkerError {
            line: at,
            reason: format!("exercise {name} is never closed with `{CLOSE}`"),
        }),
        None => Ok(regions),
    }
}

/// `source` with every region's body replaced by its stub.
pub fn stubbed(source: &str, regions: &[Region]) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::with_capacity(source.len());
    let mut n = 0;
    for region in regions {
        for line in &lines[n..region.body_start] {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&region.stub());
        out.push('\n');
        n = region.close;
    }
    for line in &lines[n..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
fn keep() -> u8 {
    1
}

pub fn add(a: u8, b: u8) -> u8 {
    // EXERCISE: add_two
    // HINT: a plain `+` can overflow;
    // HINT: `checked_add` says so.
    let sum = a.checked_add(b);
    sum.unwrap_or(u8::MAX)
    // EXERCISE_END
}
";

    #[test]
    fn regions_name_hint_and_place() {
        let found = regions(SOURCE).unwrap();
        assert_eq!(found.len(), 1);
        let region = &found[0];
        assert_eq!(region.name, "add_two");
        assert_eq!(
            region.hint,
            "a plain `+` can overflow; `checked_add` says so."
        );
        assert_eq!(region.line, 6);
        assert_eq!(region.body_lines(), 2);
    }

    #[test]
    fn stubbed_replaces_only_the_body() {
        let found = regions(SOURCE).unwrap();
        let stub = stubbed(SOURCE, &found);
        assert!(stub.contains("fn keep() -> u8 {\n    1\n}"));
        assert!(stub.contains(
            "    // HINT: `checked_add` says so.\n    panic!(\"exercise add_two is yours to write: a plain \
             `+` can overflow; `checked_add` says so.\");\n    // EXERCISE_END\n}\n"
        ));
        assert!(!stub.contains("checked_add(b)"));
    }

    #[test]
    fn stub_message_is_a_literal_panic_cannot_misread() {
        let source = "    // EXERCISE: quote\n    // HINT: say \"{x}\" \\ done\n    x()\n    // EXERCISE_END\n";
        let found = regions(source).unwrap();
        assert_eq!(
            found[0].stub(),
            r#"    panic!("exercise quote is yours to write: say \"{{x}}\" \\ done");"#
        );
    }

    #[test]
    fn misplaced_markers_are_errors_with_their_line() {
        let cases = [
            ("// EXERCISE: a\nx\n// EXERCISE: b\ny\n// EXERCISE_END\n", 3),
            ("x\n// EXERCISE_END\n", 2),
            ("// EXERCISE: a\nx\n", 1),
            ("// EXERCISE: Bad-Name\nx\n// EXERCISE_END\n", 1),
            ("// EXERCISE: a\n// only a comment\n// EXERCISE_END\n", 3),
            ("// HINT: stray\n", 1),
            ("// EXERCISE: a\nx\n// HINT: late\n// EXERCISE_END\n", 3),
            ("// EXERCISE_BEGIN: a\n", 1),
        ];
        for (source, line) in cases {
            match regions(source) {
                Err(error) => assert_eq!(error.line, line, "{source:?}: {error}"),
                Ok(found) => panic!("{source:?} gave {found:?}"),
            }
        }
    }

    #[test]
    fn names_are_snake_case() {
        for good in ["from_bytes", "a", "owner2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "From", "2x", "a-b", "a__b", "a_", "_a"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
