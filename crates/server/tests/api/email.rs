//! Outbox delivery over real SMTP: an invitation's email arrives with its link (text and
//! HTML), and an SMTP outage keeps the message until the server is back.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::email::Mailer;
use tenantry_server::jobs::{self, Worker, WorkerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::{until, TestApp, TestUser};
use crate::smtp::SmtpServer;

fn quick() -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(5),
        poll: Duration::from_millis(100),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_millis(400),
        schedules: None,
        ..WorkerConfig::default()
    }
}

/// Runs the service's job kinds, mail through `smtp_url`, until the sender is dropped.
pub(crate) async fn worker(app: &TestApp, smtp_url: &str) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    spawn_worker(app, smtp_url, async {
        let _ = stopped.await;
    })
    .await;
    stop
}

/// A worker that never stops by itself: aborting its task is the worker dying mid-job (its
/// running jobs are dropped where they wait, their connections closed, their leases not given
/// back).
pub(crate) async fn killable_worker(app: &TestApp, smtp_url: &str) -> JoinHandle<()> {
    spawn_worker(app, smtp_url, std::future::pending()).await
}

async fn spawn_worker(
    app: &TestApp,
    smtp_url: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let mailer = Mailer::new(smtp_url, "Tenantry <noreply@tenantry.test>").expect("mailer");
    let worker = Worker::new(
        app.db.owner().await,
        app.db.runtime.clone(),
        jobs::registry(Some(Arc::new(mailer)), None, None),
        quick(),
    );
    tokio::spawn(async move {
        let _ = worker.run(shutdown).await;
    })
}

async fn invite(app: &TestApp, admin: &TestUser, email: &str) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            admin,
            &format!("/v1/orgs/{}/invitations", admin.org),
            Some(json!({"email": email, "role": "member"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The outbox row of the message to `recipient`: (sent, attempts, last error).
async fn outbox(app: &TestApp, recipient: &str) -> (bool, i32, Option<String>) {
    sqlx::query_as(
        "SELECT sent_at IS NOT NULL, attempts, last_error FROM outbox WHERE recipient = $1",
    )
    .bind(recipient)
    .fetch_one(&app.db.owner().await.0)
    .await
    .expect("outbox row")
}

#[tokio::test]
async fn an_invitation_email_arrives_with_its_link_as_text_and_html() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    sqlx::query("UPDATE organizations SET name = 'Acme <script>alert(1)</script>' WHERE id = $1")
        .bind(alice.org)
        .execute(&app.db.owner().await.0)
        .await
        .expect("a malicious name");
    let smtp = SmtpServer::start(0).await;
    let stop = worker(&app, &smtp.url()).await;
    let issued = invite(&app, &alice, "bob@example.com").await;
    let link = issued["accept_url"]
        .as_str()
        .expect("accept_url")
        .to_string();
    until("the email arrived", || !smtp.messages().is_empty()).await;
    let _ = stop.send(());

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert_eq!(mail.to, ["bob@example.com"]);
    assert_eq!(mail.from, "noreply@tenantry.test");
    let data = mail.data.replace("=\n", "").replace("=3D", "=");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(
        data.contains("text/plain") && data.contains("text/html"),
        "{data}"
    );
    assert!(
        data.contains(&format!("Accept: {link}")),
        "the text part carries the link: {data}"
    );
    assert!(
        data.contains(&format!("href=\"{link}\"")),
        "the HTML part links it: {data}"
    );
    assert!(
        data.contains("Acme &lt;script&gt;") && !data.contains("<strong>Acme <script>"),
        "the organization's name is escaped in HTML: {data}"
    );
    // The server has the message before the job records it sent: wait for the record.
    let mut recorded = outbox(&app, "bob@example.com").await;
    for _ in 0..200 {
        if recorded.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        recorded = outbox(&app, "bob@example.com").await;
    }
    assert_eq!(recorded, (true, 1, None));
}

#[tokio::test]
async fn an_smtp_outage_keeps_the_message_until_the_server_is_back() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // A port with nothing listening: the server is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let stop = worker(&app, &format!("smtp://127.0.0.1:{port}")).await;
    invite(&app, &alice, "carol@example.com").await;
    for _ in 0..200 {
        if outbox(&app, "carol@example.com").await.1 >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (sent, attempts, error) = outbox(&app, "carol@example.com").await;
    assert!(!sent && attempts >= 2, "tried and kept: {attempts}");
    assert!(error.is_some_and(|e| e.contains("SMTP")));

    // The server comes back on its port: the next attempt delivers.
    let smtp = SmtpServer::start(port).await;
    until("the email arrived", || !smtp.messages().is_empty()).await;
    let _ = stop.send(());
    assert_eq!(smtp.messages()[0].to, ["carol@example.com"]);
    for _ in 0..100 {
        if outbox(&app, "carol@example.com").await.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (sent, _, error) = outbox(&app, "carol@example.com").await;
    assert_eq!((sent, error), (true, None), "sent, the outage forgotten");
}

#[tokio::test]
async fn a_message_older_than_a_week_is_not_sent_late() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    invite(&app, &alice, "dave@example.com").await;
    // Written while no sender ran, a week and more ago: its link may be dead.
    sqlx::query("UPDATE outbox SET created_at = now() - interval '8 days' WHERE recipient = 'dave@example.com'")
        .execute(&app.db.owner().await.0)
        .await
        .expect("an old message");
    let smtp = SmtpServer::start(0).await;
    let stop = worker(&app, &smtp.url()).await;
    for _ in 0..200 {
        if outbox(&app, "dave@example.com").await.1 >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let (sent, attempts, error) = outbox(&app, "dave@example.com").await;
    assert_eq!((sent, attempts), (false, 1));
    assert!(error.is_some_and(|e| e.contains("older than 7 days")));
    assert!(smtp.messages().is_empty(), "nothing went out");
}
