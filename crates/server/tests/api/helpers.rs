use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tenantry_db::testing::TestDb;
use tenantry_server::http::{self, AppState, HttpConfig};
use tenantry_server::identity::{self, NewAccount};
use uuid::Uuid;

pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub client: reqwest::Client,
}

/// A signed-up user with a session token and their first organization.
#[derive(Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub org: Uuid,
    pub token: String,
}

/// Everything the process logs from now on, at every level, kept for the test to read (call
/// it before anything else logs: the first subscriber of a test process stays).
pub fn capture_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut kept) = self.0.lock() {
                kept.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(kept.clone());
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_env_filter("trace")
        .with_ansi(false)
        .try_init()
        .expect("the first subscriber of this test process");
    kept
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(HttpConfig::default()).await
    }

    pub async fn spawn_with(config: HttpConfig) -> Self {
        Self::spawn_configured(|_| config).await
    }

    /// Spawns the service with the configuration `make` gives for its base URL (a redirect
    /// address a provider sends the browser back to).
    pub async fn spawn_configured(make: impl FnOnce(&str) -> HttpConfig) -> Self {
        // Server-side errors (500s) show in the failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let db = TestDb::new().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::new(db.runtime.clone(), make(&base)).expect("state");
        tokio::spawn(http::serve(listener, state, std::future::pending()));
        Self {
            base,
            db,
            client: reqwest::Client::new(),
        }
    }

    pub async fn user(&self, email: &str) -> TestUser {
        let signed_up = identity::sign_up(
            &self.db.runtime,
            NewAccount {
                email: email.into(),
                name: Some(email.split('@').next().unwrap_or("x").into()),
                password_hash: None,
                provider: "password".into(),
                provider_id: None,
                clerk_user_id: None,
                email_verified: false,
                organization_name: None,
            },
        )
        .await
        .expect("sign up");
        let token = identity::create_session(
            &self.db.runtime,
            signed_up.user.id,
            Duration::from_secs(3600),
            None,
            None,
        )
        .await
        .expect("session")
        .token;
        TestUser {
            id: signed_up.user.id,
            org: signed_up.organization.id,
            token,
        }
    }

    /// Locks the organizations table (as the owner) until the returned transaction ends, so a
    /// request touching it waits inside PostgreSQL.
    pub async fn lock_organizations(&self) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let owner = self.db.owner().await;
        let mut blocker = owner.0.begin().await.expect("begin");
        sqlx::query("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *blocker)
            .await
            .expect("lock");
        blocker
    }

    pub fn request(&self, method: Method, token: Option<&str>, path: &str) -> RequestBuilder {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn call(
        &self,
        method: Method,
        user: &TestUser,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, Some(&user.token), path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("send")).await
    }

    /// A call as a browser makes it: with the session's `cookie` (`name=value`) and, on writes,
    /// the `csrf` token header when given.
    pub async fn cookie_call(
        &self,
        method: Method,
        path: &str,
        cookie: &str,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .request(method, None, path)
            .header(reqwest::header::COOKIE, cookie);
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("send")).await
    }

    /// Adds `user` to `org` as `role`, acting as `admin`, over the API's domain layer.
    pub async fn add_member(
        &self,
        admin: &TestUser,
        org: Uuid,
        user: &TestUser,
        role: tenantry_server::kernel::access::Role,
    ) {
        let mut tx = tenantry_server::kernel::org_tx::OrgTx::begin(
            &self.db.runtime,
            &tenantry_db::RequestContext::user(admin.id),
            org,
        )
        .await
        .expect("begin");
        tenantry_server::orgs::store::add_member(&mut tx, user.id, role)
            .await
            .expect("add member");
        tx.commit().await.expect("commit");
    }
}

/// The served OpenAPI document.
pub async fn openapi(app: &TestApp) -> Value {
    let (status, doc) = read(
        app.request(Method::GET, None, "/openapi.json")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// A documented path with its parameters filled: `{org}` as given, `{tool}` as a shipped tool,
/// any other as a fresh id.
pub fn concrete_path(path: &str, org: Option<Uuid>) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{org}" if org.is_some() => org.map(|o| o.to_string()).unwrap_or_default(),
            "{tool}" => "woop".to_string(),
            s if s.starts_with('{') => Uuid::now_v7().to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts a problem response with `status` and stable `code`.
pub fn assert_problem(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["code"], code, "body: {}", got.1);
    assert_eq!(got.1["status"], status.as_u16());
    assert_eq!(got.1["type"], format!("urn:tenantry:problem:{code}"));
}

/// Asserts a 422 and returns the fields it names, in its order.
pub fn refused_fields(got: &(StatusCode, Value)) -> Vec<&str> {
    assert_problem(got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    got.1["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect()
}

/// The items of the page `GET path` answers (which must be 200).
pub async fn items(app: &TestApp, user: &TestUser, path: &str) -> Vec<Value> {
    let (status, page) = app.call(Method::GET, user, path, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits (up to 20 s) until `done` says so.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("gave up waiting until {what}");
}

/// A new API key of `admin`'s organization (`access` read or write, for `modules`), as a caller.
pub async fn api_key(
    app: &TestApp,
    admin: &TestUser,
    access: &str,
    modules: serde_json::Value,
) -> TestUser {
    let (status, created) = app
        .call(
            reqwest::Method::POST,
            admin,
            &format!("/v1/orgs/{}/api-keys", admin.org),
            Some(serde_json::json!({"name": "sync", "access": access, "modules": modules})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    TestUser {
        id: Uuid::nil(),
        org: admin.org,
        token: created["secret"].as_str().expect("secret").into(),
    }
}

/// Runs a worker with `registry` (quick polls and backoff) until no job of `kind` is waiting or
/// running, at most 20 s.
pub async fn run_jobs(app: &TestApp, registry: tenantry_server::jobs::Registry, kind: &str) {
    let worker = tenantry_server::jobs::Worker::new(
        app.db.owner().await,
        app.db.runtime.clone(),
        registry,
        tenantry_server::jobs::WorkerConfig {
            poll: Duration::from_millis(50),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(50),
            schedules: None,
            ..tenantry_server::jobs::WorkerConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        let _ = worker
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    let owner = app.db.owner().await;
    for _ in 0..400 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM queue.jobs WHERE kind = $1 AND state IN ('queued', 'running')",
        )
        .bind(kind)
        .fetch_one(&owner.0)
        .await
        .expect("jobs");
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let _ = running.await;
}

/// The values of `attributes` (each spelled `name="`) in an HTML page, each asserted to be a path
/// of this server (`/…`, not `//…`) or, when `fragments` allows it, a `#fragment`.
pub fn same_origin_references(page: &str, attributes: &[&str], fragments: bool) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in attributes {
        for (i, _) in page.match_indices(attribute) {
            let value = &page[i + attribute.len()..];
            let value = &value[..value.find('"').expect("closing quote")];
            assert!(
                (fragments && value.starts_with('#'))
                    || (value.starts_with('/') && !value.starts_with("//")),
                "{attribute}{value}\" leaves this origin"
            );
            found.push(value.to_owned());
        }
    }
    found
}
