//! The user service through its real gRPC server (in-process, ephemeral port), each case
//! on a real PostgreSQL and on a SQLite file: commands, queries, validation, optimistic
//! concurrency.

mod common;

use std::time::Duration;

use common::{TestDb, TestServer};
use keel::sql::{self, Dialect};
use prost::Message as _;
use shop_user::pb;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

fn register(email: &str, name: &str) -> pb::RegisterCustomerRequest {
    pb::RegisterCustomerRequest {
        email: email.into(),
        name: name.into(),
        expected_version: None,
        idempotency_key: None,
    }
}

fn delete(id: &str, expected_version: Option<i64>) -> pb::DeleteAccountRequest {
    pb::DeleteAccountRequest {
        customer_id: id.into(),
        expected_version,
        idempotency_key: None,
    }
}

fn view(id: &str) -> pb::ViewProfileRequest {
    pb::ViewProfileRequest {
        customer_id: id.into(),
    }
}

fn with_request_id<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("x-request-id", request_id.parse().expect("ascii"));
    r
}

/// The fields named by an INVALID_ARGUMENT status's BadRequest details.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest details");
    bad.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

async fn register_view_delete_view(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;

    let registered = client
        .register_customer(with_request_id(
            register("Ann@Example.COM", " Ann "),
            "req-register",
        ))
        .await
        .expect("registers")
        .into_inner();
    assert_eq!(registered.version, 1);
    let id = registered.customer_id.clone();
    let stream = Uuid::parse_str(&id).expect("a UUID");
    assert_eq!(stream.get_version_num(), 7, "new streams get UUIDv7 ids");

    let profile = client
        .view_profile(view(&id))
        .await
        .expect("views")
        .into_inner();
    assert_eq!(profile.version, 1);
    let customer = profile.customer.expect("a customer");
    assert_eq!(customer.id, id);
    assert_eq!(customer.email, "Ann@example.com", "domain lower-cased");
    assert_eq!(customer.name, "Ann");
    let registered_at = customer.registered_at.expect("registered_at");

    let deleted = client
        .delete_account(with_request_id(delete(&id, Some(1)), "req-delete"))
        .await
        .expect("deletes")
        .into_inner();
    assert_eq!(
        (deleted.customer_id.as_str(), deleted.version),
        (id.as_str(), 2)
    );

    let gone = client.view_profile(view(&id)).await.expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    let again = client
        .delete_account(delete(&id, None))
        .await
        .expect_err("already deleted");
    assert_eq!(again.code(), Code::NotFound, "{again:?}");

    // The event table holds both events, gap-free, with their metadata.
    assert_eq!(db.versions(stream).await, [1, 2]);
    let rows = sql::query(
        "SELECT version, event_type, schema_version, payload, metadata, recorded_at FROM events WHERE stream_id = $1 ORDER BY version",
    )
    .bind(stream)
    .fetch_all(&db.db)
    .await
    .expect("events");
    assert_eq!(
        rows[0].text("event_type").expect("type"),
        "CustomerRegistered"
    );
    assert_eq!(rows[1].text("event_type").expect("type"), "AccountDeleted");
    assert_eq!(rows[0].i32("schema_version").expect("schema version"), 1);
    // The payload is the event's fields, as the document event store keeps them (rows
    // written in the older `{type, data}` form still decode).
    let payload = rows[0].json("payload").expect("json");
    assert_eq!(payload["email"], "Ann@example.com");
    let metadata = rows[1].json("metadata").expect("json");
    assert_eq!(metadata["causation_id"], "req-delete");
    assert_eq!(metadata["correlation_id"], "req-delete");

    // One outbox row per event: topic, key, and the protobuf envelope.
    let outbox: Vec<(String, String, Vec<u8>)> = sql::query(
        "SELECT topic, message_key, payload FROM outbox WHERE published_at IS NULL ORDER BY position",
    )
    .fetch_all(&db.db)
    .await
    .expect("outbox")
    .iter()
    .map(|r| {
        (
            r.text("topic").expect("topic"),
            r.text("message_key").expect("key"),
            r.bytes("payload").expect("payload"),
        )
    })
    .collect();
    assert_eq!(outbox.len(), 2);
    let envelopes: Vec<pb::CustomerEvent> = outbox
        .iter()
        .map(|(topic, key, payload)| {
            assert_eq!(topic, shop_user::TOPIC);
            assert_eq!(key, &id);
            pb::CustomerEvent::decode(payload.as_slice()).expect("envelope")
        })
        .collect();
    assert_eq!(
        envelopes.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(envelopes[0].causation_id, "req-register");
    assert!(matches!(
        envelopes[1].payload,
        Some(pb::customer_event::Payload::AccountDeleted(_))
    ));
    let (meta, event) = shop_user::CustomerEvent::from_envelope(&envelopes[0]).expect("decodes");
    assert_eq!((meta.stream_id, meta.version), (stream, 1));
    // One time, to the microsecond, in the event row, the envelope and the state row.
    let recorded_at = rows[0].time("recorded_at").expect("recorded_at");
    assert_eq!(meta.occurred_at, recorded_at);
    assert_eq!(keel::utc_to_timestamp(&recorded_at), registered_at);
    assert!(matches!(
        event,
        shop_user::CustomerEvent::CustomerRegistered(_)
    ));

    // The state row is gone, so the email is free for a new registration.
    assert_eq!(db.count("customers").await, 0);
    let again = client
        .register_customer(register("Ann@example.com", "Ann again"))
        .await
        .expect("email free again after the account was deleted")
        .into_inner();
    assert_ne!(again.customer_id, id);
    server.stop().await;
}

async fn taken_email_is_already_exists_even_under_concurrency(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;
    client
        .register_customer(register("bob@example.com", "Bob"))
        .await
        .expect("registers");
    let before = db.counts().await;
    let dup = client
        .register_customer(register("bob@EXAMPLE.com", "Other Bob"))
        .await
        .expect_err("taken");
    assert_eq!(dup.code(), Code::AlreadyExists, "{dup:?}");
    assert_eq!(
        db.counts().await,
        before,
        "a refused command writes nothing"
    );

    // Concurrent registrations of one new email: the unique index lets exactly one in.
    let channel = server.channel().await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let mut c = pb::user_service_client::UserServiceClient::new(channel.clone());
            tokio::spawn(async move {
                c.register_customer(register("carol@example.com", &format!("Carol {i}")))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(s) => assert_eq!(s.code(), Code::AlreadyExists, "{s:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(db.count("customers").await, 2);
    assert_eq!(db.count("events").await, 2);
    assert_eq!(db.count("outbox").await, 2);
    server.stop().await;
}

async fn invalid_input_names_the_field_and_changes_nothing(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;
    let live = client
        .register_customer(register("dan@example.com", "Dan"))
        .await
        .expect("registers")
        .into_inner();
    let before = db.counts().await;

    let s = client
        .register_customer(register("not-an-email", "Eve"))
        .await
        .expect_err("bad email");
    assert_eq!(violated_fields(&s), ["email"]);
    let s = client
        .register_customer(register("eve@example.com", ""))
        .await
        .expect_err("empty name");
    assert_eq!(violated_fields(&s), ["name"]);
    let s = client
        .register_customer(register("eve@example.com", "   "))
        .await
        .expect_err("blank name");
    assert_eq!(violated_fields(&s), ["name"]);
    let s = client
        .register_customer(register("x", ""))
        .await
        .expect_err("both bad");
    assert_eq!(violated_fields(&s), ["email", "name"]);
    let s = client
        .delete_account(delete("nope", None))
        .await
        .expect_err("bad uuid");
    assert_eq!(violated_fields(&s), ["customer_id"]);
    let s = client
        .delete_account(delete(&live.customer_id, Some(-1)))
        .await
        .expect_err("negative version");
    assert_eq!(violated_fields(&s), ["expected_version"]);
    let s = client
        .view_profile(view("12345"))
        .await
        .expect_err("bad uuid");
    assert_eq!(violated_fields(&s), ["customer_id"]);

    assert_eq!(db.counts().await, before, "rejected input writes nothing");
    let profile = client
        .view_profile(view(&live.customer_id))
        .await
        .expect("still there")
        .into_inner();
    assert_eq!(profile.version, 1);
    server.stop().await;
}

async fn unknown_customer_and_stale_versions(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;
    let unknown = Uuid::now_v7().to_string();
    let s = client
        .view_profile(view(&unknown))
        .await
        .expect_err("unknown");
    assert_eq!(s.code(), Code::NotFound);
    let s = client
        .delete_account(delete(&unknown, None))
        .await
        .expect_err("unknown");
    assert_eq!(s.code(), Code::NotFound);

    let live = client
        .register_customer(register("fay@example.com", "Fay"))
        .await
        .expect("registers")
        .into_inner();
    let s = client
        .delete_account(delete(&live.customer_id, Some(0)))
        .await
        .expect_err("stale");
    assert_eq!(s.code(), Code::Aborted, "{s:?}");
    assert!(s.get_error_details().retry_info().is_some(), "retryable");
    let s = client
        .register_customer(pb::RegisterCustomerRequest {
            expected_version: Some(3),
            idempotency_key: None,
            ..register("gus@example.com", "Gus")
        })
        .await
        .expect_err("a new stream is at version 0");
    assert_eq!(s.code(), Code::Aborted);
    let ok = client
        .register_customer(pb::RegisterCustomerRequest {
            expected_version: Some(0),
            idempotency_key: None,
            ..register("gus@example.com", "Gus")
        })
        .await
        .expect("version 0 is right for a new stream")
        .into_inner();
    assert_eq!(ok.version, 1);
    assert_eq!(db.counts().await, (2, 2, 2));
    server.stop().await;
}

/// N concurrent deletes of one stream, all expecting version 1: exactly one wins, the
/// others get ABORTED (the expected-version check or the events' primary key), and the
/// stream stays gap-free.
async fn concurrent_commands_with_one_expected_version(dialect: Dialect) {
    const N: usize = 20;
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;
    let channel = server.channel().await;
    for round in 0..3 {
        let live = client
            .register_customer(register(&format!("hal{round}@example.com"), "Hal"))
            .await
            .expect("registers")
            .into_inner();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let mut c = pb::user_service_client::UserServiceClient::new(channel.clone());
                let id = live.customer_id.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    c.delete_account(delete(&id, Some(1))).await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(r) => {
                    assert_eq!(r.into_inner().version, 2);
                    ok += 1;
                }
                Err(s) => assert_eq!(s.code(), Code::Aborted, "{s:?}"),
            }
        }
        assert_eq!(ok, 1, "round {round}: exactly one delete wins");
        let stream = Uuid::parse_str(&live.customer_id).expect("uuid");
        assert_eq!(db.versions(stream).await, [1, 2]);
    }
    assert_eq!(db.counts().await, (6, 0, 6));
    server.stop().await;
}

/// Without an expected version the losers either collide on the primary key (ABORTED)
/// or load the deleted stream (NOT_FOUND); never a second AccountDeleted.
async fn concurrent_commands_without_expected_version(dialect: Dialect) {
    const N: usize = 20;
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;
    let channel = server.channel().await;
    let live = client
        .register_customer(register("ivy@example.com", "Ivy"))
        .await
        .expect("registers")
        .into_inner();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let mut c = pb::user_service_client::UserServiceClient::new(channel.clone());
            let id = live.customer_id.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                c.delete_account(delete(&id, None)).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(s) => assert!(matches!(s.code(), Code::Aborted | Code::NotFound), "{s:?}"),
        }
    }
    assert_eq!(ok, 1);
    let stream = Uuid::parse_str(&live.customer_id).expect("uuid");
    assert_eq!(db.versions(stream).await, [1, 2]);
    assert_eq!(db.count("outbox").await, 2);
    server.stop().await;
}

/// A registration and a deletion retried with their idempotency keys answer their first
/// results: one customer, one AccountDeleted, no NOT_FOUND for the retried delete.
async fn retries_with_an_idempotency_key_answer_the_first_result(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let mut client = server.client().await;
    let keyed = pb::RegisterCustomerRequest {
        idempotency_key: Some("signup-42".into()),
        ..register("kim@example.com", "Kim")
    };
    let first = client
        .register_customer(keyed.clone())
        .await
        .expect("registers")
        .into_inner();
    let again = client
        .register_customer(keyed)
        .await
        .expect("the retry is answered, not ALREADY_EXISTS")
        .into_inner();
    assert_eq!(
        (again.customer_id.as_str(), again.version),
        (first.customer_id.as_str(), 1)
    );
    let delete_keyed = pb::DeleteAccountRequest {
        idempotency_key: Some("bye-42".into()),
        ..delete(&first.customer_id, None)
    };
    for _ in 0..2 {
        let d = client
            .delete_account(delete_keyed.clone())
            .await
            .expect("deleted, then the same answer")
            .into_inner();
        assert_eq!(d.version, 2);
    }
    let unkeyed = client
        .delete_account(delete(&first.customer_id, None))
        .await
        .expect_err("a new attempt finds no customer");
    assert_eq!(unkeyed.code(), Code::NotFound);
    let stream = Uuid::parse_str(&first.customer_id).expect("uuid");
    assert_eq!(db.versions(stream).await, [1, 2]);
    assert_eq!(db.count("outbox").await, 2);
    server.stop().await;
}

async fn health_is_served_for_the_service_and_the_server(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let server = TestServer::start(db.db.clone()).await;
    let channel = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["shop.user.v1.UserService", ""] {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            health.check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            }),
        )
        .await
        .expect("answers in time")
        .expect("health answers")
        .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    server.stop().await;
}

on_both_dialects!(
    register_view_delete_view,
    taken_email_is_already_exists_even_under_concurrency,
    invalid_input_names_the_field_and_changes_nothing,
    unknown_customer_and_stale_versions,
    concurrent_commands_with_one_expected_version,
    concurrent_commands_without_expected_version,
    retries_with_an_idempotency_key_answer_the_first_result,
    health_is_served_for_the_service_and_the_server,
);
