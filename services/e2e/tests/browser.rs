//! The shop in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (`chromedriver`, through fantoccini) against `shop up`, clicking and typing as a
//! person would. Three journeys on one shop, each in a fresh browser session:
//!
//! - the customer: register, browse, add three products, change one's quantity, remove
//!   one, check out, see the order, reload and still be logged in;
//! - the back-office: log in with the back-office role, create a product (a constraint
//!   violation shown at its field, first by the form, then by the server), see it in
//!   the storefront, edit it, delete it;
//! - the customer again on a phone-width viewport (390 px), where nothing may scroll
//!   sideways.
//!
//! Each step that matters leaves a screenshot in `target/e2e-artifacts/browser/<journey>/`
//! (beside `target/e2e-logs/`). Chromium and chromedriver come from Debian (`.ci/run`
//! installs them); nothing downloads a browser. Missing, the test fails and says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::embedded::start;
use e2e::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser session on the shop, and where its screenshots go.
struct Page {
    c: Client,
    base: String,
    shots: PathBuf,
    step: usize,
}

impl Page {
    /// A new session of the browser behind `driver`; `phone` emulates a 390 × 844 screen.
    async fn open(driver: &str, base: &str, journey: &str, phone: bool) -> Page {
        let mut options = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions", "--window-size=1280,900", "--lang=en-US"],
        });
        if phone {
            options["mobileEmulation"] = json!({ "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true } });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(driver)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through {driver}: {e}"));
        let shots = repo_root()
            .join("target/e2e-artifacts/browser")
            .join(journey);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("artifacts folder");
        Page {
            c,
            base: base.trim_end_matches('/').to_string(),
            shots,
            step: 0,
        }
    }

    async fn goto(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Saves a screenshot of the viewport as `NN-name.png`.
    async fn shot(&mut self, name: &str) {
        self.step += 1;
        let png = self.c.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, png).expect("writing the screenshot");
    }

    /// The value of a JavaScript expression.
    async fn eval(&self, expr: &str) -> Value {
        self.c
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }

    /// Waits until `expr` is truthy in the page and the page is not busy (20 s at most).
    async fn until(&mut self, what: &str, expr: &str) {
        let started = Instant::now();
        loop {
            let v = self
                .c
                .execute(
                    &format!("return !document.querySelector('[aria-busy=true]') && !!({expr});"),
                    vec![],
                )
                .await;
            if matches!(v, Ok(Value::Bool(true))) {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                self.shot(&format!("timeout-{}", what.replace(' ', "-")))
                    .await;
                let body = self.eval("document.body.innerText").await;
                panic!("waited 20 s for {what} ({expr}); the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `css`; found again if the page replaced it meanwhile.
    async fn click(&self, css: &str) {
        for attempt in 0.. {
            let el = self
                .c
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match el.click().await {
                Ok(()) => return,
                Err(e) if attempt < 5 && e.to_string().contains("stale") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
    }

    /// Replaces the text of the input `css` with `text`, by typing.
    async fn fill(&self, css: &str, text: &str) {
        let el = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    async fn text(&self, css: &str) -> String {
        let css = serde_json::to_string(css).expect("json");
        match self
            .eval(&format!("document.querySelector({css})?.innerText ?? ''"))
            .await
        {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

/// chromedriver on a free loopback port; its URL.
fn chromedriver() -> (Process, String) {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver (`.ci/run` does: apt-get install chromium chromium-driver)"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut driver = spawn(
        "chromedriver",
        Path::new(CHROMEDRIVER),
        &[&format!("--port={port}"), "--allowed-ips=127.0.0.1"],
        &[],
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            driver.is_running() && started.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen:\n{}",
            driver.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (driver, format!("http://127.0.0.1:{port}"))
}

/// Register, shop, check out and see the order; `phone` on a narrow screen.
async fn customer_journey(mut p: Page, name: &'static str, phone: bool) {
    let p = &mut p;
    p.goto("/").await;
    p.until(
        "the products",
        "document.querySelectorAll('#products li').length >= 4",
    )
    .await;
    if phone {
        p.until(
            "nothing scrolls sideways",
            "document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;
    }
    p.shot("products").await;

    // Adding while logged out asks to log in; then register.
    p.click("#products li:nth-child(1) button.add").await;
    p.until("the login form", "document.querySelector('#login-form')")
        .await;
    p.click("#login-form a[href='#/register']").await;
    p.until(
        "the registration form",
        "document.querySelector('#register-form')",
    )
    .await;
    let email = format!("{}-{}@example.com", name, uuid::Uuid::new_v4().simple());
    p.fill("#f-name", name).await;
    p.fill("#f-email", &email).await;
    // A password the form refuses (too short) is shown at its field.
    p.fill("#f-password", "short").await;
    p.click("#register").await;
    p.until(
        "the password's error",
        "document.querySelector('[data-error-for=password]').innerText.length > 0",
    )
    .await;
    p.shot("register-error").await;
    p.fill("#f-password", ops::PASSWORD).await;
    p.click("#register").await;
    p.until("being logged in", "document.querySelector('#logout')")
        .await;
    p.shot("registered").await;

    // Three products, from the list and from a product's page.
    p.goto("/#/").await;
    p.until(
        "the products",
        "document.querySelectorAll('#products li').length >= 4",
    )
    .await;
    let names: Vec<String> = serde_json::from_value(
        p.eval("[...document.querySelectorAll('#products li')].slice(0, 3).map(li => li.dataset.product)")
            .await,
    )
    .expect("product names");
    for i in 1..=2 {
        p.click(&format!("#products li:nth-child({i}) button.add"))
            .await;
        let expected =
            serde_json::to_string(&format!("{} is in your cart.", names[i - 1])).expect("json");
        p.until(
            "the product in the cart",
            &format!("document.querySelector('#cart-status').innerText === {expected}"),
        )
        .await;
    }
    p.click("#products li:nth-child(3) h2 a").await;
    p.until("the product's page", "document.querySelector('#add')")
        .await;
    p.fill("#f-quantity", "2").await;
    p.click("#add").await;
    p.until(
        "the product in the cart",
        "document.querySelector('#cart-status a[href=\"#/cart\"]')",
    )
    .await;
    p.shot("product-added").await;

    p.click("#nav-cart").await;
    p.until(
        "three lines",
        "document.querySelectorAll('#cart-lines > li').length === 3",
    )
    .await;
    p.shot("cart").await;

    // Change the first line to 3, remove the second.
    let first = serde_json::to_string(&names[0]).expect("json");
    let second = serde_json::to_string(&names[1]).expect("json");
    let line = |n: &str| format!("#cart-lines > li[data-item={n}]");
    p.fill(&format!("{} input[name=quantity]", line(&first)), "3")
        .await;
    p.click(&format!("{} button[type=submit]", line(&first)))
        .await;
    p.until(
        "the new quantity",
        &format!(
            "document.querySelector('{} input[name=quantity]')?.value === '3' && document.querySelector('#nav-cart').innerText === 'Cart (6)'",
            line(&first).replace('\'', "\\'")
        ),
    )
    .await;
    p.click(&format!("{} button[aria-label^=Remove]", line(&second)))
        .await;
    p.until(
        "two lines",
        "document.querySelectorAll('#cart-lines > li').length === 2",
    )
    .await;
    p.shot("cart-changed").await;

    p.click("#checkout").await;
    p.until("the order", "document.querySelector('#order-total')")
        .await;
    let rows: Vec<Vec<String>> = serde_json::from_value(
        p.eval("[...document.querySelectorAll('table.details tbody tr')].map(r => [...r.cells].map(c => c.innerText))")
            .await,
    )
    .expect("order rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let quantities: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str()))
        .collect();
    assert!(quantities.contains(&(names[0].as_str(), "3")), "{rows:?}");
    assert!(quantities.contains(&(names[2].as_str(), "2")), "{rows:?}");
    assert!(p.text("#flash").await.contains("order is placed"));
    p.shot("order-placed").await;

    p.click("#nav-orders").await;
    p.until(
        "the order history",
        "document.querySelectorAll('#orders li').length === 1",
    )
    .await;
    p.shot("orders").await;

    // A reload keeps the session (the refresh token), and the cart is empty again.
    p.c.refresh().await.expect("reload");
    p.until(
        "the orders after a reload",
        "document.querySelectorAll('#orders li').length === 1 && document.querySelector('#logout')",
    )
    .await;
    p.click("#nav-cart").await;
    p.until("an empty cart", "document.querySelector('#empty-cart')")
        .await;
    p.click("#nav-profile").await;
    p.until(
        "the profile",
        &format!(
            "document.querySelector('#profile-email')?.innerText === {}",
            serde_json::to_string(&email).expect("json")
        ),
    )
    .await;
    p.shot("profile").await;
    if phone {
        assert_eq!(
            p.eval("document.documentElement.scrollWidth <= window.innerWidth")
                .await,
            json!(true),
            "the profile scrolls sideways on a phone"
        );
    }
    p.click("#logout").await;
    p.until("being logged out", "document.querySelector('#nav-login')")
        .await;
}

async fn back_office_journey(mut p: Page, gql: Graphql) {
    let p = &mut p;
    // The back-office user (granted by AUTH_BACK_OFFICE_EMAILS, which the test's shop has).
    ops::back_office(&gql).await;
    p.goto("/back-office/").await;
    p.until("the login form", "document.querySelector('#login')")
        .await;
    p.fill("#login-email", ops::BACK_OFFICE_EMAIL).await;
    p.fill("#login-password", ops::PASSWORD).await;
    p.click("#login button[type=submit]").await;
    p.until(
        "the product list",
        "document.querySelectorAll('#list tbody tr').length >= 4",
    )
    .await;
    p.shot("list").await;

    let name = format!(
        "Browser tea {}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    p.click("#create").await;
    p.until("the form", "document.querySelector('#entity-form')")
        .await;
    p.fill("#f-name", &name).await;
    p.fill("#f-description", "Made in a test, by clicking.")
        .await;
    p.fill("#f-price", "-5").await;
    // The spec's `min: 0`, as an attribute of the form: shown at the field, nothing sent.
    p.click("#save").await;
    p.until(
        "the form's violation at the price",
        "document.querySelector('#f-price-error').innerText.length > 0 && document.querySelector('#f-price').getAttribute('aria-invalid') === 'true'",
    )
    .await;
    p.shot("violation-in-the-form").await;
    // Past the form (an outdated page, say), the server refuses it the same way: its
    // field violation is shown at the field.
    p.eval("document.querySelector('#f-price').removeAttribute('min') || true")
        .await;
    p.click("#save").await;
    p.until(
        "the server's violation at the price",
        "/at least 0/.test(document.querySelector('#f-price-error').innerText)",
    )
    .await;
    p.shot("violation-from-the-server").await;

    p.fill("#f-price", "1500").await;
    p.click("#save").await;
    p.until(
        "the saved product",
        "document.querySelector('#flash')?.innerText === 'Product saved.'",
    )
    .await;
    p.shot("created").await;

    // The storefront sells it.
    p.goto("/").await;
    p.until(
        "the new product in the storefront",
        &format!(
            "[...document.querySelectorAll('#products li')].some(li => li.dataset.product === {})",
            serde_json::to_string(&name).expect("json")
        ),
    )
    .await;
    p.shot("in-the-storefront").await;

    // Edit it: rename it.
    p.goto("/back-office/#/Product").await;
    let link = name.clone();
    p.until(
        "the product in the list",
        &format!(
            "[...document.querySelectorAll('#list a')].some(a => a.innerText === {})",
            serde_json::to_string(&link).expect("json")
        ),
    )
    .await;
    p.c.find(Locator::LinkText(&link))
        .await
        .expect("the product's link")
        .click()
        .await
        .expect("click");
    p.until("the edit form", "document.querySelector('#delete')")
        .await;
    let renamed = format!("{name} (green)");
    p.fill("#f-name", &renamed).await;
    p.click("#save").await;
    p.until(
        "the renamed product",
        "document.querySelector('#flash')?.innerText === 'Product saved.'",
    )
    .await;
    assert_eq!(
        p.eval("document.querySelector('#f-name').value").await,
        json!(renamed)
    );
    p.shot("edited").await;

    p.click("#delete").await;
    p.click("#confirm-delete").await;
    p.until(
        "the list without it",
        &format!(
            "document.querySelector('#flash')?.innerText === 'Product deleted.' && ![...document.querySelectorAll('#list a')].some(a => a.innerText === {})",
            serde_json::to_string(&renamed).expect("json")
        ),
    )
    .await;
    p.shot("deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_in_a_real_browser() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("data folder");
    let (_shop, banner) = start(data.path(), "browser-shop");
    let base = banner
        .graphql
        .strip_suffix("/graphql")
        .expect("the GraphQL URL ends in /graphql")
        .to_string();
    let gql = Graphql::new(banner.graphql.clone());
    let (_driver, driver) = chromedriver();

    session(&driver, &base, "customer", false, |p| {
        customer_journey(p, "Ada", false)
    })
    .await;
    session(&driver, &base, "back-office", false, |p| {
        back_office_journey(p, gql)
    })
    .await;
    session(&driver, &base, "phone", true, |p| {
        customer_journey(p, "Grace", true)
    })
    .await;
}

/// Runs `journey` in a new browser session, which ends (and its Chromium with it)
/// whether the journey passes or fails.
async fn session<F, Fut>(driver: &str, base: &str, name: &str, phone: bool, journey: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let page = Page::open(driver, base, name, phone).await;
    let client = page.c.clone();
    let result = tokio::spawn(journey(page)).await;
    let _ = client.close().await;
    match result {
        Ok(()) => eprintln!("{name} journey: {:?}", started.elapsed()),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{name} journey: {e}"),
    }
}
