//! Optional access control on the real `rivulet-server`, its users in the
//! config file's `[auth]` section: nothing but a login before logging in,
//! per-topic produce and consume permissions, create and delete for admins
//! only, and wrong secrets refused.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use common::rivulet_server;
use rivulet_broker::api::{self, CreateTopic, Login, PollBy, PollKind, TopicRef, status};
use rivulet_client::Client;
use rivulet_client::Partitioning;

const USERS: &str = r#"
[[auth.users]]
name = "root"
password = "correct horse"
admin = true

[[auth.users]]
name = "shop"
token = "shop-token"
produce = ["orders"]
consume = ["orders"]

[[auth.users]]
name = "reader"
password = "read only"
consume = ["*"]
"#;

fn password(name: &str, password: &str) -> Login {
    Login {
        username: Some(name.into()),
        password: Some(password.into()),
        token: None,
    }
}

fn topic(name: &str) -> CreateTopic {
    CreateTopic {
        stream: None,
        name: name.into(),
        id: None,
        partitions: 1,
        settings: api::TopicSettings::default(),
    }
}

#[test]
fn access_control_asks_for_a_login_and_checks_each_topic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rivulet.toml");
    std::fs::write(&file, USERS).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // The Kafka listener cannot check logins: with [auth] it must be off.
    let broker = rivulet_server(
        &data,
        &["--config", file.to_str().unwrap(), "--kafka-listen", "off"],
    );
    let addr = broker.addr().to_string();
    let forbidden = Some(status::FORBIDDEN);

    let mut anonymous = Client::connect(&addr).unwrap();
    let error = anonymous.list_streams().unwrap_err();
    assert_eq!(error.status(), Some(status::UNAUTHENTICATED), "{error}");
    let error = anonymous.login(&password("root", "not-it-42")).unwrap_err();
    assert_eq!(error.status(), Some(status::UNAUTHENTICATED));
    assert!(
        !error.to_string().contains("not-it-42"),
        "the attempt is not echoed"
    );
    assert_eq!(
        anonymous.stats().unwrap_err().status(),
        Some(status::UNAUTHENTICATED),
        "a failed login logs nobody in"
    );

    let mut root = Client::connect(&addr).unwrap();
    root.login(&password("root", "correct horse")).unwrap();
    let orders = root.create_topic(&topic("orders")).unwrap().id;
    let audit = root.create_topic(&topic("audit")).unwrap().id;
    root.produce(audit, Partitioning::Explicit(0), [b"secret"])
        .unwrap();

    let mut shop = Client::connect(&addr).unwrap();
    shop.login(&Login {
        username: None,
        password: None,
        token: Some("shop-token".into()),
    })
    .unwrap();
    shop.produce(orders, Partitioning::Explicit(0), [b"order 1"])
        .unwrap();
    assert_eq!(shop.poll(orders, 0, 0, 10).unwrap().len(), 1);
    let error = shop
        .produce(audit, Partitioning::Explicit(0), [b"x"])
        .unwrap_err();
    assert_eq!(error.status(), forbidden);
    assert!(error.to_string().contains("audit"), "{error}");
    assert_eq!(shop.poll(audit, 0, 0, 10).unwrap_err().status(), forbidden);
    let poll_audit = PollBy {
        topic: audit,
        partition: 0,
        kind: PollKind::First,
        count: 10,
        consumer: String::new(),
        auto_commit: false,
    };
    assert_eq!(shop.poll_by(&poll_audit).unwrap_err().status(), forbidden);
    assert_eq!(
        shop.get_offsets("c", &TopicRef::Name("audit".into()))
            .unwrap_err()
            .status(),
        forbidden
    );
    assert_eq!(
        shop.create_topic(&topic("mine")).unwrap_err().status(),
        forbidden
    );
    assert_eq!(
        shop.delete_topic(&TopicRef::Id(orders))
            .unwrap_err()
            .status(),
        forbidden
    );
    // Listing and describing need only a login.
    assert_eq!(shop.list_topics(None).unwrap().len(), 2);
    shop.describe_topic(&TopicRef::Id(audit)).unwrap();

    let mut reader = Client::connect(&addr).unwrap();
    reader.login(&password("reader", "read only")).unwrap();
    assert_eq!(reader.poll_by(&poll_audit).unwrap().len(), 1);
    assert_eq!(
        reader
            .produce(orders, Partitioning::Explicit(0), [b"x"])
            .unwrap_err()
            .status(),
        forbidden
    );

    root.delete_topic(&TopicRef::Id(audit)).unwrap();
    assert!(broker.terminate().unwrap().success());
}
