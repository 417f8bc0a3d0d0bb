//! Shared machinery of the HTTP benchmarks (`arbor bench http`, `arbor bench tenants`): the app
//! as a child process, a seeded throwaway tenant, signing in through the real login form, a
//! closed-loop load of K keep-alive connections, latency percentiles and the server's peak RSS.
//!
//! The server runs as a separate process (this binary's `serve`, configured through the
//! environment) so that the load generator does not share its runtime and `VmHWM` in
//! `/proc/<pid>/status` is the peak resident memory of the server alone. The load generator
//! speaks minimal HTTP/1.1 (one prepared GET, responses framed by `Content-Length`) over
//! keep-alive sockets instead of going through reqwest: on a two-core machine every
//! microsecond the client spends is taken from the server it measures, which would understate
//! the cheap baseline route most.

use std::{
    net::{SocketAddr, TcpListener},
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::{
    auth::password,
    bench::{aging_seed, provision_throwaway},
    db::{self, scope},
    tenants::provision::Provisioned,
    web::csrf::{PRESESSION_COOKIE, SESSION_COOKIE},
};

/// Invoices (and accounts) seeded into the tenant whose invoice list is measured: several
/// pages, so the list shows a full page of `invoicing::list::PER_PAGE` rows and its count and
/// per-currency totals scan more than one page.
pub const SEED_INVOICES: i64 = 1_000;
pub const SEED_ACCOUNTS: i64 = 100;

/// The app (`arbor serve`) running as a child process on a free loopback port.
pub struct ChildServer {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Starts the server against `database_url` and waits until `/healthz` answers.
    pub async fn spawn(database_url: &str) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("ARBOR_BIND", addr.to_string())
            .env("ARBOR_BASE_URL", format!("http://{addr}"))
            // The bench migrated before starting it; with a thousand tenants a start-up
            // migrate-all pass would only delay the measurement.
            .env("ARBOR_AUTO_MIGRATE", "false")
            // Daily bill runs would otherwise start for every bench tenant mid-measurement.
            .env("ARBOR_SCHEDULE_BILL_RUNS", "false")
            // Each run signs in once per server; a strict dev config must not answer 429.
            .env("ARBOR_AUTH_RATE_PER_MIN", "600")
            .env("ARBOR_AUTH_BURST", "60")
            .stdin(Stdio::null())
            // One log line per request; the figures are what matters here.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting `arbor serve` as a child process")?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("child server has no pid"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    e.read_to_string(&mut err).await?;
                }
                bail!("the child server exited ({status}): {}", err.trim());
            }
            if let Ok(mut c) = HttpConn::connect(addr).await {
                if c.roundtrip(&get_request(addr, "/healthz", None)).await? == 200 {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the child server did not answer /healthz within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, pid, addr })
    }

    /// Peak resident set size so far, in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("reading the child server's /proc status")?;
        vm_hwm_kib(&status).ok_or_else(|| anyhow!("no VmHWM in /proc/{}/status", self.pid))
    }

    /// Stops the server; returns its peak RSS in KiB, read just before.
    pub async fn stop(mut self) -> anyhow::Result<u64> {
        let peak = self.peak_rss_kib()?;
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(peak)
    }
}

/// `VmHWM` (peak resident set size, KiB) from the text of `/proc/<pid>/status`.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(n)
}

/// A throwaway tenant seeded with [`SEED_INVOICES`] invoices (paid and open, two currencies),
/// owned by `email` signing in with `password` (no second factor).
pub async fn seeded_tenant(
    pool: &db::PgPool,
    slug: String,
    email: String,
    password: String,
) -> anyhow::Result<Provisioned> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let hash = password::hash_blocking(&password)?;
        let mut c = pool.get()?;
        let p = provision_throwaway(&mut c, &slug, "Bench load", &email, hash)?;
        let today = Utc::now().date_naive();
        let seeded = scope::in_tenant(&mut c, &p.schema, |c| {
            aging_seed(c, SEED_INVOICES, SEED_ACCOUNTS, today)
                .map_err(crate::error::AppError::internal)
        });
        match seeded {
            Ok(()) => Ok(p),
            Err(e) => {
                crate::bench::drop_throwaway(&mut c, &p)?;
                Err(e.into())
            }
        }
    })
    .await?
}

/// Signs in through the real form (GET /login for the pre-session cookie and its CSRF token,
/// then POST) and returns the `Cookie` header value carrying the session.
pub async fn sign_in(addr: SocketAddr, email: &str, password: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = client.get(format!("http://{addr}/login")).send().await?;
    let pre = set_cookie(form.headers(), PRESESSION_COOKIE)?;
    let token = form_csrf_token(&form.text().await?)
        .ok_or_else(|| anyhow!("the login form carries no CSRF token"))?;
    let resp = client
        .post(format!("http://{addr}/login"))
        .header("Cookie", format!("{PRESESSION_COOKIE}={pre}"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    let to = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if resp.status().as_u16() != 303 || to != "/" {
        bail!(
            "sign-in answered {} to {to:?} instead of 303 to \"/\"",
            resp.status()
        );
    }
    Ok(format!(
        "{SESSION_COOKIE}={}",
        set_cookie(resp.headers(), SESSION_COOKIE)?
    ))
}

fn set_cookie(headers: &reqwest::header::HeaderMap, name: &str) -> anyhow::Result<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, name))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no {name} cookie was set"))
}

/// The value of cookie `name` in one `Set-Cookie` header.
pub fn cookie_value<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    let (k, v) = set_cookie.split(';').next()?.split_once('=')?;
    (k.trim() == name).then(|| v.trim())
}

/// The hidden `csrf_token` field of a rendered form.
pub fn form_csrf_token(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned()).filter(|t| !t.is_empty())
}

/// The bytes of a keep-alive GET, prepared once and sent for every request.
pub fn get_request(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: arbor-bench\r\n{cookie}\r\n")
        .into_bytes()
}

/// Status line and framing of a response whose head is complete.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub head_len: usize,
    pub content_length: usize,
}

/// Parses a response head; `None` until `buf` holds all of it.
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line in {text:?}"))?;
    let mut content_length = None;
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        if k.eq_ignore_ascii_case("content-length") {
            content_length = Some(v.trim().parse().context("bad Content-Length")?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by the bench client");
        }
    }
    Ok(Some(Head {
        status,
        head_len: end + 4,
        content_length: content_length.ok_or_else(|| anyhow!("response without Content-Length"))?,
    }))
}

/// One keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
    body: std::ops::Range<usize>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            body: 0..0,
        })
    }

    /// Sends `request` and reads the whole response; returns its status.
    pub async fn roundtrip(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head = loop {
            if let Some(h) = parse_head(&self.buf)? {
                break h;
            }
            self.read_more().await?;
        };
        let total = head.head_len + head.content_length;
        while self.buf.len() < total {
            self.read_more().await?;
        }
        self.body = head.head_len..total;
        Ok(head.status)
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let at = self.buf.len();
        self.buf.resize(at + 16 * 1024, 0);
        let n = self.stream.read(&mut self.buf[at..]).await;
        self.buf.truncate(at + *n.as_ref().unwrap_or(&0));
        if n? == 0 {
            bail!("the server closed the connection mid-response");
        }
        Ok(())
    }

    /// Body of the last response.
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.clone()).unwrap_or_default()
    }
}

/// When a load stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    Elapsed(Duration),
    Requests(usize),
}

/// Latencies (sorted, microseconds) and wall time of one load.
pub struct LoadResult {
    pub latencies_us: Vec<u32>,
    pub seconds: f64,
}

impl LoadResult {
    /// Latency percentile in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p).map_or(f64::NAN, |us| f64::from(us) / 1000.0)
    }

    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.seconds
    }

    pub fn summary(&self) -> String {
        format!(
            "p50 {:6.2} ms, p99 {:6.2} ms, {:7.0} req/s ({} requests in {:.1} s)",
            self.ms(50.0),
            self.ms(99.0),
            self.rate(),
            self.latencies_us.len(),
            self.seconds
        )
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// `clients` connections, each sending the next GET as soon as the last response is read
/// (closed loop), until `until`. Every response must be 200.
pub async fn load(
    addr: SocketAddr,
    request: &[u8],
    clients: usize,
    until: Until,
) -> anyhow::Result<LoadResult> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        conns.push(HttpConn::connect(addr).await?);
    }
    let request: Arc<[u8]> = request.into();
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (request, issued) = (request.clone(), issued.clone());
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(16 * 1024);
            loop {
                let more = match until {
                    Until::Elapsed(d) => started.elapsed() < d,
                    Until::Requests(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                };
                if !more {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                let status = conn.roundtrip(&request).await?;
                if status != 200 {
                    bail!("HTTP {status}");
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        });
    }
    let mut latencies_us = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies_us.extend(done??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Ok(LoadResult {
        latencies_us,
        seconds,
    })
}

/// "met" or "MISSED", for the target lines.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
        // 1000 values: p99 is the 990th, so the ten slowest lie above it.
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99.0), Some(990));
    }

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        let status =
            "Name:\tarbor\nVmPeak:\t  912344 kB\nVmHWM:\t   48212 kB\nVmRSS:\t   47100 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(48212));
        assert_eq!(vm_hwm_kib("Name:\tarbor\nVmRSS:\t 1 kB\n"), None);
        assert_eq!(vm_hwm_kib("VmHWM:\t lots kB\n"), None);
        // The real file of this very process has it.
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_hwm_kib(&own).unwrap() > 0);
    }

    #[test]
    fn response_heads_are_framed_by_content_length() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(
            parse_head(r).unwrap(),
            Some(Head {
                status: 200,
                head_len: r.len() - 15,
                content_length: 15
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn cookies_and_form_tokens_are_found() {
        let h = "arbor_session=abc123; Path=/; HttpOnly; SameSite=Lax";
        assert_eq!(cookie_value(h, "arbor_session"), Some("abc123"));
        assert_eq!(cookie_value(h, "arbor_csrf"), None);
        let html = r#"<form><input type="hidden" name="csrf_token" value="tok-1"><input name="email"></form>"#;
        assert_eq!(form_csrf_token(html).as_deref(), Some("tok-1"));
        assert_eq!(form_csrf_token("<form></form>"), None);
    }

    #[test]
    fn requests_carry_host_and_cookie() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let r = String::from_utf8(get_request(addr, "/t/x/invoices", Some("a=b"))).unwrap();
        assert_eq!(
            r,
            "GET /t/x/invoices HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: arbor-bench\r\nCookie: a=b\r\n\r\n"
        );
    }
}
