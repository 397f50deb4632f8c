use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// A proto timestamp as a UTC instant; `None` when it is out of range.
pub fn timestamp_to_utc(t: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok()?;
    DateTime::from_timestamp(t.seconds, nanos)
}

pub fn utc_to_timestamp(t: &DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let now = Utc::now();
        assert_eq!(timestamp_to_utc(&utc_to_timestamp(&now)), Some(now));
    }

    #[test]
    fn rejects_negative_nanos() {
        let t = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(timestamp_to_utc(&t), None);
    }
}
