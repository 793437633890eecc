//! A real browser for end-to-end tests (issue 12): the local stack's router served on a real
//! loopback port ([`Site`]) and headless Chromium driven over WebDriver ([`Browser`]), with the
//! few steps a journey takes: open a page, fill a field by its label, click a button by its
//! text, wait for a text, and a screenshot of each step.
//!
//! Every [`Browser::step`] also checks the page as a person on that screen meets it: every field
//! has a label, and nothing scrolls sideways. What fails is collected as a defect of that step;
//! [`Browser::finish`] fails the test with all of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devtools::chromium::ChromeDriver;
use fantoccini::Client;
use fantoccini::elements::{Element, ElementRef};
use serde_json::{Value, json};

use crate::World;

/// How long [`Browser::wait_for_text`] waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// The local stack's router (every function, the sandbox gateway, the outbox) on
/// 127.0.0.1:PORT, with links in emails pointing at it. Stops when dropped.
pub struct Site {
    /// "http://127.0.0.1:PORT"
    pub base: String,
    /// The same router, to call the API directly (`crate::call`) as an admin's system would.
    pub router: axum::Router,
    server: tokio::task::JoinHandle<()>,
}

impl Site {
    /// Serves `world`'s local router on a free loopback port, with its clients' addresses (as
    /// the local stack does) and its public URL set to that port.
    pub async fn start(world: &World) -> Site {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a free loopback port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut services = (*world.services).clone();
        services.public_url = base.clone();
        let router = world.local_router_over(Arc::new(services));
        let app = router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the site serves");
        });
        Site {
            base,
            router,
            server,
        }
    }

    /// The full URL of `path` ("/pay/demo/INV-1").
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One headless Chromium (with its own ChromeDriver) at one window size, on a [`Site`].
/// Each helper panics with what the page showed when it cannot do its step.
pub struct Browser {
    client: Client,
    /// Kept alive while the browser is: dropping it quits Chromium.
    _driver: ChromeDriver,
    base: String,
    pub width: u32,
    pub height: u32,
    shots: PathBuf,
    steps: u32,
    defects: Vec<String>,
}

impl Browser {
    /// Starts Chromium (installing it first if the machine has none) with a `width` x `height`
    /// viewport on `site`. Screenshots go to `<tmp>/screenshots/<journey>-<width>/`, emptied
    /// first; `tmp` is the test's `env!("CARGO_TARGET_TMPDIR")`.
    pub async fn open(site: &Site, journey: &str, width: u32, height: u32, tmp: &Path) -> Browser {
        let driver = tokio::task::spawn_blocking(ChromeDriver::start)
            .await
            .expect("the ChromeDriver start did not panic")
            .unwrap_or_else(|e| panic!("the browser tests need Chromium: {e}"));
        let client = driver
            .new_session(width, height)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let shots = tmp.join("screenshots").join(format!("{journey}-{width}"));
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", shots.display()));
        Browser {
            client,
            _driver: driver,
            base: site.base.clone(),
            width,
            height,
            shots,
            steps: 0,
            defects: Vec::new(),
        }
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `path` of the site ("/portal/orgs/demo/methods").
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The path of the page shown ("/invite").
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await;
        url.unwrap_or_else(|e| panic!("no current URL: {e}"))
            .path()
            .to_owned()
    }

    /// The URL of the page shown.
    pub async fn url(&self) -> String {
        let url = self.client.current_url().await;
        url.unwrap_or_else(|e| panic!("no current URL: {e}"))
            .to_string()
    }

    /// The page's text as a person reads it (`document.body.innerText`).
    pub async fn text(&self) -> String {
        match self
            .js(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
        {
            Value::String(text) => text,
            other => panic!("innerText was {other}"),
        }
    }

    /// How many elements the CSS selector finds.
    pub async fn js_count(&self, selector: &str) -> u64 {
        let found = self
            .js(
                "return document.querySelectorAll(arguments[0]).length",
                vec![json!(selector)],
            )
            .await;
        found.as_u64().expect("a count")
    }

    /// An attribute (or `value`, as typed) of the first element the CSS selector finds.
    pub async fn attribute(&self, selector: &str, name: &str) -> String {
        let found = self
            .js(
                "const el = document.querySelector(arguments[0]);
                 return el ? (arguments[1] === 'value' ? el.value : el[arguments[1]] || el.getAttribute(arguments[1])) : null;",
                vec![json!(selector), json!(name)],
            )
            .await;
        match found {
            Value::String(s) => s,
            other => panic!("{selector} {name}: {other}"),
        }
    }

    /// Waits (at most [`WAIT`]) until the page shows `text`; answers the page's text.
    pub async fn wait_for_text(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            // Between two pages there may be no document to read: try again.
            let shown = self
                .client
                .execute(
                    "return document.body ? document.body.innerText : ''",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if shown.contains(text) {
                return shown;
            }
            if Instant::now() >= deadline {
                let at = self.url().await;
                panic!(
                    "{at} did not show {text:?} within {} s; it shows:\n{shown}",
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `value` into the field labelled `field` (its `<label>`'s text, or the start of it;
    /// else a CSS selector), after clearing what it held: key by key, as a person types.
    pub async fn fill(&self, field: &str, value: &str) {
        let input = self.field(field).await;
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear {field:?}: {e}"));
        input
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {field:?}: {e}"));
    }

    /// Ticks the checkbox, or picks the radio button, labelled `field` (unless it is already).
    pub async fn check(&self, field: &str) {
        let input = self.field(field).await;
        let selected = input
            .is_selected()
            .await
            .unwrap_or_else(|e| panic!("{field:?}: {e}"));
        if !selected {
            input
                .click()
                .await
                .unwrap_or_else(|e| panic!("cannot click {field:?}: {e}"));
        }
    }

    /// Clicks the button or link whose text (or accessible label) is `target`, or starts with
    /// it; else the element the CSS selector `target` finds.
    pub async fn click(&self, target: &str) {
        let element = self.element(FIND_CLICKABLE, target, "button or link").await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {target:?}: {e}"));
    }

    /// Saves a screenshot of the page as `NN-<name>.png` and checks the page: every field
    /// labelled, no sideways scrolling. A failed check is kept as a defect (see
    /// [`Browser::finish`]). Answers the screenshot's path.
    pub async fn step(&mut self, name: &str) -> PathBuf {
        let shot = self.screenshot(name).await;
        let path = self.path().await;
        for field in self.unlabelled_fields().await {
            self.defects
                .push(format!("{name} ({path}): a field has no label: {field}"));
        }
        if let Some(overflow) = self.horizontal_overflow().await {
            self.defects.push(format!(
                "{name} ({path}): scrolls sideways at {} px: {overflow}",
                self.width
            ));
        }
        shot
    }

    /// Saves a screenshot of the viewport as `NN-<name>.png` (NN counts the steps).
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        self.steps += 1;
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("no screenshot of {name}: {e}"));
        let file = self.shots.join(format!("{:02}-{name}.png", self.steps));
        std::fs::write(&file, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        file
    }

    /// The fields (input, select, textarea; not hidden ones or buttons) of the page that have no
    /// label: no `<label>` with text, no aria-label, no aria-labelledby with text. Described as
    /// `input#id[name=...]`.
    pub async fn unlabelled_fields(&self) -> Vec<String> {
        let found = self.js(UNLABELLED, vec![]).await;
        serde_json::from_value(found).expect("a list of strings")
    }

    /// If the page is wider than the window (`document.documentElement.scrollWidth` above
    /// `window.innerWidth`, or above the width asked for: an emulated phone zooms out a page
    /// that overflows, and lays out one without a viewport meta tag 980 px wide): the sizes and
    /// the elements that stick out.
    pub async fn horizontal_overflow(&self) -> Option<String> {
        match self.js(OVERFLOW, vec![json!(self.width)]).await {
            Value::Null => None,
            Value::String(what) => Some(what),
            other => panic!("the overflow check answered {other}"),
        }
    }

    /// The defects the steps found so far.
    pub fn defects(&self) -> &[String] {
        &self.defects
    }

    /// Where this browser's screenshots are.
    pub fn screenshots(&self) -> &Path {
        &self.shots
    }

    /// Closes Chromium; fails if a step found a defect (listing every one).
    pub async fn finish(self) {
        let (width, shots) = (self.width, self.shots.clone());
        let defects = self.close().await;
        assert!(
            defects.is_empty(),
            "{} page defect(s) at {width} px (screenshots in {}):\n{}",
            defects.len(),
            shots.display(),
            defects.join("\n")
        );
    }

    /// Closes Chromium: the defects the steps found.
    pub async fn close(self) -> Vec<String> {
        let Browser {
            client,
            _driver,
            defects,
            ..
        } = self;
        client
            .close()
            .await
            .unwrap_or_else(|e| panic!("cannot close the browser: {e}"));
        drop(_driver);
        defects
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The visible control labelled `wanted`, or the element the selector `wanted` finds.
    async fn field(&self, wanted: &str) -> Element {
        self.element(FIND_LABELLED, wanted, "field").await
    }

    /// Runs a finder script (see [`FIND_LABELLED`]) for `wanted`: the element it answers, or a
    /// panic with what it says instead.
    async fn element(&self, finder: &str, wanted: &str, what: &str) -> Element {
        let found = self.js(finder, vec![json!(wanted)]).await;
        if let Some(id) = found.get(ELEMENT_KEY).and_then(Value::as_str) {
            return Element::from_element_id(self.client.clone(), ElementRef::from(id.to_owned()));
        }
        let at = self.url().await;
        panic!(
            "no {what} {wanted:?} on {at}: {}",
            found.as_str().unwrap_or_default()
        );
    }
}

/// How WebDriver marks an element in a script's answer.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Shared by the finders: normalised text, visibility, a CSS fallback.
macro_rules! finder_prelude {
    () => {
        r##"
const wanted = arguments[0];
const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const pick = (candidates, text) => {
  const exact = candidates.filter((c) => text(c) === wanted);
  if (exact.length === 1) return exact[0];
  const starts = candidates.filter((c) => text(c).startsWith(wanted));
  if (exact.length === 0 && starts.length === 1) return starts[0];
  const hits = exact.length ? exact : starts;
  if (hits.length > 1) return "it is ambiguous: " + hits.map((h) => JSON.stringify(text(h))).join(", ");
  return null;
};
const bySelector = () => {
  try { const el = document.querySelector(wanted); return el && visible(el) ? el : null; }
  catch (e) { return null; }
};
"##
    };
}

/// Finds the visible control whose `<label>` reads `wanted` (or starts so).
const FIND_LABELLED: &str = concat!(
    finder_prelude!(),
    r##"
const labels = [...document.querySelectorAll("label")].filter((l) => l.control && visible(l.control));
const hit = pick(labels, (l) => norm(l.textContent));
if (hit && typeof hit !== "string") return hit.control;
return bySelector() || hit || "the visible labels are " + labels.map((l) => JSON.stringify(norm(l.textContent))).join(", ");
"##
);

/// Finds the visible button or link whose text (or aria-label, or value) reads `wanted`.
const FIND_CLICKABLE: &str = concat!(
    finder_prelude!(),
    r##"
const clickable = [...document.querySelectorAll("button, a[href], input[type=submit], input[type=button], [role=button]")].filter(visible);
const name = (el) => norm(el.getAttribute("aria-label") || el.innerText || el.value);
const hit = pick(clickable, name);
if (hit && typeof hit !== "string") return hit;
return bySelector() || hit || "the visible buttons and links are " + clickable.map((c) => JSON.stringify(name(c))).join(", ");
"##
);

/// Every field without a label, described.
const UNLABELLED: &str = r##"
const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
const skip = new Set(["hidden", "submit", "button", "reset", "image"]);
const byIds = (ids) => (ids || "").split(/\s+/).filter(Boolean)
  .map((id) => document.getElementById(id)).filter(Boolean).map((el) => norm(el.textContent)).join(" ");
return [...document.querySelectorAll("input, select, textarea")]
  .filter((el) => !skip.has((el.getAttribute("type") || "").toLowerCase()))
  .filter((el) => {
    const labels = [...(el.labels || [])].map((l) => norm(l.textContent)).join(" ");
    return !labels && !norm(el.getAttribute("aria-label")) && !byIds(el.getAttribute("aria-labelledby"));
  })
  .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.name ? "[name=" + el.name + "]" : "") + (el.type ? "[type=" + el.type + "]" : ""));
"##;

/// Null if the page fits the window's width; else what sticks out.
const OVERFLOW: &str = r##"
const root = document.documentElement;
// On a phone a page that overflows may be zoomed out to fit (innerWidth grows with it), and one
// without a viewport meta tag is laid out 980 px wide: the window's own width is the limit.
const width = Math.min(window.innerWidth, arguments[0]);
if (root.scrollWidth <= width) return null;
const out = [...document.body.querySelectorAll("*")]
  .filter((el) => el.getBoundingClientRect().right > width + 0.5)
  .filter((el) => ![...el.children].some((c) => c.getBoundingClientRect().right > width + 0.5))
  .slice(0, 5)
  .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") +
    " (right edge " + Math.round(el.getBoundingClientRect().right) + ")");
return "the page is " + root.scrollWidth + " px wide in a " + arguments[0] + " px window (innerWidth " +
  window.innerWidth + "); sticking out: " + out.join(", ");
"##;
