//! `rivulet-server`'s settings as an operator meets them: the generated
//! reference files are what the code says, precedence is defaults < file <
//! environment < flag, and every bad setting (unknown key, wrong type,
//! invalid value, unparsable variable, unknown flag) stops the start with
//! exit code 2 and a message naming the key and where it came from.
//!
//! After a deliberate change to the settings table:
//! `RIVULET_BLESS=1 cargo test -p rivulet-broker --test config` rewrites the
//! generated files.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod operator;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use operator::{Broker, command, run};
use rivulet_broker::settings::{self, KEYS, Settings};

/// The repository's root (one level above this crate).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compares `text` with the committed file, or rewrites it under `RIVULET_BLESS`.
fn check_generated(path: &Path, text: &str) {
    if std::env::var_os("RIVULET_BLESS").is_some() {
        std::fs::write(path, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from what broker/src/settings.rs generates \
         (RIVULET_BLESS=1 cargo test -p rivulet-broker --test config rewrites it)",
        path.display()
    );
}

#[test]
fn config_reference_and_example_file_match_the_settings_table() {
    check_generated(
        &repo().join("book/src/generated/config-reference.md"),
        &settings::reference_markdown(),
    );
    check_generated(
        &repo().join("deploy/rivulet.toml"),
        &settings::commented_toml(&settings::deploy_example(), settings::DEPLOY_TITLE),
    );
}

#[test]
fn config_print_config_with_nothing_set_prints_every_default() {
    let output = run(&["--print-config"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        toml::from_str::<Settings>(&text).unwrap(),
        Settings::default()
    );
    for key in KEYS {
        assert!(
            text.contains(&format!("\n{} = ", key.name)),
            "{}",
            key.path()
        );
        assert!(text.contains(&key.env_var()), "{}", key.env_var());
    }
    assert!(text.contains("listen = \"127.0.0.1:7406\""), "{text}");
    assert!(text.contains("data = \"rivulet-data\""), "{text}");
}

/// `--print-config` under these flags and variables, parsed back.
fn effective(args: &[&str], env: &[(&str, &str)]) -> Settings {
    let mut all = args.to_vec();
    all.push("--print-config");
    let output = run(&all, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap()
}

#[test]
fn config_precedence_is_file_then_environment_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rivulet.toml");
    std::fs::write(
        &file,
        "[server]\nshards = 3\nmax_connections = 10\n\
         [storage]\nfsync = \"never\"\nflush_count = 7\nsegment_size = 8192\n\
         [log]\nlevel = \"warn\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let env = [
        ("RIVULET_STORAGE_FSYNC", "always"),
        ("RIVULET_STORAGE_FLUSH_COUNT", "9"),
        ("RIVULET_LOG_LEVEL", "debug"),
    ];
    let flags = [
        "--config",
        path,
        "--fsync",
        "interval-100ms",
        "--shards",
        "2",
    ];
    let settings = effective(&flags, &env);
    assert_eq!(settings.server.shards, 2, "flag over file");
    assert_eq!(settings.server.max_connections, 10, "file over default");
    assert_eq!(
        settings.storage.fsync.name(),
        "interval-100ms",
        "flag over env over file"
    );
    assert_eq!(settings.storage.flush_count, 9, "env over file");
    assert_eq!(settings.storage.segment_size, 8192, "file over default");
    assert_eq!(settings.log.level, "debug", "env over file");
    assert_eq!(
        settings.storage.flush_bytes,
        Settings::default().storage.flush_bytes
    );

    // RIVULET_CONFIG names the file when --config does not.
    let by_env = effective(&[], &[("RIVULET_CONFIG", path)]);
    assert_eq!(by_env.server.shards, 3);
    assert_eq!(by_env.storage.fsync.name(), "never");
}

#[test]
fn config_file_environment_and_flags_reach_the_running_broker() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rivulet.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshards = 1\ndata = {:?}\n\
             [storage]\nfsync = \"never\"\ndirect_io = false\n\
             [metrics]\nlisten = \"off\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let args = [OsStr::new("--config"), file.as_os_str()];
    let env = [("RIVULET_STORAGE_FSYNC", "always")];
    let broker = Broker::start(command(&args, &env));
    let line = broker.wait_for_log("io driver");
    assert!(line.contains("1 shards"), "{line}");
    assert!(line.contains("direct I/O off"), "{line}");
    assert!(
        line.contains("fsync always"),
        "the environment over the file: {line}"
    );
    broker.wait_for_log("metrics off"); // logged after the io driver line
    assert!(data.is_dir(), "the data folder comes from the file");
    broker.stop();

    let args = [
        OsStr::new("--config"),
        file.as_os_str(),
        OsStr::new("--fsync"),
        OsStr::new("every-batch"),
    ];
    let broker = Broker::start(command(&args, &env));
    let line = broker.wait_for_log("io driver");
    assert!(
        line.contains("fsync every-batch"),
        "the flag over both: {line}"
    );
    broker.stop();
}

#[test]
fn config_no_arguments_and_no_file_listens_on_7406_with_data_in_rivulet_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = command(&[], &[]);
    command.current_dir(dir.path());
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut line, mut kafka) = (String::new(), String::new());
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    std::io::BufRead::read_line(&mut stdout, &mut kafka).unwrap();
    if line.is_empty() {
        // Another program holds a default port on this machine (Rivulet's
        // 7406 or Kafka's 9092): then the start must fail saying so,
        // naming the default address.
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains("127.0.0.1:7406") || stderr.contains("127.0.0.1:9092"),
            "{stderr}"
        );
        eprintln!("a default port is taken here; checked the error instead: {stderr}");
        return;
    }
    assert_eq!(line.trim(), "listening on 127.0.0.1:7406");
    assert_eq!(kafka.trim(), "kafka listening on 127.0.0.1:9092");
    assert!(dir.path().join("rivulet-data").is_dir());
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Runs with `args` and `env`, expects exit code 2 and a message with every
/// one of `needles`; returns the message.
fn refused(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let output = run(args, env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert!(output.stdout.is_empty(), "no `listening on` line");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn file_with(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rivulet.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn config_unknown_key_in_the_file_is_refused_by_name() {
    let (_dir, path) = file_with("[storage]\nfsyn = \"never\"\n");
    refused(&["--config", &path], &[], &["storage.fsyn", &path, "fsync"]);
    let (_dir, path) = file_with("[storag]\nfsync = \"never\"\n");
    refused(&["--config", &path], &[], &["storag", &path]);
}

#[test]
fn config_file_that_is_not_one_is_refused_without_reading_it_all() {
    // Endless: read whole, it would take all memory before any check.
    refused(
        &["--config", "/dev/zero"],
        &[],
        &["/dev/zero", "larger than"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary.toml");
    std::fs::write(&path, b"\xff\xfe\x00").unwrap();
    let path = path.to_str().unwrap();
    refused(&["--config", path], &[], &[path, "not UTF-8"]);
    refused(
        &["--config", "/nonexistent/rivulet.toml"],
        &[],
        &["cannot read it"],
    );
}

#[test]
fn config_wrong_type_and_bad_value_in_the_file_are_refused_by_name() {
    let (_dir, path) = file_with("[server]\nshards = \"four\"\n");
    refused(&["--config", &path], &[], &["server.shards", &path]);
    let (_dir, path) = file_with("[storage]\nfsync = \"sometimes\"\n");
    refused(
        &["--config", &path],
        &[],
        &["storage.fsync", "sometimes", &path],
    );
    let (_dir, path) = file_with("[storage]\nsegment_size = 4097\n");
    refused(
        &["--config", &path],
        &[],
        &["storage.segment_size", "4096", &path],
    );
    let (_dir, path) = file_with("[server]\nmax_connections = -1\n");
    refused(
        &["--config", &path],
        &[],
        &["server.max_connections", &path],
    );
    let (_dir, path) = file_with("[server\nshards = 1\n");
    refused(&["--config", &path], &[], &[&path, "TOML"]);
    refused(
        &["--config", "/nonexistent/rivulet.toml"],
        &[],
        &["/nonexistent/rivulet.toml"],
    );
}

#[test]
fn config_bad_environment_variable_is_refused_by_name() {
    refused(
        &[],
        &[("RIVULET_SERVER_SHARDS", "many")],
        &["server.shards", "RIVULET_SERVER_SHARDS"],
    );
    refused(
        &[],
        &[("RIVULET_STORAGE_FSYNC", "sometimes")],
        &["storage.fsync", "RIVULET_STORAGE_FSYNC"],
    );
    refused(
        &[],
        &[("RIVULET_STORAGE_SEGMENT_SIZE", "4097")],
        &["storage.segment_size", "RIVULET_STORAGE_SEGMENT_SIZE"],
    );
    // A misspelt variable in a settings section is an error, not ignored.
    refused(
        &[],
        &[("RIVULET_STORAGE_FSYN", "never")],
        &["RIVULET_STORAGE_FSYN", "fsync"],
    );
}

#[test]
fn config_bad_flags_are_refused_by_name() {
    refused(
        &["--fsync", "sometimes"],
        &[],
        &["storage.fsync", "--fsync"],
    );
    refused(&["--shards", "-3"], &[], &["--shards"]);
    refused(&["--pin", "maybe"], &[], &["server.pin", "--pin"]);
    refused(
        &["--io-driver", "epoll"],
        &[],
        &["server.io_driver", "--io-driver"],
    );
    refused(
        &["--metrics-listen", "nowhere"],
        &[],
        &["metrics.listen", "--metrics-listen"],
    );
    refused(
        &["--log-level", "info,[[["],
        &[],
        &["log.level", "--log-level"],
    );
    refused(
        &["--max-connections", "0"],
        &[],
        &["server.max_connections"],
    );
    refused(&["--shards", "100000"], &[], &["server.shards"]);
    // An unknown flag: clap's message, which suggests the near one.
    refused(&["--fsinc", "never"], &[], &["--fsinc", "--fsync"]);
}
