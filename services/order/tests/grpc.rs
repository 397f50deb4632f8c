//! The order service over real gRPC against a real PostgreSQL, with fake cart and
//! product services behind the checkout traits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use order_service::checkout::Recovery;
use order_service::{
    CartSnapshot, Carts, Catalog, MIGRATOR, Orders, PricedProduct, ResetOutcome, order_id_for,
};
use shop_kit::testing::TestDatabase;
use shop_kit::{RequestContext, ServiceError};
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

struct Running {
    client: OrderServiceClient<Channel>,
    orders: Arc<Orders<FakeCarts, FakeCatalog>>,
    carts: FakeCarts,
    catalog: FakeCatalog,
    pool: sqlx::PgPool,
    _db: TestDatabase,
}

async fn start() -> Running {
    let db = TestDatabase::create("order_test").await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    MIGRATOR.run(&pool).await.expect("migrations apply");
    let carts = FakeCarts::default();
    let catalog = FakeCatalog::default();
    let orders = Arc::new(Orders::new(pool.clone(), carts.clone(), catalog.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(shop_order::order_server(orders.clone()))
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
        pool,
        _db: db,
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

async fn counts(pool: &sqlx::PgPool) -> (i64, i64) {
    let o = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
        .expect("count");
    let d = sqlx::query_scalar("SELECT count(*) FROM order_details")
        .fetch_one(pool)
        .await
        .expect("count");
    (o, d)
}

async fn status_of(pool: &sqlx::PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
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

#[tokio::test]
async fn create_view_page_and_get_orders() {
    let mut s = start().await;
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

#[tokio::test]
async fn bad_inputs_change_nothing() {
    let mut s = start().await;
    let customer = Uuid::now_v7().to_string();
    let p = Uuid::now_v7();
    let cases: Vec<(pb::CreateOrderRequest, &str)> = vec![
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![],
            },
            "details",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "Tea", 100, 0)],
            },
            "details[0].quantity",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "Tea", -1, 1)],
            },
            "details[0].unit_price",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "", 100, 1)],
            },
            "details[0].product_name",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: customer.clone(),
                details: vec![detail(p, "Tea", 100, 1), detail(p, "Tea", 100, 2)],
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
            },
            "details",
        ),
        (
            pb::CreateOrderRequest {
                customer_id: "nope".into(),
                details: vec![detail(p, "Tea", 100, 1)],
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
    assert_eq!(counts(&s.pool).await, (0, 0));
}

// ---------------------------------------------------------------- checkout

#[tokio::test]
async fn checkout_places_an_order_resets_the_cart_and_is_idempotent() {
    let mut s = start().await;
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
    assert_eq!(counts(&s.pool).await, (1, 2));

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

#[tokio::test]
async fn concurrent_checkouts_of_one_cart_make_one_order() {
    let s = start().await;
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
    assert_eq!(counts(&s.pool).await, (1, 1));
    assert_eq!(s.carts.with(|c| c.resets_applied), 1);
}

#[tokio::test]
async fn a_crash_before_the_reset_is_completed_by_recovery() {
    let mut s = start().await;
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
    assert_eq!(status_of(&s.pool, id).await, "pending");
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
    assert_eq!(status_of(&s.pool, id).await, "pending");
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
    assert_eq!(status_of(&s.pool, id).await, "placed");
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

#[tokio::test]
async fn a_retry_while_pending_completes_the_same_order() {
    let mut s = start().await;
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
    assert_eq!(counts(&s.pool).await, (1, 1));
}

#[tokio::test]
async fn a_cart_changed_before_its_reset_cancels_the_order() {
    let mut s = start().await;
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
    assert_eq!(status_of(&s.pool, order_id_for(cart, 3)).await, "cancelled");
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

#[tokio::test]
async fn empty_carts_and_unknown_products_are_refused() {
    let mut s = start().await;
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

    assert_eq!(counts(&s.pool).await, (0, 0));
    assert_eq!(s.carts.get(cart).items.len(), 2);
    assert_eq!(s.carts.with(|c| c.resets_applied), 0);
}
