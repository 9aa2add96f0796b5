//! What a test binary printed: each test's result, and why the failed ones
//! failed (the first lines of their panic message).

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's name, as libtest prints it.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// For a failed test: the start of its panic message, if it printed one.
    pub message: Option<String>,
}

/// The results in libtest's human output (`test NAME ... ok`), in order,
/// with each failure's message from its `---- NAME stdout ----` section.
pub fn parse(stdout: &str) -> Vec<TestResult> {
    let mut results = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, outcome)) = rest.split_once(" ... ") else {
            continue;
        };
        let passed = match outcome.trim() {
            "ok" => true,
            "FAILED" => false,
            _ => continue, // ignored, or a bench
        };
        results.push(TestResult {
            name: name.trim().to_string(),
            passed,
            message: None,
        });
    }
    for result in results.iter_mut().filter(|r| !r.passed) {
        result.message = failure_message(stdout, &result.name);
    }
    results
}

/// The panic message in the captured output of the failed test `name`.
fn failure_message(stdout: &str, name: &str) -> Option<String> {
    let header = format!("---- {name} stdout ----");
    let section = stdout.split_once(&header)?.1;
    let section = section.split("\n---- ").next().unwrap_or(section);
    let section = section.split("\nfailures:").next().unwrap_or(section);
    let mut lines = section
        .lines()
        .skip_while(|line| !line.contains("panicked at"));
    let panicked = lines.next()?;
    let mut message: Vec<&str> = lines
        .take_while(|line| {
            !line.is_empty() && !line.starts_with("note: ") && !line.starts_with("stack backtrace")
        })
        .take(4)
        .collect();
    if message.is_empty() {
        // Older formats put the message on the `panicked at` line itself.
        message.push(
            panicked
                .split_once("panicked at ")
                .map_or(panicked, |(_, m)| m),
        );
    }
    Some(message.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "
running 3 tests
test exercise_from_bytes_reads_hello ... FAILED
test exercise_read_entry_reads_it ... ok
test exercise_walk_records_cuts ... FAILED
test slow_one ... ignored

failures:

---- exercise_from_bytes_reads_hello stdout ----

thread 'exercise_from_bytes_reads_hello' panicked at src/message.rs:142:9:
exercise from_bytes is yours to write: read the header first
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

---- exercise_walk_records_cuts stdout ----

thread 'exercise_walk_records_cuts' panicked at tests/exercises.rs:80:5:
assertion `left == right` failed: the torn record is cut
  left: 4
 right: 3

failures:
    exercise_from_bytes_reads_hello
    exercise_walk_records_cuts

test result: FAILED. 1 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";

    #[test]
    fn parse_reads_results_and_messages() {
        let results = parse(OUTPUT);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].name, "exercise_from_bytes_reads_hello");
        assert!(!results[0].passed);
        assert_eq!(
            results[0].message.as_deref(),
            Some("exercise from_bytes is yours to write: read the header first")
        );
        assert!(results[1].passed);
        assert_eq!(results[1].message, None);
        assert_eq!(
            results[2].message.as_deref(),
            Some("assertion `left == right` failed: the torn record is cut\n  left: 4\n right: 3")
        );
    }
}
