//! A real headless browser, Debian's `chromium`, driven over the DevTools protocol (a websocket
//! carrying JSON commands): navigate, evaluate script, press keys, set the viewport, take
//! screenshots. `scripts/setup` installs chromium; a machine without it fails here, naming it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// One headless chromium with one page, killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    page: Socket,
    next_id: u64,
    /// What the page logged: console errors and uncaught exceptions, in order.
    pub problems: Vec<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's executable: `$OSN_CHROMIUM`, else `chromium` on the PATH.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("OSN_CHROMIUM") {
        return path.into();
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file());
    found.expect("no `chromium` on the PATH: run scripts/setup, which installs Debian's chromium package")
}

impl Browser {
    /// Starts chromium with a fresh profile and a `width`×`height` window, and attaches to its
    /// first page.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                // The tests run as root in CI containers, where chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-port=0",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // It says where its DevTools endpoint listens on stderr.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let browser_url = rx.recv_timeout(Duration::from_secs(60)).expect("chromium prints its DevTools address");
        let port = browser_url.split(':').nth(2).and_then(|p| p.split('/').next()).unwrap().to_owned();
        // The page target's own websocket.
        let list_url = format!("http://127.0.0.1:{port}/json/list");
        let page_url = super::wait_for("chromium's page target", Duration::from_secs(30), || {
            let list_url = list_url.clone();
            async move {
                let mut resp = awc::Client::new().get(&list_url).send().await.ok()?;
                let targets: Value = resp.json().await.ok()?;
                targets
                    .as_array()?
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            }
        })
        .await;
        let (_, page) =
            awc::Client::new().ws(page_url).max_frame_size(256 << 20).connect().await.expect("connect to the page");
        let mut browser = Browser { child, _profile: profile, page, next_id: 0, problems: Vec::new() };
        browser.call("Runtime.enable", json!({})).await;
        browser.call("Page.enable", json!({})).await;
        browser
    }

    /// Sends a DevTools command and waits for its answer (events in between are kept as
    /// problems when they are console errors or exceptions).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params }).to_string();
        self.page.send(awc::ws::Message::Text(command.into())).await.expect("send to chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = actix_rt::time::timeout(left, self.page.next())
                .await
                .unwrap_or_else(|_| panic!("chromium did not answer {method} within 60 s"));
            let text = match frame {
                Some(Ok(awc::ws::Frame::Text(t))) => t,
                Some(Ok(_)) => continue,
                other => panic!("the DevTools connection ended: {other:?}"),
            };
            let message: Value = serde_json::from_slice(&text).expect("DevTools JSON");
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            self.note_event(&message);
        }
    }

    fn note_event(&mut self, message: &Value) {
        match message["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &message["params"]["exceptionDetails"];
                let text = details["exception"]["description"].as_str().or(details["text"].as_str()).unwrap_or("?");
                self.problems.push(format!("uncaught: {text}"));
            }
            Some("Runtime.consoleAPICalled") if message["params"]["type"] == "error" => {
                let args: Vec<String> = message["params"]["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["value"].as_str().map(str::to_owned).unwrap_or_else(|| a["description"].to_string()))
                    .collect();
                self.problems.push(format!("console.error: {}", args.join(" ")));
            }
            _ => {}
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value as JSON;
    /// a thrown exception fails the test.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true }),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("the page threw evaluating {expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is truthy; its value. Fails after `timeout`, showing the
    /// value of `explain` (an expression that says what the page shows) and the page's problems.
    pub async fn wait_for(&mut self, what: &str, expression: &str, explain: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value != json!(0) && value != json!("");
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let shown = self.eval(explain).await;
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the page shows: {shown}; problems: {:?}",
                    self.problems
                );
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Goes to `url` and waits for the load event.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(
            "the page to load",
            "document.readyState === 'complete'",
            "document.readyState",
            Duration::from_secs(30),
        )
        .await;
    }

    /// Sets the viewport (CSS pixels); `mobile` makes it a phone's.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Presses a key (`Tab`, `Enter`) as a keyboard would.
    pub async fn press(&mut self, key: &str, code: u32) {
        let text = if key == "Enter" { "\r" } else { "" };
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({ "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code });
            if kind == "keyDown" && !text.is_empty() {
                params["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", params).await;
        }
    }

    /// A PNG of the whole page, written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Where screenshots go: `<target dir>/explorer-screenshots/` (kept as CI artifacts).
pub fn screenshot_dir() -> PathBuf {
    // The test binary runs from <target>/debug/deps/.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join("explorer-screenshots")
}
