//! The cart's event store: the runtime's ([`shop_kit::es::store`]: commit documents on
//! the MongoDB wire, or the same records in PostgreSQL or SQLite, by URL) with the
//! layout generated for `shop_cart_events`.

use shop_kit::sql::Migrations;
use sqlx::migrate::Migrator;

pub use shop_kit::es::RawEvent;
pub use shop_kit::es::store::*;

/// The generated migrations of the event store, per dialect.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../generated/sql/shop_cart_events");
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../generated/sqlite/shop_cart_events");

pub static MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATOR,
    sqlite: &SQLITE_MIGRATOR,
};

/// What the generator wrote for the cart's event store.
pub const LAYOUT: StoreLayout = StoreLayout {
    migrations: &MIGRATIONS,
    collections_json: include_str!("../../../generated/mongo/shop_cart_events.json"),
};

/// The database name the generator chose (the MongoDB database; the SQL store's
/// database or file is named by its URL).
pub const DEFAULT_DATABASE: &str = "shop_cart_events";
