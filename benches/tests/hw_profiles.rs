//! Every hardware profile parses with the typed schema (`bench::profile`), keeps
//! the invariants its module states, and `scripts/profile-host` writes profiles
//! the same schema accepts, printed or merged into an existing file.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::path::Path;
use std::process::Command;

use bench::profile::{BlockSize, IoUring, Profile, render_page};
use rivulet_datasets::Workload;

fn committed() -> Vec<Profile> {
    Profile::load_all(&Profile::dir()).unwrap()
}

#[test]
fn every_committed_profile_parses_and_keeps_its_invariants() {
    let profiles = committed();
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    for expected in [
        "dev-2core",
        "aws-i3en.large",
        "aws-i3en.3xlarge",
        "aws-i3en.6xlarge",
        "aws-i3en.metal",
        "aws-i4i.4xlarge",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for profile in &profiles {
        let file = Profile::dir().join(format!("{}.toml", profile.name));
        assert!(file.exists(), "{}: name is not its file name", profile.name);
        assert!(
            profile.cores > 0 && profile.memory_gib > 0.0,
            "{}",
            profile.name
        );
        if let Some(physical) = profile.physical_cores {
            assert!(physical <= profile.cores, "{}", profile.name);
        }
        if let Some(run) = &profile.run {
            assert!(
                run.shards >= 1 && run.shards <= profile.cores,
                "{}: {} shards on {} vCPUs",
                profile.name,
                run.shards,
                profile.cores
            );
            for workload in &run.workloads {
                Workload::load(workload)
                    .unwrap_or_else(|e| panic!("{}: workload {workload}: {e}", profile.name));
            }
        }
    }
}

#[test]
fn cloud_profiles_give_their_published_figures_with_the_source() {
    for profile in committed().iter().filter(|p| p.name.starts_with("aws-")) {
        let published = profile.published.as_ref().unwrap();
        assert_eq!(published.by, "AWS", "{}", profile.name);
        assert!(
            published.source.starts_with("https://docs.aws.amazon.com/"),
            "{}: {}",
            profile.name,
            published.source
        );
        assert!(published.random_read_iops.is_some() && published.write_iops.is_some());
        assert!(
            !profile.disks.is_empty() && profile.network.is_some(),
            "{}",
            profile.name
        );
        let run = profile.run.as_ref().unwrap();
        assert_eq!(run.data_dir, "/mnt/nvme/rivulet", "{}", profile.name);
        assert_eq!(
            run.shards, profile.cores,
            "{}: shards = vCPUs",
            profile.name
        );
    }
}

#[test]
fn a_misspelled_key_is_an_error_naming_it() {
    let text = std::fs::read_to_string(Profile::dir().join("dev-2core.toml")).unwrap();
    let typo = text.replacen("memory_gib", "memroy_gib", 1);
    let error = Profile::parse(&typo, Path::new("typo.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("memroy_gib") && error.contains("typo.toml"),
        "{error}"
    );
    // A logical block size is a number or the word "unknown", nothing else.
    let with_size = |size: &str| {
        let detected = format!(
            "{text}\n[detected]\ndate = \"d\"\ncpu = \"c\"\ncores = 1\nkernel = \"k\"\n\
             data_dir = \"/\"\nfilesystem = \"x\"\nblock_device = \"x\"\n\
             logical_block_size = {size}\nio_uring = \"available\"\n"
        );
        Profile::parse(&detected, Path::new("detected.toml")).map(|p| p.detected)
    };
    let size = |text| with_size(text).unwrap().unwrap().logical_block_size;
    assert_eq!(size("4096"), BlockSize::Bytes(4096));
    assert!(matches!(size("\"unknown\""), BlockSize::Unknown(_)));
    assert!(with_size("\"big\"").is_err());
}

#[test]
fn the_book_table_has_a_row_per_profile_and_every_source() {
    let profiles = committed();
    let page = render_page(&profiles);
    for profile in &profiles {
        assert!(
            page.contains(&format!("| `{}` |", profile.name)),
            "{}",
            profile.name
        );
        if let Some(published) = &profile.published {
            assert!(page.contains(&published.source));
        }
        for check in &profile.check {
            assert!(page.contains(check.as_str()));
        }
    }
    assert!(page.contains("250,000 / 200,000"), "i3en.3xlarge's IOPS");
    assert!(render_page(&[]).contains("No hardware profiles"));
}

fn profile_host(dir: &Path, data: &Path, args: &[&str]) -> String {
    // Through bash, not exec'd: the test writes this copy, and a child that
    // another test thread forks at that moment can hold the file open for
    // writing, which makes exec fail with ETXTBSY ("Text file busy").
    let output = Command::new("bash")
        .arg(dir.join("scripts").join("profile-host"))
        .args(args)
        .env("RIVULET_BENCH_DIR", data)
        .env_remove("RIVULET_PROFILE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "profile-host failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn profile_host_writes_a_profile_the_schema_accepts() {
    let data = tempfile::tempdir().unwrap();
    let text = profile_host(&bench::repo_root(), data.path(), &["test-host"]);
    let profile = Profile::parse(&text, Path::new("stdout")).unwrap();
    assert_eq!(profile.name, "test-host");
    assert_eq!(profile.kind, "detected host");
    let detected = profile.detected.unwrap();
    let cores = std::thread::available_parallelism().unwrap().get() as u32;
    // nproc ignores a cgroup CPU quota, which Rust's count honours.
    assert!(detected.cores >= cores, "{} < {cores}", detected.cores);
    assert_eq!(profile.cores, detected.cores);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(detected.kernel, kernel.trim());
    assert_eq!(Path::new(&detected.data_dir), data.path());
    assert_ne!(detected.filesystem, "");
    // Unknowns are said, never failed on: either a size or the word.
    if let BlockSize::Bytes(size) = detected.logical_block_size {
        assert!(size.is_power_of_two() && size >= 512, "{size}");
    }
    if Path::new("/proc/sys/kernel/io_uring_disabled").exists() {
        assert_ne!(detected.io_uring, IoUring::Unknown);
    }
    // With no argument: RIVULET_PROFILE is unset here, so `local`.
    let text = profile_host(&bench::repo_root(), data.path(), &[]);
    assert_eq!(
        Profile::parse(&text, Path::new("stdout")).unwrap().name,
        "local"
    );
}

#[test]
fn profile_host_write_keeps_a_hand_written_profile_and_replaces_its_detected_table() {
    // A copy of the layout, so --write never touches the real hw-profiles/.
    let root = tempfile::tempdir().unwrap();
    let scripts = root.path().join("scripts");
    let profiles = root.path().join("hw-profiles");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::copy(
        bench::repo_root().join("scripts").join("profile-host"),
        scripts.join("profile-host"),
    )
    .unwrap();
    let hand_written = Profile::dir().join("aws-i3en.3xlarge.toml");
    let target = profiles.join("aws-i3en.3xlarge.toml");
    std::fs::copy(&hand_written, &target).unwrap();

    let data = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        // Twice: the second run replaces the first run's table, not adds one.
        let printed = profile_host(root.path(), data.path(), &["--write", "aws-i3en.3xlarge"]);
        assert!(printed.is_empty(), "--write prints nothing to stdout");
    }
    let text = std::fs::read_to_string(&target).unwrap();
    assert_eq!(text.matches("[detected]").count(), 1, "{text}");
    let merged = Profile::load(&target).unwrap();
    let original = Profile::load(&hand_written).unwrap();
    assert!(merged.detected.is_some());
    assert_eq!(
        Profile {
            detected: None,
            ..merged
        },
        original,
        "the hand-written part changed"
    );

    // A new name writes a whole profile.
    profile_host(root.path(), data.path(), &["--write", "fresh"]);
    let fresh = Profile::load(&profiles.join("fresh.toml")).unwrap();
    assert_eq!(fresh.name, "fresh");
}
