//! The event handler without Kafka: tailing the event store from its own checkpoint
//! into the read model (real FerretDB + PostgreSQL; no Kafka involved).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CartCommands, FixedCatalog, Projector, StoreTailer, TailConfig};
use common::{ReadDb, TestStore, ctx, read_model_diff, wait_read_model_matches};
use keel::ServiceError;
use shop_cart::{AddProduct, CartCommand};
use uuid::Uuid;

fn config(batch_size: i64) -> TailConfig {
    TailConfig {
        poll_interval: Duration::from_millis(20),
        batch_size,
        ..TailConfig::default()
    }
}

/// `writers` tasks, each adding its own product `rounds` times to every cart in turn.
fn spawn_writers(
    cmds: &CartCommands,
    carts: &[Uuid],
    writers: u128,
    rounds: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let (cmds, carts) = (cmds.clone(), carts.to_vec());
            tokio::spawn(async move {
                for r in 0..rounds {
                    let cart = carts[r % carts.len()];
                    let key = format!("w{w}-r{r}");
                    let add = CartCommand::AddProduct(AddProduct {
                        cart_id: cart,
                        product_id: Uuid::from_u128(w + 1),
                        quantity: 1,
                    });
                    match cmds.execute(&ctx(&key), key.as_str(), None, &add).await {
                        Ok(_) | Err(ServiceError::Conflict { .. }) => {}
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
            })
        })
        .collect()
}

/// Concurrent writers while the tailer runs; it is stopped mid-way and a new one
/// resumes from the stored checkpoint: the read model ends equal to the fold of the
/// store (a double-applied `ProductAdded` would show as a larger quantity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailer_projects_concurrent_writers_and_resumes_from_its_checkpoint() {
    let t = TestStore::create().await;
    let db = ReadDb::create().await;
    let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));
    let carts: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let writers = spawn_writers(&cmds, &carts, 4, 25);

    let (stop1, rx1) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(
        StoreTailer::new(t.store.clone(), Projector::new(db.pool.clone()), config(5)).run(rx1),
    );
    // Mid-way: some commits projected, the writers still going.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.store.checkpoint("projection").await.expect("checkpoint") < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "first tailer never moved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop1.send(true).expect("stop");
    first.await.expect("task");
    let resumed_from = t.store.checkpoint("projection").await.expect("checkpoint");
    assert!(resumed_from >= 10);

    let (stop2, rx2) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(
        StoreTailer::new(t.store.clone(), Projector::new(db.pool.clone()), config(5)).run(rx2),
    );
    for w in writers {
        w.await.expect("writer");
    }
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(60)).await;
    let max = t.store.max_position().await.expect("max");
    assert!(max > resumed_from, "writers went on after the restart");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.store.checkpoint("projection").await.expect("checkpoint") < max {
        assert!(std::time::Instant::now() < deadline, "checkpoint behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.store.checkpoint("relay").await.expect("relay checkpoint"),
        0,
        "the relay's checkpoint is not touched"
    );
    stop2.send(true).expect("stop");
    second.await.expect("task");
}

/// A crash after the read DB committed but before the checkpoint moved: the new tailer
/// re-reads those commits from the stored checkpoint and skips them as covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_crash_before_the_checkpoint_applies_nothing_twice() {
    let t = TestStore::create().await;
    let db = ReadDb::create().await;
    let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));
    let cart = Uuid::now_v7();
    for w in spawn_writers(&cmds, &[cart], 1, 10) {
        w.await.expect("writer");
    }
    let projector = Projector::new(db.pool.clone());
    let mut first = StoreTailer::new(t.store.clone(), projector.clone(), config(4));
    let round = first.run_once().await.expect("round");
    assert_eq!((round.commits, round.checkpoint), (4, 4));
    drop(first);
    // Commits 5 and 6 reach the read DB, then the process dies before the checkpoint.
    for c in t.store.read_after(4, 2).await.expect("read") {
        for (meta, event) in c.decode::<shop_cart::CartEvent>().expect("decodes") {
            projector.apply(&meta, &event).await.expect("apply");
        }
    }
    assert_eq!(t.store.checkpoint("projection").await.expect("cp"), 4);

    let mut second = StoreTailer::new(t.store.clone(), projector, config(4));
    let mut checkpoints = Vec::new();
    loop {
        let round = second.run_once().await.expect("round");
        if round.commits == 0 {
            break;
        }
        checkpoints.push(round.checkpoint);
    }
    assert_eq!(checkpoints, [8, 10], "resumed from the stored checkpoint");
    let diff = read_model_diff(&t.store, &db.pool).await;
    assert!(diff.is_empty(), "{diff:?}");
    let view = common::load_view(&db.pool, cart)
        .await
        .expect("view")
        .expect("cart");
    assert_eq!((view.version, view.items[&Uuid::from_u128(1)]), (10, 10));
}
