//! The product service over real gRPC against a real PostgreSQL.

use std::sync::Arc;

use product_service::{MIGRATOR, Products};
use shop_kit::testing::TestDatabase;
use shop_product::pb;
use shop_product::pb::product_service_client::ProductServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

struct Running {
    client: ProductServiceClient<Channel>,
    pool: sqlx::PgPool,
    _db: TestDatabase,
}

async fn start() -> Running {
    let db = TestDatabase::create("product_test").await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    MIGRATOR.run(&pool).await.expect("migrations apply");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = shop_product::product_server(Arc::new(Products::new(pool.clone())));
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
        pool,
        _db: db,
    }
}

fn create(name: &str, price: i64) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        name: name.into(),
        description: Some(format!("{name}, freshly made")),
        price,
    }
}

async fn count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(pool)
        .await
        .expect("count")
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_page_get_update_delete() {
    let mut s = start().await;
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
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = s
            .client
            .view_products(pb::ViewProductsRequest {
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.products.len() <= 2);
        names.extend(page.products.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(names, ["Apple", "Bread", "Coffee", "Dates", "Tea"]);
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
    assert_eq!(count(&s.pool).await, 4);
}

#[tokio::test]
async fn bad_input_is_rejected_by_field_and_changes_nothing() {
    let mut s = start().await;
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

    assert_eq!(count(&s.pool).await, 1);
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM products")
        .fetch_all(&s.pool)
        .await
        .expect("names");
    assert_eq!(names, ["Tea"]);
}
