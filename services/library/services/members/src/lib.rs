//! The library's members: only the [`Member`] aggregate's rules, on the runtime the
//! generator wires up (`library_members::run_with`).

use keel::ServiceError;
use library_members::{Join, Joined, Leave, Left, MemberAggregate, MemberEvent, pb};

pub use library_members::Config;

/// What the events of one member add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub joined: bool,
    pub left: bool,
    pub name: String,
    pub email: String,
}

impl MemberAggregate for Member {
    fn apply(&mut self, event: &MemberEvent) {
        match event {
            MemberEvent::Joined(e) => {
                self.joined = true;
                self.name = e.name.trim().to_string();
                self.email = e.email.clone();
            }
            MemberEvent::Left(_) => self.left = true,
        }
    }

    /// Joining opens a new stream; the email's uniqueness among members is the state
    /// table's unique index.
    fn join(&self, command: &Join) -> Result<Vec<MemberEvent>, ServiceError> {
        let name = command.name.trim();
        if name.is_empty() {
            return Err(ServiceError::invalid("name", "must not be blank"));
        }
        Ok(vec![MemberEvent::Joined(Joined {
            name: name.to_string(),
            email: command.email.trim().to_lowercase(),
        })])
    }

    /// Leaving twice is leaving once.
    fn leave(&self, command: &Leave) -> Result<Vec<MemberEvent>, ServiceError> {
        match (self.joined, self.left) {
            (false, _) => Err(ServiceError::not_found("member", command.member_id)),
            (true, true) => Ok(vec![]),
            (true, false) => Ok(vec![MemberEvent::Left(Left {})]),
        }
    }

    fn view(&self, id: uuid::Uuid) -> Option<pb::Member> {
        (self.joined && !self.left).then(|| pb::Member {
            id: id.to_string(),
            name: self.name.clone(),
            email: self.email.clone(),
        })
    }
}

/// Serves the members service on `incoming` until `stop` turns true (the launcher's entry).
pub async fn run(
    config: Config,
    incoming: tonic::transport::server::TcpIncoming,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    library_members::run_with::<Member>(config, Some(incoming), stop).await
}
