//! Kafka plumbing shared by the relay, the event handler and the user-events subscriber.

use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureProducer;

/// Creates `topic` with `partitions` partitions unless it exists, so that consumers can
/// subscribe before the first event is produced.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let new = NewTopic::new(topic, partitions.max(1), TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .with_context(|| format!("creating topic {topic}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// An idempotent, `acks=all` producer: retries never duplicate or reorder within a
/// partition.
pub fn producer(brokers: &str, delivery_timeout: Duration) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().max(1).to_string(),
        )
        .create()
        .context("creating the Kafka producer")
}

/// A group consumer that commits offsets only when told to. With `instance_id` it is a
/// static member (`group.instance.id`): restarted under the same id, it gets its
/// partitions back at once instead of after a session timeout and a rebalance.
pub fn consumer(
    brokers: &str,
    group: &str,
    instance_id: Option<&str>,
) -> anyhow::Result<StreamConsumer> {
    let mut c = ClientConfig::new();
    if let Some(id) = instance_id.filter(|s| !s.is_empty()) {
        c.set("group.instance.id", id);
    }
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()
        .context("creating the Kafka consumer")
}
