//! Event sourcing, written once for every event-sourced service over the traits the
//! generator implements: [`Event`] for each service's event enum. With the `es`
//! feature: the event store ([`store`]: commit records on the MongoDB wire or in SQL).

#[cfg(feature = "es")]
pub mod app;
#[cfg(feature = "es")]
pub mod command;
#[cfg(feature = "es")]
pub mod cqs;
#[cfg(feature = "es")]
pub mod handler;
#[cfg(feature = "es")]
pub mod outbox;
#[cfg(feature = "es")]
pub mod rebuild;
#[cfg(feature = "es")]
pub mod relay;
#[cfg(feature = "es")]
pub mod store;
#[cfg(feature = "es")]
pub mod subscriber;
#[cfg(feature = "es")]
pub mod tail;
#[cfg(feature = "es")]
pub mod view;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ServiceError;

/// Where an event sits in its stream and what caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    pub event_id: Uuid,
    pub stream_id: Uuid,
    /// From 1, gap-free within the stream.
    pub version: i64,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    pub causation_id: String,
}

/// A service's event enum, as the generator emits it: a stored form (type name, payload
/// schema version, JSON payload) and a wire form (the protobuf envelope).
pub trait Event: Sized + Clone + Send + Sync + 'static {
    type Envelope: prost::Message + Default;

    /// The event's type name and payload schema version, as stored.
    fn type_and_version(&self) -> (&'static str, u32);
    /// The payload as stored: the event's fields as a JSON object.
    fn to_json(&self) -> Result<serde_json::Value, ServiceError>;
    /// Decodes a stored payload; older schema versions are upcast.
    fn decode_stored(
        event_type: &str,
        schema_version: u32,
        json: &serde_json::Value,
    ) -> Result<Self, ServiceError>;
    fn to_envelope(&self, meta: &EventMeta) -> Self::Envelope;
    fn from_envelope(envelope: &Self::Envelope) -> Result<(EventMeta, Self), ServiceError>;
}

/// A service's aggregate as the runtime runs it: the generator implements it per
/// event-sourced service over the hand-written aggregate trait.
pub trait Decider: Send + Sync + 'static {
    type State: Default + Clone + Send + Sync;
    type Event: Event;
    type Command: Send + Sync;
    /// The service's name in the spec (logs, commit-id scopes).
    const SERVICE: &'static str;

    /// Folds one event (with what its metadata knows: when it was recorded) into the state.
    fn apply(state: &mut Self::State, event: &Self::Event, meta: &EventMeta);
    fn decide(
        state: &Self::State,
        command: &Self::Command,
    ) -> Result<Vec<Self::Event>, ServiceError>;
    /// The stream a command addresses, when its input names it.
    fn stream_id(command: &Self::Command) -> Option<Uuid>;
    fn command_name(command: &Self::Command) -> &'static str;
}

/// What a service does when another service's event `E` arrives: the commands to run
/// here (the generator implements it over the hand-written subscription trait).
pub trait Reaction<E: Event>: Send + Sync + 'static {
    type Command: Send + Sync;
    fn commands(
        &self,
        meta: &EventMeta,
        event: &E,
    ) -> impl std::future::Future<Output = Result<Vec<Self::Command>, ServiceError>> + Send;
}

/// What projecting one event into a read model did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    Applied,
    /// Already covered by the stored version (a duplicate).
    Covered,
    /// The read model was behind: versions `from..to` were read from the event store
    /// and applied before this one.
    Filled {
        from: i64,
        to: i64,
    },
    /// Could not be applied and was set aside with the reason; the stream's later
    /// events park too until it is repaired or rebuilt.
    Parked,
}

/// A read model fed with events of type `E`, in each stream's version order, at least
/// once: it applies each version once, fills what it missed, parks what it cannot
/// apply. `Err` only when its database failed: the caller tries the same event again.
pub trait Projection<E: Event>: Send + Sync + 'static {
    fn project(
        &self,
        meta: &EventMeta,
        event: &E,
        source: &str,
    ) -> impl std::future::Future<Output = Result<Projected, ServiceError>> + Send;

    /// Keeps what cannot be applied (`meta` is `None` when the message did not even
    /// decode), with the reason and an alert.
    fn park(
        &self,
        meta: Option<&EventMeta>,
        source: &str,
        reason: &str,
        payload: &[u8],
    ) -> impl std::future::Future<Output = Result<(), ServiceError>> + Send;
}

/// One event as a store keeps it, whatever its service: decode it with
/// [`RawEvent::decode`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub meta: EventMeta,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
}

impl RawEvent {
    pub fn encode<E: Event>(meta: EventMeta, event: &E) -> Result<RawEvent, ServiceError> {
        let (event_type, schema_version) = event.type_and_version();
        Ok(RawEvent {
            meta,
            event_type: event_type.to_string(),
            schema_version,
            payload: event.to_json()?,
        })
    }

    pub fn decode<E: Event>(&self) -> Result<E, ServiceError> {
        E::decode_stored(&self.event_type, self.schema_version, &self.payload)
    }

    /// The wire form (the service's envelope, encoded).
    pub fn to_wire<E: Event>(&self) -> Result<Vec<u8>, ServiceError> {
        use prost::Message as _;
        Ok(self.decode::<E>()?.to_envelope(&self.meta).encode_to_vec())
    }
}

/// The serde form of an event enum (`{"type": .., "data": {..}}`) as its stored
/// payload: the `data` object. For generated [`Event::to_json`] implementations.
pub fn payload_json<T: serde::Serialize>(event: &T) -> Result<serde_json::Value, ServiceError> {
    let json = serde_json::to_value(event)
        .map_err(|e| ServiceError::Internal(format!("encoding event: {e}")))?;
    Ok(json
        .get("data")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({})))
}
