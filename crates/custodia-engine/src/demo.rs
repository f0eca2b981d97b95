//! The demo shop that `serve --demo` loads on first start: a few hundred customers with orders,
//! reviews, NPS answers, browsing, and a few anonymous visitors who later sign in (so merges
//! show). Generated from a fixed seed, so every demo looks the same. The names are invented.

use custodia_core::{Personal, TenantId, Timestamp};
use serde_json::{Map, Value, json};

use crate::clock::DemoClock;
use crate::consent::{ConsentInput, SubjectRef};
use crate::dsr::{DsrInput, Outbox, OutboxMessage};
use crate::ingest::BatchItem;
use crate::input::{IdentifyInput, TrackInput};
use crate::{Engine, EngineError};

const FIRST: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Elif", "Finn", "Greta", "Hugo", "Ida", "Jonas", "Katja",
    "Luca", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sami", "Tara", "Umut", "Vera", "Wim",
    "Xenia", "Yusuf", "Zoe", "Amélie", "Björn", "Chloé", "Dörte",
];
const LAST: &[&str] = &[
    "Albrecht",
    "Berger",
    "Castro",
    "Dimitrov",
    "Engel",
    "Fischer",
    "Gómez",
    "Hansen",
    "Ivanova",
    "Jäger",
    "Kowalski",
    "Lindqvist",
    "Müller",
    "Nowak",
    "Okafor",
    "Petit",
    "Quast",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Urban",
    "Vogel",
    "Weber",
    "Yilmaz",
    "Zimmermann",
];
const CITIES: &[(&str, &str)] = &[
    ("Berlin", "DE"),
    ("Hamburg", "DE"),
    ("München", "DE"),
    ("Wien", "AT"),
    ("Zürich", "CH"),
    ("Amsterdam", "NL"),
    ("Lyon", "FR"),
    ("Kraków", "PL"),
];
const PRODUCTS: &[(&str, &str, f64)] = &[
    ("sku-tea-01", "Sencha Green Tea 100g", 8.90),
    ("sku-tea-02", "Assam Breakfast 250g", 12.50),
    ("sku-mug-01", "Stoneware Mug", 14.00),
    ("sku-pot-01", "Glass Teapot 1l", 29.90),
    ("sku-set-01", "Tasting Set", 39.00),
    ("sku-inf-01", "Steel Infuser", 6.50),
    ("sku-gift-01", "Gift Card", 25.00),
];
const REVIEWS: &[&str] = &[
    "Lovely flavour, will order again.",
    "Arrived quickly and well packed.",
    "A bit too bitter for my taste.",
    "The mug chipped after a week.",
    "Perfect gift, thank you!",
];

/// What the demo loader wrote.
#[derive(Debug, Clone, Copy)]
pub struct DemoSummary {
    /// Customers created.
    pub n_customers: usize,
    /// Events recorded.
    pub n_events: usize,
    /// Consent decisions recorded in the ledger.
    pub n_consents: usize,
}

/// A small deterministic generator (SplitMix64). Not for anything secret: it only picks demo
/// names and amounts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn track(user_id: &str, event: &str, properties: Value, at: Timestamp) -> BatchItem {
    BatchItem::Track(TrackInput {
        user_id: Some(Personal(user_id.to_owned())),
        anonymous_id: None,
        event: event.to_owned(),
        properties: Personal(obj(properties)),
        timestamp: Some(at),
        traits: Personal(Map::new()),
        context: Personal(Map::new()),
        message_id: None,
    })
}

/// The demo shop's calls, in order.
fn demo_items(n_customers: usize, now: Timestamp) -> Vec<BatchItem> {
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    let mut items = Vec::new();
    for n in 0..n_customers {
        let first = *rng.pick(FIRST);
        let last = *rng.pick(LAST);
        let (city, country) = *rng.pick(CITIES);
        let user_id = format!("demo-{n:04}");
        let email = format!(
            "{}.{}{n}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        );
        let phone = format!("+49 151 {:04} {:04}", rng.below(10_000), rng.below(10_000));
        let joined = now.plus_days(-(rng.below(720) as i64) - 30);
        // Every tenth customer first browses anonymously and signs in later: a merge.
        let anonymous_id = (n % 10 == 3).then(|| format!("demo-anon-{n:04}"));
        if let Some(anon) = &anonymous_id {
            items.push(BatchItem::Track(TrackInput {
                user_id: None,
                anonymous_id: Some(Personal(anon.clone())),
                event: "Product Viewed".to_owned(),
                properties: Personal(obj(
                    json!({"product_id": PRODUCTS[0].0, "name": PRODUCTS[0].1}),
                )),
                timestamp: Some(joined.plus_days(-1)),
                traits: Personal(Map::new()),
                context: Personal(Map::new()),
                message_id: None,
            }));
        }
        items.push(BatchItem::Identify(IdentifyInput {
            user_id: Some(Personal(user_id.clone())),
            anonymous_id: anonymous_id.map(Personal),
            traits: Personal(obj(json!({
                "email": email,
                "phone": phone,
                "firstName": first,
                "lastName": last,
                "name": format!("{first} {last}"),
                "address": {"city": city, "country": country},
                "newsletter_topics": if rng.below(2) == 0 { json!(["tea"]) } else { json!(["tea", "gifts"]) },
            }))),
            timestamp: Some(joined),
            message_id: None,
        }));
        let n_orders = rng.below(7);
        let mut day = joined;
        for k in 0..n_orders {
            day = day.plus_days(1 + rng.below(90) as i64);
            if day > now {
                break;
            }
            let (sku, name, price) = *rng.pick(PRODUCTS);
            let quantity = 1 + rng.below(3);
            let total = (price * quantity as f64 * 100.0).round() / 100.0;
            items.push(track(
                &user_id,
                "Product Viewed",
                json!({"product_id": sku, "name": name}),
                day,
            ));
            items.push(track(
                &user_id,
                "Order Completed",
                json!({
                    "order_id": format!("D{n:04}-{k}"),
                    "total": total,
                    "currency": if country == "CH" { "CHF" } else { "EUR" },
                    "products": [{"product_id": sku, "name": name, "price": price, "quantity": quantity}],
                }),
                day,
            ));
            if rng.below(4) == 0 {
                items.push(track(
                    &user_id,
                    "Product Reviewed",
                    json!({"product_id": sku, "rating": 1 + rng.below(5), "review_body": *rng.pick(REVIEWS)}),
                    day.plus_days(7),
                ));
            }
        }
        if rng.below(10) < 6 {
            items.push(track(
                &user_id,
                "NPS Answered",
                json!({"score": rng.below(11)}),
                now.plus_days(-(rng.below(60) as i64)),
            ));
        }
        if rng.below(5) == 0 {
            let (sku, name, _) = *rng.pick(PRODUCTS);
            items.push(track(
                &user_id,
                "Product Added",
                json!({"product_id": sku, "name": name}),
                now.plus_days(-2),
            ));
        }
    }
    items
}

/// The demo's consent decisions: newsletter sign-ups at checkout (some withdrawn later),
/// personalization from the cookie banner, a few with a Global Privacy Control signal.
fn demo_consents(n_customers: usize) -> Vec<ConsentInput> {
    let mut rng = Rng(0x5EED_C0DE_0000_0001);
    let mut decisions = Vec::new();
    let decide = |n: usize, purpose: &str, granted: bool, channel: &str, gpc: bool| ConsentInput {
        subject: SubjectRef::UserId(Personal(format!("demo-{n:04}"))),
        purpose: purpose.to_owned(),
        granted,
        channel: Some(channel.to_owned()),
        app: Some("demo-shop".to_owned()),
        policy_version: None,
        ip: None,
        user_agent: None,
        form_id: Some(format!("{purpose}-v1")),
        gpc: gpc.then_some(true),
        decision_id: None,
    };
    for n in 0..n_customers {
        if rng.below(2) == 0 {
            decisions.push(decide(n, "marketing_email", true, "checkout", false));
            if rng.below(5) == 0 {
                decisions.push(decide(n, "marketing_email", false, "email_footer", false));
            }
        }
        if rng.below(3) == 0 {
            decisions.push(decide(n, "personalization", true, "cookie_banner", false));
        }
        if rng.below(4) == 0 {
            decisions.push(decide(
                n,
                "analytics",
                true,
                "cookie_banner",
                rng.below(4) == 0,
            ));
        }
    }
    decisions
}

/// Loads the demo shop into `tenant` unless it already holds subjects (so restarts do not load it
/// twice). Returns `None` when nothing was loaded.
pub fn load_demo(
    engine: &Engine,
    tenant: &TenantId,
    n_customers: usize,
) -> Result<Option<DemoSummary>, EngineError> {
    if engine.store.count_subjects(tenant)? > 0 {
        return Ok(None);
    }
    let items = demo_items(n_customers, engine.clock.now());
    let n_events = items
        .iter()
        .filter(|i| matches!(i, BatchItem::Track(_)))
        .count();
    engine.batch_as_system(tenant, &items)?;
    let decisions = demo_consents(n_customers);
    for decision in &decisions {
        engine.record_consent_in(tenant, decision)?;
    }
    Ok(Some(DemoSummary {
        n_customers,
        n_events,
        n_consents: decisions.len(),
    }))
}

/// Keeps the one-time codes of the demo's requests in memory instead of sending them.
#[derive(Default)]
struct CodeCatcher(std::sync::Mutex<Vec<(String, String)>>);

impl Outbox for CodeCatcher {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|_| "poisoned".to_owned())?
            .push((message.request_id.clone(), message.code.expose().clone()));
        Ok(())
    }
}

/// The demo's data-subject requests, for the compliance console's queue: `(days ago, request,
/// whether the requester entered the code)`. The people are demo customers (their user ids) but
/// one, whom the shop does not know.
fn demo_requests() -> Vec<(i64, Value, bool)> {
    vec![
        (41, json!({"type": "access", "user_id": "demo-0007"}), true),
        (
            38,
            json!({"type": "rectification", "user_id": "demo-0012",
                   "details": "My address is wrong since I moved: it is 14 rue des Lilas, 69003 Lyon."}),
            true,
        ),
        (20, json!({"type": "erasure", "user_id": "demo-0030"}), true),
        (
            9,
            json!({"type": "rectification", "user_id": "demo-0044",
                   "details": {"note": "My surname has an umlaut, please write it as on my ID card.",
                               "traits": {"lastName": "Müller"}}}),
            true,
        ),
        (
            3,
            json!({"type": "restriction", "user_id": "demo-0051"}),
            true,
        ),
        (
            1,
            json!({"type": "portability", "user_id": "demo-0060"}),
            false,
        ),
        (
            0,
            json!({"type": "access", "email": "someone.else@example.org"}),
            true,
        ),
    ]
}

/// Loads the demo's data-subject requests into `tenant`, each received and verified at its age
/// (the engine's clock is `clock`, stepped back meanwhile and left at zero): completed ones, one
/// waiting for a person past its deadline, one within it, one never verified. Their codes never
/// reach the real outbox. Returns how many.
pub fn load_demo_requests(
    engine: &Engine,
    tenant: &TenantId,
    clock: &DemoClock,
) -> Result<usize, EngineError> {
    let catcher = std::sync::Arc::new(CodeCatcher::default());
    let previous = engine
        .outbox
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    engine.set_outbox(catcher.clone());
    let result = (|| {
        let requests = demo_requests();
        for (days_ago, body, verify) in &requests {
            clock.set_days_ago(*days_ago);
            let id = engine.dsr_submit(tenant, &DsrInput::from_json(body)?)?;
            if *verify {
                let code = catcher
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .find(|(r, _)| *r == id)
                    .map(|(_, c)| c.clone())
                    .ok_or(EngineError::Corrupt("demo outbox"))?;
                engine.dsr_verify(tenant, &id, &code)?;
            }
        }
        Ok(requests.len())
    })();
    clock.set_days_ago(0);
    if let Some(previous) = previous {
        engine.set_outbox(previous);
    }
    result
}
