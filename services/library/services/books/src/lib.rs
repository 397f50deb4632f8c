//! The library's books: everything but one rule is generated (`library_books`); the rule
//! is the appraisal, what a lost copy costs the member who lost it.

use keel::crud;
use keel::sql::{Arg, Db};
use keel::{RequestContext, ServiceError};
use library_books::{BooksHooks, pb};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

pub use library_books::{Config, MIGRATIONS};

/// The replacement cost of a book from a base price: books printed before 1900 cost five
/// times the base, before 1950 twice, later ones the base. Saturates instead of
/// overflowing (the spec bounds the base; this keeps the rule total anyway).
pub fn appraisal(base: i64, year: i32) -> i64 {
    let factor = match year {
        ..1900 => 5,
        1900..1950 => 2,
        _ => 1,
    };
    base.saturating_mul(factor)
}

/// The books service's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules;

impl BooksHooks for Rules {
    async fn appraise(
        &self,
        db: &Db,
        _ctx: RequestContext,
        request: pb::AppraiseRequest,
    ) -> Result<pb::AppraiseResponse, ServiceError> {
        let id = crud::uuid("book_id", &request.book_id)?;
        let mut tx = db.begin().await.map_err(keel::db::error)?;
        let mut book = crud::get::<pb::Book>(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("book", id))?;
        book.replacement_cost = appraisal(request.base, book.year);
        crud::update::<pb::Book>(
            &mut tx,
            id,
            vec![("replacement_cost", Arg::from(book.replacement_cost))],
        )
        .await?;
        tx.commit().await.map_err(keel::db::error)?;
        Ok(pb::AppraiseResponse { book: Some(book) })
    }
}

/// Serves the books service (generated) with these rules until `stop` turns true.
pub async fn run(
    config: Config,
    incoming: TcpIncoming,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    library_books::run_with(config, incoming, stop, |_, _| Ok(Rules)).await
}

#[cfg(test)]
mod tests {
    use super::appraisal;

    #[test]
    fn older_books_cost_more() {
        assert_eq!(appraisal(1000, 1850), 5000);
        assert_eq!(appraisal(1000, 1900), 2000);
        assert_eq!(appraisal(1000, 1949), 2000);
        assert_eq!(appraisal(1000, 1950), 1000);
        assert_eq!(appraisal(i64::MAX, 1700), i64::MAX);
    }
}
