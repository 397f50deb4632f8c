//! Products in PostgreSQL or SQLite (chosen by the database URL), behind the generated
//! `ProductUseCases` trait. Requests arrive validated against the spec; this code keeps
//! to storage and paging. Every statement is written once, in the SQL both dialects share.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use shop_kit::sql::{self, ConnectOptions, Db, Migrations};
use shop_kit::{RequestContext, ServiceError, db, server};
use shop_product::{ProductUseCases, pb};
use sqlx::migrate::Migrator;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

/// The PostgreSQL migrations (`generated/sql/shop_product`).
pub static PG: Migrator = sqlx::migrate!("../../generated/sql/shop_product");
/// The SQLite migrations (`generated/sqlite/shop_product`).
pub static SQLITE: Migrator = sqlx::migrate!("../../generated/sqlite/shop_product");
/// Both, for [`Db::connect`]: the URL's dialect picks one.
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &PG,
    sqlite: &SQLITE,
};

const DEFAULT_PAGE: i64 = 20;

/// The product service's settings: flags and environment of the binary, or a struct
/// literal in an in-process launcher.
#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The shop's product service (gRPC)")]
pub struct Config {
    /// Address to serve gRPC on (the binary binds it; [`run`] takes the bound socket).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:20101")]
    pub listen: SocketAddr,
    /// The product database: `postgres://…` or `sqlite://path/to/file.db`; the
    /// migrations of that dialect (generated/sql or generated/sqlite) run at start.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// How long to wait for the database at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub startup_timeout_secs: u64,
}

/// Connects to the database (applying migrations), serves gRPC (the product service,
/// health, reflection) on `incoming` until `stop` turns true, then closes the pool.
/// Installs no signal handler and no logger: the caller owns the process.
pub async fn run(
    config: Config,
    incoming: TcpIncoming,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let db = Db::open(
        &config.database_url,
        &ConnectOptions::new(config.max_connections, config.startup_timeout_secs),
        &MIGRATIONS,
    )
    .await?;
    let router = server::grpc_router(
        &[shop_product::pb::product_service_server::SERVICE_NAME],
        &[shop_product::FILE_DESCRIPTOR_SET],
    )
    .await?;
    tracing::info!(listen = %config.listen, dialect = ?db.dialect(), "product service serving");
    let served = router
        .add_service(shop_product::product_server(Arc::new(Products::new(
            db.clone(),
        ))))
        .serve_with_incoming_shutdown(incoming, async move {
            server::stopped(&mut stop).await;
        })
        .await;
    db.close().await;
    served?;
    tracing::info!("product service stopped");
    Ok(())
}

pub struct Products {
    db: Db,
}

impl Products {
    pub fn new(db: Db) -> Self {
        Products { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

const COLUMNS: &str = "id, name, description, price, created_at";

struct Row {
    id: Uuid,
    name: String,
    description: Option<String>,
    price: i64,
    created_at: DateTime<Utc>,
}

impl Row {
    fn read(r: &sql::Row) -> Result<Row, sql::Error> {
        Ok(Row {
            id: r.uuid("id")?,
            name: r.text("name")?,
            description: r.opt_text("description")?,
            price: r.i64("price")?,
            created_at: r.time("created_at")?,
        })
    }

    fn read_all(rows: &[sql::Row]) -> Result<Vec<Row>, ServiceError> {
        rows.iter()
            .map(Row::read)
            .collect::<Result<_, _>>()
            .map_err(db::error)
    }
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
        let query = match &after {
            None => sql::query(format!(
                "SELECT {COLUMNS} FROM products ORDER BY name, id LIMIT $1"
            ))
            .bind(limit + 1),
            Some(t) => sql::query(format!(
                "SELECT {COLUMNS} FROM products WHERE (name, id) > ($1, $2) ORDER BY name, id LIMIT $3"
            ))
            .bind(&t.name)
            .bind(t.id)
            .bind(limit + 1),
        };
        let rows = query.fetch_all(&self.db).await.map_err(db::error)?;
        let mut rows = Row::read_all(&rows)?;
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
        let row = sql::query(format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(db::error)?
            .ok_or_else(|| ServiceError::not_found("product", id))?;
        let row = Row::read(&row).map_err(db::error)?;
        Ok(pb::GetProductResponse {
            product: Some(row.into()),
        })
    }

    async fn create_product(
        &self,
        ctx: RequestContext,
        request: pb::CreateProductRequest,
    ) -> Result<pb::CreateProductResponse, ServiceError> {
        // Both dialects keep microseconds; truncate so the answer equals what a read returns.
        let now = Utc::now().trunc_subsecs(6);
        let row = sql::query(format!(
            "INSERT INTO products ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&request.name)
        .bind(&request.description)
        .bind(request.price)
        .bind(now)
        .fetch_one(&self.db)
        .await
        .map_err(db::error)?;
        let row = Row::read(&row).map_err(db::error)?;
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
        let row = sql::query(format!(
            "UPDATE products SET name = $2, description = $3, price = $4 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&request.name)
        .bind(&request.description)
        .bind(request.price)
        .fetch_optional(&self.db)
        .await
        .map_err(db::error)?
        .ok_or_else(|| ServiceError::not_found("product", id))?;
        let row = Row::read(&row).map_err(db::error)?;
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
        let deleted = sql::query("DELETE FROM products WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(db::error)?;
        if deleted == 0 {
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
