//! Faults injected into the real stack: the `arbor` process killed with SIGKILL in the middle
//! of a bill run, PostgreSQL restarted under write load, and two app instances whose workers
//! compete for the same charges and emails. (SMTP outages: `email.rs`; a CRM webhook replayed
//! ten times: `crm.rs`; a Stripe event replayed: `stripe.rs`.)

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use arbor::{
    db::{bootstrap, scope::in_tenant},
    error::AppError,
    invoicing::billrun,
};
use chrono::{Datelike, NaiveDate, Utc};
use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};

use crate::{
    billing::{exec, one},
    helpers::{free_port, new_client, SmtpSink, TestApp, TestTenant},
};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(app: &TestApp, t: &TestTenant, sql: &str) -> i64 {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query(sql).get_result::<N>(c)?)
    })
    .unwrap()
    .n
}

/// The real `arbor serve` binary as a child process, so it can be killed like a crashed host.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    async fn start(db_url: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url)
            .env("ARBOR_BIND", format!("127.0.0.1:{port}"))
            .env("ARBOR_BASE_URL", format!("http://127.0.0.1:{port}"))
            .env("ARBOR_WORKERS", "2")
            .env("ARBOR_JOB_POLL_MS", "50")
            .env("ARBOR_JOB_LEASE_SECS", "2")
            .env("ARBOR_RETRY_BASE_MS", "100")
            .env("ARBOR_SCHEDULE_BILL_RUNS", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the arbor binary starts");
        let server = Self { child, port };
        let url = format!("http://127.0.0.1:{port}/healthz");
        let start = Instant::now();
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "arbor serve did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = server.port;
        server
    }

    /// SIGKILL: no shutdown hook runs, open transactions die with the connection.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` monthly subscriptions (one customer each, the bench's seed) started on the first of last
/// month, with auto-finalize on so every invoice of a run takes a number; returns today.
fn seed_auto_finalized(app: &TestApp, t: &TestTenant, n: i64) -> NaiveDate {
    let today = Utc::now().date_naive();
    let last_month = today
        .with_day(1)
        .and_then(|d| d.checked_sub_months(chrono::Months::new(1)))
        .unwrap();
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::bench::seed(c, n, last_month).map_err(AppError::internal)
    })
    .unwrap();
    exec(
        app,
        t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    today
}

#[tokio::test]
async fn a_process_killed_mid_bill_run_resumes_without_duplicate_or_missing_invoices() {
    // Arrange: 1,500 monthly subscriptions (three transactions of 500), auto-finalized so
    // every invoice takes a number; the run is queued for the real binary to pick up.
    const SUBS: i64 = 1_500;
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let t = app.signup(&new_client(), "kill").await;
    let today = seed_auto_finalized(&app, &t, SUBS);
    let run = in_tenant(&mut app.conn(), &t.schema(), |c| {
        billrun::create(c, today, "manual", None)
    })
    .unwrap();
    billrun::enqueue(&mut app.conn(), t.id, run).unwrap();
    let invoices = "SELECT count(*) AS n FROM invoices";

    // Act: kill the process as soon as the first batch is committed.
    let mut first = Server::start(&app.db_url).await;
    let start = Instant::now();
    let at_kill = loop {
        let n = count(&app, &t, invoices);
        if n > 0 {
            first.kill();
            break count(&app, &t, invoices);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        at_kill > 0 && at_kill < SUBS,
        "killed mid-run ({at_kill} of {SUBS} invoices)"
    );
    // A new process takes the job over once the dead worker's lease runs out.
    let _second = Server::start(&app.db_url).await;
    let start = Instant::now();
    while count(
        &app,
        &t,
        &format!("SELECT count(*) AS n FROM bill_runs WHERE id = {run} AND status = 'done'"),
    ) == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the run did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Assert: one invoice per subscription, numbered INV-000001..INV-001500 without a gap.
    assert_eq!(count(&app, &t, invoices), SUBS);
    assert_eq!(
        count(
            &app,
            &t,
            "SELECT count(DISTINCT subscription_id) AS n FROM invoices"
        ),
        SUBS
    );
    assert_eq!(
        count(
            &app,
            &t,
            "SELECT count(DISTINCT number) AS n FROM invoices WHERE number IS NOT NULL"
        ),
        SUBS
    );
    assert_eq!(
        count(
            &app,
            &t,
            "SELECT max(substr(number, 5)::bigint) AS n FROM invoices"
        ),
        SUBS,
        "the highest number equals the count: no gap"
    );
    assert_eq!(
        count(
            &app,
            &t,
            "SELECT count(DISTINCT source_id) AS n FROM journal_entries WHERE source_type = 'invoice'"
        ),
        SUBS,
        "one journal entry per invoice"
    );
    assert_eq!(
        count(
            &app,
            &t,
            "SELECT count(*) AS n FROM journal_entries e WHERE (SELECT sum(amount) FROM journal_lines l WHERE l.entry_id = e.id) <> 0"
        ),
        0,
        "every journal entry balances"
    );
}

/// A PostgreSQL server of the test's own (initdb in a temp folder), so it can be restarted
/// without disturbing the other tests' server.
struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl PrivatePg {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb");
        let dir = std::env::temp_dir().join(format!(
            "arbor-pg-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        if is_root() {
            // PostgreSQL refuses to run as root.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        pg.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "--no-sync", "-D"],
            true,
        );
        pg.ctl("start");
        pg
    }

    fn run(&self, tool: &str, args: &[&str], with_dir: bool) {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        if with_dir {
            cmd.arg(self.dir.join("data"));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
        ];
        if action == "stop" {
            // Like a crash: no checkpoint, open connections cut.
            args.extend(["-m", "immediate"]);
        }
        args.extend(["-o", &opts, action]);
        self.run("pg_ctl", &args, false);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new(if is_root() { "runuser" } else { "true" })
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        if !is_root() {
            let _ = Command::new(self.bin.join("pg_ctl"))
                .args([
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "-m",
                    "immediate",
                    "stop",
                ])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn postgres_restarted_under_load_gives_brief_503s_and_loses_no_acknowledged_write() {
    // Arrange: the app on a PostgreSQL of its own; four clients creating accounts.
    let pg = PrivatePg::start();
    let db_url = tokio::task::spawn_blocking({
        let admin = pg.url();
        move || {
            let mut c = <diesel::PgConnection as diesel::Connection>::establish(&admin).unwrap();
            bootstrap::create_database(&mut c, "arbor_fault").unwrap();
            bootstrap::with_database(&admin, "arbor_fault").unwrap()
        }
    })
    .await
    .unwrap();
    let app = Arc::new(TestApp::spawn_on(db_url, "arbor_fault".into(), |_| {}).await);
    let owner = new_client();
    let t = Arc::new(app.signup(&owner, "pgdown").await);
    let outcomes: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (app, t, outcomes, stop, client) = (
            app.clone(),
            t.clone(),
            outcomes.clone(),
            stop.clone(),
            owner.clone(),
        );
        writers.push(tokio::spawn(async move {
            // The session's CSRF token is read once: the form page itself is a 503 while the
            // database is down.
            let csrf = app.csrf(&client).await;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let name = format!("Load Customer {w}-{i}");
                let status = client
                    .post(app.url(&format!("/t/{}/accounts", t.slug)))
                    // Similar names would (rightly) stop at the duplicate check.
                    .form(&[
                        ("csrf_token", csrf.as_str()),
                        ("legal_name", &name),
                        ("confirm_duplicates", "yes"),
                    ])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                outcomes.lock().unwrap().push((name, status));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // Act: a crash-like stop of PostgreSQL for two seconds, under that load.
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = app.status(&new_client(), "/readyz").await;
    pg.ctl("start");
    let restarted = outcomes.lock().unwrap().len();
    let start = Instant::now();
    loop {
        let done = outcomes.lock().unwrap()[restarted..]
            .iter()
            .filter(|(_, s)| *s == 303)
            .count();
        if done >= 20 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "writes did not recover after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // Assert: only successes and 503s (never a 500); every acknowledged account exists once.
    assert_eq!(during, 503, "readiness says the database is gone");
    let outcomes = outcomes.lock().unwrap().clone();
    let statuses: std::collections::BTreeSet<u16> = outcomes.iter().map(|(_, s)| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 503),
        "statuses seen: {statuses:?}"
    );
    assert!(statuses.contains(&503), "the outage was visible as 503");
    for (name, status) in &outcomes {
        let stored = count(
            &app,
            &t,
            &format!("SELECT count(*) AS n FROM accounts WHERE legal_name = '{name}'"),
        );
        if *status == 303 {
            assert_eq!(stored, 1, "{name} was acknowledged and must exist once");
        } else {
            assert!(stored <= 1, "{name} stored at most once");
        }
    }
    assert_eq!(app.status(&new_client(), "/readyz").await, 200);
}

#[tokio::test]
async fn two_instances_with_workers_never_charge_or_email_twice() {
    // Arrange: two app instances on one database, both running workers, one SMTP sink; 30
    // customers with an auto-charged card and a billing contact, billed by one bill run.
    const CUSTOMERS: i64 = 30;
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let a = TestApp::spawn_with({
        let smtp = smtp.clone();
        |c| c.smtp_url = Some(smtp)
    })
    .await;
    let b = TestApp::spawn_on(a.db_url.clone(), a.db_name.clone(), |c| {
        c.smtp_url = Some(smtp)
    })
    .await;
    let t = a.signup(&new_client(), "twin").await;
    let today = seed_auto_finalized(&a, &t, CUSTOMERS);
    exec(&a, &t, "INSERT INTO contacts (account_id, name, email, receives_invoices) SELECT id, 'AP', 'ap-' || id || '@twin.example', true FROM accounts");
    exec(&a, &t, "INSERT INTO payment_methods (account_id, gateway, token, brand, last4, auto_charge) SELECT id, 'sandbox', 'tok_sandbox_ok_' || id, 'Visa', '4242', true FROM accounts");
    let run = one(
        &a,
        &t,
        &format!(
            "INSERT INTO bill_runs (run_date, trigger) VALUES ('{today}', 'manual') RETURNING id"
        ),
    );

    // Act: the run is queued; both instances' workers take whatever they can claim.
    billrun::enqueue(&mut a.conn(), t.id, run).unwrap();
    a.state.wakeup.notify();
    b.state.wakeup.notify();
    let paid = "SELECT count(*) AS n FROM invoices WHERE number IS NOT NULL AND amount_due = 0";
    let settled = a
        .eventually(Duration::from_secs(90), || {
            count(&a, &t, paid) == CUSTOMERS && sink.messages().len() as i64 >= CUSTOMERS
        })
        .await;
    // Give a would-be second delivery or charge time to happen before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Assert: each invoice paid by one successful charge; each customer mailed once.
    assert!(settled, "all invoices charged and mailed");
    assert_eq!(
        count(
            &a,
            &t,
            "SELECT count(*) AS n FROM payments WHERE status <> 'reversed'"
        ),
        CUSTOMERS,
        "one payment per invoice"
    );
    assert_eq!(
        count(
            &a,
            &t,
            "SELECT count(*) AS n FROM charge_attempts WHERE status = 'succeeded'"
        ),
        CUSTOMERS
    );
    let mails = sink.messages();
    for id in count_ids(&a, &t) {
        let to = format!("ap-{id}@twin.example");
        let n = mails.iter().filter(|m| m.contains(&to)).count();
        assert_eq!(n, 1, "{to} got {n} emails");
    }
}

fn count_ids(app: &TestApp, t: &TestTenant) -> Vec<i64> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query("SELECT id FROM accounts ORDER BY id").load::<Id>(c)?)
    })
    .unwrap()
    .into_iter()
    .map(|i| i.id)
    .collect()
}
