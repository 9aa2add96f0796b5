//! A topic create that fails part way is undone completely, on the real
//! `rivulet-server`: no trace in `topic list`, `describe` and `delete` agree
//! it does not exist, no descriptor of its files stays open, its folder is
//! gone, and a restart does not bring it back. And a create that a crash
//! (or an undo whose last save failed) left unfinished is removed at
//! start-up, never re-created.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::Path;

use common::rivulet_server;
use rivulet_broker::api::{CreateTopic, TopicRef, status};
use rivulet_broker::process::ServerProcess;
use rivulet_client::Client;

fn create(client: &mut Client, name: &str, id: u32) -> Result<(), rivulet_client::ClientError> {
    client
        .create_topic(&CreateTopic {
            stream: None,
            name: name.into(),
            id: Some(id),
            partitions: 4,
            settings: Default::default(),
        })
        .map(drop)
}

fn names(client: &mut Client) -> Vec<String> {
    let topics = client.list_topics(None).unwrap();
    topics.into_iter().map(|topic| topic.name).collect()
}

/// The server's open descriptors whose path is under `dir`.
fn open_under(server: &ServerProcess, dir: &Path) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.id())).unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .map(|target| target.display().to_string())
        .collect()
}

#[test]
fn create_failing_part_way_is_undone_completely() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().canonicalize().unwrap();
    let server = rivulet_server(&data, &[]);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    // Partition 2's folder cannot be made: a file stands where it goes. The
    // shards open partitions 0, 1 and 3 first, or alongside.
    std::fs::create_dir(data.join("7")).unwrap();
    std::fs::write(data.join("7").join("2"), b"in the way").unwrap();

    let error = create(&mut client, "orders", 7).unwrap_err();
    assert_eq!(error.status(), Some(status::STORAGE), "{error}");
    assert!(!names(&mut client).contains(&"orders".to_string()));
    let orders = TopicRef::Name("orders".into());
    for error in [
        client.describe_topic(&orders).unwrap_err(),
        client.delete_topic(&orders).unwrap_err(),
    ] {
        assert_eq!(error.status(), Some(status::TOPIC_NOT_FOUND), "{error}");
    }
    assert_eq!(open_under(&server, &data.join("7")), Vec::<String>::new());
    assert!(!data.join("7").exists(), "its folder is removed");

    server.kill().unwrap();
    let server = rivulet_server(&data, &[]);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    assert!(
        !names(&mut client).contains(&"orders".to_string()),
        "not back after a restart"
    );
    assert!(!data.join("7").exists());
    // Nothing of it is in the way of a create that can work now.
    create(&mut client, "orders", 7).unwrap();
}

#[test]
fn create_left_unfinished_is_removed_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = rivulet_server(data, &[]);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    create(&mut client, "kept", 1).unwrap();
    drop(client);
    assert!(server.terminate().unwrap().success());

    // As a crash between saving the metadata and making the partitions
    // leaves it: the topic named, marked as being created, one partition's
    // folder made, and no `partitions` file.
    let path = data.join("metadata.json");
    let mut metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    metadata["topics"]["9"] = serde_json::json!({
        "id": 9, "name": "half", "stream": "default", "partitions": 4, "settings": {}
    });
    metadata["creating"] = serde_json::json!([9]);
    std::fs::write(&path, serde_json::to_vec(&metadata).unwrap()).unwrap();
    std::fs::create_dir_all(data.join("9").join("0")).unwrap();

    let server = rivulet_server(data, &[]);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    assert_eq!(names(&mut client), ["kept"]);
    assert!(
        !data.join("9").exists(),
        "the unfinished create's folder is removed"
    );
    drop(server);
}
