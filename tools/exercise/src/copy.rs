//! A learner's copy of a stage: the stage's files with every exercise's body
//! taken out, as a workspace of its own that builds on its own.
//!
//! The copy's `Cargo.toml` is the stage's, with the repository's workspace
//! settings merged in (the stage inherits its version, dependencies and lints
//! from there): `[workspace]` with the dependency table (local paths made
//! absolute, so the earlier stages it uses are the real ones), the lints (plus
//! `unused` allowed: a stubbed body leaves arguments and helpers unused),
//! and the profiles, which must be the repository's for the dependencies
//! compiled there to be reused. `Cargo.lock` is the repository's, so the copy
//! builds with the same versions and without the network.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::markers;
use crate::stages::Stage;

/// A file in the copy that says which stage it is a copy of, so that
/// `--reset` never removes a folder it did not make.
pub const STAMP: &str = ".rivulet-exercise";

/// The files of a copy: path inside it, and contents.
pub type Files = BTreeMap<PathBuf, Vec<u8>>;

/// Where builds of copies go: `target_dir` for what cargo leaves (binaries
/// a test runs), `build_dir` for the intermediate artifacts, shared with
/// the repository's own build so the dependencies compile once.
#[derive(Debug, Clone)]
pub struct BuildDirs {
    /// `--target-dir`.
    pub target_dir: PathBuf,
    /// `build.build-dir`.
    pub build_dir: PathBuf,
}

impl BuildDirs {
    /// The environment that sends a cargo command's builds there.
    pub fn env(&self) -> [(&'static str, &Path); 2] {
        [
            ("CARGO_TARGET_DIR", &self.target_dir),
            ("CARGO_BUILD_BUILD_DIR", &self.build_dir),
        ]
    }
}

/// The files of a copy of `stage`, stubbed if `stub`, as package `package`
/// (see [`merged_manifest`]).
pub fn files(
    repo: &Path,
    stage: &Stage,
    dirs: &BuildDirs,
    stub: bool,
    package: &str,
) -> Result<Files, String> {
    let mut files = Files::new();
    let mut pending = vec![stage.dir.clone()];
    while let Some(folder) = pending.pop() {
        let entries =
            fs::read_dir(&folder).map_err(|e| format!("reading {}: {e}", folder.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", folder.display()))?
                .path();
            let relative = path.strip_prefix(&stage.dir).unwrap_or(&path).to_path_buf();
            if relative == Path::new("target") {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            files.insert(relative, bytes);
        }
    }
    if stub {
        for exercise_file in stage
            .exercises
            .iter()
            .map(|e| e.file.clone())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let Some(bytes) = files.get_mut(&exercise_file) else {
                continue;
            };
            let source = String::from_utf8_lossy(bytes).into_owned();
            let regions = markers::regions(&source)
                .map_err(|e| format!("{}: {e}", exercise_file.display()))?;
            *bytes = markers::stubbed(&source, &regions).into_bytes();
        }
    }
    // Sources that include files by a relative path out of the stage (stage
    // 5's tests share stage 4's conformance checks): the copy lives elsewhere,
    // so those paths are made absolute.
    for (relative, bytes) in files.iter_mut() {
        if relative.extension().is_some_and(|ext| ext == "rs") {
            let folder = stage.dir.join(relative.parent().unwrap_or(Path::new("")));
            let source = String::from_utf8_lossy(bytes).into_owned();
            if let Some(fixed) = outside_paths_made_absolute(&source, &folder, &stage.dir) {
                *bytes = fixed.into_bytes();
            }
        }
    }
    let manifest = files
        .get(Path::new("Cargo.toml"))
        .ok_or_else(|| format!("{} has no Cargo.toml", stage.dir.display()))?;
    let manifest = merged_manifest(repo, &String::from_utf8_lossy(manifest), stub, package)?;
    files.insert("Cargo.toml".into(), manifest.into_bytes());
    let lock = repo.join("Cargo.lock");
    files.insert(
        "Cargo.lock".into(),
        fs::read(&lock).map_err(|e| format!("reading {}: {e}", lock.display()))?,
    );
    files.insert(".cargo/config.toml".into(), cargo_config(dirs).into_bytes());
    files.insert(STAMP.into(), format!("{}\n", stage.number).into_bytes());
    Ok(files)
}

/// The stage's manifest as a workspace of its own (see the module docs),
/// its package renamed `package` and its library keeping the stage's crate
/// name (so the tests' `use stage1_file_log::...` still works).
///
/// Why renamed: cargo tells two builds of a package apart by its name,
/// version and path *from its workspace's root*, which is the same (`.`) for
/// every copy of a stage. In the build folder they share, a learner's copy
/// and `--check`'s would take each other's compiled code for their own.
pub fn merged_manifest(
    repo: &Path,
    stage_manifest: &str,
    stub: bool,
    package: &str,
) -> Result<String, String> {
    let root_path = repo.join("Cargo.toml");
    let root: Table = fs::read_to_string(&root_path)
        .map_err(|e| format!("reading {}: {e}", root_path.display()))?
        .parse()
        .map_err(|e| format!("{}: {e}", root_path.display()))?;
    let stage: Table = stage_manifest
        .parse()
        .map_err(|e| format!("the stage's Cargo.toml: {e}"))?;
    let name = stage
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or("the stage's Cargo.toml has no package name")?;

    // The stage's own manifest stays as it is written, comments included,
    // but for the package's name and, if it has none, a [lib] that keeps
    // the crate's name.
    let mut text = String::from(
        "# Written by scripts/exercise: the stage's Cargo.toml, its package renamed,\n\
         # then the repository's workspace settings.\n\n",
    );
    let mut in_package = false;
    let mut renamed = false;
    for line in stage_manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_package = trimmed == "[package]";
        }
        if in_package
            && !renamed
            && trimmed.starts_with("name")
            && trimmed.contains(&format!("\"{name}\""))
        {
            text.push_str(&format!(
                "name = \"{package}\" # {name}, renamed (see scripts/exercise)\n"
            ));
            renamed = true;
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    if !renamed {
        return Err(format!(
            "the stage's Cargo.toml has no `name = \"{name}\"` line in [package]"
        ));
    }
    if !stage.contains_key("lib") {
        text.push_str(&format!("\n[lib]\nname = \"{}\"\n", name.replace('-', "_")));
    }

    let mut workspace = match root.get("workspace") {
        Some(Value::Table(workspace)) => workspace.clone(),
        _ => return Err(format!("{} has no [workspace]", root_path.display())),
    };
    for key in ["members", "exclude", "default-members"] {
        workspace.remove(key);
    }
    if let Some(Value::Table(dependencies)) = workspace.get_mut("dependencies") {
        for (_, dependency) in dependencies.iter_mut() {
            absolute_path(repo, dependency);
        }
    }
    if stub && let Some(Value::Table(lints)) = workspace.get_mut("lints") {
        let rust = lints
            .entry("rust")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(rust) = rust {
            let mut unused = Table::new();
            unused.insert("level".into(), Value::String("allow".into()));
            unused.insert("priority".into(), Value::Integer(-1));
            rust.insert("unused".into(), Value::Table(unused));
        }
    }
    let mut settings = Table::new();
    settings.insert("workspace".into(), Value::Table(workspace));
    if let Some(profile) = root.get("profile") {
        settings.insert("profile".into(), profile.clone());
    }
    let settings = toml::to_string(&settings).map_err(|e| format!("writing the manifest: {e}"))?;
    text.push_str("\n# The repository's workspace settings (local paths made absolute).\n");
    text.push_str(&settings);
    Ok(text)
}

/// `source` (a file in `folder`) with every `#[path = "..."]`,
/// `include_str!("...")` and `include_bytes!("...")` that leads out of
/// `stage` made absolute; `None` if there is none.
fn outside_paths_made_absolute(source: &str, folder: &Path, stage: &Path) -> Option<String> {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    let mut changed = false;
    loop {
        let next = ["#[path = \"", "include_str!(\"", "include_bytes!(\""]
            .iter()
            .filter_map(|opening| rest.find(opening).map(|at| at + opening.len()))
            .min();
        let Some(start) = next else { break };
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        let literal = &rest[start..start + len];
        let resolved = normalize(&folder.join(literal));
        if Path::new(literal).is_relative() && !resolved.starts_with(stage) {
            out.push_str(&resolved.to_string_lossy());
            changed = true;
        } else {
            out.push_str(literal);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// `path` with its `.` and `..` parts resolved, without the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Makes a dependency's `path` absolute, from the repository's root.
fn absolute_path(repo: &Path, dependency: &mut Value) {
    if let Value::Table(table) = dependency
        && let Some(Value::String(path)) = table.get_mut("path")
    {
        *path = repo.join(&*path).to_string_lossy().into_owned();
    }
}

/// The copy's `.cargo/config.toml`: builds go where `scripts/exercise`
/// sends them, also when the learner runs cargo in the copy by hand.
fn cargo_config(dirs: &BuildDirs) -> String {
    format!(
        "# Written by scripts/exercise: cargo run in this folder builds where\n\
         # scripts/exercise does, reusing what is compiled there.\n\
         [build]\ntarget-dir = {:?}\nbuild-dir = {:?}\n",
        dirs.target_dir.to_string_lossy(),
        dirs.build_dir.to_string_lossy()
    )
}

/// Writes `files` into `dest`, which must not exist yet.
pub fn create(dest: &Path, files: &Files) -> Result<(), String> {
    if dest.exists() {
        return Err(format!("{} exists already", dest.display()));
    }
    sync(dest, files)
}

/// Makes `dest` hold exactly `files`: writes those that differ, removes the
/// rest. Files that are already right keep their modification time, so
/// cargo sees nothing to rebuild.
pub fn sync(dest: &Path, files: &Files) -> Result<(), String> {
    for (relative, bytes) in files {
        let path = dest.join(relative);
        if fs::read(&path).is_ok_and(|old| old == *bytes) {
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let mut pending = vec![dest.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            fs::read_dir(&folder).map_err(|e| format!("reading {}: {e}", folder.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", folder.display()))?
                .path();
            let relative = path.strip_prefix(dest).unwrap_or(&path);
            if path.is_dir() {
                pending.push(path);
            } else if !files.contains_key(relative) {
                fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The stage number a copy in `dir` was made from, if it is one.
pub fn stamp(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(STAMP))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_out_of_the_stage_are_made_absolute_and_only_those() {
        let stage = Path::new("/repo/stages/5-zero-copy");
        let folder = stage.join("tests");
        let source = "#[path = \"../../4-partitions/tests/conformance/mod.rs\"]\nmod conformance;\n\
                      const G: &str = include_str!(\"golden/x.hex\");\n";
        let fixed = outside_paths_made_absolute(source, &folder, stage).unwrap();
        assert_eq!(
            fixed,
            "#[path = \"/repo/stages/4-partitions/tests/conformance/mod.rs\"]\nmod conformance;\n\
             const G: &str = include_str!(\"golden/x.hex\");\n"
        );
        assert_eq!(
            outside_paths_made_absolute("include_bytes!(\"../data.bin\")", &folder, stage),
            None,
            "inside the stage: left as it is"
        );
    }
}
