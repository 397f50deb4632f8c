//! The shop's end-to-end tests: its deployables on real servers through the framework's
//! test stack ([`keel::testing::stack`]), and the operations the journeys share.

pub mod authz;
pub mod compose;
pub mod embedded;
pub mod ops;

pub use keel::testing::process::*;
pub use keel::testing::stack::{Stack, System};
pub use keel::testing::{TestDatabase, infra_up, infra_var, repo_root};

/// The shop as the test stack runs it: its generated table and local Envoy configs, and
/// quick recovery for the order service's checkouts.
pub fn shop() -> System {
    System {
        name: shop_system::SYSTEM,
        table: shop_system::DEPLOYABLES,
        root: repo_root(),
        env: vec![
            ("order", "RECOVERY_INTERVAL_SECS", "1".to_string()),
            (
                "user",
                "AUTH_BACK_OFFICE_EMAILS",
                ops::BACK_OFFICE_EMAIL.to_string(),
            ),
        ],
    }
}

/// Starts the shop's deployables called `names` (see [`Stack::start`]).
pub async fn start_shop(names: &[&str]) -> Stack {
    Stack::start(shop(), names).await
}

/// Starts every deployable of the shop's table.
pub async fn start_whole_shop() -> Stack {
    let system = shop();
    let names = system.names();
    Stack::start(system, &names).await
}

#[cfg(test)]
mod tests {
    /// The generated local Envoy of each deployable listens, administers and routes on
    /// the ports of the table: the first `port_value` after `admin:`, after `listeners:`
    /// and after `clusters:`, whose first cluster is named after the deployable.
    #[test]
    fn every_generated_local_envoy_uses_the_tables_ports() {
        for d in shop_system::DEPLOYABLES {
            let path = crate::repo_root().join(format!("generated/envoy/local/{}.yaml", d.name));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let port_after = |section: &str| -> Option<u16> {
                let rest = &text[text.find(section)? + section.len()..];
                let at = rest.find("port_value:")? + "port_value:".len();
                let digits: String = rest[at..]
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            };
            let ports = (
                port_after("\nadmin:"),
                port_after("\n  listeners:"),
                port_after("\n  clusters:"),
            );
            let l = d.local;
            assert_eq!(
                ports,
                (Some(l.envoy_admin), Some(l.envoy), Some(l.app)),
                "{}",
                d.name
            );
            let clusters = &text[text.find("\n  clusters:").expect("clusters")..];
            let first = clusters
                .split("- name:")
                .nth(1)
                .and_then(|c| c.lines().next());
            assert_eq!(first.map(|n| n.trim().trim_matches('"')), Some(d.name));
        }
    }
}
