//! Logout everywhere: two BFF replicas' token verifiers ([`keel::graphql::Authn`]) over
//! one identity service (the generated user service's migrations on SQLite, the
//! `keel.auth.v1.Auth` server over real gRPC). A session ended through one replica, or
//! directly at the identity service, is refused by every replica within a few polls;
//! other sessions keep working.

use std::time::{Duration, Instant};

use keel::auth::AuthService;
use keel::auth::pb::auth_client::AuthClient;
use keel::auth::pb::{LoginRequest, LogoutRequest, SetCredentialsRequest};
use keel::graphql::Authn;
use keel::graphql::auth::ENDED_SESSIONS_POLL;
use tokio_stream::wrappers::TcpListenerStream;

const PASSWORD: &str = "correct horse battery";

async fn identity_service(data: &std::path::Path) -> String {
    let url = format!("sqlite://{}", data.join("user.db").display());
    let db = keel::sql::Db::connect(
        &url,
        &keel::sql::ConnectOptions::new(4, 5),
        Some(&shop_user::DB_MIGRATIONS),
    )
    .await
    .expect("the user database");
    let settings = keel::auth::Settings::new("shop", 300, 3600, "");
    let auth = AuthService::start(db, settings).await.expect("auth starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(auth.server())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

async fn login(client: &mut AuthClient<tonic::transport::Channel>, email: &str) -> String {
    client
        .login(LoginRequest {
            email: email.into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("login")
        .into_inner()
        .access_token
}

/// Waits until `replica` refuses `token`; how long that took.
async fn refused_within(replica: &Authn, token: &str, limit: Duration) -> Duration {
    let header = format!("Bearer {token}");
    let started = Instant::now();
    while replica.authenticate(Some(&header)).await.is_ok() {
        assert!(
            started.elapsed() < limit,
            "the ended session was still accepted after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_reaches_every_bff_replica() {
    let data = tempfile::tempdir().expect("tempdir");
    let url = identity_service(data.path()).await;
    let channel = || {
        tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .connect_lazy()
    };
    let mut client = AuthClient::new(channel());
    let replicas = [
        Authn::new(channel(), "shop", "customerId"),
        Authn::new(channel(), "shop", "customerId"),
    ];
    let subject = uuid::Uuid::now_v7();
    client
        .set_credentials(SetCredentialsRequest {
            subject: subject.to_string(),
            email: "ann@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("credentials");

    let (ended, kept) = (
        login(&mut client, "ann@example.com").await,
        login(&mut client, "ann@example.com").await,
    );
    let ended_header = format!("Bearer {ended}");
    let principal = replicas[0]
        .authenticate(Some(&ended_header))
        .await
        .expect("a valid token")
        .expect("a caller");
    assert_eq!(principal.subject, subject);
    assert!(replicas[1].authenticate(Some(&ended_header)).await.is_ok());

    // Logged out at the identity service (as the BFF that got `logout` does, besides
    // refusing the token itself): both replicas learn it from their polls.
    client
        .logout(LogoutRequest {
            session_id: principal.session.to_string(),
        })
        .await
        .expect("logout");
    let limit = ENDED_SESSIONS_POLL * 4;
    for replica in &replicas {
        let took = refused_within(replica, &ended, limit).await;
        println!("refused after {took:?}");
    }
    let kept_header = format!("Bearer {kept}");
    for replica in &replicas {
        assert!(
            replica.authenticate(Some(&kept_header)).await.is_ok(),
            "another session of the same customer still works"
        );
    }

    // A replica started after the logout learns it on its first poll.
    let late = Authn::new(channel(), "shop", "customerId");
    refused_within(&late, &ended, limit).await;
    assert!(late.authenticate(Some(&kept_header)).await.is_ok());
}
