//! Demo products, added through the product service's own gRPC contract on the first
//! start of a data folder.

use std::path::Path;

use anyhow::Context;
use shop_product::pb;
use shop_product::pb::product_service_client::ProductServiceClient;

/// (name, description, price in minor units).
pub const PRODUCTS: &[(&str, &str, i64)] = &[
    ("Assam Tea", "Malty black tea, 250 g loose leaf.", 850),
    ("Ceramic Mug", "Stoneware, 350 ml, dishwasher safe.", 1200),
    ("Darjeeling First Flush", "Light and floral, 100 g.", 1490),
    ("Espresso Beans", "Dark roast arabica, 1 kg.", 2450),
    ("Gooseneck Kettle", "1 l, for slow pour-over.", 4900),
    ("Hand Grinder", "Conical ceramic burrs, adjustable.", 3900),
    ("Pour-over Dripper", "Porcelain, size 02.", 1850),
    ("Sencha", "Japanese green tea, 100 g.", 1190),
];

const MARKER: &str = "demo-seeded";

/// Adds [`PRODUCTS`] unless this data folder had them once (`demo-seeded`), or its
/// catalogue is not empty (a start that crashed after seeding, before the marker).
pub async fn seed_once(data: &Path, product_url: &str) -> anyhow::Result<usize> {
    let marker = data.join(MARKER);
    if marker.exists() {
        return Ok(0);
    }
    let mut client = ProductServiceClient::connect(product_url.to_string())
        .await
        .context("connecting to the product service")?;
    let existing = client
        .view_products(pb::ViewProductsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .context("looking at the catalogue")?
        .into_inner();
    let mut added = 0;
    if existing.products.is_empty() {
        for (name, description, price) in PRODUCTS {
            // `..Default::default()`: a field the spec adds to products later (optional
            // or defaulted) stays unset instead of breaking this code.
            #[allow(clippy::needless_update)]
            let product = pb::CreateProductRequest {
                name: (*name).into(),
                description: Some((*description).into()),
                price: *price,
                ..Default::default()
            };
            client
                .create_product(product)
                .await
                .with_context(|| format!("adding {name}"))?;
            added += 1;
        }
    }
    std::fs::write(
        &marker,
        b"the demo products were added to this data folder\n",
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    Ok(added)
}
