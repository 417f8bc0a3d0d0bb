//! A headless Debian Chromium driven over WebDriver (chromedriver + fantoccini).
//!
//! Every navigation and click leaves a numbered screenshot in
//! `target/browser-artifacts/<test>/`; the folder is removed when the test passes, so what is
//! left after a run is exactly the failing tests' pages (kept as CI artifacts).

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::free_port;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const WAIT: Duration = Duration::from_secs(20);

/// One chromedriver process; sessions (browsers) are opened on it.
pub struct Driver {
    port: u16,
    child: Child,
}

impl Driver {
    pub async fn start() -> Self {
        // No silent skip: a CI machine without the browser fails here, loudly.
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "Chromium and chromedriver are required (apt-get install chromium chromium-driver; .ci/run does it)"
        );
        let port = free_port();
        // Its own process group, so that the browsers it starts die with it even when a
        // failing test never closes its session.
        let child = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let status = format!("http://127.0.0.1:{port}/status");
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(&status).await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(start.elapsed() < WAIT, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { port, child }
    }

    /// A new browser window with its own cookies.
    pub async fn browser(&self, base: &str, name: &str) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1600"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/browser-artifacts")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("artifact folder");
        Browser {
            client,
            base: base.to_owned(),
            dir,
            shots: 0,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    base: String,
    dir: PathBuf,
    shots: usize,
}

impl Browser {
    /// Saves a screenshot of the current page as the next numbered artifact.
    pub async fn snap(&mut self, label: &str) {
        self.shots += 1;
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.dir.join(format!("{:02}-{label}.png", self.shots)), png);
        }
    }

    pub async fn goto(&mut self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        self.snap(path).await;
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Replaces the value of an input or textarea.
    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// Clicks and waits for the page (or the htmx swap) to settle.
    pub async fn click(&mut self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        self.settle().await;
        self.snap(css).await;
    }

    /// Opens the collapsed `<details>` section holding `css`, as a person clicks its summary.
    pub async fn expand(&mut self, css: &str) {
        let summary = format!("details:has({css}):not([open]) > summary");
        let closed = self
            .client
            .find_all(Locator::Css(&summary))
            .await
            .map(|v| !v.is_empty())
            .unwrap_or(false);
        if closed {
            self.click(&summary).await;
        }
    }

    /// Waits until the document is loaded and htmx has no request in flight.
    async fn settle(&self) {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            let done = self
                .client
                .execute(
                    "return document.readyState === 'complete' && !document.querySelector('.htmx-request');",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client
            .execute("return document.body.innerText;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_owned())
            .unwrap_or_default()
    }

    /// Waits until the page text contains `needle`, reloading `path` between looks when given
    /// (for what background workers produce).
    pub async fn wait_for_text(&mut self, needle: &str, reload: Option<&str>) -> String {
        let start = Instant::now();
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            if start.elapsed() > WAIT * 2 {
                self.snap("timeout").await;
                panic!("page never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Some(p) = reload {
                self.client
                    .goto(&format!("{}{p}", self.base))
                    .await
                    .unwrap_or_else(|e| panic!("open {p}: {e}"));
            }
        }
    }

    /// Fetches `path` with the browser's own cookies (a download, read back as text).
    pub async fn download(&self, path: &str) -> (u16, String, String) {
        let v: Value = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0], {credentials: 'same-origin'})
                   .then(r => r.text().then(t => done([r.status, r.headers.get('content-type') || '', t])))
                   .catch(e => done([0, '', String(e)]));",
                vec![json!(path)],
            )
            .await
            .unwrap_or_else(|e| panic!("download {path}: {e}"));
        (
            v[0].as_u64().unwrap_or(0) as u16,
            v[1].as_str().unwrap_or_default().to_owned(),
            v[2].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Closes the window; the screenshots go when the test got this far (unless
    /// `ARBOR_KEEP_SCREENSHOTS` is set, to look at the pages of a passing run).
    pub async fn finish(self) {
        let _ = self.client.close().await;
        if std::env::var_os("ARBOR_KEEP_SCREENSHOTS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
