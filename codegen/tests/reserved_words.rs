//! The tables of reserved words in `codegen::names`, checked against the targets
//! themselves: PostgreSQL's own list of reserved key words (`pg_get_keywords()`, on the
//! server the project's harness starts), SQLite refusing each listed word where the
//! generated SQL puts a name, and syn refusing each Rust keyword as an identifier but
//! accepting the spelling `rust_ident` gives it. (The protobuf and GraphQL lists are
//! the generator's choice: protobuf takes most key words as names, and the GraphQL
//! names are the built-in and generated types; both are exercised by
//! `reserved_names.rs`.)

use std::collections::BTreeSet;

use codegen::names;

#[path = "support/postgres.rs"]
mod postgres;

#[tokio::test]
async fn the_sql_list_is_what_postgresql_reserves() {
    let pool = sqlx::PgPool::connect(postgres::postgres_url())
        .await
        .expect("postgres");
    let reserved: BTreeSet<String> =
        sqlx::query_scalar("SELECT word::text FROM pg_get_keywords() WHERE catcode = 'R'")
            .fetch_all(&pool)
            .await
            .expect("keywords")
            .into_iter()
            .collect();
    let ours: BTreeSet<String> = names::SQL.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        ours, reserved,
        "names::SQL differs from PostgreSQL's reserved key words"
    );
    // And each of them really cannot name a column unquoted.
    for w in names::SQL {
        let sql = format!("CREATE TEMP TABLE reserved_probe ({w} int)");
        let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .is_err();
        assert!(refused, "PostgreSQL accepts `{w}` as a column name");
    }
}

#[tokio::test]
async fn sqlite_refuses_each_listed_word_where_the_generator_puts_a_name() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("sqlite");
    let run = |sql: String| {
        let pool = pool.clone();
        async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .is_ok()
        }
    };
    let accepted_everywhere = |w: &'static str| {
        let run = &run;
        async move {
            run(format!("CREATE TABLE {w} (x int)")).await
                && run(format!("CREATE TABLE probe_{w} ({w} int)")).await
                && run(format!("CREATE INDEX probe_{w}_idx ON probe_{w} ({w})")).await
                && run(format!("INSERT INTO probe_{w} ({w}) VALUES (1)")).await
                && run(format!("SELECT {w} FROM probe_{w} ORDER BY {w}")).await
                && run(format!("UPDATE probe_{w} SET {w} = 2 WHERE {w} = 1")).await
                && run(format!("DELETE FROM {w} WHERE x = 1")).await
        }
    };
    // Key words SQLite lets one use as names pass the same probe.
    for w in ["key", "action", "abort", "temp", "row", "plan", "query"] {
        assert!(accepted_everywhere(w).await, "SQLite refuses `{w}`");
    }
    for w in names::SQLITE {
        assert!(
            !accepted_everywhere(w).await,
            "SQLite accepts `{w}` everywhere a name goes"
        );
    }
}

#[test]
fn rust_keywords_are_no_identifiers_but_their_spelling_is() {
    // Reserved by edition 2024 (what generated crates use); syn parses every edition.
    const EDITION_2024: [&str; 1] = ["gen"];
    for w in names::RUST {
        assert!(
            syn::parse_str::<syn::Ident>(w).is_err() || EDITION_2024.contains(w),
            "syn accepts the keyword `{w}` as an identifier"
        );
        let spelled = names::rust_ident(w);
        assert_ne!(&spelled, w);
        assert!(
            syn::parse_str::<syn::Ident>(&spelled).is_ok(),
            "`{spelled}` is not an identifier"
        );
    }
}
