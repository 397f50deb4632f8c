//! The product service, generated whole from the spec (`shop_product`: store, use
//! cases, `run`), over real gRPC on each storage dialect: the harness's real
//! PostgreSQL and a SQLite file. Every test body runs once per dialect.

use std::sync::Arc;

use keel::sql::{self, ConnectOptions, Db, Dialect};
use keel::testing::TestStore;
use shop_product::pb::product_service_client::ProductServiceClient;
use shop_product::{Config, MIGRATIONS, ProductCrud, pb};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use uuid::Uuid;

const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

struct Running {
    client: ProductServiceClient<Channel>,
    db: Db,
    _store: TestStore,
}

async fn start(dialect: Dialect) -> Running {
    eprintln!("---- on {dialect:?}");
    let store = TestStore::create(dialect, "product_test").await;
    let db = Db::connect(store.url(), &ConnectOptions::default(), Some(&MIGRATIONS))
        .await
        .expect("connect and migrate");
    assert_eq!(db.dialect(), dialect);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service =
        shop_product::product_server(Arc::new(ProductCrud::new(db.clone(), Arc::new(()))));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = ProductServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("client");
    Running {
        client,
        db,
        _store: store,
    }
}

fn create(name: &str, price: i64) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        name: name.into(),
        description: Some(format!("{name}, freshly made")),
        price,
        idempotency_key: None,
    }
}

async fn count(db: &Db) -> i64 {
    sql::query("SELECT count(*) AS n FROM products")
        .fetch_one(db)
        .await
        .expect("count")
        .i64("n")
        .expect("n")
}

async fn names(db: &Db) -> Vec<String> {
    sql::query("SELECT name FROM products ORDER BY name")
        .fetch_all(db)
        .await
        .expect("names")
        .iter()
        .map(|r| r.text("name").expect("name"))
        .collect()
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Every page of `page_size`, following the tokens; the pages and the products.
async fn all_pages(
    client: &mut ProductServiceClient<Channel>,
    page_size: i32,
) -> (usize, Vec<pb::Product>) {
    let mut products = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .view_products(pb::ViewProductsRequest {
                page_size,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.products.len() <= page_size as usize);
        products.extend(page.products);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 20, "paging does not end");
    }
    (pages, products)
}

#[tokio::test]
async fn create_page_get_update_delete() {
    for dialect in DIALECTS {
        create_page_get_update_delete_on(dialect).await;
    }
}

async fn create_page_get_update_delete_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    for (name, price) in [
        ("Tea", 500),
        ("Bread", 300),
        ("Apple", 120),
        ("Coffee", 700),
        ("Dates", 900),
    ] {
        let p = s
            .client
            .create_product(create(name, price))
            .await
            .expect("created")
            .into_inner();
        let p = p.product.expect("product");
        assert_eq!((p.name.as_str(), p.price), (name, price));
        assert!(p.created_at.is_some());
    }

    // Pages of 2 in name order, with no gap and no repeat.
    let (pages, listed) = all_pages(&mut s.client, 2).await;
    let listed: Vec<String> = listed.into_iter().map(|p| p.name).collect();
    assert_eq!(listed, ["Apple", "Bread", "Coffee", "Dates", "Tea"]);
    assert_eq!(pages, 3);

    let all = s
        .client
        .view_products(pb::ViewProductsRequest::default())
        .await
        .expect("all")
        .into_inner();
    let tea = all
        .products
        .iter()
        .find(|p| p.name == "Tea")
        .expect("tea")
        .clone();
    let got = s
        .client
        .get_product(pb::GetProductRequest { id: tea.id.clone() })
        .await
        .expect("get");
    assert_eq!(got.into_inner().product, Some(tea.clone()));

    let updated = s
        .client
        .update_product(pb::UpdateProductRequest {
            id: tea.id.clone(),
            name: "Green tea".into(),
            description: None,
            price: 550,
        })
        .await
        .expect("update")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(
        (updated.name.as_str(), updated.price, updated.description),
        ("Green tea", 550, None)
    );
    assert_eq!(updated.created_at, tea.created_at);

    s.client
        .delete_product(pb::DeleteProductRequest { id: tea.id.clone() })
        .await
        .expect("delete");
    let gone = s
        .client
        .get_product(pb::GetProductRequest { id: tea.id.clone() })
        .await
        .expect_err("gone");
    assert_eq!(gone.code(), Code::NotFound);
    let again = s
        .client
        .delete_product(pb::DeleteProductRequest { id: tea.id })
        .await
        .expect_err("twice");
    assert_eq!(again.code(), Code::NotFound);
    assert_eq!(count(&s.db).await, 4);

    // Equal names: the id breaks the tie, so keyset pages still neither skip nor repeat.
    let mut jams = Vec::new();
    for price in [100, 200, 300] {
        let p = s
            .client
            .create_product(create("Jam", price))
            .await
            .expect("jam")
            .into_inner()
            .product
            .expect("product");
        jams.push(p.id);
    }
    jams.sort();
    for size in [1, 2, 3] {
        let (_, listed) = all_pages(&mut s.client, size).await;
        let listed_jams: Vec<String> = listed
            .iter()
            .filter(|p| p.name == "Jam")
            .map(|p| p.id.clone())
            .collect();
        assert_eq!(listed_jams, jams, "page size {size}: jams by id");
        let listed: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            listed,
            ["Apple", "Bread", "Coffee", "Dates", "Jam", "Jam", "Jam"],
            "page size {size}"
        );
    }
}

/// The generated batch get (what the BFF's loaders call): the products of the ids that
/// exist, each once; too many ids or a malformed one is the caller's error.
#[tokio::test]
async fn batch_get_returns_what_exists_in_one_call() {
    for dialect in DIALECTS {
        let mut s = start(dialect).await;
        let mut ids = Vec::new();
        for (name, price) in [("Tea", 500), ("Mug", 900), ("Cake", 300)] {
            let p = s
                .client
                .create_product(create(name, price))
                .await
                .expect("create")
                .into_inner()
                .product
                .expect("product");
            ids.push(p.id);
        }
        let unknown = Uuid::now_v7().to_string();
        let asked = vec![ids[0].clone(), ids[2].clone(), unknown, ids[0].clone()];
        let mut got: Vec<String> = s
            .client
            .batch_get_products(pb::BatchGetProductsRequest { ids: asked })
            .await
            .expect("batch get")
            .into_inner()
            .products
            .into_iter()
            .map(|p| p.name)
            .collect();
        got.sort();
        assert_eq!(got, ["Cake", "Tea"]);

        let too_many = vec![ids[1].clone(); 501];
        let e = s
            .client
            .batch_get_products(pb::BatchGetProductsRequest { ids: too_many })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = s
            .client
            .batch_get_products(pb::BatchGetProductsRequest {
                ids: vec!["not-a-uuid".into()],
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&e), ["ids"]);
    }
}

/// A create retried with its idempotency key answers the row the first attempt made;
/// another key (or none) creates another; an empty key is refused by field.
#[tokio::test]
async fn a_create_retried_with_its_key_creates_once() {
    for dialect in DIALECTS {
        let mut s = start(dialect).await;
        let keyed = |key: &str| pb::CreateProductRequest {
            idempotency_key: Some(key.into()),
            ..create("Tea", 500)
        };
        let mut first = None;
        for _ in 0..2 {
            let p = s
                .client
                .create_product(keyed("k-1"))
                .await
                .expect("create")
                .into_inner()
                .product
                .expect("product");
            assert_eq!(
                first.get_or_insert(p.clone()),
                &p,
                "the first answer, again"
            );
        }
        assert_eq!(count(&s.db).await, 1);
        s.client
            .create_product(keyed("k-2"))
            .await
            .expect("other key");
        s.client
            .create_product(create("Tea", 500))
            .await
            .expect("no key");
        assert_eq!(count(&s.db).await, 3);
        let e = s
            .client
            .create_product(keyed(""))
            .await
            .expect_err("empty key");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&e), ["idempotency_key"]);
        assert_eq!(count(&s.db).await, 3);
    }
}

#[tokio::test]
async fn bad_input_is_rejected_by_field_and_changes_nothing() {
    for dialect in DIALECTS {
        bad_input_on(dialect).await;
    }
}

async fn bad_input_on(dialect: Dialect) {
    let mut s = start(dialect).await;
    s.client
        .create_product(create("Tea", 500))
        .await
        .expect("created");

    let e = s
        .client
        .create_product(create("Tea", -1))
        .await
        .expect_err("negative price");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["price"]);

    let e = s
        .client
        .create_product(create(&"x".repeat(201), 10))
        .await
        .expect_err("long name");
    assert_eq!(violated_fields(&e), ["name"]);
    assert!(
        e.message().contains("at most 200 characters"),
        "{}",
        e.message()
    );

    let e = s
        .client
        .create_product(create("", -5))
        .await
        .expect_err("two problems");
    assert_eq!(violated_fields(&e), ["name", "price"]);

    let e = s
        .client
        .get_product(pb::GetProductRequest {
            id: "not-a-uuid".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(
        (e.code(), violated_fields(&e)),
        (Code::InvalidArgument, vec!["id".to_string()])
    );

    let e = s
        .client
        .update_product(pb::UpdateProductRequest {
            id: uuid::Uuid::now_v7().to_string(),
            name: "Ghost".into(),
            description: None,
            price: 1,
        })
        .await
        .expect_err("unknown id");
    assert_eq!(e.code(), Code::NotFound);

    let e = s
        .client
        .view_products(pb::ViewProductsRequest {
            page_size: 101,
            page_token: String::new(),
        })
        .await
        .expect_err("page too big");
    assert_eq!(violated_fields(&e), ["page_size"]);
    let e = s
        .client
        .view_products(pb::ViewProductsRequest {
            page_size: 1,
            page_token: "forged".into(),
        })
        .await
        .expect_err("forged token");
    assert_eq!(violated_fields(&e), ["page_token"]);

    assert_eq!(count(&s.db).await, 1);
    assert_eq!(names(&s.db).await, ["Tea"]);
}

/// The library entry point the binary and the in-process launcher share: it connects
/// (creating the SQLite file and applying the dialect's migrations), serves health and
/// the product service, and returns once `stop` turns true, having closed its pool.
#[tokio::test]
async fn run_serves_until_stopped_on_the_url_s_dialect() {
    for dialect in DIALECTS {
        eprintln!("---- on {dialect:?}");
        let store = TestStore::create(dialect, "product_run").await;
        let incoming =
            tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr"))
                .expect("bind");
        let addr = incoming.local_addr().expect("addr");
        let config = Config {
            listen: addr,
            database_url: store.url().to_string(),
            max_connections: 4,
            startup_timeout_secs: 10,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(shop_product::run(config, incoming, stop_rx));

        let mut client = loop {
            match ProductServiceClient::connect(format!("http://{addr}")).await {
                Ok(c) => break c,
                Err(_) if !running.is_finished() => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(e) => panic!("the service is not serving: {e}"),
            }
        };
        let made = client
            .create_product(create("Tea", 500))
            .await
            .expect("create")
            .into_inner()
            .product
            .expect("product");

        stop_tx.send(true).expect("stop");
        tokio::time::timeout(std::time::Duration::from_secs(10), running)
            .await
            .expect("run returns after stop")
            .expect("task")
            .expect("run succeeds");
        assert!(
            ProductServiceClient::connect(format!("http://{addr}"))
                .await
                .is_err(),
            "nothing listens after stop"
        );

        // What it wrote is in the database the URL names.
        let db = Db::connect(store.url(), &ConnectOptions::default(), None)
            .await
            .expect("reopen");
        let row = sql::query("SELECT id, name, price FROM products")
            .fetch_one(&db)
            .await
            .expect("the product");
        assert_eq!(row.uuid("id").expect("id").to_string(), made.id);
        assert_eq!(
            (
                row.text("name").expect("name"),
                row.i64("price").expect("price")
            ),
            ("Tea".to_string(), 500)
        );
        db.close().await;
    }
}
