//! The bus's Kafka adapter against the harness's real Kafka: a backlog consumed in order
//! with a commit per message, and a restarted member of the group resuming right after
//! the last message it committed.

use std::time::Duration;

use keel::bus::{Bus, Outgoing};
use keel::testing::{infra_up, infra_var};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_read_in_order_and_a_restart_resumes_after_the_last_commit() {
    infra_up(&["kafka"]);
    let bus = Bus::connect(&format!("kafka://{}", infra_var("KAFKA_BOOTSTRAP_SERVERS")))
        .await
        .expect("kafka url");
    let topic = format!("kit-bus-{}", uuid::Uuid::new_v4().simple());
    let group = format!("{topic}-group");
    bus.ensure_topic(&topic, 1).await.expect("topic");
    let publisher = bus.publisher(Duration::from_secs(30)).expect("publisher");
    const BACKLOG: usize = 3000;
    let payloads: Vec<String> = (0..BACKLOG).map(|i| format!("m{i}")).collect();
    for chunk in payloads.chunks(500) {
        let batch: Vec<Outgoing<'_>> = chunk
            .iter()
            .map(|p| Outgoing {
                topic: &topic,
                key: b"k",
                payload: p.as_bytes(),
            })
            .collect();
        let published = publisher.publish(&batch).await;
        assert_eq!(published.acknowledged, batch.len(), "{:?}", published.error);
    }

    let mut sub = bus
        .subscriber(&group, None, &[topic.as_str()])
        .await
        .expect("subscriber");
    for (i, want) in payloads.iter().enumerate() {
        let m = tokio::time::timeout(Duration::from_secs(60), sub.recv())
            .await
            .unwrap_or_else(|_| panic!("message {i} never came"))
            .expect("recv");
        assert_eq!(m.payload, want.as_bytes(), "message {i}");
        assert_eq!(m.offset, i as i64);
        sub.commit(&m).await.expect("commit");
    }
    drop(sub);

    let published = publisher
        .publish(&[Outgoing {
            topic: &topic,
            key: b"k",
            payload: b"after the restart",
        }])
        .await;
    assert_eq!(published.acknowledged, 1);
    let mut again = bus
        .subscriber(&group, None, &[topic.as_str()])
        .await
        .expect("subscriber again");
    let m = tokio::time::timeout(Duration::from_secs(60), again.recv())
        .await
        .expect("the new message comes")
        .expect("recv");
    assert_eq!(
        (m.offset, m.payload.as_slice()),
        (BACKLOG as i64, &b"after the restart"[..]),
        "a restarted member resumes right after the last committed message"
    );
}
