//! The same statements, bound and read the same way, on the harness's real PostgreSQL
//! and on SQLite, over tables shaped like the generated migrations of each dialect.

use chrono::{DateTime, Utc};
use keel::sql::{self, ConnectOptions, Db, Dialect, ViolationKind};
use keel::testing::TestStore;
use uuid::Uuid;

fn ddl(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => {
            "CREATE TABLE items (id uuid PRIMARY KEY, name text NOT NULL CONSTRAINT items_name_key UNIQUE, \
             price bigint NOT NULL CHECK (price >= 0), qty integer NOT NULL, at timestamptz NOT NULL, \
             doc jsonb, blob bytea)"
        }
        Dialect::Sqlite => {
            "CREATE TABLE items (id TEXT PRIMARY KEY CHECK (length(id) = 36), name TEXT NOT NULL CONSTRAINT items_name_key UNIQUE, \
             price INTEGER NOT NULL CHECK (price >= 0), qty INTEGER NOT NULL, at TEXT NOT NULL, \
             doc TEXT, blob BLOB) STRICT"
        }
    }
}

#[tokio::test]
async fn one_statement_set_behaves_the_same_on_both_dialects() {
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let store = TestStore::create(dialect, "kit_sql").await;
        let db = Db::connect(store.url(), &ConnectOptions::default(), None)
            .await
            .expect("connect");
        assert_eq!(db.dialect(), dialect);
        sql::query(ddl(dialect)).execute(&db).await.expect("ddl");

        let at: DateTime<Utc> = "2026-11-26T07:00:00.000001Z".parse().expect("time");
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut tx = db.begin().await.expect("begin");
        tx.lock(1).await.expect("lock");
        for (i, id) in ids.iter().enumerate() {
            sql::query("INSERT INTO items (id, name, price, qty, at, doc, blob) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id)
                .bind(format!("item {i}"))
                .bind(100_i64 * i as i64)
                .bind(i as i32)
                .bind(at)
                .bind(serde_json::json!({"i": i}))
                .bind(vec![i as u8])
                .execute(&mut tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");

        let rows = sql::query(format!(
            "SELECT id, name, price, qty, at, doc, blob FROM items WHERE id IN ({}) AND (name, id) > ($4, $5) ORDER BY name, id",
            sql::placeholders(1, 3)
        ))
        .bind(ids[0])
        .bind(ids[1])
        .bind(ids[2])
        .bind("item 0")
        .bind(ids[0])
        .fetch_all(&db)
        .await
        .expect("select");
        assert_eq!(rows.len(), 2, "{dialect:?}");
        let r = &rows[1];
        assert_eq!(r.uuid("id").expect("id"), ids[2]);
        assert_eq!(r.text("name").expect("name"), "item 2");
        assert_eq!(r.i64("price").expect("price"), 200);
        assert_eq!(r.i32("qty").expect("qty"), 2);
        assert_eq!(r.time("at").expect("at"), at);
        assert_eq!(r.json("doc").expect("doc"), serde_json::json!({"i": 2}));
        assert_eq!(r.bytes("blob").expect("blob"), vec![2]);

        let updated =
            sql::query("UPDATE items SET price = price + $2 WHERE id = $1 RETURNING price")
                .bind(ids[1])
                .bind(5_i64)
                .fetch_one(&db)
                .await
                .expect("update");
        assert_eq!(updated.i64("price").expect("price"), 105);

        let dup =
            sql::query("INSERT INTO items (id, name, price, qty, at) VALUES ($1, $2, 1, 1, $3)")
                .bind(Uuid::now_v7())
                .bind("item 1")
                .bind(at)
                .execute(&db)
                .await
                .expect_err("duplicate name");
        let v = sql::violation(&dup).expect("violation");
        assert_eq!(v.kind, ViolationKind::Unique, "{dialect:?}");
        assert!(
            v.is("items_name_key", "items", &["name"]),
            "{dialect:?}: {v:?}"
        );
        let neg = sql::query("UPDATE items SET price = -1 WHERE id = $1")
            .bind(ids[1])
            .execute(&db)
            .await
            .expect_err("negative price");
        assert_eq!(
            sql::violation(&neg).map(|v| v.kind),
            Some(ViolationKind::Check)
        );

        let mut lease = db.try_lease(99).await.expect("lease").expect("free");
        assert!(
            db.try_lease(99).await.expect("lease").is_none(),
            "{dialect:?}"
        );
        assert!(lease.is_held().await);
        lease.release().await;
        assert!(
            db.try_lease(99).await.expect("lease").is_some(),
            "{dialect:?}"
        );
        db.close().await;
    }
}
