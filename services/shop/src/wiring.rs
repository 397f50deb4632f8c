//! Every deployable of the spec's generated table, configured for embedded storage on
//! its own loopback port and started through the generated launcher (the same `Config`
//! and `run` as its binary). Settings are given as flags, so a `DATABASE_URL` or
//! `KAFKA_BROKERS` exported in the user's shell cannot leak into what the table lists.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use shop_system::{DEPLOYABLES as TABLE, Deployable, SettingKind};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Addresses;

/// Every deployable `shop up` runs: the names in the spec's generated table.
pub const DEPLOYABLES: &[&str] = &{
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = TABLE[i].name;
        i += 1;
    }
    names
};

/// One machine, SQLite files and the embedded log: fewer connections (SQLite serialises
/// writers), one partition per topic, relays that poll often. Applied to a deployable
/// only where it reads the setting.
const TUNING: &[(&str, &str)] = &[
    ("DATABASE_MAX_CONNECTIONS", "4"),
    ("STARTUP_TIMEOUT_SECS", "30"),
    ("RELAY_POLL_MS", "20"),
    ("CART_TOPIC_PARTITIONS", "1"),
    ("USER_TOPIC_PARTITIONS", "1"),
];

/// Where the embedded shop keeps things and where its parts listen.
pub struct Embedded<'a> {
    /// `sqlite://…` URL of a file in the data folder.
    pub url: &'a dyn Fn(&str) -> String,
    pub addresses: &'a Addresses,
}

impl Embedded<'_> {
    fn address(&self, deployable: &str) -> anyhow::Result<SocketAddr> {
        if deployable == "bff" {
            return Ok(self.addresses.graphql);
        }
        self.addresses
            .grpc
            .get(deployable)
            .copied()
            .with_context(|| format!("no address for {deployable}"))
    }

    /// The value of each setting `d` lists.
    fn settings(&self, d: &Deployable) -> anyhow::Result<Vec<(&'static str, String)>> {
        d.settings
            .iter()
            .map(|s| {
                let value = match s.kind {
                    SettingKind::Listen => self.address(d.name)?.to_string(),
                    SettingKind::Database(db) | SettingKind::EventStore(db) => {
                        (self.url)(&data_file(db))
                    }
                    SettingKind::Bus => (self.url)("bus.db"),
                    SettingKind::Upstream(up) => format!("http://{}", self.address(up)?),
                };
                Ok((s.env, value))
            })
            .collect()
    }
}

/// The data folder's file of a database: `shop_cart_read` is `cart-read.db`.
fn data_file(database: &str) -> String {
    let bare = database
        .strip_prefix(shop_system::SYSTEM)
        .and_then(|d| d.strip_prefix('_'))
        .unwrap_or(database);
    format!("{}.db", bare.replace('_', "-"))
}

type Tasks = JoinSet<(&'static str, anyhow::Result<()>)>;

pub fn spawn(
    tasks: &mut Tasks,
    at: &Embedded<'_>,
    mut listeners: BTreeMap<&'static str, TcpListener>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    for d in TABLE {
        let listener = listeners
            .remove(d.name)
            .with_context(|| format!("no port bound for {}", d.name))?;
        let settings = at.settings(d)?;
        let running = shop_launcher::start(d.name, &settings, TUNING, listener, stop.clone())
            .with_context(|| format!("configuring {}", d.name))?;
        tasks.spawn(named(d.name, running));
    }
    Ok(())
}

async fn named(
    name: &'static str,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, run.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each deployable's own `Config` accepts what the launcher gives it (the futures
    /// are dropped unpolled: nothing starts).
    #[tokio::test]
    async fn every_deployable_takes_its_embedded_settings() {
        let mut listeners = BTreeMap::new();
        let mut grpc = BTreeMap::new();
        for d in TABLE {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            grpc.insert(d.name, l.local_addr().expect("addr"));
            listeners.insert(d.name, l);
        }
        let addresses = Addresses {
            graphql: grpc["bff"],
            grpc,
        };
        let at = Embedded {
            url: &|file| format!("sqlite:///nowhere/{file}"),
            addresses: &addresses,
        };
        let (_stop, stopped) = watch::channel(false);
        for d in TABLE {
            let settings = at.settings(d).expect("settings");
            let listener = listeners.remove(d.name).expect("listener");
            if let Err(e) =
                shop_launcher::start(d.name, &settings, TUNING, listener, stopped.clone())
            {
                panic!("{}: {e:#}", d.name);
            }
        }
    }

    #[test]
    fn data_files_keep_their_names() {
        assert_eq!(data_file("shop_product"), "product.db");
        assert_eq!(data_file("shop_cart_read"), "cart-read.db");
        assert_eq!(data_file("shop_cart_events"), "cart-events.db");
    }
}
