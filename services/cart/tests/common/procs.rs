//! Service processes of the test (the package's own `cart-service` binary) and the
//! random command mix of the crash and fault tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rand::Rng;
use shop_cart::{
    AddProduct, AssignCustomer, CartCommand, ChangeProductQuantity, DeleteCart, RemoveProduct,
    ResetCart,
};
use uuid::Uuid;

/// The settings every cart process of a test shares: the test's event store (Mongo
/// database), read database and topic on the harness's servers.
pub fn cart_env(mongo_database: &str, read_db_url: &str, topic: &str) -> Vec<(String, String)> {
    let infra = super::infra();
    [
        ("EVENT_STORE_URL", infra.mongo_url.as_str()),
        ("EVENT_STORE_DATABASE", mongo_database),
        ("DATABASE_URL", read_db_url),
        ("BUS_URL", infra.brokers.as_str()),
        ("CART_TOPIC", topic),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `base` and then `extra`.
pub fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = base.to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub const BIN: &str = env!("CARGO_BIN_EXE_cart-service");

fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cart-crash-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub struct Proc {
    pub name: String,
    env: Vec<(String, String)>,
    child: Child,
    log: PathBuf,
    pub starts: usize,
}

impl Proc {
    pub fn start(name: &str, env: Vec<(String, String)>) -> Proc {
        let log = log_dir().join(format!("{name}-{}.log", std::process::id()));
        let child = Self::spawn(&env, &log, false);
        Proc {
            name: name.into(),
            env,
            child,
            log,
            starts: 1,
        }
    }

    fn spawn(env: &[(String, String)], log: &PathBuf, append: bool) -> Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(log)
            .expect("log file");
        let err = file.try_clone().expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("starting cart-service")
    }

    /// kill -9, then start it again.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.env, &self.log, true);
        self.starts += 1;
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            panic!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn random_command(rng: &mut impl Rng, carts: &[Uuid], customers: &[Uuid]) -> CartCommand {
    let cart_id = carts[rng.random_range(0..carts.len())];
    let product_id = Uuid::from_u128(rng.random_range(1..5));
    match rng.random_range(0..100) {
        0..50 => CartCommand::AddProduct(AddProduct {
            cart_id,
            product_id,
            quantity: rng.random_range(1..4),
        }),
        50..70 => CartCommand::ChangeProductQuantity(ChangeProductQuantity {
            cart_id,
            product_id,
            quantity: rng.random_range(1..10),
        }),
        70..85 => CartCommand::RemoveProduct(RemoveProduct {
            cart_id,
            product_id,
        }),
        85..92 => CartCommand::ResetCart(ResetCart { cart_id }),
        92..98 => CartCommand::AssignCustomer(AssignCustomer {
            cart_id,
            customer_id: Some(customers[rng.random_range(0..customers.len())]),
        }),
        _ => CartCommand::DeleteCart(DeleteCart { cart_id }),
    }
}
