//! The library's loans: the [`Card`] aggregate's rules (at most [`MAX_LOANS`] books at a
//! time, [`MAX_RENEWALS`] renewals each, nothing on a closed card) and what a member
//! leaving does (their cards close). That a borrowed book exists is the spec's `exists`.

use std::collections::BTreeMap;

use keel::ServiceError;
use keel::es::command::{NoChecks, load};
use keel::es::store::EventStore;
use library_loans::{
    Borrow, Borrowed, CardAggregate, CardClosed, CardCommand, CardDecider, CardEvent, CardOpened,
    CloseCard, GiveBack, GivenBack, LoansSubscriptions, OpenCard, Renew, Renewed, pb,
};
use uuid::Uuid;

pub use library_loans::Config;

pub const MAX_LOANS: usize = 5;
pub const MAX_RENEWALS: i32 = 3;

/// What the events of one card add up to (kept as a snapshot, hence serde).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Card {
    pub member_id: Option<Uuid>,
    pub closed: bool,
    /// Book -> renewals so far.
    pub loans: BTreeMap<Uuid, i32>,
}

impl Card {
    fn open(&self, card_id: Uuid) -> Result<(), ServiceError> {
        match (self.member_id, self.closed) {
            (None, _) => Err(ServiceError::not_found("card", card_id)),
            (Some(_), true) => Err(ServiceError::FailedPrecondition(
                "the card is closed".into(),
            )),
            (Some(_), false) => Ok(()),
        }
    }

    fn renewals(&self, card_id: Uuid, book_id: Uuid) -> Result<i32, ServiceError> {
        self.open(card_id)?;
        self.loans.get(&book_id).copied().ok_or_else(|| {
            ServiceError::FailedPrecondition(format!("book {book_id} is not borrowed on this card"))
        })
    }
}

impl CardAggregate for Card {
    fn apply(&mut self, event: &CardEvent) {
        match event {
            CardEvent::CardOpened(e) => self.member_id = Some(e.member_id),
            CardEvent::Borrowed(e) => {
                self.loans.insert(e.book_id, 0);
            }
            CardEvent::Renewed(e) => {
                if let Some(n) = self.loans.get_mut(&e.book_id) {
                    *n += 1;
                }
            }
            CardEvent::GivenBack(e) => {
                self.loans.remove(&e.book_id);
            }
            CardEvent::CardClosed(_) => self.closed = true,
        }
    }

    fn open_card(&self, command: &OpenCard) -> Result<Vec<CardEvent>, ServiceError> {
        if self.member_id.is_some() {
            return Err(ServiceError::AlreadyExists(
                "this card is open already".into(),
            ));
        }
        Ok(vec![CardEvent::CardOpened(CardOpened {
            member_id: command.member_id,
        })])
    }

    fn borrow(&self, command: &Borrow) -> Result<Vec<CardEvent>, ServiceError> {
        self.open(command.card_id)?;
        if self.loans.contains_key(&command.book_id) {
            return Err(ServiceError::FailedPrecondition(
                "this book is already borrowed on this card".into(),
            ));
        }
        if self.loans.len() >= MAX_LOANS {
            return Err(ServiceError::FailedPrecondition(format!(
                "at most {MAX_LOANS} books at a time"
            )));
        }
        Ok(vec![CardEvent::Borrowed(Borrowed {
            book_id: command.book_id,
        })])
    }

    fn renew(&self, command: &Renew) -> Result<Vec<CardEvent>, ServiceError> {
        if self.renewals(command.card_id, command.book_id)? >= MAX_RENEWALS {
            return Err(ServiceError::FailedPrecondition(format!(
                "a loan is renewed at most {MAX_RENEWALS} times"
            )));
        }
        Ok(vec![CardEvent::Renewed(Renewed {
            book_id: command.book_id,
        })])
    }

    fn give_back(&self, command: &GiveBack) -> Result<Vec<CardEvent>, ServiceError> {
        self.renewals(command.card_id, command.book_id)?;
        Ok(vec![CardEvent::GivenBack(GivenBack {
            book_id: command.book_id,
        })])
    }

    /// Closing twice is closing once.
    fn close_card(&self, command: &CloseCard) -> Result<Vec<CardEvent>, ServiceError> {
        match (self.member_id, self.closed) {
            (None, _) => Err(ServiceError::not_found("card", command.card_id)),
            (Some(_), true) => Ok(vec![]),
            (Some(_), false) => Ok(vec![CardEvent::CardClosed(CardClosed {})]),
        }
    }

    fn view(&self, id: Uuid) -> Option<pb::Card> {
        let member_id = self.member_id?;
        Some(pb::Card {
            id: id.to_string(),
            member_id: member_id.to_string(),
            closed: self.closed,
            loans: self
                .loans
                .iter()
                .map(|(book, renewals)| pb::Loan {
                    book_id: book.to_string(),
                    renewals: *renewals,
                })
                .collect(),
        })
    }
}

/// The loans service's reactions to other services' events.
#[derive(Clone)]
pub struct Subscriptions(EventStore);

impl Subscriptions {
    pub fn new(store: &EventStore) -> Subscriptions {
        Subscriptions(store.clone())
    }
}

impl LoansSubscriptions for Subscriptions {
    /// A member who leaves has every open card of theirs closed (found in the event
    /// store, the source of truth).
    async fn on_members_left(
        &self,
        member_id: Uuid,
        _event: &library_members::Left,
    ) -> Result<Vec<CardCommand>, ServiceError> {
        let mut commands = Vec::new();
        for card_id in (self.0)
            .streams_with("CardOpened", "member_id", &member_id.to_string())
            .await?
        {
            let (state, _, _) = load::<CardDecider<Card>>(&self.0, card_id).await?;
            if state.member_id == Some(member_id) && !state.closed {
                commands.push(CardCommand::CloseCard(CloseCard { card_id }));
            }
        }
        Ok(commands)
    }
}

/// Serves `config.role` on `incoming` until `stop` turns true (the launcher's entry).
pub async fn run(
    config: Config,
    incoming: tonic::transport::server::TcpIncoming,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    library_loans::run_with::<Card, _, _>(
        config,
        incoming,
        stop,
        |_| Ok(NoChecks),
        Subscriptions::new,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use library_loans::{decide, fold};

    fn opened() -> (Uuid, Vec<CardEvent>) {
        let card = Uuid::now_v7();
        let open = CardCommand::OpenCard(OpenCard {
            member_id: Uuid::now_v7(),
        });
        (card, decide(&Card::default(), &open).expect("opens"))
    }

    fn run(events: &mut Vec<CardEvent>, command: CardCommand) -> Result<(), ServiceError> {
        let state: Card = fold(events.iter());
        events.extend(decide(&state, &command)?);
        Ok(())
    }

    #[test]
    fn a_card_holds_at_most_five_books_and_renews_each_three_times() {
        let (card_id, mut events) = opened();
        let books: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
        for book_id in &books[..5] {
            run(
                &mut events,
                CardCommand::Borrow(Borrow {
                    card_id,
                    book_id: *book_id,
                }),
            )
            .expect("borrows");
        }
        let sixth = CardCommand::Borrow(Borrow {
            card_id,
            book_id: books[5],
        });
        assert!(matches!(
            run(&mut events, sixth),
            Err(ServiceError::FailedPrecondition(_))
        ));
        for _ in 0..3 {
            run(
                &mut events,
                CardCommand::Renew(Renew {
                    card_id,
                    book_id: books[0],
                }),
            )
            .expect("renews");
        }
        let fourth = CardCommand::Renew(Renew {
            card_id,
            book_id: books[0],
        });
        assert!(matches!(
            run(&mut events, fourth),
            Err(ServiceError::FailedPrecondition(_))
        ));
        run(
            &mut events,
            CardCommand::GiveBack(GiveBack {
                card_id,
                book_id: books[0],
            }),
        )
        .expect("back");
        run(
            &mut events,
            CardCommand::Borrow(Borrow {
                card_id,
                book_id: books[5],
            }),
        )
        .expect("room again");
    }

    #[test]
    fn a_closed_card_lends_nothing() {
        let (card_id, mut events) = opened();
        run(&mut events, CardCommand::CloseCard(CloseCard { card_id })).expect("closes");
        run(&mut events, CardCommand::CloseCard(CloseCard { card_id })).expect("closes again");
        let borrow = CardCommand::Borrow(Borrow {
            card_id,
            book_id: Uuid::now_v7(),
        });
        assert!(matches!(
            run(&mut events, borrow),
            Err(ServiceError::FailedPrecondition(_))
        ));
    }
}
