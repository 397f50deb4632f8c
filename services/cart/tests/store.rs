//! The command side on every event store backend (the real MongoDB-wire server
//! FerretDB, PostgreSQL, SQLite): one commit per command,
//! idempotent retries, optimistic concurrency reported as retryable, and many
//! concurrent commands on one cart ending in the fold of the stored events.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::commit_id;
use common::{Appended, NewCommit, RawEvent};
use common::{BACKENDS, TestStore, ctx, store_fold};
use common::{CartCommands, FixedCatalog};
use keel::ServiceError;
use rand::{Rng, SeedableRng};
use shop_cart::pb::cart_command_service_client::CartCommandServiceClient;
use shop_cart::{AddProduct, CartCommand, CartEvent, CartReset, EventMeta, pb};
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

fn commands(t: &TestStore) -> CartCommands {
    CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)))
}

fn add(cart: Uuid, product: Uuid, quantity: i32) -> CartCommand {
    CartCommand::AddProduct(AddProduct {
        cart_id: cart,
        product_id: product,
        quantity,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_command_is_answered_with_its_first_result() {
    for b in BACKENDS {
        eprintln!("a_retried_command_is_answered_with_its_first_result: {b:?}");
        a_retried_command_is_answered_with_its_first_result_on(TestStore::on(b).await).await;
    }
}

async fn a_retried_command_is_answered_with_its_first_result_on(t: TestStore) {
    let cmds = commands(&t);
    let (cart, product) = (Uuid::now_v7(), Uuid::now_v7());
    let first = cmds
        .execute(&ctx("r1"), "r1", None, &add(cart, product, 2))
        .await
        .expect("first");
    assert_eq!((first.version, first.duplicate), (1, false));
    cmds.execute(&ctx("r2"), "r2", None, &add(cart, product, 1))
        .await
        .expect("second");
    // The first request again (same idempotency key): its result, no second effect.
    let again = cmds
        .execute(&ctx("r1"), "r1", None, &add(cart, product, 2))
        .await
        .expect("retry");
    assert_eq!((again.version, again.duplicate), (1, true));
    assert_eq!(again.position, first.position);
    let (state, version, commits) = cmds.load(cart).await.expect("load");
    assert_eq!(version, 2);
    assert_eq!(commits.len(), 2);
    assert_eq!(state.items[&product], 3);
    // The commit id is derived from the key, and the unique (stream_id, commit_id) index
    // also catches a duplicate that races past the load.
    let raced = NewCommit {
        stream_id: cart,
        commit_seq: 3,
        commit_id: commit_id(&add(cart, product, 2), cart, Some("r1")),
        events: vec![event(cart, 3, CartEvent::CartReset(CartReset {}))],
        correlation_id: "c".into(),
        causation_id: "r1".into(),
    };
    assert_eq!(
        t.store.append(&raced).await.expect("append"),
        Appended::Duplicate {
            position: first.position.expect("position"),
            rev_to: 1
        }
    );
}

fn event(cart: Uuid, version: i64, e: CartEvent) -> RawEvent {
    let meta = EventMeta {
        event_id: Uuid::now_v7(),
        stream_id: cart,
        version,
        occurred_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("time"),
        correlation_id: "c".into(),
        causation_id: "x".into(),
    };
    RawEvent::encode(meta, &e).expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_versions_conflict_and_a_commit_round_trips() {
    for b in BACKENDS {
        eprintln!("stale_versions_conflict_and_a_commit_round_trips: {b:?}");
        stale_versions_conflict_and_a_commit_round_trips_on(TestStore::on(b).await).await;
    }
}

async fn stale_versions_conflict_and_a_commit_round_trips_on(t: TestStore) {
    let cmds = commands(&t).with_conflict_retries(0);
    let (cart, product) = (Uuid::now_v7(), Uuid::now_v7());
    cmds.execute(&ctx("a"), "a", Some(0), &add(cart, product, 1))
        .await
        .expect("creates at version 0");
    let stale = cmds
        .execute(&ctx("b"), "b", Some(0), &add(cart, product, 1))
        .await;
    assert!(matches!(stale, Err(ServiceError::Conflict(_))), "{stale:?}");
    let status: tonic::Status = stale.expect_err("conflict").into();
    assert_eq!(status.code(), Code::Aborted);
    // Two writers that decided on the same state: the unique (stream_id, commit_seq).
    let commit = |key: &str| NewCommit {
        stream_id: cart,
        commit_seq: 2,
        commit_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()),
        events: vec![
            event(cart, 2, CartEvent::CartReset(CartReset {})),
            event(cart, 3, CartEvent::CartReset(CartReset {})),
        ],
        correlation_id: "c".into(),
        causation_id: "x".into(),
    };
    let w1 = commit("w1");
    let won = t.store.append(&w1).await.expect("first writer");
    let lost = t.store.append(&commit("w2")).await;
    assert!(matches!(lost, Err(ServiceError::Conflict(_))), "{lost:?}");
    let Appended::Committed { position, rev_to } = won else {
        panic!("{won:?}")
    };
    assert_eq!(rev_to, 3);
    // Stored as one document holding both events, and read back equal.
    let stored = t.store.at(position).await.expect("read").expect("stored");
    assert_eq!(stored.events, w1.events);
    assert_eq!(
        (stored.rev_from, stored.rev_to, stored.commit_seq),
        (2, 3, 2)
    );
    assert_eq!(stored.commit_id, w1.commit_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_must_exist() {
    let t = TestStore::create().await;
    let known = Uuid::now_v7();
    let cmds = CartCommands::new(
        t.store.clone(),
        Arc::new(FixedCatalog(Some(HashSet::from([known])))),
    );
    let cart = Uuid::now_v7();
    let r = cmds
        .execute(&ctx("x"), "x", None, &add(cart, Uuid::now_v7(), 1))
        .await;
    assert!(
        matches!(r, Err(ServiceError::NotFound { ref kind, .. }) if kind == "product"),
        "{r:?}"
    );
    assert!(t.store.load(cart).await.expect("load").is_empty());
    cmds.execute(&ctx("y"), "y", None, &add(cart, known, 1))
        .await
        .expect("known product");
}

/// 30 clients × 5 commands on ONE cart through gRPC, retrying on ABORTED with the same
/// request id: every conflict is ABORTED with retry info, every accepted command is one
/// commit, and the versions, commits and positions add up to the fold of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_on_one_cart_end_in_the_fold_of_the_store() {
    for b in BACKENDS {
        eprintln!("concurrent_commands_on_one_cart_end_in_the_fold_of_the_store: {b:?}");
        concurrent_commands_on_one_cart_end_in_the_fold_of_the_store_on(TestStore::on(b).await)
            .await;
    }
}

async fn concurrent_commands_on_one_cart_end_in_the_fold_of_the_store_on(t: TestStore) {
    let cmds = commands(&t).with_conflict_retries(0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(common::serve_command(
        cmds.clone(),
        TcpIncoming::from(listener),
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let cart = Uuid::now_v7();
    let products: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..30u64 {
        let mut client = CartCommandServiceClient::new(channel.clone());
        let (products, conflicts) = (products.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(task);
            let mut accepted = Vec::new();
            for n in 0..5 {
                let request_id = format!("t{task}-c{n}");
                let product = products[rng.random_range(0..products.len())].to_string();
                let kind = rng.random_range(0..10);
                for _attempt in 0..200 {
                    let r = match kind {
                        0..6 => {
                            let req = tonic::Request::new(pb::AddProductRequest {
                                cart_id: cart.to_string(),
                                product_id: product.clone(),
                                quantity: 1,
                                expected_version: None,
                                idempotency_key: Some(request_id.clone()),
                            });
                            client
                                .add_product(req)
                                .await
                                .map(|r| r.into_inner().version)
                        }
                        6..8 => {
                            let req = tonic::Request::new(pb::ChangeProductQuantityRequest {
                                cart_id: cart.to_string(),
                                product_id: product.clone(),
                                quantity: rng.random_range(1..=9),
                                expected_version: None,
                                idempotency_key: Some(request_id.clone()),
                            });
                            client
                                .change_product_quantity(req)
                                .await
                                .map(|r| r.into_inner().version)
                        }
                        _ => {
                            let req = tonic::Request::new(pb::RemoveProductRequest {
                                cart_id: cart.to_string(),
                                product_id: product.clone(),
                                expected_version: None,
                                idempotency_key: Some(request_id.clone()),
                            });
                            client
                                .remove_product(req)
                                .await
                                .map(|r| r.into_inner().version)
                        }
                    };
                    match r {
                        Ok(version) => {
                            accepted.push((request_id.clone(), version));
                            break;
                        }
                        Err(s) if s.code() == Code::Aborted => {
                            use tonic_types::StatusExt;
                            assert!(
                                s.get_error_details().retry_info().is_some(),
                                "ABORTED carries retry info: {s:?}"
                            );
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
                        }
                        // Changing/removing what is not (or no longer) there.
                        Err(s) if s.code() == Code::NotFound => break,
                        Err(s) => panic!("unexpected status: {s:?}"),
                    }
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.expect("client task"));
    }
    let _ = stop.send(());
    server.await.expect("server task").expect("server");

    let folded = store_fold(&t.store).await;
    let (state, version) = folded.get(&cart).cloned().expect("the cart exists");
    let (loaded, loaded_version, commits) = cmds.load(cart).await.expect("load");
    assert_eq!((&loaded, loaded_version), (&state, version));
    // Each commit's id is the one derived from the request that wrote it, once.
    let by_commit: BTreeMap<Uuid, i64> = commits.iter().map(|c| (c.commit_id, c.rev_to)).collect();
    assert_eq!(
        by_commit.len(),
        commits.len(),
        "one commit per accepted command"
    );
    let mut effective = 0;
    for (request_id, v) in &accepted {
        let kinds = ["AddProduct", "ChangeProductQuantity", "RemoveProduct"];
        let stored = kinds.iter().find_map(|k| {
            let c = match *k {
                "AddProduct" => add(cart, products[0], 1),
                "ChangeProductQuantity" => {
                    CartCommand::ChangeProductQuantity(shop_cart::ChangeProductQuantity {
                        cart_id: cart,
                        product_id: products[0],
                        quantity: 1,
                    })
                }
                _ => CartCommand::RemoveProduct(shop_cart::RemoveProduct {
                    cart_id: cart,
                    product_id: products[0],
                }),
            };
            by_commit.get(&commit_id(&c, cart, Some(request_id)))
        });
        match stored {
            Some(rev_to) => {
                assert_eq!(rev_to, v, "{request_id} answered with its commit's version");
                effective += 1;
            }
            // A no-op (same quantity): nothing stored, answered with the current version.
            None => assert!(*v <= version),
        }
    }
    assert_eq!(effective, commits.len(), "every commit answers one request");
    assert!(
        conflicts.load(Ordering::Relaxed) > 0,
        "30 concurrent clients on one cart never conflicted"
    );
    for q in state.items.values() {
        assert!((1..=99).contains(q));
    }
    eprintln!(
        "{} commands accepted, {} commits, {} conflicts retried, final version {version}",
        accepted.len(),
        commits.len(),
        conflicts.load(Ordering::Relaxed)
    );
}

/// 48 writers add to one cart at once without naming a version: the ones that lose a
/// race are decided again on the newer state, so every add is accepted, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_races_without_a_version_are_decided_again() {
    for b in BACKENDS {
        eprintln!("lost_races_without_a_version_are_decided_again: {b:?}");
        let t = TestStore::on(b).await;
        let cmds = commands(&t);
        let cart = Uuid::now_v7();
        let writers: Vec<_> = (0..48u128)
            .map(|i| {
                let cmds = cmds.clone();
                tokio::spawn(async move {
                    cmds.execute(&ctx("w"), None, None, &add(cart, Uuid::from_u128(i + 1), 1))
                        .await
                })
            })
            .collect();
        for w in writers {
            w.await
                .expect("writer")
                .expect("no CONFLICT without an expected version");
        }
        let (state, version, _) = cmds.load(cart).await.expect("load");
        assert_eq!((version, state.items.len()), (48, 48), "{b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_cart_answers_the_latest_version_from_the_store() {
    use shop_cart::CartCommandUseCases;
    let t = TestStore::create().await;
    let cmds = commands(&t);
    let (cart, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    cmds.execute(&ctx("l1"), "l1", None, &add(cart, a, 2))
        .await
        .expect("add a");
    cmds.execute(&ctx("l2"), "l2", None, &add(cart, b, 1))
        .await
        .expect("add b");
    let loaded = cmds
        .handlers()
        .load_cart(
            ctx("l3"),
            pb::LoadCartRequest {
                cart_id: cart.to_string(),
            },
        )
        .await
        .expect("loads");
    assert_eq!(loaded.version, 2);
    let mut items: Vec<(String, i32)> = loaded
        .cart
        .expect("cart")
        .items
        .into_iter()
        .map(|i| (i.product_id, i.quantity))
        .collect();
    items.sort();
    let mut want = vec![(a.to_string(), 2), (b.to_string(), 1)];
    want.sort();
    assert_eq!(items, want);
    let unknown = cmds
        .handlers()
        .load_cart(
            ctx("l4"),
            pb::LoadCartRequest {
                cart_id: Uuid::now_v7().to_string(),
            },
        )
        .await;
    assert!(
        matches!(unknown, Err(ServiceError::NotFound { .. })),
        "{unknown:?}"
    );
}
