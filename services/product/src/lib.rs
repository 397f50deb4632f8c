//! Products in PostgreSQL, behind the generated `ProductUseCases` trait. Requests arrive
//! validated against the spec; this code keeps to storage and paging.

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use shop_kit::{RequestContext, ServiceError, db};
use shop_product::{ProductUseCases, pb};
use sqlx::PgPool;
use uuid::Uuid;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../generated/sql/shop_product");

const DEFAULT_PAGE: i64 = 20;

pub struct Products {
    pool: PgPool,
}

impl Products {
    pub fn new(pool: PgPool) -> Self {
        Products { pool }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    description: Option<String>,
    price: i64,
    created_at: DateTime<Utc>,
}

impl From<Row> for pb::Product {
    fn from(r: Row) -> pb::Product {
        pb::Product {
            id: r.id.to_string(),
            name: r.name,
            description: r.description,
            price: r.price,
            created_at: Some(shop_kit::utc_to_timestamp(&r.created_at)),
        }
    }
}

/// Keyset position after which the next page starts: the last (name, id) seen.
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    name: String,
    id: Uuid,
}

fn encode_token(t: &PageToken) -> String {
    let json = serde_json::to_vec(t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(s: &str) -> Result<Option<PageToken>, ServiceError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ServiceError::invalid("page_token", "is not a token this service issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
}

fn parse_id(id: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(id).map_err(|_| ServiceError::invalid("id", "must be a UUID"))
}

impl ProductUseCases for Products {
    async fn view_products(
        &self,
        _ctx: RequestContext,
        request: pb::ViewProductsRequest,
    ) -> Result<pb::ViewProductsResponse, ServiceError> {
        let limit = if request.page_size == 0 {
            DEFAULT_PAGE
        } else {
            i64::from(request.page_size)
        };
        let after = decode_token(&request.page_token)?;
        // One row more than asked tells whether another page follows.
        let rows: Vec<Row> = match &after {
            None => {
                sqlx::query_as("SELECT id, name, description, price, created_at FROM products ORDER BY name, id LIMIT $1")
                    .bind(limit + 1)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(t) => {
                sqlx::query_as("SELECT id, name, description, price, created_at FROM products WHERE (name, id) > ($1, $2) ORDER BY name, id LIMIT $3")
                .bind(&t.name)
                .bind(t.id)
                .bind(limit + 1)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db::error)?;
        let mut rows = rows;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_token(&PageToken {
                name: last.name.clone(),
                id: last.id,
            }),
            _ => String::new(),
        };
        Ok(pb::ViewProductsResponse {
            products: rows.into_iter().map(pb::Product::from).collect(),
            next_page_token,
        })
    }

    async fn get_product(
        &self,
        _ctx: RequestContext,
        request: pb::GetProductRequest,
    ) -> Result<pb::GetProductResponse, ServiceError> {
        let id = parse_id(&request.id)?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, name, description, price, created_at FROM products WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db::error)?;
        let row = row.ok_or_else(|| ServiceError::not_found("product", id))?;
        Ok(pb::GetProductResponse {
            product: Some(row.into()),
        })
    }

    async fn create_product(
        &self,
        ctx: RequestContext,
        request: pb::CreateProductRequest,
    ) -> Result<pb::CreateProductResponse, ServiceError> {
        // PostgreSQL keeps microseconds; truncate so the answer equals what a read returns.
        let now = Utc::now().trunc_subsecs(6);
        let row: Row = sqlx::query_as("INSERT INTO products (id, name, description, price, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id, name, description, price, created_at")
        .bind(Uuid::now_v7())
        .bind(&request.name)
        .bind(&request.description)
        .bind(request.price)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db::error)?;
        tracing::info!(request_id = %ctx.request_id, product_id = %row.id, "product created");
        Ok(pb::CreateProductResponse {
            product: Some(row.into()),
        })
    }

    async fn update_product(
        &self,
        _ctx: RequestContext,
        request: pb::UpdateProductRequest,
    ) -> Result<pb::UpdateProductResponse, ServiceError> {
        let id = parse_id(&request.id)?;
        let row: Option<Row> = sqlx::query_as("UPDATE products SET name = $2, description = $3, price = $4 WHERE id = $1 RETURNING id, name, description, price, created_at")
        .bind(id)
        .bind(&request.name)
        .bind(&request.description)
        .bind(request.price)
        .fetch_optional(&self.pool)
        .await
        .map_err(db::error)?;
        let row = row.ok_or_else(|| ServiceError::not_found("product", id))?;
        Ok(pb::UpdateProductResponse {
            product: Some(row.into()),
        })
    }

    async fn delete_product(
        &self,
        _ctx: RequestContext,
        request: pb::DeleteProductRequest,
    ) -> Result<pb::DeleteProductResponse, ServiceError> {
        let id = parse_id(&request.id)?;
        let done = sqlx::query("DELETE FROM products WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db::error)?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::not_found("product", id));
        }
        Ok(pb::DeleteProductResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let t = PageToken {
            name: "Tea".into(),
            id: Uuid::now_v7(),
        };
        let back = decode_token(&encode_token(&t))
            .expect("decodes")
            .expect("some");
        assert_eq!((back.name, back.id), (t.name, t.id));
        assert!(decode_token("").expect("empty ok").is_none());
        assert!(matches!(
            decode_token("%%%"),
            Err(ServiceError::InvalidArgument(_))
        ));
        assert!(matches!(
            decode_token("bm9wZQ"),
            Err(ServiceError::InvalidArgument(_))
        ));
    }
}
