//! The `Customer` aggregate: its state, folded from its events, and one decision per
//! command. Pure: no I/O, no clock. The runtime's store loads, decides, appends.

use chrono::{DateTime, Utc};
use keel::ServiceError;
use shop_user::{
    AccountDeleted, CustomerAggregate, CustomerEvent, CustomerRegistered, DeleteAccount, EventMeta,
    RegisterCustomer,
};

/// What the events of one customer stream add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    /// A `CustomerRegistered` was recorded.
    pub registered: bool,
    /// An `AccountDeleted` was recorded: the stream is closed.
    pub deleted: bool,
    pub email: String,
    pub name: String,
    /// When `CustomerRegistered` was recorded (in its metadata: see `recorded`).
    pub registered_at: Option<DateTime<Utc>>,
}

impl Customer {
    /// Registered and not deleted: the customer exists for queries and commands.
    pub fn is_live(&self) -> bool {
        self.registered && !self.deleted
    }
}

/// The stored form of an email address: surrounding whitespace removed and the domain in
/// lower case (domains are case-insensitive; the local part, strictly, is not, so it is
/// kept as given). Uniqueness among live customers is on this form.
pub fn normalize_email(raw: &str) -> Result<String, ServiceError> {
    let trimmed = raw.trim();
    match trimmed.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            Ok(format!("{local}@{}", domain.to_lowercase()))
        }
        _ => Err(ServiceError::invalid(
            "email",
            "must be an email address like name@example.com",
        )),
    }
}

/// The stored form of a name: surrounding whitespace removed; it must not end up empty.
pub fn normalize_name(raw: &str) -> Result<String, ServiceError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::invalid("name", "must not be blank"));
    }
    Ok(trimmed.to_string())
}

impl CustomerAggregate for Customer {
    fn apply(&mut self, event: &CustomerEvent) {
        match event {
            CustomerEvent::CustomerRegistered(e) => {
                self.registered = true;
                self.email = e.email.clone();
                self.name = e.name.clone();
            }
            CustomerEvent::AccountDeleted(_) => {
                self.deleted = true;
            }
        }
    }

    fn recorded(&mut self, event: &CustomerEvent, meta: &EventMeta) {
        if matches!(event, CustomerEvent::CustomerRegistered(_)) {
            self.registered_at = Some(meta.occurred_at);
        }
    }

    /// Registration always opens a new stream, so the state here is the empty one. Email
    /// uniqueness among live customers spans streams: the state table's unique index
    /// checks it in the command's transaction.
    fn register_customer(
        &self,
        command: &RegisterCustomer,
    ) -> Result<Vec<CustomerEvent>, ServiceError> {
        if self.registered {
            return Err(ServiceError::AlreadyExists(
                "this customer is already registered".into(),
            ));
        }
        Ok(vec![CustomerEvent::CustomerRegistered(
            CustomerRegistered {
                email: normalize_email(&command.email)?,
                name: normalize_name(&command.name)?,
            },
        )])
    }

    fn view(&self, id: uuid::Uuid) -> Option<shop_user::pb::Customer> {
        self.is_live().then(|| shop_user::pb::Customer {
            id: id.to_string(),
            email: self.email.clone(),
            name: self.name.clone(),
            registered_at: self.registered_at.as_ref().map(keel::utc_to_timestamp),
        })
    }

    /// Deleting an unknown or an already deleted account is NOT_FOUND: to every caller a
    /// deleted customer no longer exists (ViewProfile says the same), and a retried delete
    /// whose first answer was lost learns that the account is gone.
    fn delete_account(&self, command: &DeleteAccount) -> Result<Vec<CustomerEvent>, ServiceError> {
        if !self.is_live() {
            return Err(ServiceError::not_found("customer", command.customer_id));
        }
        Ok(vec![CustomerEvent::AccountDeleted(AccountDeleted {})])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_user::{CustomerCommand, decide, fold};
    use uuid::Uuid;

    fn register(email: &str, name: &str) -> CustomerCommand {
        CustomerCommand::RegisterCustomer(RegisterCustomer {
            email: email.into(),
            name: name.into(),
        })
    }

    fn delete(id: Uuid) -> CustomerCommand {
        CustomerCommand::DeleteAccount(DeleteAccount { customer_id: id })
    }

    #[test]
    fn register_emits_normalized_registration() {
        let events = decide(
            &Customer::default(),
            &register("  Ann@Example.COM ", " Ann "),
        )
        .expect("registers");
        assert_eq!(
            events,
            [CustomerEvent::CustomerRegistered(CustomerRegistered {
                email: "Ann@example.com".into(),
                name: "Ann".into(),
            })]
        );
        let state: Customer = fold(&events);
        assert!(state.is_live());
        assert_eq!(state.email, "Ann@example.com");
        assert_eq!(state.registered_at, None, "apply alone knows no time");
    }

    #[test]
    fn register_rejects_blank_name_and_bad_email() {
        let Err(ServiceError::InvalidArgument(v)) =
            decide(&Customer::default(), &register("a@b.c", "   "))
        else {
            panic!("blank name accepted");
        };
        assert_eq!(v[0].field, "name");
        let Err(ServiceError::InvalidArgument(v)) =
            decide(&Customer::default(), &register("nobody", "Ann"))
        else {
            panic!("bad email accepted");
        };
        assert_eq!(v[0].field, "email");
    }

    #[test]
    fn register_twice_on_one_stream_is_already_exists() {
        let state: Customer =
            fold(&decide(&Customer::default(), &register("a@b.c", "A")).expect("ok"));
        assert!(matches!(
            decide(&state, &register("a@b.c", "A")),
            Err(ServiceError::AlreadyExists(_))
        ));
    }

    #[test]
    fn delete_live_customer_emits_account_deleted() {
        let id = Uuid::now_v7();
        let mut events = decide(&Customer::default(), &register("a@b.c", "A")).expect("ok");
        let state: Customer = fold(&events);
        let deleted = decide(&state, &delete(id)).expect("deletes");
        assert_eq!(deleted, [CustomerEvent::AccountDeleted(AccountDeleted {})]);
        events.extend(deleted);
        let state: Customer = fold(&events);
        assert!(state.registered && state.deleted && !state.is_live());
    }

    #[test]
    fn delete_twice_is_not_found() {
        let id = Uuid::now_v7();
        let mut events = decide(&Customer::default(), &register("a@b.c", "A")).expect("ok");
        events.extend(decide(&fold::<Customer>(&events), &delete(id)).expect("first delete"));
        let again = decide(&fold::<Customer>(&events), &delete(id));
        assert!(
            matches!(again, Err(ServiceError::NotFound { .. })),
            "{again:?}"
        );
    }

    #[test]
    fn delete_unknown_is_not_found() {
        let r = decide(&Customer::default(), &delete(Uuid::now_v7()));
        assert!(matches!(r, Err(ServiceError::NotFound { .. })), "{r:?}");
    }

    #[test]
    fn the_registration_time_is_when_it_was_recorded() {
        let at = Utc::now();
        let meta = |occurred_at| EventMeta {
            event_id: Uuid::now_v7(),
            stream_id: Uuid::now_v7(),
            version: 1,
            occurred_at,
            correlation_id: String::new(),
            causation_id: String::new(),
        };
        let mut state = Customer::default();
        let e = CustomerEvent::CustomerRegistered(CustomerRegistered {
            email: "a@b.c".into(),
            name: "A".into(),
        });
        state.recorded(&e, &meta(at));
        state.recorded(
            &CustomerEvent::AccountDeleted(AccountDeleted {}),
            &meta(Utc::now()),
        );
        assert_eq!(state.registered_at, Some(at));
    }

    #[test]
    fn normalize_email_keeps_local_part_case() {
        assert_eq!(
            normalize_email("X.Y@Mail.Example").expect("ok"),
            "X.Y@mail.example"
        );
        assert!(normalize_email("@x").is_err());
        assert!(normalize_email("x@").is_err());
    }
}
