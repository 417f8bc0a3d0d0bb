//! Configuration from the environment and an optional `KEY=VALUE` file.
//!
//! Precedence: process environment over the file (`ARBOR_CONFIG`, default `./arbor.env` when
//! present) over defaults. Secrets (database password, SMTP credentials, secret key) are never
//! printed: `Debug` redacts them.

use std::{collections::HashMap, fmt, path::Path, time::Duration};

use anyhow::{bail, Context};
use base64::Engine as _;
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct Config {
    /// `None` means: find (and if needed start) the local PostgreSQL cluster.
    pub database_url: Option<String>,
    /// Database name used when bootstrapping a local cluster.
    pub database_name: String,
    pub bind: String,
    /// Origin users reach the app at; used for links in emails and the CSRF origin check.
    pub base_url: String,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub secret_key: SecretKey,
    pub pool_size: u32,
    /// Background job workers in this process (0 disables them).
    pub workers: usize,
    pub job_poll: Duration,
    /// How long a running job may go without its worker's heartbeat before the reaper assumes
    /// the worker died and queues the job again (workers beat every third of it).
    pub job_lease: Duration,
    /// Base delay of the exponential retry backoff for jobs and outbox deliveries.
    pub retry_base: Duration,
    pub auto_migrate: bool,
    pub production: bool,
    /// Sign-in attempts (and other auth POSTs) per minute and burst, per client IP.
    pub auth_rate_per_minute: u64,
    pub auth_burst: u32,
    /// Whether workers start each tenant's daily bill run (tests trigger runs themselves).
    pub schedule_bill_runs: bool,
    /// Stripe's API origin; tests point it at a local server replaying recorded responses.
    pub stripe_api_base: String,
}

/// At least 32 bytes of key material for HMACs (CSRF, signed links) and encryption at rest.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let raw = raw.trim();
        let bytes = hex::decode(raw)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(raw).ok())
            .unwrap_or_else(|| raw.as_bytes().to_vec());
        if bytes.len() < 32 {
            bail!("ARBOR_SECRET_KEY must hold at least 32 bytes (e.g. `openssl rand -hex 32`)");
        }
        Ok(Self(bytes))
    }

    /// A fixed key for development only; `production` refuses it.
    pub fn development() -> Self {
        Self(Sha256::digest(b"arbor development key - never use in production").to_vec())
    }

    /// Derives an independent subkey per purpose so one leaked HMAC never helps another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(&self.0);
        h.update(b"\x00arbor-subkey\x00");
        h.update(purpose.as_bytes());
        h.finalize().into()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("database_name", &self.database_name)
            .field("bind", &self.bind)
            .field("base_url", &self.base_url)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("secret_key", &self.secret_key)
            .field("pool_size", &self.pool_size)
            .field("workers", &self.workers)
            .field("production", &self.production)
            .finish_non_exhaustive()
    }
}

/// Removes the password from a URL so it can be logged.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

impl Config {
    /// Reads the process environment and the optional config file.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut vars: HashMap<String, String> = HashMap::new();
        let file = std::env::var("ARBOR_CONFIG").ok();
        let path = file.clone().unwrap_or_else(|| "arbor.env".to_owned());
        if Path::new(&path).exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading config file {path}"))?;
            vars.extend(parse_env_file(&text)?);
        } else if file.is_some() {
            bail!("config file {path} (ARBOR_CONFIG) does not exist");
        }
        vars.extend(std::env::vars());
        Self::from_map(&vars)
    }

    pub fn from_map(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let production = get("ARBOR_ENV").is_some_and(|v| v == "production");
        let bind = get("ARBOR_BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned());
        let base_url = get("ARBOR_BASE_URL")
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        url::Url::parse(&base_url).context("ARBOR_BASE_URL is not a valid URL")?;
        let secret_key = match get("ARBOR_SECRET_KEY") {
            Some(k) => SecretKey::parse(&k)?,
            None if production => bail!("ARBOR_SECRET_KEY is required when ARBOR_ENV=production"),
            None => SecretKey::development(),
        };
        let number = |k: &str, default: u64| -> anyhow::Result<u64> {
            get(k).map_or(Ok(default), |v| {
                v.parse()
                    .with_context(|| format!("{k} must be a whole number"))
            })
        };
        Ok(Self {
            database_url: get("DATABASE_URL").or_else(|| get("ARBOR_DATABASE_URL")),
            database_name: get("ARBOR_DATABASE_NAME").unwrap_or_else(|| "arbor".to_owned()),
            bind,
            base_url,
            smtp_url: get("ARBOR_SMTP_URL"),
            mail_from: get("ARBOR_MAIL_FROM")
                .unwrap_or_else(|| "Arbor <billing@arbor.localhost>".to_owned()),
            secret_key,
            pool_size: u32::try_from(number("ARBOR_DB_POOL_SIZE", 16)?)?,
            workers: usize::try_from(number("ARBOR_WORKERS", 2)?)?,
            job_poll: Duration::from_millis(number("ARBOR_JOB_POLL_MS", 500)?),
            job_lease: Duration::from_secs(number("ARBOR_JOB_LEASE_SECS", 60)?.max(1)),
            retry_base: Duration::from_millis(number("ARBOR_RETRY_BASE_MS", 5_000)?),
            auto_migrate: get("ARBOR_AUTO_MIGRATE").is_none_or(|v| v != "false"),
            production,
            auth_rate_per_minute: number("ARBOR_AUTH_RATE_PER_MIN", 30)?,
            auth_burst: u32::try_from(number("ARBOR_AUTH_BURST", 10)?)?,
            schedule_bill_runs: get("ARBOR_SCHEDULE_BILL_RUNS").is_none_or(|v| v != "false"),
            stripe_api_base: get("ARBOR_STRIPE_API_BASE")
                .unwrap_or_else(|| "https://api.stripe.com".to_owned()),
        })
    }

    pub fn secure_cookies(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

fn parse_env_file(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            bail!("config file line {}: expected KEY=VALUE", n + 1);
        };
        let v = v.trim().trim_matches('"').trim_matches('\'');
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_parses_comments_quotes_and_export() {
        let m = parse_env_file("# c\nexport A=1\nB=\"two words\"\n\nC='x'\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x");
        assert!(parse_env_file("nonsense").is_err());
    }

    #[test]
    fn production_requires_a_secret_key() {
        let mut m = HashMap::new();
        m.insert("ARBOR_ENV".to_owned(), "production".to_owned());
        assert!(Config::from_map(&m).is_err());
        m.insert("ARBOR_SECRET_KEY".to_owned(), "ab".repeat(32));
        assert!(Config::from_map(&m).is_ok());
    }

    #[test]
    fn short_secret_key_is_rejected() {
        assert!(SecretKey::parse("tooshort").is_err());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let mut m = HashMap::new();
        m.insert(
            "DATABASE_URL".to_owned(),
            "postgres://u:hunter2@h/db".to_owned(),
        );
        m.insert(
            "ARBOR_SMTP_URL".to_owned(),
            "smtp://me:pw-smtp@mail:25".to_owned(),
        );
        let c = Config::from_map(&m).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pw-smtp"), "{printed}");
    }

    #[test]
    fn subkeys_differ_by_purpose() {
        let k = SecretKey::development();
        assert_ne!(k.derive("csrf"), k.derive("links"));
    }
}
