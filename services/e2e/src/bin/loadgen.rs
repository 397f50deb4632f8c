//! Load generator: N concurrent customers run the shopping journey through the BFF for a
//! set time; prints throughput and latency percentiles per operation. Any error fails
//! the run (exit 1): the target is zero errors under load.
//!
//! Each customer registers and logs in once (before the clock starts: rates and the
//! duration count the shopping only), shops (one journey after another) with
//! their own session, renewing it before it expires, and deletes their account at the
//! end. Missing products are created by the back-office user (`ops::BACK_OFFICE_EMAIL`,
//! which the target must grant the back-office role: the test stacks do).
//!
//! `cargo run -p e2e --bin loadgen -- --customers 8 --duration 30`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::ops::{BACK_OFFICE_EMAIL, CREATE, PASSWORD, PRODUCT_PAGE as PRODUCTS, REGISTER};
use serde_json::{Value, json};
use tokio::sync::Mutex;

struct Args {
    url: String,
    customers: usize,
    duration: Duration,
    products: usize,
    cart: bool,
    checkout: bool,
}

fn usage() -> String {
    format!(
        "usage: loadgen [--url URL] [--customers N] [--duration SECS] [--products N] [--no-cart] [--checkout]\n\
         defaults: --url {} --customers 8 --duration 30 --products 20",
        default_url()
    )
}

/// The BFF's GraphQL endpoint through its local Envoy.
fn default_url() -> String {
    format!(
        "{}/graphql",
        e2e::shop().deployable("bff").local_envoy_url()
    )
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: default_url(),
        customers: 8,
        duration: Duration::from_secs(30),
        products: 20,
        cart: true,
        checkout: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value("--url")?,
            "--customers" => {
                a.customers = value("--customers")?
                    .parse()
                    .map_err(|e| format!("--customers: {e}"))?
            }
            "--duration" => {
                let secs: u64 = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                a.duration = Duration::from_secs(secs);
            }
            "--products" => {
                a.products = value("--products")?
                    .parse()
                    .map_err(|e| format!("--products: {e}"))?
            }
            "--no-cart" => a.cart = false,
            "--checkout" => a.checkout = true,
            "--help" | "-h" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    if a.customers == 0 {
        return Err("--customers must be at least 1".into());
    }
    Ok(a)
}

#[derive(Default)]
struct Stats {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<&'static str, (usize, String)>,
    journeys: usize,
}

const LOGIN: &str =
    "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken expiresIn } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken expiresIn } }";

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    /// Sent as `Authorization: Bearer …`.
    token: Option<String>,
}

/// A logged-in customer's client and what renews it.
struct Session {
    client: Client,
    refresh_token: String,
    /// When to renew the access token (a while before it expires).
    renew_at: Instant,
}

impl Session {
    /// The session of a `login` or `refreshSession` answer.
    fn of(client: &Client, answer: &Value) -> Option<Session> {
        let token = answer["accessToken"].as_str()?;
        let lifetime = Duration::from_secs(answer["expiresIn"].as_u64()?);
        Some(Session {
            client: client.with_token(token),
            refresh_token: answer["refreshToken"].as_str()?.to_string(),
            renew_at: Instant::now() + lifetime.mul_f64(0.8),
        })
    }

    /// Renews the access token when it is due.
    async fn fresh(&mut self, stats: &mut Stats) {
        if Instant::now() < self.renew_at {
            return;
        }
        let answer = self
            .client
            .call(
                stats,
                "refreshSession",
                REFRESH,
                json!({ "t": self.refresh_token }),
            )
            .await;
        if let Some(s) = answer.and_then(|d| Session::of(&self.client, &d["refreshSession"])) {
            *self = s;
        }
    }
}

impl Client {
    /// The same endpoint, calling with `token`.
    fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// Logs `email` in (recorded as `login`).
    async fn login(&self, stats: &mut Stats, email: &str) -> Option<Session> {
        let d = self
            .call(
                stats,
                "login",
                LOGIN,
                json!({ "input": { "email": email, "password": PASSWORD } }),
            )
            .await?;
        let session = Session::of(self, &d["login"]);
        if session.is_none() {
            Self::record(
                stats,
                "login",
                Instant::now(),
                Err(format!("no session in {d}")),
            );
        }
        session
    }

    /// Runs one operation, recording its latency or its error under `op`.
    async fn call(
        &self,
        stats: &mut Stats,
        op: &'static str,
        query: &str,
        variables: Value,
    ) -> Option<Value> {
        let started = Instant::now();
        let outcome = self.once(query, &variables).await;
        Self::record(stats, op, started, outcome)
    }

    async fn once(&self, query: &str, variables: &Value) -> Result<Value, String> {
        let mut post = self.http.post(&self.url);
        if let Some(token) = &self.token {
            post = post.bearer_auth(token);
        }
        let result = post
            .json(&json!({ "query": query, "variables": variables }))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match result {
            Err(e) => Err(format!("request: {e}")),
            Ok(r) => match r.json::<Value>().await {
                Err(e) => Err(format!("response: {e}")),
                Ok(v) if v.get("errors").is_some_and(|e| !e.is_null()) => {
                    Err(v["errors"].to_string())
                }
                Ok(v) => Ok(v["data"].clone()),
            },
        }
    }

    /// Reads an eventually consistent view until `ready` holds (read-your-writes): the
    /// latency recorded is until the view caught up with the client's own writes; a
    /// NOT_FOUND or a stale answer meanwhile is lag, not an error. Only a view that does
    /// not catch up within 10 s, or another error, counts as an error.
    async fn call_until(
        &self,
        stats: &mut Stats,
        op: &'static str,
        query: &str,
        variables: Value,
        ready: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let started = Instant::now();
        loop {
            let outcome = self.once(query, &variables).await;
            let lagging = match &outcome {
                Ok(data) => !ready(data),
                Err(msg) => msg.contains("\"NOT_FOUND\""),
            };
            if !lagging || started.elapsed() > Duration::from_secs(10) {
                let outcome = match outcome {
                    Ok(data) if !ready(&data) => Err(format!("still stale after 10 s: {data}")),
                    other => other,
                };
                return Self::record(stats, op, started, outcome);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn record(
        stats: &mut Stats,
        op: &'static str,
        started: Instant,
        outcome: Result<Value, String>,
    ) -> Option<Value> {
        match outcome {
            Ok(data) => {
                stats
                    .latencies
                    .entry(op)
                    .or_default()
                    .push(started.elapsed());
                Some(data)
            }
            Err(msg) => {
                let e = stats.errors.entry(op).or_insert((0, msg));
                e.0 += 1;
                None
            }
        }
    }
}

async fn ensure_products(client: &Client, want: usize) -> Result<Vec<String>, String> {
    let mut stats = Stats::default();
    let mut ids = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = client
            .call(
                &mut stats,
                "setup",
                PRODUCTS,
                json!({ "first": 100, "after": after }),
            )
            .await
            .ok_or_else(|| format!("listing products: {:?}", stats.errors))?;
        let page = &d["viewProducts"];
        ids.extend(
            page["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["id"].as_str().map(String::from)),
        );
        if page["pageInfo"]["hasNextPage"].as_bool() != Some(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    if ids.len() >= want {
        return Ok(ids);
    }
    let back_office = back_office(client).await?;
    for i in ids.len()..want {
        let d = back_office
            .call(
                &mut stats,
                "setup",
                CREATE,
                json!({ "input": { "name": format!("Load product {i:03}"), "price": 100 + (i as i64 * 37) % 900 } }),
            )
            .await
            .ok_or_else(|| format!("creating products: {:?}", stats.errors))?;
        if let Some(id) = d["createProduct"]["id"].as_str() {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// The back-office user's client: registered unless it is already (CONFLICT), logged in.
async fn back_office(client: &Client) -> Result<Client, String> {
    let input = json!({ "input": { "email": BACK_OFFICE_EMAIL, "name": "Back Office", "password": PASSWORD } });
    match client.once(REGISTER, &input).await {
        Ok(_) => {}
        Err(e) if e.contains("\"CONFLICT\"") => {}
        Err(e) => return Err(format!("registering the back-office user: {e}")),
    }
    let mut stats = Stats::default();
    client
        .login(&mut stats, BACK_OFFICE_EMAIL)
        .await
        .map(|s| s.client)
        .ok_or_else(|| format!("logging the back-office user in: {:?}", stats.errors))
}

/// Registers a new customer and logs them in (recorded as `registerCustomer` and
/// `login`).
async fn customer(client: &Client, stats: &mut Stats) -> Option<Session> {
    let email = format!("load-{}@example.com", uuid::Uuid::new_v4().simple());
    client
        .call(
            stats,
            "registerCustomer",
            REGISTER,
            json!({ "input": { "email": email, "name": "Load Tester", "password": PASSWORD } }),
        )
        .await?;
    client.login(stats, &email).await
}

/// A small deterministic generator per customer, so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// One shopping journey of a logged-in customer (`client`).
async fn journey(
    client: &Client,
    args: &Args,
    products: &[String],
    rng: &mut Rng,
    stats: &mut Stats,
) {
    client
        .call(
            stats,
            "viewProfile",
            "query { viewProfile { id email version } }",
            json!({}),
        )
        .await;
    client
        .call(stats, "viewProducts", PRODUCTS, json!({ "first": 10 }))
        .await;

    if args.cart && !products.is_empty() {
        let cart = uuid::Uuid::new_v4().to_string();
        let picks: Vec<&String> = (0..3)
            .map(|_| &products[rng.next(products.len())])
            .collect();
        let mut added = Vec::new();
        // The cart version of our last write, which viewCart must show.
        let mut wrote = 0i64;
        for p in picks {
            if added.contains(&p) {
                continue;
            }
            let ok = client
                .call(
                    stats,
                    "addProduct",
                    "mutation($input: AddProductInput!) { addProduct(input: $input) { cartId version } }",
                    json!({ "input": { "cartId": cart, "productId": p, "quantity": 1 + rng.next(3) } }),
                )
                .await;
            if let Some(d) = ok {
                wrote = wrote.max(d["addProduct"]["version"].as_i64().unwrap_or(0));
                added.push(p);
            }
        }
        if let Some(p) = added.first()
            && let Some(d) = client
                .call(
                    stats,
                    "changeProductQuantity",
                    "mutation($input: ChangeProductQuantityInput!) { changeProductQuantity(input: $input) { version } }",
                    json!({ "input": { "cartId": cart, "productId": p, "quantity": 5 } }),
                )
                .await
            {
                wrote = wrote.max(d["changeProductQuantity"]["version"].as_i64().unwrap_or(0));
            }
        if added.len() > 1
            && let Some(d) = client
                .call(
                    stats,
                    "removeProduct",
                    "mutation($input: RemoveProductInput!) { removeProduct(input: $input) { version } }",
                    json!({ "input": { "cartId": cart, "productId": added[1] } }),
                )
                .await
            {
                wrote = wrote.max(d["removeProduct"]["version"].as_i64().unwrap_or(0));
            }
        // The query side is eventually consistent: read until it shows our writes.
        client
            .call_until(
                stats,
                "viewCart",
                "query($id: ID!) { viewCart(cartId: $id) { id version items { quantity product { name price } } } }",
                json!({ "id": cart }),
                |d| d["viewCart"]["version"].as_i64().is_some_and(|v| v >= wrote),
            )
            .await;
        if args.checkout {
            client
                .call(
                    stats,
                    "checkout",
                    "mutation($input: CheckoutInput!) { checkout(input: $input) { id total } }",
                    json!({ "input": { "cartId": cart } }),
                )
                .await;
            client
                .call(
                    stats,
                    "viewOrders",
                    "query { viewOrders(first: 5) { nodes { id total } } }",
                    json!({}),
                )
                .await;
        } else {
            client
                .call(
                    stats,
                    "resetCart",
                    "mutation($input: ResetCartInput!) { resetCart(input: $input) { version } }",
                    json!({ "input": { "cartId": cart } }),
                )
                .await;
        }
    }
    stats.journeys += 1;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        url: args.url.clone(),
        token: None,
    });
    let products = match ensure_products(&client, args.products).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("setup failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total = Arc::new(Mutex::new(Stats::default()));
    let setup_started = Instant::now();
    // Every customer registers and logs in before the clock starts (argon2id makes that
    // seconds under load), then shops for the duration: at least one journey each.
    let ready = Arc::new(tokio::sync::Barrier::new(args.customers));
    let shopping_started = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for c in 0..args.customers {
        let (client, args, products, total) = (
            client.clone(),
            args.clone(),
            products.clone(),
            total.clone(),
        );
        let (ready, shopping_started) = (ready.clone(), shopping_started.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
            let session = customer(&client, &mut stats).await;
            ready.wait().await;
            let deadline = *shopping_started.get_or_init(Instant::now) + args.duration;
            if let Some(mut session) = session {
                loop {
                    session.fresh(&mut stats).await;
                    journey(&session.client, &args, &products, &mut rng, &mut stats).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                session.fresh(&mut stats).await;
                session
                    .client
                    .call(
                        &mut stats,
                        "deleteAccount",
                        "mutation { deleteAccount(input: {}) { version } }",
                        json!({}),
                    )
                    .await;
            }
            let mut t = total.lock().await;
            for (op, mut l) in stats.latencies {
                t.latencies.entry(op).or_default().append(&mut l);
            }
            for (op, (n, msg)) in stats.errors {
                let e = t.errors.entry(op).or_insert((0, msg));
                e.0 += n;
            }
            t.journeys += stats.journeys;
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            eprintln!("a customer task failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    let started = shopping_started.get().copied().unwrap_or(setup_started);
    let elapsed = started.elapsed();
    let t = total.lock().await;
    println!(
        "{} customers, set up in {:.1} s, then {:.1} s, {} journeys ({:.2}/s), target {}",
        args.customers,
        (started - setup_started).as_secs_f64(),
        elapsed.as_secs_f64(),
        t.journeys,
        t.journeys as f64 / elapsed.as_secs_f64(),
        args.url
    );
    println!(
        "{:<22} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "operation", "count", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    let mut ops: Vec<&&str> = t.latencies.keys().chain(t.errors.keys()).collect();
    ops.sort();
    ops.dedup();
    for op in ops {
        let mut l = t.latencies.get(*op).cloned().unwrap_or_default();
        l.sort();
        let errors = t.errors.get(*op).map_or(0, |e| e.0);
        println!(
            "{:<22} {:>7} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>6}",
            op,
            l.len(),
            l.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&l, 50.0)),
            ms(percentile(&l, 90.0)),
            ms(percentile(&l, 99.0)),
            ms(l.last().copied().unwrap_or_default()),
            errors
        );
    }
    if t.errors.is_empty() {
        println!("0 errors");
        ExitCode::SUCCESS
    } else {
        for (op, (n, msg)) in &t.errors {
            eprintln!("{op}: {n} errors, first: {msg}");
        }
        ExitCode::FAILURE
    }
}
