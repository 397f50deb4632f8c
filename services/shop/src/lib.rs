//! `shop up`: the shop on embedded storage (`keel::embedded`, given the generated
//! `shop_launcher::SYSTEM`), plus what only the shop has: demo products added on the
//! first start of a data folder.
//!
//! Files under the data folder (kept across restarts): one SQLite file per database of
//! the spec (`product.db`, `order.db`, `user.db`, `cart-events.db`, `cart-read.db`),
//! `bus.db`, `demo-seeded` (the demo products were added once), `.lock` (held while
//! running).

pub mod demo;

pub use shop_launcher::SYSTEM;

/// Every deployable `shop up` runs: the names in the spec's generated table.
pub fn deployables() -> Vec<&'static str> {
    SYSTEM.table.iter().map(|d| d.name).collect()
}
