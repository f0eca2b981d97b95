//! Message-id de-duplication: a retry is answered with the original result within the window,
//! and expired entries are removed.

use custodia_core::TenantId;
use proptest::prelude::*;
use serde_json::json;

use crate::tests::fixture;
use crate::{AliasInput, BatchItem, BatchOutcome, Clock, GroupInput, IdentifyInput, TrackInput};

#[test]
fn a_message_id_is_remembered_for_the_window_then_forgotten() {
    let f = fixture();
    let app = f.caller("app");
    let tenant = TenantId::default_tenant();
    let message = json!({"userId": "u1", "event": "Order Completed", "messageId": "m-1"});
    let first = f.track(&app, message.clone());
    let again = f.track(&app, message.clone());
    assert_eq!(again.event_id, first.event_id, "the original answer");

    // Inside a batch too, and twice in one batch.
    let item = || BatchItem::Track(TrackInput::from_json(&message, "").unwrap());
    let outcomes = f.engine.batch(&app, &[item(), item()]).unwrap();
    for outcome in outcomes {
        assert!(matches!(outcome, BatchOutcome::Repeated(_)), "{outcome:?}");
    }
    let grant = f.support(&app);
    let n_events = |f: &crate::tests::Fixture| {
        f.engine
            .events(&grant, first.subject_id, None, 100)
            .unwrap()
            .events
            .len()
    };
    assert_eq!(n_events(&f), 1);
    let far_future = f.clock.now().plus_days(10_000);
    assert_eq!(
        f.engine
            .store
            .idempotency_expired(&tenant, far_future, 100)
            .unwrap()
            .len(),
        1,
        "one entry, under a keyed hash"
    );

    // Past the window, the next write removes the entry; the same id is then a new message.
    f.clock.set(f.clock.now().plus_days(8));
    f.track(
        &app,
        json!({"userId": "u1", "event": "Order Completed", "messageId": "m-2"}),
    );
    let remaining = f
        .engine
        .store
        .idempotency_expired(&tenant, far_future, 100)
        .unwrap();
    assert_eq!(remaining.len(), 1, "only m-2's entry is left");
    let later = f.track(&app, message);
    assert_ne!(later.event_id, first.event_id);
    assert_eq!(n_events(&f), 3);
}

/// One call of the committer property: which of a few user and anonymous ids it carries.
#[derive(Debug, Clone)]
enum Call {
    Identify {
        user: Option<u8>,
        anon: Option<u8>,
        trait_value: u8,
    },
    Track {
        user: Option<u8>,
        anon: Option<u8>,
        event: u8,
    },
    Alias {
        user: u8,
        previous: u8,
    },
    Group {
        user: Option<u8>,
        anon: Option<u8>,
        group: u8,
    },
}

impl Call {
    fn item(&self) -> BatchItem {
        let ids = |user: &Option<u8>, anon: &Option<u8>| {
            let mut body = json!({});
            if let Some(u) = user {
                body["userId"] = json!(format!("u{u}"));
            }
            if let Some(a) = anon {
                body["anonymousId"] = json!(format!("a{a}"));
            }
            body
        };
        match self {
            Call::Identify {
                user,
                anon,
                trait_value,
            } => {
                let mut body = ids(user, anon);
                body["traits"] = json!({"plan": format!("p{trait_value}")});
                BatchItem::Identify(IdentifyInput::from_json(&body, "").unwrap())
            }
            Call::Track { user, anon, event } => {
                let mut body = ids(user, anon);
                body["event"] = json!(format!("Event {event}"));
                BatchItem::Track(TrackInput::from_json(&body, "").unwrap())
            }
            Call::Alias { user, previous } => BatchItem::Alias(
                AliasInput::from_json(
                    &json!({"userId": format!("u{user}"), "previousId": format!("a{previous}")}),
                    "",
                )
                .unwrap(),
            ),
            Call::Group { user, anon, group } => {
                let mut body = ids(user, anon);
                body["groupId"] = json!(format!("g{group}"));
                BatchItem::Group(GroupInput::from_json(&body, "").unwrap())
            }
        }
    }
}

fn call() -> impl Strategy<Value = Call> {
    // At least one id per call: (None, None) becomes an anonymous call.
    let ids =
        (proptest::option::of(0u8..3), proptest::option::of(0u8..4)).prop_map(|(user, anon)| {
            (
                user,
                if user.is_none() {
                    anon.or(Some(0))
                } else {
                    anon
                },
            )
        });
    prop_oneof![
        (ids.clone(), 0u8..3).prop_map(|((user, anon), trait_value)| Call::Identify {
            user,
            anon,
            trait_value
        }),
        (ids.clone(), 0u8..3).prop_map(|((user, anon), event)| Call::Track { user, anon, event }),
        (0u8..3, 0u8..4).prop_map(|(user, previous)| Call::Alias { user, previous }),
        (ids, 0u8..2).prop_map(|((user, anon), group)| Call::Group { user, anon, group }),
    ]
}

/// One call through the engine's single-call entry points.
fn apply_one(engine: &crate::Engine, app: &crate::Caller, item: &BatchItem) {
    // Errors (none are expected here) are part of the result like any answer: both sides of the
    // comparison make the same calls in the same order.
    let _ = match item {
        BatchItem::Identify(input) => engine.identify(app, input).map(drop),
        BatchItem::Track(input) => engine.track(app, input).map(drop),
        BatchItem::Alias(input) => engine.alias(app, input).map(drop),
        BatchItem::Group(input) => engine.group(app, input).map(drop),
    };
}

/// Everything identity resolution decides, without the random subject and event ids: per
/// subject its user id, anonymous ids, traits and event names; and the number of merges.
fn resolved_state(engine: &crate::Engine) -> (Vec<String>, usize) {
    let tenant = TenantId::default_tenant();
    let keys = engine.keys(&tenant).unwrap();
    let mut subjects: Vec<String> = engine
        .store
        .subjects(&tenant, None, 10_000)
        .unwrap()
        .into_iter()
        .map(|record| {
            let (key, data) = engine.open_profile(&keys, &record).unwrap();
            let mut events: Vec<String> = engine
                .store
                .events(&tenant, record.id, None, 10_000)
                .unwrap()
                .iter()
                .map(|e| {
                    let kind = crate::profile::event_kind(e.id);
                    let data: crate::profile::EventData = crate::profile::open_json(
                        &key, &tenant, record.id, &kind, &e.sealed, "event",
                    )
                    .unwrap();
                    data.event
                })
                .collect();
            events.sort();
            let mut anonymous = data.anonymous_ids.clone();
            anonymous.sort();
            format!(
                "user {:?} anonymous {anonymous:?} traits {} events {events:?}",
                data.user_id,
                serde_json::Value::Object(data.traits)
            )
        })
        .collect();
    subjects.sort();
    (subjects, engine.store.merges(&tenant).unwrap().len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Issue 16: calls from several threads, held back until they all queued so that the
    /// committer applies them in shared groups, end in the same subjects, merges, traits and
    /// events as the same calls applied one at a time in the order the committer applied them.
    #[test]
    fn the_committer_resolves_identities_as_calls_one_by_one_in_its_order(
        calls in proptest::collection::vec(call(), 3..40),
        n_threads in 3usize..6,
    ) {
        let grouped = fixture();
        let app = grouped.caller("app");
        let engine = &grouped.engine;
        std::thread::scope(|scope| {
            // The write lock held: the first caller leads (alone) and waits for it, the others
            // queue behind it and form the next group, of two or more.
            let held = engine.write_lock.lock().unwrap();
            let threads: Vec<_> = (0..n_threads)
                .map(|t| {
                    let mine: Vec<BatchItem> =
                        calls.iter().skip(t).step_by(n_threads).map(Call::item).collect();
                    let app = &app;
                    scope.spawn(move || {
                        for item in &mine {
                            apply_one(engine, app, item);
                        }
                    })
                })
                .collect();
            let queued = n_threads.min(calls.len()) - 1;
            let start = std::time::Instant::now();
            while engine.ingest_commits.n_waiting() < queued
                && start.elapsed() < std::time::Duration::from_secs(10)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(held);
            for t in threads {
                t.join().unwrap();
            }
        });
        prop_assert!(
            engine.ingest_commits.largest_batch() > 1,
            "the callers shared a group"
        );
        let order = engine.ingest_trace.lock().unwrap().clone();
        prop_assert_eq!(order.len(), calls.len());

        let one_by_one = fixture();
        let app = one_by_one.caller("app");
        for item in &order {
            apply_one(&one_by_one.engine, &app, item);
        }
        prop_assert_eq!(resolved_state(engine), resolved_state(&one_by_one.engine));
    }
}

/// An engine over `store` and `vault` with a fixed clock, and an `app` caller of it.
fn engine_over(
    store: custodia_store::Store,
    vault: custodia_vault::Vault,
    dir: &std::path::Path,
) -> (crate::Engine, crate::Caller) {
    let clock = std::sync::Arc::new(crate::FixedClock::new(
        custodia_core::Timestamp::parse_rfc3339("2026-12-07T12:00:00Z").unwrap(),
    ));
    let engine = crate::Engine::from_parts(
        store,
        vault,
        custodia_policy::Policies::builtin(),
        clock,
        dir.to_path_buf(),
        crate::LedgerConfig::default(),
    );
    let key = engine
        .create_api_key(&TenantId::default_tenant(), &"app".parse().unwrap())
        .unwrap();
    let app = engine.authenticate(key.secret.expose()).unwrap();
    (engine, app)
}

/// A store whose flush fails while `failing` is set: a disk that filled up under the committer.
struct FlakyFlush {
    inner: custodia_store::MemBackend,
    failing: std::sync::atomic::AtomicBool,
    flushes: std::sync::atomic::AtomicUsize,
}

impl custodia_store::KvBackend for FlakyFlush {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, custodia_store::StoreError> {
        self.inner.get(key)
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<custodia_store::KvEntry>, custodia_store::StoreError> {
        self.inner.scan_prefix(prefix, after, limit)
    }

    fn apply(&self, ops: Vec<custodia_store::KvOp>) -> Result<(), custodia_store::StoreError> {
        self.inner.apply(ops)
    }

    fn flush(&self) -> Result<(), custodia_store::StoreError> {
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            // Slow enough that callers arriving meanwhile share the failing flush.
            std::thread::sleep(std::time::Duration::from_millis(2));
            return Err(custodia_store::StoreError::StorageFull(
                "no space left on device".to_owned(),
            ));
        }
        self.inner.flush()
    }

    fn size_on_disk(&self) -> u64 {
        0
    }
}

/// Issue 16: while the store cannot flush, every caller of a shared group is answered with a
/// server-side error (507 over HTTP) and none is acknowledged; once flushes work again, so do
/// calls.
#[test]
fn a_failing_flush_answers_every_caller_of_the_group_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let backend = std::sync::Arc::new(FlakyFlush {
        inner: custodia_store::MemBackend::new(),
        failing: std::sync::atomic::AtomicBool::new(false),
        flushes: std::sync::atomic::AtomicUsize::new(0),
    });
    let root = custodia_vault::RootKey::generate().unwrap();
    let vault =
        custodia_vault::Vault::open(&dir.path().join("keys"), custodia_vault::Keyring::new(root))
            .unwrap();
    let (engine, app) = engine_over(
        custodia_store::Store::with_backend(backend.clone()),
        vault,
        dir.path(),
    );

    backend
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let flushes_before = backend.flushes.load(std::sync::atomic::Ordering::SeqCst);
    let n_calls = 48;
    let results: Vec<Result<(), crate::EngineError>> = std::thread::scope(|scope| {
        let held = engine.write_lock.lock().unwrap();
        let threads: Vec<_> = (0..n_calls)
            .map(|i| {
                let (engine, app) = (&engine, &app);
                scope.spawn(move || {
                    let body = json!({"userId": format!("u{i}"), "event": "Order Completed"});
                    engine
                        .track(app, &TrackInput::from_json(&body, "").unwrap())
                        .map(drop)
                })
            })
            .collect();
        let start = std::time::Instant::now();
        while engine.ingest_commits.n_waiting() < n_calls - 1
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(held);
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(engine.ingest_commits.largest_batch() > 1, "a shared group");
    for result in &results {
        let error = result.as_ref().expect_err("no call is acknowledged");
        assert_eq!(
            error.code(),
            custodia_core::ErrorCode::InsufficientStorage,
            "{error}"
        );
    }
    let flushes = backend.flushes.load(std::sync::atomic::Ordering::SeqCst) - flushes_before;
    assert!(flushes >= 1 && flushes <= n_calls, "{flushes} flushes");

    // Space is back: the next calls are acknowledged (and so durable).
    backend
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let body = json!({"userId": "u1", "event": "Order Completed"});
    engine
        .track(&app, &TrackInput::from_json(&body, "").unwrap())
        .unwrap();
}

/// The ingest committer's fresh keys (docs/security.md): a key reserved for a subject that was
/// never made is not counted as a live key, the next new person takes one, and those left are
/// destroyed when the engine closes, so the key store then holds only subjects' keys.
#[test]
fn unused_fresh_keys_are_not_counted_and_are_destroyed_when_the_engine_closes() {
    let dir = tempfile::tempdir().unwrap();
    let root = custodia_vault::RootKey::generate().unwrap().to_base64();
    let open_vault = || {
        let key = custodia_vault::RootKey::from_base64(&root).unwrap();
        custodia_vault::Vault::open(&dir.path().join("keys"), custodia_vault::Keyring::new(key))
            .unwrap()
    };
    let (engine, app) = engine_over(custodia_store::Store::in_memory(), open_vault(), dir.path());
    let tenant = TenantId::default_tenant();
    let identify = |user: &str| {
        let input = IdentifyInput::from_json(&json!({"userId": user}), "").unwrap();
        engine.identify(&app, &input).unwrap()
    };
    identify("kept");
    // Three people not known yet: three keys reserved, none taken.
    let items: Vec<BatchItem> = ["n1", "n2", "n3"]
        .iter()
        .map(|u| BatchItem::Identify(IdentifyInput::from_json(&json!({"userId": u}), "").unwrap()))
        .collect();
    {
        let _lock = engine.write_lock.lock().unwrap();
        engine.reserve_data_keys(&tenant, items.iter()).unwrap();
    }
    let keys = engine.keys(&tenant).unwrap();
    assert_eq!(
        keys.n_data_keys(),
        4,
        "three reserved beside the subject's own"
    );
    assert_eq!(
        engine.n_data_keys(&tenant).unwrap(),
        1,
        "only the subject's is live"
    );

    // The next new person takes one of them: no key is made for it.
    let n1 = identify("n1");
    assert!(n1.created);
    assert_eq!(keys.n_data_keys(), 4);
    assert_eq!(engine.n_data_keys(&tenant).unwrap(), 2);

    // Closing the engine destroys the two left; the subjects' keys stay.
    drop(keys);
    drop(engine);
    let vault = open_vault();
    let keys = vault.tenant(&tenant).unwrap();
    assert_eq!(keys.n_data_keys(), 2);
    assert!(keys.data_key(n1.subject_id).is_ok());
}
