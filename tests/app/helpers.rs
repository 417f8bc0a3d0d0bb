//! `TestApp`: a fresh database per test, the real app on port 0, and HTTP clients with cookies.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arbor::{
    config::Config,
    db::{self, bootstrap, PgPool},
    web::AppState,
    Application,
};
use diesel::{sql_types::Text, PgConnection, RunQueryDsl};
use reqwest::{redirect::Policy, Client, Response};

pub const PASSWORD: &str = "correct horse battery";

fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            arbor::web::telemetry::init_subscriber("info");
        }
    });
}

/// URL of the server's maintenance database, found once per test binary.
fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = match std::env::var("ARBOR_TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
        {
            Ok(u) => bootstrap::with_database(&u, "postgres").expect("valid database URL"),
            Err(_) => bootstrap::local_server_url().expect("a local PostgreSQL (see README)"),
        };
        drop_stale_databases(&url);
        url
    })
    .clone()
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Test databases are named `arbor_test_<unix>_<rand>`; ones older than two hours are leftovers
/// of aborted runs.
fn drop_stale_databases(admin: &str) {
    let Ok(mut c) = diesel::Connection::establish(admin) else {
        return;
    };
    let c: &mut PgConnection = &mut c;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'arbor_test_%'")
            .load(c)
            .unwrap_or_default();
    for n in names {
        let ts: u64 = n
            .datname
            .split('_')
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if now.saturating_sub(ts) > 7200 {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                n.datname
            ))
            .execute(c);
        }
    }
}

/// Creates an empty database for one test and returns its URL.
pub fn fresh_database() -> (String, String) {
    let admin = admin_url();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!(
        "arbor_test_{now}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let mut c =
        <PgConnection as diesel::Connection>::establish(&admin).expect("connect to admin db");
    bootstrap::create_database(&mut c, &name).expect("create test database");
    (bootstrap::with_database(&admin, &name).unwrap(), name)
}

pub struct TestApp {
    pub address: String,
    pub db_url: String,
    pub db_name: String,
    pub pool: PgPool,
    pub state: AppState,
}

pub fn test_config(db_url: &str) -> Config {
    let mut c = Config::from_map(&Default::default()).expect("default config");
    c.database_url = Some(db_url.to_owned());
    c.bind = "127.0.0.1:0".into();
    c.base_url = "http://127.0.0.1:0".into();
    c.pool_size = 4;
    c.workers = 2;
    c.job_poll = Duration::from_millis(50);
    c.retry_base = Duration::from_millis(100);
    // Tests sign in many times from 127.0.0.1; the throttling test lowers these again.
    c.auth_rate_per_minute = 100_000;
    c.auth_burst = 10_000;
    c.schedule_bill_runs = false;
    c
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let (db_url, db_name) = tokio::task::spawn_blocking(fresh_database).await.unwrap();
        Self::spawn_on(db_url, db_name, customize).await
    }

    /// The app on an existing database (a second instance, or another PostgreSQL server).
    pub async fn spawn_on(
        db_url: String,
        db_name: String,
        customize: impl FnOnce(&mut Config),
    ) -> Self {
        init_tracing();
        let mut config = test_config(&db_url);
        customize(&mut config);
        let app = Application::build(config)
            .await
            .expect("application builds");
        let port = app.port();
        let state = app.state().clone();
        let pool = state.pool.clone();
        tokio::spawn(app.run_forever());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            db_url,
            db_name,
            pool,
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.expect("request")
    }

    /// Body of a GET as text.
    pub async fn html(&self, client: &Client, path: &str) -> String {
        self.get(client, path)
            .await
            .text()
            .await
            .expect("response body")
    }

    /// Status code of a GET (redirects are not followed).
    pub async fn status(&self, client: &Client, path: &str) -> u16 {
        self.get(client, path).await.status().as_u16()
    }

    /// Reads the CSRF token the app gave `client` (from any page it renders).
    pub async fn csrf(&self, client: &Client) -> String {
        let html = self.get(client, "/signup").await.text().await.unwrap();
        extract_csrf(&html).expect("page carries a CSRF token")
    }

    /// Posts a form with the client's CSRF token added.
    pub async fn post_form(
        &self,
        client: &Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        let token = self.csrf(client).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        client
            .post(self.url(path))
            .form(&all)
            .send()
            .await
            .expect("request")
    }

    /// Signs up a new workspace through the real form; `client` ends up signed in as its owner.
    pub async fn signup(&self, client: &Client, prefix: &str) -> TestTenant {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let slug = format!("{prefix}-{suffix}");
        let email = format!("owner-{suffix}@{prefix}.example");
        let resp = self
            .post_form(
                client,
                "/signup",
                &[
                    ("name", "Olivia Owner"),
                    ("email", &email),
                    ("password", PASSWORD),
                    ("org_name", &format!("{prefix} Ltd")),
                    ("slug", &slug),
                ],
            )
            .await;
        assert_eq!(
            resp.status().as_u16(),
            303,
            "signup failed: {}",
            resp.text().await.unwrap_or_default()
        );
        assert_eq!(location(&resp), format!("/t/{slug}"));
        let (id, schema) = {
            let mut c = self.pool.get().unwrap();
            arbor::tenants::repo::find_id_by_slug(&mut c, &slug)
                .unwrap()
                .expect("tenant row")
        };
        TestTenant {
            slug,
            email,
            id,
            schema,
        }
    }

    pub async fn login(&self, client: &Client, email: &str, password: &str) -> Response {
        self.post_form(
            client,
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub fn conn(&self) -> db::PgPooled {
        self.pool.get().expect("pooled connection")
    }

    /// Polls `check` until it returns true or `timeout` passes.
    pub async fn eventually(&self, timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Best effort: FORCE ends the app's own pooled connections.
        let admin = admin_url();
        let name = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = <PgConnection as diesel::Connection>::establish(&admin) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut c);
            }
        })
        .join();
    }
}

#[derive(Debug, Clone)]
pub struct TestTenant {
    pub slug: String,
    pub email: String,
    pub id: i64,
    pub schema: String,
}

impl TestTenant {
    pub fn schema(&self) -> db::scope::TenantSchema {
        db::scope::TenantSchema::parse(&self.schema).unwrap()
    }
}

pub fn new_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub fn location(resp: &Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = "\"X-CSRF-Token\": \"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned()).filter(|t| !t.is_empty())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (Python aiosmtpd) writing every message to a Maildir.
pub struct SmtpSink {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Self {
        let maildir =
            std::env::temp_dir().join(format!("arbor-maildir-{}", uuid::Uuid::new_v4().simple()));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let mut sink = Self {
            port,
            maildir,
            child: None,
        };
        sink.launch().await;
        sink
    }

    async fn launch(&mut self) {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd is required for the SMTP tests (pip install aiosmtpd)");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = c.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("aiosmtpd exited ({status}): {err}");
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Raw messages delivered so far.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in rd.flatten() {
                    if let Ok(s) = std::fs::read_to_string(e.path()) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// Creates a user with `role` in tenant `t` (production repo code), signs them in on a new
/// client and returns it with the user's id and email.
pub async fn member(
    app: &TestApp,
    t: &TestTenant,
    role: arbor::auth::Role,
) -> (Client, i64, String) {
    let email = format!(
        "{}-{}@{}.example",
        role.as_str(),
        &uuid::Uuid::new_v4().simple().to_string()[..6],
        t.slug
    );
    let hash = arbor::auth::password::hash_blocking(PASSWORD).unwrap();
    let uid = {
        let mut c = app.conn();
        let e = arbor::auth::Email::parse(&email).unwrap();
        let uid = arbor::auth::repo::insert(&mut c, &e, &format!("{} Person", role.label()), &hash)
            .unwrap();
        arbor::tenants::provision::add_member(&mut c, t.id, uid, role).unwrap();
        uid
    };
    let client = new_client();
    let r = app.login(&client, &email, PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303, "member sign-in");
    (client, uid, email)
}

/// Audit actions recorded in a tenant, oldest first.
pub fn audit_actions(app: &TestApp, t: &TestTenant) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct A {
        #[diesel(sql_type = Text)]
        action: String,
    }
    arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query("SELECT action FROM audit_log ORDER BY seq").load::<A>(c)?)
    })
    .unwrap()
    .into_iter()
    .map(|a| a.action)
    .collect()
}

/// Recorded request: (request line, headers lower-cased, body).
pub type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>, String)>>>;

/// Serves the given responses in order, one per connection, and records each request.
pub fn replay(responses: Vec<(u16, &'static str)>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in responses {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_lowercase(), v.trim().to_owned()));
            }
            let len: usize = headers
                .iter()
                .find(|h| h.0 == "content-length")
                .map_or(0, |h| h.1.parse().unwrap());
            let mut buf = vec![0; len];
            reader.read_exact(&mut buf).unwrap();
            log.lock().unwrap().push((
                line.trim_end().to_owned(),
                headers,
                String::from_utf8(buf).unwrap(),
            ));
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    (url, seen)
}
