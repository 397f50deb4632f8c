//! The order service over real gRPC, on each storage dialect (the harness's real
//! PostgreSQL and a SQLite file), with fake cart and product services behind the
//! checkout traits. Every test body runs once per dialect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::sql::{self, ConnectOptions, Db, Dialect};
use keel::testing::TestStore;
use keel::{RequestContext, ServiceError};
use order_service::{
    CartSnapshot, Carts, Catalog, Config, MIGRATIONS, OrderCrud, Orders, PricedProduct, Recovery,
    ResetOutcome, order_id_for,
};
use shop_order::pb;
use shop_order::pb::order_service_client::OrderServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use uuid::Uuid;

// ---------------------------------------------------------------- fakes

#[derive(Default)]
struct CartState {
    carts: HashMap<Uuid, CartSnapshot>,
    /// Commit ids of the resets each cart applied.
    commits: HashMap<Uuid, Vec<Uuid>>,
    /// The cart service is unreachable for resets (a crash between insert and reset).
    reset_down: bool,
    /// Somebody changes the cart right before our reset arrives.
    change_before_reset: bool,
    resets_applied: usize,
}

#[derive(Clone, Default)]
struct FakeCarts(Arc<Mutex<CartState>>);

impl FakeCarts {
    fn put(&self, cart: Uuid, customer: Uuid, items: &[(Uuid, i32)], version: i64) {
        self.with(|s| {
            s.carts.insert(
                cart,
                CartSnapshot {
                    customer_id: Some(customer.to_string()),
                    items: items.iter().map(|(p, q)| (p.to_string(), *q)).collect(),
                    version,
                },
            );
        });
    }
    fn get(&self, cart: Uuid) -> CartSnapshot {
        self.with(|s| s.carts.get(&cart).cloned().unwrap_or_default())
    }
    fn with<R>(&self, f: impl FnOnce(&mut CartState) -> R) -> R {
        let mut s = self.0.lock().expect("lock");
        f(&mut s)
    }
}

impl Carts for FakeCarts {
    async fn load(
        &self,
        _ctx: &RequestContext,
        cart_id: Uuid,
    ) -> Result<Option<CartSnapshot>, ServiceError> {
        Ok(self.with(|s| s.carts.get(&cart_id).cloned()))
    }

    async fn reset(
        &self,
        _correlation_id: &str,
        cart_id: Uuid,
        expected_version: i64,
        commit_id: Uuid,
    ) -> Result<ResetOutcome, ServiceError> {
        self.with(|s| {
            if s.reset_down {
                return Err(ServiceError::Unavailable("cart: connection refused".into()));
            }
            // A retried commit is answered with its original result.
            if s.commits
                .get(&cart_id)
                .is_some_and(|c| c.contains(&commit_id))
            {
                return Ok(ResetOutcome::Reset);
            }
            let cart = s.carts.entry(cart_id).or_default();
            if s.change_before_reset {
                cart.version += 1;
            }
            if cart.version != expected_version {
                return Ok(ResetOutcome::Changed(format!(
                    "cart at version {}, expected {expected_version}",
                    cart.version
                )));
            }
            cart.items.clear();
            cart.version += 1;
            s.commits.entry(cart_id).or_default().push(commit_id);
            s.resets_applied += 1;
            Ok(ResetOutcome::Reset)
        })
    }
}

#[derive(Clone, Default)]
struct FakeCatalog(Arc<Mutex<HashMap<Uuid, PricedProduct>>>);

impl FakeCatalog {
    fn add(&self, name: &str, price: i64) -> Uuid {
        let id = Uuid::now_v7();
        self.0.lock().expect("lock").insert(
            id,
            PricedProduct {
                name: name.into(),
                price,
            },
        );
        id
    }
}

impl Catalog for FakeCatalog {
    async fn product(
        &self,
        _ctx: &RequestContext,
        id: Uuid,
    ) -> Result<Option<PricedProduct>, ServiceError> {
        Ok(self.0.lock().expect("lock").get(&id).cloned())
    }
}

// ---------------------------------------------------------------- harness

const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

/// Runs the test body `$body` (an async fn taking the dialect) once per dialect.
macro_rules! on_both_dialects {
    ($name:ident, $body:ident) => {
        #[tokio::test]
        async fn $name() {
            for dialect in DIALECTS {
                eprintln!("---- on {dialect:?}");
                $body(dialect).await;
            }
        }
    };
}

struct Running {
    client: OrderServiceClient<Channel>,
    orders: Arc<Orders<FakeCarts, FakeCatalog>>,
    carts: FakeCarts,
    catalog: FakeCatalog,
    db: Db,
    _store: TestStore,
}

async fn start(dialect: Dialect) -> Running {
    let store = TestStore::create(dialect, "order_test").await;
    let db = Db::connect(store.url(), &ConnectOptions::default(), Some(&MIGRATIONS))
        .await
        .expect("connect and migrate");
    assert_eq!(db.dialect(), dialect);
    let carts = FakeCarts::default();
    let catalog = FakeCatalog::default();
    let orders = Arc::new(Orders::new(db.clone(), carts.clone(), catalog.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(shop_order::order_server(Arc::new(OrderCrud::new(
                db.clone(),
                orders.clone(),
            ))))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = OrderServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("client");
    Running {
        client,
        orders,
        carts,
        catalog,
        db,
        _store: store,
    }
}

fn detail(product: Uuid, name: &str, price: i64, quantity: i32) -> pb::OrderDetail {
    pb::OrderDetail {
        product_id: product.to_string(),
        product_name: name.into(),
        unit_price: price,
        quantity,
    }
}

async fn count(db: &Db, table: &'static str) -> i64 {
    sql::query(format!("SELECT count(*) AS n FROM {table}"))
        .fetch_one(db)
        .await
        .expect("count")
        .i64("n")
        .expect("n")
}

async fn counts(db: &Db) -> (i64, i64) {
    (count(db, "orders").await, count(db, "order_details").await)
}

async fn status_of(db: &Db, id: Uuid) -> String {
    sql::query("SELECT status FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("status")
        .text("status")
        .expect("status")
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn checkout(cart: Uuid, customer: Uuid) -> pb::CheckoutRequest {
    pb::CheckoutRequest {
        cart_id: cart.to_string(),
        customer_id: customer.to_string(),
    }
}

// ---------------------------------------------------------------- CRUD

on_both_dialects!(
    create_view_page_and_get_orders,
    create_view_page_and_get_orders_on
);

async fn create_view_page_and_get_orders_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let (tea, bread) = (Uuid::now_v7(), Uuid::now_v7());
    let mut created = Vec::new();
    for i in 0..5 {
        let o = s
            .client
            .create_order(pb::CreateOrderRequest {
                customer_id: alice.to_string(),
                details: vec![
                    detail(tea, "Tea", 500, 2),
                    detail(bread, "Bread", 300 + i, 1),
                ],
                ..Default::default()
            })
            .await
            .expect("created")
            .into_inner()
            .order
            .expect("order");
        // Computed: 500*2 + (300+i)*1.
        assert_eq!(o.total, 1300 + i);
        assert_eq!(o.status, "placed");
        assert_eq!(o.customer_id, alice.to_string());
        assert!(o.placed_at.is_some());
        assert_eq!(
            o.details
                .iter()
                .map(|d| (d.product_name.as_str(), d.unit_price, d.quantity))
                .collect::<Vec<_>>(),
            [("Bread", 300 + i, 1), ("Tea", 500, 2)]
        );
        created.push(o);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    s.client
        .create_order(pb::CreateOrderRequest {
            customer_id: bob.to_string(),
            details: vec![detail(tea, "Tea", 450, 1)],
            ..Default::default()
        })
        .await
        .expect("bob's order");

    // Alice's orders, newest first, in pages of 2 with no gap and no repeat.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = s
            .client
            .view_orders(pb::ViewOrdersRequest {
                customer_id: Some(alice.to_string()),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.orders.len() <= 2);
        for o in &page.orders {
            assert_eq!(o.details.len(), 2, "each order comes with its details");
        }
        seen.extend(page.orders);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "newest first, exactly as created");

    // Everybody's orders without a customer.
    let all = s
        .client
        .view_orders(pb::ViewOrdersRequest::default())
        .await
        .expect("all")
        .into_inner();
    assert_eq!(all.orders.len(), 6);
    assert_eq!(all.orders[0].customer_id, bob.to_string());

    let got = s
        .client
        .get_order(pb::GetOrderRequest {
            id: created[2].id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(got, created[2]);
    let missing = s
        .client
        .get_order(pb::GetOrderRequest {
            id: Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("unknown order");
    assert_eq!(missing.code(), Code::NotFound);
}

on_both_dialects!(bad_inputs_change_nothing, bad_inputs_change_nothing_on);

async fn bad_inputs_change_nothing_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let customer = Uuid::now_v7().to_string();
    let p = Uuid::now_v7();
    let cases: Vec<(pb::CreateOrderRequest, &str)> = vec![
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![],
                idempotency_key: None,
            },
            "details",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "Tea", 100, 0)],
                idempotency_key: None,
            },
            "details[0].quantity",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "Tea", -1, 1)],
                idempotency_key: None,
            },
            "details[0].unit_price",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "", 100, 1)],
                idempotency_key: None,
            },
            "details[0].product_name",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "Tea", 100, 1), detail(p, "Tea", 100, 2)],
                idempotency_key: None,
            },
            "details[1].product_id",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![
                    detail(p, "Gold", i64::MAX / 2, 2),
                    detail(Uuid::now_v7(), "More gold", i64::MAX / 2, 2),
                ],
                idempotency_key: None,
            },
            "details",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: "nope".into(),
                details: vec![detail(p, "Tea", 100, 1)],
                idempotency_key: None,
            },
            "customer_id",
        ),
    ];
    for (request, field) in cases {
        let e = s.client.create_order(request).await.expect_err(field);
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(
            violated_fields(&e).iter().any(|f| f == field),
            "{field} not in {:?}",
            violated_fields(&e)
        );
    }
    let bad_token = s
        .client
        .view_orders(pb::ViewOrdersRequest {
            customer_id: Some(customer.clone()),
            page_size: 2,
            page_token: "garbage".into(),
        })
        .await
        .expect_err("bad token");
    assert_eq!(violated_fields(&bad_token), ["page_token"]);
    let too_big = s
        .client
        .view_orders(pb::ViewOrdersRequest {
            customer_id: None,
            page_size: 101,
            page_token: String::new(),
        })
        .await
        .expect_err("page too big");
    assert_eq!(violated_fields(&too_big), ["page_size"]);
    let bad_checkout = s
        .client
        .checkout(pb::CheckoutRequest {
            cart_id: "x".into(),
            customer_id: customer.clone(),
        })
        .await
        .expect_err("bad cart id");
    assert_eq!(violated_fields(&bad_checkout), ["cart_id"]);
    assert_eq!(counts(&s.db).await, (0, 0));
}

// ---------------------------------------------------------------- checkout

on_both_dialects!(
    checkout_places_an_order_resets_the_cart_and_is_idempotent,
    checkout_places_an_order_resets_the_cart_and_is_idempotent_on
);

async fn checkout_places_an_order_resets_the_cart_and_is_idempotent_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let (cart, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let tea = s.catalog.add("Tea", 500);
    let jam = s.catalog.add("Jam", 250);
    s.carts.put(cart, customer, &[(tea, 2), (jam, 3)], 5);

    let order = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect("checkout")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.id, order_id_for(cart, 5).to_string());
    assert_eq!(order.status, "placed");
    assert_eq!(
        (order.cart_id.as_str(), order.cart_version),
        (cart.to_string().as_str(), 5)
    );
    assert_eq!(order.total, 500 * 2 + 250 * 3);
    assert_eq!(
        order
            .details
            .iter()
            .map(|d| (d.product_name.as_str(), d.unit_price, d.quantity))
            .collect::<Vec<_>>(),
        [("Jam", 250, 3), ("Tea", 500, 2)]
    );
    let after = s.carts.get(cart);
    assert!(after.items.is_empty());
    assert_eq!(after.version, 6);

    // A retry (say the answer was lost): the same order, no second reset, no second row.
    // Prices changed meanwhile: the order keeps those at the time of purchase.
    s.catalog.add("Tea", 9999);
    for _ in 0..3 {
        let again = s
            .client
            .checkout(checkout(cart, customer))
            .await
            .expect("retried checkout")
            .into_inner()
            .order
            .expect("order");
        assert_eq!(again, order);
    }
    assert_eq!(s.carts.with(|c| c.resets_applied), 1);
    assert_eq!(counts(&s.db).await, (1, 2));

    // The order is in the customer's history.
    let history = s
        .client
        .view_orders(pb::ViewOrdersRequest {
            customer_id: Some(customer.to_string()),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.orders, [order]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkouts_of_one_cart_make_one_order() {
    for dialect in DIALECTS {
        eprintln!("---- on {dialect:?}");
        concurrent_checkouts_of_one_cart_make_one_order_on(dialect).await;
    }
}

async fn concurrent_checkouts_of_one_cart_make_one_order_on(dialect: Dialect) {
    let s = start(dialect).await;
    let (cart, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let tea = s.catalog.add("Tea", 500);
    s.carts.put(cart, customer, &[(tea, 1)], 2);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            client.checkout(checkout(cart, customer)).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.expect("task").expect("checkout");
        ids.push(r.into_inner().order.expect("order").id);
    }
    ids.dedup();
    assert_eq!(ids, [order_id_for(cart, 2).to_string()]);
    assert_eq!(counts(&s.db).await, (1, 1));
    assert_eq!(s.carts.with(|c| c.resets_applied), 1);
}

on_both_dialects!(
    a_crash_before_the_reset_is_completed_by_recovery,
    a_crash_before_the_reset_is_completed_by_recovery_on
);

async fn a_crash_before_the_reset_is_completed_by_recovery_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let (cart, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let tea = s.catalog.add("Tea", 500);
    s.carts.put(cart, customer, &[(tea, 4)], 1);

    // The order is stored, then the reset cannot happen (as if the process died there).
    s.carts.with(|c| c.reset_down = true);
    let e = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect_err("cart unreachable");
    assert_eq!(e.code(), Code::Unavailable);
    let id = order_id_for(cart, 1);
    assert_eq!(status_of(&s.db, id).await, "pending");
    assert_eq!(s.carts.get(cart).items.len(), 1, "cart not reset yet");

    // Recovery leaves young pending orders to their checkout...
    s.carts.with(|c| c.reset_down = false);
    let young = s
        .orders
        .recover_once(Recovery {
            older_than: Duration::from_secs(3600),
            batch: 10,
        })
        .await
        .expect("recovery");
    assert_eq!(young, 0);
    assert_eq!(status_of(&s.db, id).await, "pending");
    // ...and completes the old ones.
    let done = s
        .orders
        .recover_once(Recovery {
            older_than: Duration::ZERO,
            batch: 10,
        })
        .await
        .expect("recovery");
    assert_eq!(done, 1);
    assert_eq!(status_of(&s.db, id).await, "placed");
    let after = s.carts.get(cart);
    assert!(after.items.is_empty());
    assert_eq!(after.version, 2);

    // The client's retry gets the placed order; nothing is reset twice.
    let again = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect("retry")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        (again.id, again.status.as_str()),
        (id.to_string(), "placed")
    );
    assert_eq!(s.carts.with(|c| c.resets_applied), 1);
}

on_both_dialects!(
    a_retry_while_pending_completes_the_same_order,
    a_retry_while_pending_completes_the_same_order_on
);

async fn a_retry_while_pending_completes_the_same_order_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let (cart, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let tea = s.catalog.add("Tea", 500);
    s.carts.put(cart, customer, &[(tea, 1)], 7);
    s.carts.with(|c| c.reset_down = true);
    s.client
        .checkout(checkout(cart, customer))
        .await
        .expect_err("cart unreachable");
    s.carts.with(|c| c.reset_down = false);
    let order = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect("retry")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.id, order_id_for(cart, 7).to_string());
    assert_eq!(order.status, "placed");
    assert_eq!(counts(&s.db).await, (1, 1));
}

on_both_dialects!(
    a_cart_changed_before_its_reset_cancels_the_order,
    a_cart_changed_before_its_reset_cancels_the_order_on
);

async fn a_cart_changed_before_its_reset_cancels_the_order_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let (cart, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let tea = s.catalog.add("Tea", 500);
    s.carts.put(cart, customer, &[(tea, 1)], 3);
    s.carts.with(|c| c.change_before_reset = true);
    let e = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect_err("cart changed");
    assert_eq!(e.code(), Code::Aborted);
    assert_eq!(status_of(&s.db, order_id_for(cart, 3)).await, "cancelled");
    assert_eq!(s.carts.get(cart).items.len(), 1, "the cart keeps its items");

    // Checking out again takes the cart at its new version.
    s.carts.with(|c| c.change_before_reset = false);
    let order = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect("second checkout")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.cart_version, 4);
    assert_eq!(order.status, "placed");
}

on_both_dialects!(
    empty_carts_and_unknown_products_are_refused,
    empty_carts_and_unknown_products_are_refused_on
);

async fn empty_carts_and_unknown_products_are_refused_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let customer = Uuid::now_v7();

    // A cart that never existed, and one that is empty.
    let never = s
        .client
        .checkout(checkout(Uuid::now_v7(), customer))
        .await
        .expect_err("no cart");
    assert_eq!(never.code(), Code::FailedPrecondition);
    let empty = Uuid::now_v7();
    s.carts.put(empty, customer, &[], 4);
    let e = s
        .client
        .checkout(checkout(empty, customer))
        .await
        .expect_err("empty cart");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("empty"), "{}", e.message());

    // A product that is gone is named.
    let cart = Uuid::now_v7();
    let tea = s.catalog.add("Tea", 500);
    let gone = Uuid::now_v7();
    s.carts.put(cart, customer, &[(tea, 1), (gone, 2)], 2);
    let e = s
        .client
        .checkout(checkout(cart, customer))
        .await
        .expect_err("unknown product");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains(&gone.to_string()), "{}", e.message());

    // Somebody else's cart.
    let e = s
        .client
        .checkout(checkout(cart, Uuid::now_v7()))
        .await
        .expect_err("not the owner");
    assert_eq!(e.code(), Code::FailedPrecondition);

    assert_eq!(counts(&s.db).await, (0, 0));
    assert_eq!(s.carts.get(cart).items.len(), 2);
    assert_eq!(s.carts.with(|c| c.resets_applied), 0);
}

on_both_dialects!(
    recovery_takes_the_oldest_pending_orders_first,
    recovery_takes_the_oldest_pending_orders_first_on
);

async fn recovery_takes_the_oldest_pending_orders_first_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let customer = Uuid::now_v7();
    let tea = s.catalog.add("Tea", 500);
    s.carts.with(|c| c.reset_down = true);
    let mut carts = Vec::new();
    for version in [3, 1, 2] {
        let cart = Uuid::now_v7();
        s.carts.put(cart, customer, &[(tea, 1)], version);
        s.client
            .checkout(checkout(cart, customer))
            .await
            .expect_err("cart unreachable");
        carts.push((cart, version));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    s.carts.with(|c| c.reset_down = false);
    let all = Recovery {
        older_than: Duration::ZERO,
        batch: 1,
    };
    // One per round, in the order they were placed.
    for (round, (cart, version)) in carts.iter().enumerate() {
        assert_eq!(s.orders.recover_once(all).await.expect("recovery"), 1);
        for (i, (c, v)) in carts.iter().enumerate() {
            let expected = if i <= round { "placed" } else { "pending" };
            assert_eq!(
                status_of(&s.db, order_id_for(*c, *v)).await,
                expected,
                "round {round}, order {i}"
            );
        }
        assert!(s.carts.get(*cart).items.is_empty());
        assert_eq!(s.carts.get(*cart).version, version + 1);
    }
    assert_eq!(s.orders.recover_once(all).await.expect("recovery"), 0);
    assert_eq!(s.carts.with(|c| c.resets_applied), 3);
}

on_both_dialects!(
    an_order_with_many_details_keeps_every_line,
    an_order_with_many_details_keeps_every_line_on
);

/// More lines than one multi-row INSERT takes: every line is stored, in one
/// transaction, and read back in (product name, product id) order.
async fn an_order_with_many_details_keeps_every_line_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    let customer = Uuid::now_v7();
    let lines: Vec<pb::OrderDetail> = (0..1201)
        .map(|i| {
            // Names out of insertion order, two products per name.
            let name = format!("Product {:04}", (i * 7919) % 601);
            detail(Uuid::now_v7(), &name, i64::from(i % 50), 1 + i % 99)
        })
        .collect();
    let order = s
        .client
        .create_order(pb::CreateOrderRequest {
            customer_id: customer.to_string(),
            details: lines.clone(),
            ..Default::default()
        })
        .await
        .expect("created")
        .into_inner()
        .order
        .expect("order");
    let total: i64 = lines
        .iter()
        .map(|d| d.unit_price * i64::from(d.quantity))
        .sum();
    assert_eq!(order.total, total);
    assert_eq!(counts(&s.db).await, (1, 1201));
    let got = s
        .client
        .get_order(pb::GetOrderRequest {
            id: order.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .order
        .expect("order");
    let mut expected = lines;
    expected.sort_by(|a, b| {
        (a.product_name.as_str(), a.product_id.as_str())
            .cmp(&(b.product_name.as_str(), b.product_id.as_str()))
    });
    assert_eq!(got.details, expected);
    assert_eq!(
        got, order,
        "the answer of CreateOrder is what a read returns"
    );
}

/// The library entry point the binary and the in-process launcher share: it connects
/// (creating the SQLite file, applying the dialect's migrations), serves the order
/// service, runs recovery, and returns promptly once `stop` turns true.
#[tokio::test]
async fn run_serves_and_recovers_until_stopped() {
    for dialect in DIALECTS {
        eprintln!("---- on {dialect:?}");
        let store = TestStore::create(dialect, "order_run").await;

        // A pending order left by a crash; its cart service is unreachable.
        let db = Db::connect(store.url(), &ConnectOptions::default(), Some(&MIGRATIONS))
            .await
            .expect("connect and migrate");
        let (cart, pending) = (Uuid::now_v7(), order_id_for(Uuid::nil(), 1));
        sql::query(
            "INSERT INTO orders (id, customer_id, cart_id, cart_version, total, placed_at, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(pending)
        .bind(Uuid::now_v7())
        .bind(cart)
        .bind(1_i32)
        .bind(0_i64)
        .bind(chrono::Utc::now() - chrono::Duration::hours(1))
        .bind("pending")
        .execute(&db)
        .await
        .expect("pending order");
        db.close().await;

        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let nowhere = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        let incoming =
            tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr"))
                .expect("bind");
        let addr = incoming.local_addr().expect("addr");
        let config = Config {
            service: shop_order::Config {
                listen: addr,
                database_url: store.url().to_string(),
                max_connections: 4,
                startup_timeout_secs: 10,
                product_url: nowhere.clone(),
                cart_command_url: nowhere.clone(),
                cart_query_url: nowhere,
            },
            recovery_interval_secs: 1,
            recovery_after_secs: 0,
            recovery_batch: 10,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(order_service::run(config, incoming, stop_rx));
        let mut client = loop {
            match OrderServiceClient::connect(format!("http://{addr}")).await {
                Ok(c) => break c,
                Err(_) if !running.is_finished() => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("the service is not serving: {e}"),
            }
        };
        let made = client
            .create_order(pb::CreateOrderRequest {
                customer_id: Uuid::now_v7().to_string(),
                details: vec![detail(Uuid::now_v7(), "Tea", 500, 2)],
                ..Default::default()
            })
            .await
            .expect("create")
            .into_inner()
            .order
            .expect("order");
        let got = client
            .get_order(pb::GetOrderRequest {
                id: made.id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .order
            .expect("order");
        assert_eq!(got, made);
        // Checkout needs the cart service: unreachable is UNAVAILABLE, nothing stored.
        let e = client
            .checkout(checkout(Uuid::now_v7(), Uuid::now_v7()))
            .await
            .expect_err("no cart service");
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        // Let recovery try the pending order at least once.
        tokio::time::sleep(Duration::from_millis(1500)).await;

        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("run returns soon after stop")
            .expect("task")
            .expect("run succeeds");
        assert!(
            OrderServiceClient::connect(format!("http://{addr}"))
                .await
                .is_err(),
            "nothing listens after stop"
        );

        let db = Db::connect(store.url(), &ConnectOptions::default(), None)
            .await
            .expect("reopen");
        assert_eq!(counts(&db).await, (2, 1));
        assert_eq!(
            status_of(&db, pending).await,
            "pending",
            "recovery cannot place it without the cart service"
        );
        assert_eq!(
            status_of(&db, Uuid::parse_str(&made.id).expect("id")).await,
            "placed"
        );
        db.close().await;
    }
}
