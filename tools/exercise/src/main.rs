//! `scripts/exercise`: a learner's copy of a stage with its exercises taken
//! out, graded by the stage's exercise tests; and `--check`, which proves
//! every stage's exercises build as stubs and pass as written. See `--help`
//! and the library's docs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use rivulet_exercise::copy::{self, BuildDirs};
use rivulet_exercise::libtest::{self, TestResult};
use rivulet_exercise::markers;
use rivulet_exercise::stages::{self, Stage, TEST_TARGET, TESTS_FILE};

const HELP: &str = "\
scripts/exercise: write a stage's key functions yourself, graded by its tests.

USAGE:
    scripts/exercise N [--reset] [--dir PATH]
        Makes your copy of stage N (exercises/stageN, or PATH) with every
        exercise's body replaced by a panic with its name and hint, builds it, runs the
        stage's exercise tests against it and says which exercises pass.
        Run it again after each change: your copy is kept (--reset starts
        over, throwing your code away).
    scripts/exercise N --solution
        The same tests on the real code: every exercise passes.
    scripts/exercise --list [N]
        Every exercise (or stage N's): where it is, its hint, its tests.
    scripts/exercise --check [N...]
        What the test command runs: for every stage (or those given), the
        stubbed copy builds, every exercise test fails on it, and every one
        passes on the real code.
";

/// Each stage has at least this many exercises (issue 20's promise).
const MIN_EXERCISES: usize = 3;

enum Mode {
    Learn {
        stage: u32,
        dir: Option<PathBuf>,
        reset: bool,
    },
    Solution {
        stage: u32,
    },
    List {
        stage: Option<u32>,
    },
    Check {
        stages: Vec<u32>,
    },
    Help,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(run) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("exercise: {message}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let mut numbers = Vec::new();
    let (mut reset, mut solution, mut list, mut check) = (false, false, false, false);
    let mut dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reset" => reset = true,
            "--solution" => solution = true,
            "--list" => list = true,
            "--check" => check = true,
            "--dir" => {
                let path = args.next().ok_or("--dir needs a folder")?;
                dir = Some(PathBuf::from(path));
            }
            "-h" | "--help" => return Ok(Mode::Help),
            number => numbers.push(
                number
                    .parse::<u32>()
                    .map_err(|_| format!("unknown argument {number:?}; see --help"))?,
            ),
        }
    }
    if check {
        return Ok(Mode::Check { stages: numbers });
    }
    if list {
        return Ok(Mode::List {
            stage: numbers.first().copied(),
        });
    }
    let [stage] = numbers[..] else {
        return Err("name one stage, as in `scripts/exercise 1`; see --help".into());
    };
    Ok(if solution {
        Mode::Solution { stage }
    } else {
        Mode::Learn { stage, dir, reset }
    })
}

fn run(mode: Mode) -> Result<ExitCode, String> {
    let repo = repo_root()?;
    match mode {
        Mode::Help => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Mode::List { stage } => {
            let all = stages::all(&repo)?;
            for stage in all.iter().filter(|s| stage.is_none_or(|n| s.number == n)) {
                list(stage);
            }
            Ok(ExitCode::SUCCESS)
        }
        Mode::Learn { stage, dir, reset } => learn(&repo, stage, dir, reset),
        Mode::Solution { stage } => solution(&repo, stage),
        Mode::Check { stages } => check(&repo, &stages),
    }
}

/// The repository: the nearest folder, from the current one up, with a
/// `Cargo.toml` and `stages/` (`scripts/exercise` runs from the root); else
/// the one this program was built in.
fn repo_root() -> Result<PathBuf, String> {
    if let Ok(current) = std::env::current_dir() {
        let found = current
            .ancestors()
            .find(|dir| dir.join("Cargo.toml").is_file() && dir.join("stages").is_dir());
        if let Some(found) = found {
            return Ok(found.to_path_buf());
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    built
        .canonicalize()
        .map_err(|e| format!("finding the repository at {}: {e}", built.display()))
}

/// Where the builds of a copy of package `name` go (see [`BuildDirs`]): its
/// own target folder for the binaries cargo leaves, and the workspace's
/// target folder (`target/`, or `CARGO_TARGET_DIR`) for everything else, so
/// that the dependencies the workspace compiled already are not compiled
/// again. `RIVULET_EXERCISE_BUILD_DIR` chooses another, to measure a build
/// from nothing.
fn build_dirs(repo: &Path, name: &str) -> BuildDirs {
    let build_dir = match std::env::var_os("RIVULET_EXERCISE_BUILD_DIR") {
        Some(dir) => repo.join(dir),
        None => workspace_target(repo),
    };
    BuildDirs {
        target_dir: workspace_target(repo).join("exercises/out").join(name),
        build_dir,
    }
}

/// The workspace's target folder: `target/`, or `CARGO_TARGET_DIR`.
fn workspace_target(repo: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo.join(dir),
        None => repo.join("target"),
    }
}

fn list(stage: &Stage) {
    println!(
        "stage {} ({}): {} exercises",
        stage.number,
        stage.package,
        stage.exercises.len()
    );
    for exercise in &stage.exercises {
        println!(
            "  {:<20} {}:{}",
            exercise.name(),
            stage_path(stage, &exercise.file),
            exercise.region.line
        );
        if !exercise.region.hint.is_empty() {
            println!("      hint: {}", exercise.region.hint);
        }
        for test in &exercise.tests {
            println!("      test: {test}");
        }
    }
}

/// `stages/1-file-log/src/message.rs`, for messages.
fn stage_path(stage: &Stage, file: &Path) -> String {
    let folder = stage
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("stages/{folder}/{}", file.display())
}

fn learn(repo: &Path, number: u32, dir: Option<PathBuf>, reset: bool) -> Result<ExitCode, String> {
    let stage = stages::one(repo, number)?;
    let again = match &dir {
        Some(dir) => format!("scripts/exercise {number} --dir {}", dir.display()),
        None => format!("scripts/exercise {number}"),
    };
    let dest = match dir {
        // Relative to where `scripts/exercise` was run (it runs this from
        // the repository's root).
        Some(dir) => match std::env::var_os("RIVULET_EXERCISE_CWD") {
            Some(cwd) => PathBuf::from(cwd).join(dir),
            None => std::env::current_dir()
                .map_err(|e| format!("the current folder: {e}"))?
                .join(dir),
        },
        None => repo.join("exercises").join(format!("stage{number}")),
    };
    let shown = dest
        .strip_prefix(repo)
        .unwrap_or(&dest)
        .display()
        .to_string();
    if dest.exists() {
        match copy::stamp(&dest) {
            Some(n) if n == number => {}
            Some(n) => {
                return Err(format!(
                    "{shown} is a copy of stage {n}, not {number}: give another --dir"
                ));
            }
            None => {
                return Err(format!(
                    "{shown} exists and is not a copy made by scripts/exercise: give another --dir"
                ));
            }
        }
        if reset {
            std::fs::remove_dir_all(&dest).map_err(|e| format!("removing {shown}: {e}"))?;
            println!("Removed your copy of stage {number} at {shown}.");
        }
    }
    // The default copy is package exercise-stageN; one elsewhere gets a
    // name of its own (see `copy::merged_manifest`).
    let package = if dest == repo.join("exercises").join(format!("stage{number}")) {
        format!("exercise-stage{number}")
    } else {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&dest, &mut hasher);
        format!(
            "exercise-stage{number}-{:08x}",
            std::hash::Hasher::finish(&hasher) as u32
        )
    };
    let dirs = build_dirs(repo, &package);
    if dest.exists() {
        println!(
            "Your copy of stage {number} is {shown}; building it and running its exercise tests."
        );
        let tests = |dir: &Path| std::fs::read(dir.join(TESTS_FILE)).ok();
        if tests(&dest) != tests(&stage.dir) {
            println!(
                "(Stage {number}'s exercise tests have changed since your copy was made: \
                 `scripts/exercise {number} --reset` gives you the new ones, and throws your code away.)"
            );
        }
    } else {
        copy::create(&dest, &copy::files(repo, &stage, &dirs, true, &package)?)?;
        println!(
            "Made your copy of stage {number} at {shown}: {} exercises, each body replaced by a panic naming it.",
            stage.exercises.len()
        );
        println!(
            "Building it (the first build of a stage takes a minute or two) and running its exercise tests."
        );
    }
    let run = cargo_test(&dest, &dirs, false)?;
    if !run.built {
        println!(
            "\nYour copy does not build: fix the errors above in {shown}, then run `{again}` again."
        );
        return Ok(ExitCode::from(2));
    }
    let passed = report(&stage, &run.results, &shown);
    if passed == stage.exercises.len() {
        println!(
            "\nEvery exercise of stage {number} passes. `cargo test` in {shown} runs the stage's other tests too."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        if let Some(next) = stage
            .exercises
            .iter()
            .find(|e| !exercise_passes(e, &run.results))
        {
            println!(
                "\nNext: exercise {} in {}/{} at line {}. Write it, then run `{again}` again.",
                next.name(),
                shown,
                next.file.display(),
                next.region.line
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

fn solution(repo: &Path, number: u32) -> Result<ExitCode, String> {
    let stage = stages::one(repo, number)?;
    println!(
        "Running stage {number}'s exercise tests on the real code ({}).",
        stage.package
    );
    let binaries = real_tests(repo, false)?;
    let run = run_real(&binaries, &stage)?;
    let passed = report(&stage, &run.results, &stage_path(&stage, Path::new("")));
    Ok(if passed == stage.exercises.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a line per exercise: passed or failed, how many of its tests, and
/// the first failure's message. Returns how many exercises pass.
fn report(stage: &Stage, results: &[TestResult], shown: &str) -> usize {
    let names = stage.names();
    let passed = stage
        .exercises
        .iter()
        .filter(|e| exercise_passes(e, results))
        .count();
    println!(
        "\nstage {}: {passed} of {} exercises pass ({shown})",
        stage.number,
        stage.exercises.len()
    );
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for exercise in &stage.exercises {
        let mine: Vec<&TestResult> = results
            .iter()
            .filter(|r| stages::exercise_of(&r.name, &names) == Some(exercise.name()))
            .collect();
        let ok = mine.iter().filter(|r| r.passed).count();
        let verdict = if exercise_passes(exercise, results) {
            "pass"
        } else {
            "FAIL"
        };
        println!(
            "  {verdict}  {:<width$}  passes {ok} of {} tests",
            exercise.name(),
            mine.len()
        );
        // The first failed test in the order of the tests file.
        let failed = exercise
            .tests
            .iter()
            .find_map(|test| mine.iter().find(|r| !r.passed && short(&r.name) == test));
        let Some(failed) = failed.or_else(|| mine.iter().find(|r| !r.passed)) else {
            continue;
        };
        let message = failed.message.as_deref().unwrap_or("(no message)");
        // The stub of an earlier exercise that this one's tests go through.
        let waits_for = names.iter().find(|name| {
            let stub = markers::stub_message(name);
            *name != exercise.name()
                && (message == stub || message.starts_with(&format!("{stub}:")))
        });
        match waits_for {
            Some(other) => println!(
                "        {}: waits for exercise {other} (its tests go through it)",
                failed.name
            ),
            None => {
                println!("        {}:", failed.name);
                for line in message.lines() {
                    println!("          {line}");
                }
            }
        }
    }
    passed
}

/// Whether every test of `exercise` ran and passed (and there is one).
fn exercise_passes(exercise: &stages::Exercise, results: &[TestResult]) -> bool {
    !exercise.tests.is_empty()
        && exercise
            .tests
            .iter()
            .all(|test| results.iter().any(|r| r.passed && short(&r.name) == test))
}

/// A test's name without its module path.
fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// A `cargo test --test exercises` run.
struct Run {
    /// Whether the test binary was built and ran.
    built: bool,
    /// Its results.
    results: Vec<TestResult>,
    /// Cargo's and the tests' output, when captured.
    output: String,
}

/// Runs the exercise tests of the copy in `dir`, built in `dirs`. Output is
/// captured when `quiet`; otherwise cargo's progress and errors go to the
/// terminal as they come.
fn cargo_test(dir: &Path, dirs: &BuildDirs, quiet: bool) -> Result<Run, String> {
    // Compiler errors in colour on a terminal; the tests' own output is
    // read from a pipe, so libtest prints it plain either way.
    let color = if !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "always"
    } else {
        "never"
    };
    let mut command = cargo();
    command
        .current_dir(dir)
        .args(["test", "--color", color, "--test", TEST_TARGET]);
    command.envs(dirs.env());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("running cargo in {}: {e}", dir.display()))?;
    // Cargo's progress and the compiler's errors, shown as they come unless
    // `quiet`, without cargo's closing "test failed, to rerun" (this
    // program says what failed).
    let stderr = child.stderr.take();
    let echo = std::thread::spawn(move || {
        let mut kept = String::new();
        for line in stderr
            .map(BufReader::new)
            .into_iter()
            .flat_map(|r| r.lines())
        {
            let Ok(line) = line else { break };
            if !quiet && !line.contains("test failed, to rerun pass") {
                eprintln!("{line}");
            }
            kept.push_str(&line);
            kept.push('\n');
        }
        kept
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)
            .map_err(|e| format!("reading cargo's output: {e}"))?;
    }
    child
        .wait()
        .map_err(|e| format!("waiting for cargo: {e}"))?;
    let stderr = echo.join().unwrap_or_default();
    let built = stdout.lines().any(|line| line.starts_with("running "));
    Ok(Run {
        built,
        results: libtest::parse(&stdout),
        output: format!("{stderr}{stdout}"),
    })
}

/// Type-checks everything in the copy at `dir`: the library, binaries,
/// examples and every test target, not only the exercises' (which the run
/// after this builds). A check, not a build: a stub that type-checks
/// compiles, and linking every test binary of every stage a second time
/// would cost a minute and a gigabyte for nothing more.
fn cargo_check_all(dir: &Path, dirs: &BuildDirs) -> Result<Result<(), String>, String> {
    let output = cargo()
        .current_dir(dir)
        .args(["check", "--all-targets", "--color", "never"])
        .envs(dirs.env())
        .output()
        .map_err(|e| format!("running cargo in {}: {e}", dir.display()))?;
    Ok(if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    })
}

/// Builds every stage's exercise tests in the workspace, with the features
/// `cargo test --workspace` gives them (so that, after the test command's own
/// run, nothing is built again), and returns each test binary with the
/// manifest of the stage it tests.
fn real_tests(repo: &Path, quiet: bool) -> Result<Vec<(PathBuf, PathBuf)>, String> {
    let output = cargo()
        .current_dir(repo)
        .args(["test", "--workspace", "--test", TEST_TARGET, "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(if quiet {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .output()
        .map_err(|e| format!("running cargo in {}: {e}", repo.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the stages' exercise tests do not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // One JSON object a line; the test binaries are the `compiler-artifact`s
    // of test targets named `exercises`, with an `executable`.
    let field = |line: &str, name: &str| -> Option<PathBuf> {
        let start = line.find(&format!("\"{name}\":\""))? + name.len() + 4;
        let len = line[start..].find('"')?;
        Some(PathBuf::from(&line[start..start + len]))
    };
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| {
            line.contains("\"kind\":[\"test\"]") && line.contains("\"name\":\"exercises\"")
        })
        .filter_map(|line| Some((field(line, "manifest_path")?, field(line, "executable")?)))
        .collect())
}

/// Runs the real code's exercise tests of `stage`, from [`real_tests`], in
/// the stage's folder as `cargo test` would.
fn run_real(binaries: &[(PathBuf, PathBuf)], stage: &Stage) -> Result<Run, String> {
    let manifest = stage.dir.join("Cargo.toml");
    let (_, executable) = binaries
        .iter()
        .find(|(m, _)| *m == manifest)
        .ok_or_else(|| format!("{} has no {TESTS_FILE}", stage.package))?;
    let output = Command::new(executable)
        .current_dir(&stage.dir)
        .output()
        .map_err(|e| format!("running {}: {e}", executable.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(Run {
        built: true,
        results: libtest::parse(&stdout),
        output: format!("{}{stdout}", String::from_utf8_lossy(&output.stderr)),
    })
}

/// The cargo that runs this program, or the one on the `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `--check`: see [`HELP`].
fn check(repo: &Path, only: &[u32]) -> Result<ExitCode, String> {
    let all = stages::all(repo)?;
    let chosen: Vec<&Stage> = all
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.number))
        .collect();
    if chosen.is_empty() {
        return Err(format!("no stage {only:?}"));
    }
    let started = Instant::now();
    let binaries = real_tests(repo, true)?;
    let mut problems = Vec::new();
    for stage in chosen {
        let at = Instant::now();
        match check_stage(repo, stage, &binaries) {
            Ok(summary) => println!(
                "stage {}: {summary} ({:.1} s)",
                stage.number,
                at.elapsed().as_secs_f64()
            ),
            Err(problem) => {
                println!("stage {}: FAILED: {problem}", stage.number);
                problems.push(stage.number);
            }
        }
    }
    println!(
        "exercises checked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("stages with problems: {problems:?}");
        Ok(ExitCode::FAILURE)
    }
}

fn check_stage(
    repo: &Path,
    stage: &Stage,
    binaries: &[(PathBuf, PathBuf)],
) -> Result<String, String> {
    // Every exercise has tests, every exercise test an exercise.
    if stage.exercises.len() < MIN_EXERCISES {
        return Err(format!(
            "{} exercises, fewer than {MIN_EXERCISES}",
            stage.exercises.len()
        ));
    }
    if let Some(exercise) = stage.exercises.iter().find(|e| e.tests.is_empty()) {
        return Err(format!(
            "exercise {} ({}:{}) has no test in {TESTS_FILE} named exercise_{}_...",
            exercise.name(),
            stage_path(stage, &exercise.file),
            exercise.region.line,
            exercise.name()
        ));
    }
    if !stage.orphan_tests.is_empty() {
        return Err(format!(
            "tests in {TESTS_FILE} that name no exercise: {}",
            stage.orphan_tests.join(", ")
        ));
    }
    let expected: Vec<&String> = stage.exercises.iter().flat_map(|e| &e.tests).collect();

    // The stubbed copy builds, all of it, and every exercise test fails on it.
    let package = format!("exercise-stage{}-check", stage.number);
    let dirs = build_dirs(repo, &package);
    let dest = workspace_target(repo)
        .join("exercises/check")
        .join(format!("stage{}", stage.number));
    copy::sync(&dest, &copy::files(repo, stage, &dirs, true, &package)?)?;
    cargo_check_all(&dest, &dirs)?.map_err(|errors| {
        format!(
            "the stubbed copy in {} does not build:\n{errors}",
            dest.display()
        )
    })?;
    let stubbed = cargo_test(&dest, &dirs, true)?;
    if !stubbed.built {
        return Err(format!(
            "the stubbed copy's exercise tests did not run:\n{}",
            stubbed.output
        ));
    }
    let missing = |results: &[TestResult]| -> Vec<String> {
        expected
            .iter()
            .filter(|test| !results.iter().any(|r| short(&r.name) == test.as_str()))
            .map(|test| test.to_string())
            .collect()
    };
    let not_run = missing(&stubbed.results);
    if !not_run.is_empty() {
        return Err(format!(
            "exercise tests that did not run on the stubs: {}",
            not_run.join(", ")
        ));
    }
    let passing: Vec<&str> = stubbed
        .results
        .iter()
        .filter(|r| r.passed)
        .map(|r| r.name.as_str())
        .collect();
    if !passing.is_empty() {
        return Err(format!(
            "exercise tests that pass with the exercises taken out (so they grade nothing): {}",
            passing.join(", ")
        ));
    }

    // The same tests pass on the real code: every exercise has a solution.
    let real = run_real(binaries, stage)?;
    let not_run = missing(&real.results);
    if !not_run.is_empty() {
        return Err(format!(
            "exercise tests that did not run on the real code: {}",
            not_run.join(", ")
        ));
    }
    let failing: Vec<String> = real
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.message.as_deref().unwrap_or("")))
        .collect();
    if !failing.is_empty() {
        return Err(format!(
            "exercise tests that fail on the real code:\n{}",
            failing.join("\n")
        ));
    }
    Ok(format!(
        "{} exercises, {} tests: the stubbed copy builds and fails them all; the real code passes them all",
        stage.exercises.len(),
        expected.len()
    ))
}
