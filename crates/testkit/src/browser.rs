//! Real headless Chromium through WebDriver (chromedriver, started by `scripts/test.sh`
//! through `scripts/chromium.sh`). One browser session at a time across the tests of a
//! binary (each with a fresh profile): two cores do not run two Chromiums well.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::sync::{Semaphore, SemaphorePermit};

pub const WEBDRIVER_ENV: &str = "CHATTERFLY_TEST_WEBDRIVER_URL";

static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// The chromedriver to use; panics with how to get one when it is not set.
pub fn webdriver_url() -> String {
    std::env::var(WEBDRIVER_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{WEBDRIVER_ENV} is not set. The browser tests need chromedriver and Chromium, which scripts/test.sh installs and starts; \
                 run the suite with `scripts/test.sh` (or `read {WEBDRIVER_ENV} _ <<<\"$(scripts/chromium.sh 9515)\"; export {WEBDRIVER_ENV}`)"
            )
        })
}

/// A browser session; closed on [`Browser::close`].
pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
    _turn: SemaphorePermit<'static>,
}

impl Browser {
    /// Opens a headless Chromium with a fresh profile, a 1280×900 window.
    pub async fn open() -> Self {
        Self::open_sized(1280, 900).await
    }

    pub async fn open_sized(width: u32, height: u32) -> Self {
        let turn = ONE_AT_A_TIME.acquire().await.expect("browser turn");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display())]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver_url())
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session at {}: {e}", webdriver_url()));
        Self {
            client,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Waits (up to 15 s) for an element matching `css`.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => {
                let url = self.client.current_url().await.ok();
                let text = match self.client.find(Locator::Css("body")).await {
                    Ok(b) => b.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("no `{css}` on {url:?} within 15 s: {e}\npage text: {text}")
            }
        }
    }

    /// Waits (up to 15 s) until the text of the element matching `css` contains `text`.
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        self.wait_text_within(css, text, 15).await
    }

    /// [`Browser::wait_text`] with a longer wait, for slow work such as a big import.
    pub async fn wait_text_within(&self, css: &str, text: &str, seconds: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let now = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now.contains(text) {
                return now;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("`{css}` never contained {text:?}; it holds {now:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 15 s) until exactly `n` elements match `css`.
    pub async fn wait_count(&self, css: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let now = self
                .client
                .find_all(Locator::Css(css))
                .await
                .map(|v| v.len())
                .unwrap_or(0);
            if now == n {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{now} elements match `{css}`, not {n}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 15 s) for the URL's path to be `path`.
    pub async fn wait_path(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.client.current_url().await.expect("url");
            if url.path() == path {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let text = match self.client.find(Locator::Css("body")).await {
                    Ok(b) => b.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let tail: String = text
                    .chars()
                    .rev()
                    .take(1500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!("still at {url} instead of {path}; the page ends with:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into the element matching `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait(css).await;
        el.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`; found again when the page redrew it between the
    /// finding and the click (a stale element).
    pub async fn click(&self, css: &str) {
        for attempt in 0..5 {
            match self.wait(css).await.click().await {
                Ok(()) => return,
                Err(e) if attempt < 4 && e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Whether an alert, confirm or prompt dialog is open.
    pub async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// A PNG of the window, written to `path` when `CHATTERFLY_SCREENSHOTS` names a
    /// directory (the README's screenshots come from here).
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("CHATTERFLY_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
