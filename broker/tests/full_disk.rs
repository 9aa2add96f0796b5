//! A full disk and a failing disk, for real: a small ext4 file system on a
//! loop device, with `rivulet-server`'s data on it.
//!
//! - **Full**: produce until there is no space for a new segment. The
//!   produce gets a clear error (not a crash, not a hang), everything
//!   acknowledged before is still served intact, and the partition is not
//!   poisoned: once space is freed (here by deleting another tenant's file),
//!   the same server takes writes again. Then the disk is filled again, and
//!   a restart with retention by size frees the space itself: producing
//!   resumes, and what retention kept is intact and dense.
//! - **Failing**: every write and sync starts failing with EIO, by a
//!   device-mapper `error` target swapped in under the mounted file system
//!   where the kernel has device-mapper, else by ext4's own shutdown ioctl.
//!   The produce that meets it gets an error, and every later one is
//!   refused with `PARTITION_FAILED`: the failed write or sync is never
//!   retried (the page cache may have dropped the data: see the design's
//!   durability rules), and the server process stays up. After an unmount
//!   and mount (a reboot, for the file system), a restarted server serves
//!   every message acknowledged before the failure.
//!
//! Both need root, loop devices and `mkfs.ext4`; elsewhere (CI without
//! root, a container without loop devices) each test prints why it was
//! skipped and passes. Everything mounted is
//! unmounted and detached by a drop guard, even when the test fails.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet_broker::api;
use rivulet_broker::process::ServerProcess;
use rivulet_client::Partitioning;
use rivulet_client::{Client, ClientError};

const TIMEOUT: Duration = Duration::from_secs(60);
const TOPIC: u32 = 1;
const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------
// Mounting, and the guard that undoes it.

/// Runs a command; its output on failure.
fn run(program: &str, args: &[&OsStr]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "{program} {:?}: {}{}",
            args,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    }
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

/// Why this machine cannot run the test, if it cannot.
fn missing(tools: &[&str]) -> Option<String> {
    match run("id", &[os("-u")]) {
        Ok(uid) if uid == "0" => {}
        _ => return Some("needs root (loop devices and mount)".to_string()),
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("needs loop devices (/dev/loop-control is absent)".to_string());
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

/// A small ext4 file system on a loop device (optionally through a
/// device-mapper table), mounted; all undone on drop.
struct Mounted {
    _dir: tempfile::TempDir,
    loop_device: String,
    mapped: Option<String>,
    mount_point: PathBuf,
    device: String,
    sectors: u64,
}

impl Mounted {
    /// Makes, attaches and mounts an ext4 image of `size` bytes, through a
    /// device-mapper linear table named `mapped` if given. `Err` says why
    /// it could not (the caller skips).
    fn new(size: u64, mapped: Option<String>) -> Result<Mounted, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .and_then(|file| file.set_len(size))
            .map_err(|e| e.to_string())?;
        let loop_device = run("losetup", &[os("--find"), os("--show"), image.as_os_str()])?;
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).map_err(|e| e.to_string())?;
        let mut mounted = Mounted {
            _dir: dir,
            loop_device,
            mapped: None,
            mount_point,
            device: String::new(),
            sectors: size / 512,
        };
        let device = match mapped {
            Some(name) => {
                let table = format!("0 {} linear {} 0", mounted.sectors, mounted.loop_device);
                run(
                    "dmsetup",
                    &[os("create"), os(&name), os("--table"), os(&table)],
                )?;
                mounted.mapped = Some(name.clone());
                format!("/dev/mapper/{name}")
            }
            None => mounted.loop_device.clone(),
        };
        // `-m 0`: no blocks reserved for root, so "full" is full for the
        // server too (it runs as root here).
        run(
            "mkfs.ext4",
            &[os("-q"), os("-F"), os("-m"), os("0"), os(&device)],
        )?;
        run("mount", &[os(&device), mounted.mount_point.as_os_str()])?;
        mounted.device = device;
        Ok(mounted)
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Bytes free for files.
    fn available(&self) -> u64 {
        run(
            "df",
            &[
                os("--output=avail"),
                os("-B1"),
                self.mount_point.as_os_str(),
            ],
        )
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    }

    /// Unmounts and mounts again: a shut-down ext4 comes back with its
    /// journal replayed, as after a reboot.
    fn remount(&self) -> Result<(), String> {
        run("umount", &[self.mount_point.as_os_str()])?;
        run("mount", &[os(&self.device), self.mount_point.as_os_str()])?;
        Ok(())
    }

    /// Swaps the device-mapper table for one whose every I/O fails.
    fn fail_every_io(&self) -> Result<(), String> {
        let name = self.mapped.as_deref().ok_or("not mapped")?;
        let table = format!("0 {} error", self.sectors);
        run(
            "dmsetup",
            &[os("load"), os(name), os("--table"), os(&table)],
        )?;
        run("dmsetup", &[os("suspend"), os("--noflush"), os(name)])?;
        run("dmsetup", &[os("resume"), os(name)])?;
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let point = self.mount_point.clone();
        if run("umount", &[point.as_os_str()]).is_err() {
            // Busy (a process still has a file open): detach it lazily.
            let _ = run("umount", &[os("-l"), point.as_os_str()]);
        }
        if let Some(name) = &self.mapped {
            for _ in 0..10 {
                if run("dmsetup", &[os("remove"), os(name)]).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let _ = run("losetup", &[os("-d"), os(&self.loop_device)]);
    }
}

/// Fills the file system with a file of zeros until `leave` bytes are free.
fn filler(mounted: &Mounted, name: &str, leave: u64) -> PathBuf {
    let path = mounted.path().join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; MIB as usize];
    let mut to_write = mounted.available().saturating_sub(leave);
    while to_write > 0 {
        let n = to_write.min(MIB) as usize;
        if file.write_all(&chunk[..n]).is_err() {
            break; // full already
        }
        to_write -= n as u64;
    }
    let _ = file.sync_all();
    path
}

// ---------------------------------------------------------------------------
// The server and its messages.

fn spawn(data: &Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&OsStr> = ["--listen", "127.0.0.1:0", "--shards", "1", "--pin", "off"]
        .into_iter()
        .chain(["--fsync", "always", "--direct-io", "on"])
        .chain(["--segment-size", "1048576", "--metrics-listen", "off"])
        .chain(["--log-level", "warn"])
        .chain(extra.iter().copied())
        .map(OsStr::new)
        .collect();
    args.push(OsStr::new("--data"));
    args.push(data.as_os_str());
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_rivulet-server")), &args).unwrap()
}

fn payload(id: u64) -> Vec<u8> {
    let mut payload = format!("message {id} ").into_bytes();
    payload.resize(1000, (id % 251) as u8);
    payload
}

/// Produces 16 KiB batches until one fails: the acknowledged `(offset,
/// id)`s and the error. A lost connection or a timeout (a crash or a hang)
/// fails the test.
fn produce_until_error(
    conn: &mut Client,
    next_id: &mut u64,
    limit: u64,
) -> (Vec<(u64, u64)>, ClientError) {
    let mut acked = Vec::new();
    for _ in 0..limit {
        let batch: Vec<(u64, Vec<u8>)> = (*next_id..*next_id + 16)
            .map(|id| (id, payload(id)))
            .collect();
        *next_id += 16;
        match conn.produce_with_ids(
            TOPIC,
            Partitioning::Explicit(0),
            batch.iter().map(|(id, p)| (*id, p)),
        ) {
            Ok(produced) => {
                assert!(produced.durable);
                acked.extend((produced.first_offset..).zip(batch.iter().map(|(id, _)| *id)));
            }
            Err(error @ ClientError::Server { .. }) => return (acked, error),
            Err(error) => panic!("produce on a full disk must get an answer: {error}"),
        }
    }
    panic!("{limit} batches fit: the disk never filled");
}

/// Produces one batch, retrying for up to `within` while the answer is an
/// error (retention or freed space may take a tick); the last error if it
/// never succeeds.
fn produce_resumes(
    conn: &mut Client,
    next_id: &mut u64,
    within: Duration,
) -> Result<(u64, u64), ClientError> {
    let deadline = Instant::now() + within;
    loop {
        let id = *next_id;
        *next_id += 1;
        match conn.produce_with_ids(TOPIC, Partitioning::Explicit(0), [(id, payload(id))]) {
            Ok(produced) => return Ok((produced.first_offset, id)),
            Err(error @ ClientError::Server { .. }) if Instant::now() < deadline => {
                assert_ne!(
                    error.status(),
                    Some(api::status::PARTITION_FAILED),
                    "a full disk must not poison the partition: {error}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Every record from the partition's first to its end: dense, intact, and
/// holding every acknowledged id at or above the first offset. Returns the
/// first offset.
fn check_served(conn: &mut Client, acked: &[(u64, u64)]) -> u64 {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let more = conn.poll(TOPIC, 0, offset, 1000).unwrap(); // checksums verified
        let Some(last) = more.last() else { break };
        offset = last.offset + 1;
        records.extend(more);
    }
    let first = records.first().map_or(offset, |r| r.offset);
    for (n, record) in records.iter().enumerate() {
        assert_eq!(record.offset, first + n as u64, "dense offsets");
        assert_eq!(record.payload, payload(record.id), "intact payload");
    }
    for &(offset, id) in acked.iter().filter(|(offset, _)| *offset >= first) {
        let record = records
            .get((offset - first) as usize)
            .unwrap_or_else(|| panic!("acknowledged offset {offset} is gone"));
        assert_eq!(record.id, id, "offset {offset}");
    }
    first
}

fn is_space_error(error: &ClientError) -> bool {
    let text = error.to_string().to_lowercase();
    text.contains("space") || text.contains("full")
}

#[test]
fn full_disk_refuses_produce_clearly_keeps_every_ack_and_resumes_when_space_is_freed() {
    if let Some(why) = missing(&["losetup", "mkfs.ext4", "mount", "umount", "df"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let mounted = match Mounted::new(64 * MIB, None) {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("skipped: could not make and mount a loop file system: {why}");
            return;
        }
    };
    let data = mounted.path().join("data");
    // Another tenant's file takes all but 6 MiB: a few segments' worth.
    let other = filler(&mounted, "other-tenant", 6 * MIB);
    let server = spawn(&data, &[]);
    let mut conn = Client::connect_with_timeout(server.addr(), TIMEOUT).unwrap();
    conn.create_topic_by_id(TOPIC, 1).unwrap();
    let mut next_id = 0;

    // Full: a clear error, the same again, and the server still answers.
    let (mut acked, error) = produce_until_error(&mut conn, &mut next_id, 2000);
    eprintln!("after {} acknowledged messages: {error}", acked.len());
    assert!(!acked.is_empty(), "something fitted first");
    assert!(is_space_error(&error), "a clear error: {error}");
    assert_ne!(
        error.status(),
        Some(api::status::PARTITION_FAILED),
        "{error}"
    );
    let (more, again) = produce_until_error(&mut conn, &mut next_id, 2000);
    assert!(more.is_empty() && is_space_error(&again), "{again}");
    // Reads keep working, and nothing acknowledged was damaged.
    assert_eq!(check_served(&mut conn, &acked), 0);
    let mut fresh = Client::connect_with_timeout(server.addr(), TIMEOUT).unwrap();
    assert_eq!(check_served(&mut fresh, &acked), 0);

    // Space freed by someone else: the same server takes writes again.
    std::fs::remove_file(&other).unwrap();
    let resumed = produce_resumes(&mut conn, &mut next_id, Duration::from_secs(60))
        .unwrap_or_else(|error| panic!("no write after space was freed: {error}"));
    acked.push(resumed);
    assert_eq!(check_served(&mut conn, &acked), 0);

    // Full again; then an operator restarts with retention by size, and
    // retention frees the space itself.
    let _other = filler(&mounted, "other-tenant-2", 3 * MIB);
    let (more, error) = produce_until_error(&mut conn, &mut next_id, 4000);
    acked.extend(more);
    assert!(is_space_error(&error), "{error}");
    drop(conn);
    drop(fresh);
    let status = server.terminate().unwrap();
    assert!(status.success(), "a graceful stop on a full disk: {status}");
    if !retention_available() {
        eprintln!("note: this server has no --retention-bytes: retention's part skipped");
        return;
    }
    let server = spawn(&data, &["--retention-bytes", "3145728"]);
    let mut conn = Client::connect_with_timeout(server.addr(), TIMEOUT).unwrap();
    // Retention runs in the partition's periodic tick: wait for its first
    // deletion (the oldest record served moves up), then produce.
    let deadline = Instant::now() + Duration::from_secs(60);
    while conn.poll(TOPIC, 0, 0, 1).unwrap()[0].offset == 0 {
        assert!(Instant::now() < deadline, "retention deleted nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let resumed = produce_resumes(&mut conn, &mut next_id, Duration::from_secs(60))
        .unwrap_or_else(|error| panic!("retention freed no space: {error}"));
    acked.push(resumed);
    let first = check_served(&mut conn, &acked);
    assert!(first > 0, "retention deleted the oldest segments");
    eprintln!(
        "retention kept offsets from {first}; {} acknowledged in all",
        acked.len()
    );
    drop(conn);
    assert!(server.terminate().unwrap().success());
}

fn retention_available() -> bool {
    let help = Command::new(env!("CARGO_BIN_EXE_rivulet-server"))
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&help.stdout).contains("--retention-bytes")
}

// ANCHOR: shutdown
/// `EXT4_IOC_SHUTDOWN` with `EXT4_GOING_FLAGS_NOLOGFLUSH`: the file system
/// is marked shut down at once, and every later write, sync or new file on
/// it fails with EIO, as after a fatal device error. (`xfs_io -c shutdown`
/// does the same, but needs a package; this is one system call.)
#[allow(unsafe_code)]
fn shut_down_ext4(mount_point: &Path) -> std::io::Result<()> {
    use rustix::ioctl::{Setter, ioctl, opcode};
    const EXT4_IOC_SHUTDOWN: rustix::ioctl::Opcode = opcode::read::<u32>(b'X', 125);
    const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;
    let dir = std::fs::File::open(mount_point)?;
    // SAFETY: the opcode is ext4's `_IOR('X', 125, __u32)`, and the kernel
    // reads exactly one `u32` of flags from the pointer `Setter` passes.
    let shutdown = unsafe { Setter::<EXT4_IOC_SHUTDOWN, u32>::new(EXT4_GOING_FLAGS_NOLOGFLUSH) };
    // SAFETY: `dir` is an open descriptor on the mounted ext4 file system.
    unsafe { ioctl(&dir, shutdown) }?;
    Ok(())
}
// ANCHOR_END: shutdown

#[test]
fn full_disk_a_failing_device_fails_the_partition_and_is_never_retried() {
    if let Some(why) = missing(&["losetup", "mkfs.ext4", "mount", "umount"]) {
        eprintln!("skipped: {why}");
        return;
    }
    // The device-mapper `error` target where the kernel has device-mapper
    // (the device itself fails); else ext4's own shutdown (the file system
    // fails every I/O with EIO).
    // (`dmsetup version` names the kernel driver's version only where the
    // kernel has one.)
    let device_mapper = missing(&["dmsetup"]).is_none()
        && run("dmsetup", &[os("version")]).is_ok_and(|out| out.contains("Driver version"));
    let mapped = device_mapper.then(|| format!("rivulet-test-{}", std::process::id()));
    let mounted = match Mounted::new(64 * MIB, mapped) {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("skipped: could not make and mount a loop file system: {why}");
            return;
        }
    };
    let data = mounted.path().join("data");
    let server = spawn(&data, &[]);
    let mut conn = Client::connect_with_timeout(server.addr(), TIMEOUT).unwrap();
    conn.create_topic_by_id(TOPIC, 1).unwrap();
    for id in 0..20 {
        conn.produce_with_ids(TOPIC, Partitioning::Explicit(0), [(id, payload(id))])
            .unwrap();
    }

    // From here on, every write and sync fails with EIO.
    if device_mapper {
        eprintln!("failing the device: device-mapper error target");
        mounted.fail_every_io().unwrap();
    } else {
        eprintln!("failing the file system: EXT4_IOC_SHUTDOWN (no device-mapper here)");
        shut_down_ext4(mounted.path()).unwrap();
    }
    let mut errors = Vec::new();
    for id in 20..30 {
        match conn.produce_with_ids(TOPIC, Partitioning::Explicit(0), [(id, payload(id))]) {
            Ok(produced) => panic!("a write to a failed device was acknowledged: {produced:?}"),
            Err(error @ ClientError::Server { .. }) => errors.push(error),
            Err(error) => panic!("the server must answer, not crash or hang: {error}"),
        }
    }
    eprintln!("first error: {}", errors[0]);
    eprintln!("then: {}", errors[1]);
    // The first failure is the I/O error itself; every later produce is
    // refused without touching the device again.
    assert_ne!(errors[0].status(), Some(api::status::PARTITION_FAILED));
    for later in &errors[1..] {
        assert_eq!(
            later.status(),
            Some(api::status::PARTITION_FAILED),
            "{later}"
        );
    }
    // The process is up and answers other requests.
    let mut other = Client::connect_with_timeout(server.addr(), TIMEOUT).unwrap();
    let error = other.poll(999, 0, 0, 1).unwrap_err();
    assert_eq!(
        error.status(),
        Some(4),
        "topic not found, from a live server: {error}"
    );
    drop(conn);
    drop(other);
    server.kill().unwrap();
    if device_mapper {
        return; // the device stays failed: nothing to recover from
    }
    // After a "reboot" (unmount, mount), a restarted server recovers every
    // acknowledged message from the log.
    mounted.remount().unwrap();
    let server = spawn(&data, &[]);
    let mut conn = Client::connect_with_timeout(server.addr(), TIMEOUT).unwrap();
    let acked: Vec<(u64, u64)> = (0..20).map(|id| (id, id)).collect();
    assert_eq!(check_served(&mut conn, &acked), 0);
    drop(conn);
    assert!(server.terminate().unwrap().success());
}
