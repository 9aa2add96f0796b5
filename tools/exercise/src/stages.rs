//! The stages, their exercises (regions in `src/`) and the tests that grade
//! them (functions of `tests/exercises.rs` named `exercise_<name>_...`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::markers::{self, Region};

/// The file of a stage that holds its exercises' tests, and the name of
/// the test target `cargo test --test` runs.
pub const TESTS_FILE: &str = "tests/exercises.rs";
/// The test target of [`TESTS_FILE`].
pub const TEST_TARGET: &str = "exercises";
/// Every exercise test's name starts with this, then the exercise's name.
pub const TEST_PREFIX: &str = "exercise_";

/// One exercise: a region, where it is, and its tests.
#[derive(Debug, Clone)]
pub struct Exercise {
    /// The region in the source (name, hint, line).
    pub region: Region,
    /// The file it is in, relative to the stage's folder.
    pub file: PathBuf,
    /// Its tests' names, in the order of the tests file.
    pub tests: Vec<String>,
}

impl Exercise {
    /// The exercise's name.
    pub fn name(&self) -> &str {
        &self.region.name
    }
}

/// A stage crate and its exercises.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Its number, from the folder name (`stages/2-batching` is 2).
    pub number: u32,
    /// Its folder.
    pub dir: PathBuf,
    /// Its package name.
    pub package: String,
    /// Its exercises, in the order their first tests appear in the tests
    /// file (the order the book gives them in); any without a test last.
    pub exercises: Vec<Exercise>,
    /// Tests named like an exercise's that name none.
    pub orphan_tests: Vec<String>,
}

impl Stage {
    /// Reads the stage in `dir`: its package name, regions and tests.
    pub fn read(number: u32, dir: &Path) -> Result<Stage, String> {
        let manifest = dir.join("Cargo.toml");
        let text = fs::read_to_string(&manifest)
            .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let package = table
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| format!("{} has no package name", manifest.display()))?
            .to_string();

        let mut exercises: Vec<Exercise> = Vec::new();
        for file in rust_files(&dir.join("src"))? {
            let source = fs::read_to_string(&file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            let relative = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
            let regions =
                markers::regions(&source).map_err(|e| format!("{}: {e}", file.display()))?;
            for region in regions {
                if let Some(other) = exercises.iter().find(|e| e.region.name == region.name) {
                    return Err(format!(
                        "{}:{}: exercise {} is also at {}:{}",
                        file.display(),
                        region.line,
                        region.name,
                        other.file.display(),
                        other.region.line
                    ));
                }
                exercises.push(Exercise {
                    region,
                    file: relative.clone(),
                    tests: Vec::new(),
                });
            }
        }

        let tests_path = dir.join(TESTS_FILE);
        let tests = match fs::read_to_string(&tests_path) {
            Ok(text) => test_names(&text),
            Err(_) => Vec::new(),
        };
        let names: Vec<String> = exercises.iter().map(|e| e.region.name.clone()).collect();
        let mut orphan_tests = Vec::new();
        let mut order: Vec<String> = Vec::new();
        for test in tests {
            match exercise_of(&test, &names) {
                Some(name) => {
                    if !order.iter().any(|n| n == name) {
                        order.push(name.to_string());
                    }
                    if let Some(exercise) = exercises.iter_mut().find(|e| e.region.name == name) {
                        exercise.tests.push(test);
                    }
                }
                None => orphan_tests.push(test),
            }
        }
        exercises.sort_by_key(|e| {
            order
                .iter()
                .position(|n| *n == e.region.name)
                .unwrap_or(usize::MAX)
        });
        Ok(Stage {
            number,
            dir: dir.to_path_buf(),
            package,
            exercises,
            orphan_tests,
        })
    }

    /// The exercise `name`.
    pub fn exercise(&self, name: &str) -> Option<&Exercise> {
        self.exercises.iter().find(|e| e.region.name == name)
    }

    /// The names of its exercises, in order.
    pub fn names(&self) -> Vec<String> {
        self.exercises
            .iter()
            .map(|e| e.region.name.clone())
            .collect()
    }
}

/// Every stage under `repo/stages`, by number.
pub fn all(repo: &Path) -> Result<Vec<Stage>, String> {
    let folder = repo.join("stages");
    let entries =
        fs::read_dir(&folder).map_err(|e| format!("reading {}: {e}", folder.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", folder.display()))?
            .path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(number) = number
            && path.join("Cargo.toml").is_file()
        {
            found.push((number, path));
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(number, path)| Stage::read(number, &path))
        .collect()
}

/// Stage `number`.
pub fn one(repo: &Path, number: u32) -> Result<Stage, String> {
    all(repo)?
        .into_iter()
        .find(|stage| stage.number == number)
        .ok_or_else(|| {
            format!(
                "there is no stage {number} under {}",
                repo.join("stages").display()
            )
        })
}

/// The names of the test functions in `source` that start with
/// [`TEST_PREFIX`], in order.
pub fn test_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        let mut rest = line.trim_start();
        for word in ["pub ", "async "] {
            rest = rest.strip_prefix(word).unwrap_or(rest);
        }
        let Some(after) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.starts_with(TEST_PREFIX) {
            names.push(name);
        }
    }
    names
}

/// The exercise a test named `test` grades: the longest of `names` that
/// follows [`TEST_PREFIX`] and is the rest of the name or followed by `_`.
pub fn exercise_of<'a>(test: &str, names: &'a [String]) -> Option<&'a str> {
    // A test in a module is reported as `module::exercise_...`.
    let test = test.rsplit("::").next().unwrap_or(test);
    let rest = test.strip_prefix(TEST_PREFIX)?;
    names
        .iter()
        .filter(|name| {
            rest == name.as_str()
                || rest
                    .strip_prefix(name.as_str())
                    .is_some_and(|after| after.starts_with('_'))
        })
        .max_by_key(|name| name.len())
        .map(String::as_str)
}

/// The `.rs` files under `dir`, sorted, recursively.
pub fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            fs::read_dir(&folder).map_err(|e| format!("reading {}: {e}", folder.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", folder.display()))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_finds_exercise_functions_only() {
        let source = "\
#[test]
fn exercise_read_entry_reads_it() {}
#[tokio::test]
async fn exercise_saver_ticks() {}
fn helper() {}
    fn exercise_nested_in_a_module() {}
";
        assert_eq!(
            test_names(source),
            [
                "exercise_read_entry_reads_it",
                "exercise_saver_ticks",
                "exercise_nested_in_a_module"
            ]
        );
    }

    #[test]
    fn exercise_of_takes_the_longest_name_that_fits() {
        let names = vec!["read".to_string(), "read_frame".to_string()];
        assert_eq!(
            exercise_of("exercise_read_frame_eof", &names),
            Some("read_frame")
        );
        assert_eq!(exercise_of("exercise_read_at_end", &names), Some("read"));
        assert_eq!(exercise_of("exercise_read", &names), Some("read"));
        assert_eq!(exercise_of("exercise_reader", &names), None);
        assert_eq!(exercise_of("tests::exercise_read_x", &names), Some("read"));
        assert_eq!(exercise_of("read_frame", &names), None);
    }
}
