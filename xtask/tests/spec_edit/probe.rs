//! Drives the services generated from the edited spec over real gRPC (written by
//! `xtask/tests/spec_edit.rs` into a scratch workspace; not part of the repository's
//! build). Its arguments: the supplier database's URL, then the product database's.

use std::time::Duration;

use shop_product::pb::product_service_client::ProductServiceClient;
use shop_supplier::pb;
use shop_supplier::pb::supplier_service_client::SupplierServiceClient;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

async fn connect<T>(addr: std::net::SocketAddr, make: impl Fn(Channel) -> T) -> T {
    for _ in 0..300 {
        if let Ok(c) = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
        {
            return make(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing serves on {addr}");
}

fn incoming() -> (TcpIncoming, std::net::SocketAddr) {
    let i = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let a = i.local_addr().expect("addr");
    (i, a)
}

fn supplier(name: &str, country: &str) -> pb::CreateSupplierRequest {
    pb::CreateSupplierRequest {
        name: name.into(),
        country: country.into(),
        rating: Some(4),
        idempotency_key: None,
    }
}

async fn suppliers(database_url: String) {
    let (incoming, addr) = incoming();
    let config = shop_supplier::Config {
        listen: addr,
        database_url,
        max_connections: 4,
        startup_timeout_secs: 30,
    };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(shop_supplier::run(config, incoming, stopped));
    let mut c = connect(addr, SupplierServiceClient::new).await;

    let mut made = Vec::new();
    for (name, country) in [("Umami", "JP"), ("Alpine", "CH"), ("Kobe", "JP"), ("Nara", "JP"), ("Bern", "CH")] {
        let s = c.create_supplier(supplier(name, country)).await.expect("create").into_inner();
        made.push(s.supplier.expect("supplier"));
    }
    assert!(made.iter().all(|s| s.created_at.is_some() && s.rating == Some(4)));

    // The filter, the order (name, id) and pages of the spec's default size (2).
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .view_suppliers(pb::ViewSuppliersRequest {
                country: Some("JP".into()),
                page_size: 0,
                page_token: token.clone(),
            })
            .await
            .expect("list")
            .into_inner();
        pages += 1;
        names.extend(page.suppliers.iter().map(|s| s.name.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["Kobe", "Nara", "Umami"]);
    assert_eq!(pages, 2);

    let id = made[0].id.clone();
    let got = c.get_supplier(pb::GetSupplierRequest { id: id.clone() }).await.expect("get").into_inner();
    assert_eq!(got.supplier.as_ref(), Some(&made[0]));
    let updated = c
        .update_supplier(pb::UpdateSupplierRequest { id: id.clone(), name: "Umami Co".into(), country: "JP".into(), rating: None })
        .await
        .expect("update")
        .into_inner()
        .supplier
        .expect("supplier");
    assert_eq!((updated.name.as_str(), updated.rating, updated.created_at), ("Umami Co", None, made[0].created_at));

    // A constraint of the spec, and an unknown id.
    let bad = c.create_supplier(supplier("", "JPN")).await.expect_err("refused");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let forged = c
        .view_suppliers(pb::ViewSuppliersRequest { country: None, page_size: 1, page_token: "forged".into() })
        .await
        .expect_err("refused");
    assert_eq!(forged.code(), Code::InvalidArgument, "{forged:?}");
    c.delete_supplier(pb::DeleteSupplierRequest { id: id.clone() }).await.expect("delete");
    let gone = c.get_supplier(pb::GetSupplierRequest { id: id.clone() }).await.expect_err("gone");
    assert_eq!(gone.code(), Code::NotFound);
    let again = c.delete_supplier(pb::DeleteSupplierRequest { id }).await.expect_err("gone");
    assert_eq!(again.code(), Code::NotFound);

    stop.send(true).expect("stop");
    running.await.expect("task").expect("run");
}

/// The field added to Product is stored and read back: nothing drops it.
async fn products(database_url: String) {
    let (incoming, addr) = incoming();
    let config = shop_product::Config {
        listen: addr,
        database_url,
        max_connections: 4,
        startup_timeout_secs: 30,
    };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(shop_product::run(config, incoming, stopped));
    let mut c = connect(addr, ProductServiceClient::new).await;
    let made = c
        .create_product(shop_product::pb::CreateProductRequest {
            name: "Tea".into(),
            description: None,
            price: 500,
            colour: Some("green".into()),
            idempotency_key: None,
        })
        .await
        .expect("create")
        .into_inner()
        .product
        .expect("product");
    let got = c
        .get_product(shop_product::pb::GetProductRequest { id: made.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(got.colour.as_deref(), Some("green"));
    let listed = c
        .view_products(shop_product::pb::ViewProductsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.products, vec![got]);
    stop.send(true).expect("stop");
    running.await.expect("task").expect("run");
}

#[tokio::main]
async fn main() {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    let [supplier_db, product_db] = urls.as_slice() else {
        panic!("usage: probe SUPPLIER_DATABASE_URL PRODUCT_DATABASE_URL");
    };
    suppliers(supplier_db.clone()).await;
    products(product_db.clone()).await;
    println!("probe: ok");
}
