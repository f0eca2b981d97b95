//! The pseudonymized analytics projection and the analytics queries.
//!
//! On every `track` of an analytically relevant event (and when a subject is created) the engine
//! writes one [`Fact`] — pseudonym, time, kind, amount and currency or score — under
//! `'A' ‖ tenant ‖ pseudonym ‖ event id`, in the same batch as the event. Facts hold no names,
//! contact data, order ids, product names or free text. They move with merges, go with the events
//! the retention sweep removes, and go entirely with an erasure.
//!
//! A query reads the projection, groups it by pseudonym and asks the access decision, for the
//! `analytics` purpose, about each subject: one whose consent (or restriction, objection) does not
//! allow analytics is left out and counted in `excluded_for_consent`. So a withdrawal takes effect
//! on the next query. The numbers come from `custodia-analytics`, which also suppresses small
//! cells.

use custodia_analytics::{
    Currency, Dashboard, DashboardAccumulator, DashboardRequest, Fact, FactKind, Kpis, Params,
    RateTable, Segments, SegmentsAccumulator, amount_minor_from_decimal, amount_minor_from_f64,
};
use custodia_core::{EventId, Operation, Pseudonym, PurposeId, SubjectId, TenantId, Timestamp};
use custodia_store::{ConsentState, WriteBatch};
use serde_json::{Map, Value};

use crate::decision::{self, ConsentStatus, SubjectFlags};

mod copy;

use copy::AnalyticsConsent;
pub(crate) use copy::AnalyticsCopies;

/// Owns the engine's analytics copies and turns them off when the engine goes, so that the
/// store (which holds the copies as its write observer) can close.
pub(crate) struct CopiesOwner(pub(crate) std::sync::Arc<AnalyticsCopies>);

impl CopiesOwner {
    pub(crate) fn new() -> CopiesOwner {
        let purpose = ANALYTICS_PURPOSE
            .parse()
            .unwrap_or_else(|_| unreachable!("\"analytics\" is a valid purpose id"));
        CopiesOwner(std::sync::Arc::new(AnalyticsCopies::new(purpose)))
    }
}

impl Drop for CopiesOwner {
    fn drop(&mut self) {
        self.0.disable();
    }
}
use crate::{Caller, Engine, EngineError};

/// The purpose analytics runs under.
pub(crate) const ANALYTICS_PURPOSE: &str = "analytics";

/// The facts an analytics query may use, subject by subject in pseudonym order, collected (for
/// tests that compare the copy with the store; queries take them one subject at a time).
#[cfg(test)]
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AllowedFacts {
    facts: Vec<Fact>,
    /// Each subject and where its facts start in `facts`.
    subjects: Vec<(Pseudonym, usize)>,
}

#[cfg(test)]
impl AllowedFacts {
    /// Adds the next subject with its facts.
    fn push(&mut self, pseudonym: Pseudonym, facts: &[Fact]) {
        self.subjects.push((pseudonym, self.facts.len()));
        self.facts.extend_from_slice(facts);
    }

    /// Each subject with its facts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Pseudonym, &[Fact])> {
        self.subjects
            .iter()
            .enumerate()
            .map(|(idx, (pseudonym, start))| {
                let end = self
                    .subjects
                    .get(idx + 1)
                    .map_or(self.facts.len(), |(_, next)| *next);
                (*pseudonym, &self.facts[*start..end])
            })
    }
}

/// Facts read per page.
const PAGE: usize = 4_096;

/// A copy this large is summed in shares on several threads (a dashboard call); a smaller one
/// on the calling thread alone, where starting threads would cost more than they save.
const PARALLEL_FROM_SUBJECTS: usize = 50_000;

/// The most threads one analytics query uses.
const MAX_QUERY_THREADS: usize = 8;

/// How to sum subjects into an accumulator of type `A` in shares: a new accumulator, one
/// subject's facts added, and two accumulators of disjoint shares merged.
struct Fold<'a, A> {
    init: &'a (dyn Fn() -> A + Sync),
    add: &'a (dyn Fn(&mut A, &[Fact]) + Sync),
    merge: &'a dyn Fn(&mut A, A),
}

/// Settings of the analytics queries.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// The currency of an order or refund that names none (no silent guessing beyond this one,
    /// configured value; `None` leaves such events out of the money figures).
    pub default_currency: Option<Currency>,
    /// Smallest number of subjects a published figure may rest on.
    pub k_anonymity: usize,
    /// Exchange rates to a base currency, for the combined money figures.
    pub rates: Option<RateTable>,
    /// Expected customer lifespan in years, for the lifetime value.
    pub expected_lifespan_years: f64,
}

impl Default for AnalyticsConfig {
    fn default() -> AnalyticsConfig {
        AnalyticsConfig {
            default_currency: Some(Currency::EUR),
            k_anonymity: 5,
            rates: None,
            expected_lifespan_years: 3.0,
        }
    }
}

/// The key a subject's `Identified` fact is stored under: an id in the creation millisecond
/// with a fixed random part, so it sorts with the subject's events and is found again.
pub(crate) fn identified_fact_id(created_at: Timestamp) -> EventId {
    EventId::from_parts(created_at.unix_millis(), [0; 10])
}

/// A number or a numeric string.
fn amount(value: &Value, currency: Currency) -> Option<i64> {
    match value {
        Value::Number(n) => amount_minor_from_f64(n.as_f64()?, currency).ok(),
        Value::String(s) => amount_minor_from_decimal(s.trim(), currency).ok(),
        _ => None,
    }
}

fn small_int(value: Option<&Value>) -> Option<u8> {
    let n = value?.as_f64()?;
    (n.fract() == 0.0 && (0.0..=255.0).contains(&n)).then_some(n as u8)
}

/// A refused dashboard parameter, named as the query names it.
fn dashboard_error(error: custodia_analytics::AnalyticsError) -> EngineError {
    match error {
        custodia_analytics::AnalyticsError::InvalidParams { what: "series" } => {
            EngineError::invalid(
                "series",
                format!(
                    "a series has at most {} points (a daily series spans at most 3 years)",
                    custodia_analytics::Interval::MAX_POINTS
                ),
            )
        }
        custodia_analytics::AnalyticsError::InvalidParams { what: "compare" } => {
            EngineError::invalid(
                "compare",
                "the previous period would start before the earliest time",
            )
        }
        other => EngineError::invalid("from", other.to_string()),
    }
}

impl Engine {
    /// Replaces the analytics settings.
    pub fn configure_analytics(&self, config: AnalyticsConfig) {
        *self.analytics.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    fn analytics_config(&self) -> AnalyticsConfig {
        self.analytics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The fact of an event, if it is one analytics uses.
    pub(crate) fn fact_kind(
        &self,
        event: &str,
        properties: &Map<String, Value>,
    ) -> Option<FactKind> {
        let money = || {
            let currency = match properties.get("currency").and_then(Value::as_str) {
                Some(code) => code.trim().to_ascii_uppercase().parse::<Currency>().ok()?,
                None => self.analytics_config().default_currency?,
            };
            let total = properties
                .get("total")
                .or_else(|| properties.get("revenue"))?;
            Some((amount(total, currency)?, currency))
        };
        let kind = match event {
            "Order Completed" => {
                let (amount_minor, currency) = money()?;
                FactKind::Order {
                    amount_minor,
                    currency,
                }
            }
            "Order Refunded" => {
                let (amount_minor, currency) = money()?;
                FactKind::Refund {
                    amount_minor,
                    currency,
                }
            }
            "NPS Answered" => FactKind::Nps {
                score: small_int(properties.get("score"))?,
            },
            "Product Reviewed" => FactKind::Review {
                rating: small_int(properties.get("rating"))?,
            },
            "Product Viewed" => FactKind::ProductViewed,
            "Product Added" => FactKind::ProductAdded,
            "Checkout Started" => FactKind::CheckoutStarted,
            _ => return None,
        };
        kind.check().ok().map(|()| kind)
    }

    /// Adds a fact to `batch` (nothing if the kind is out of its domain).
    pub(crate) fn put_fact(
        &self,
        batch: &mut WriteBatch,
        tenant: &TenantId,
        pseudonym: Pseudonym,
        event: EventId,
        time: Timestamp,
        kind: FactKind,
    ) {
        if let Ok(fact) = Fact::new(pseudonym, time, kind) {
            batch.put_fact(tenant, &pseudonym, event, fact.encode_stored());
        }
    }

    /// Whether analytics may use the subject: the access decision for the caller's role and the
    /// `analytics` purpose, with the subject's consent and flags read from the store.
    fn analytics_allowed(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
        subject: &Pseudonym,
    ) -> Result<bool, EngineError> {
        let tenant = &caller.tenant;
        let consent = if decision::needs_consent(purpose) {
            self.store
                .consent(tenant, subject, &purpose.id)?
                .map(|c| AnalyticsConsent {
                    state: c.state,
                    since: c.since,
                })
        } else {
            None
        };
        let flags = copy::Flags::from(&self.store.subject_flags(tenant, subject)?);
        Ok(self.analytics_decision(caller, purpose, consent, flags, self.clock.now()))
    }

    /// The access decision for the caller's role and the `analytics` purpose, given the
    /// subject's latest decision on it and its flags.
    fn analytics_decision(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
        consent: Option<AnalyticsConsent>,
        flags: copy::Flags,
        now: Timestamp,
    ) -> bool {
        let consent = if decision::needs_consent(purpose) {
            match consent {
                None => ConsentStatus::NotSet,
                Some(c) if c.state == ConsentState::Withdrawn => ConsentStatus::Withdrawn,
                Some(c) if self.is_expired(&purpose.id, c.since, now) => ConsentStatus::Expired,
                Some(_) => ConsentStatus::Granted,
            }
        } else {
            ConsentStatus::NotSet
        };
        let flags = SubjectFlags {
            restricted: flags.restricted,
            objected: flags.objected,
        };
        decision::decide(&caller.role, Operation::Analytics, purpose, consent, flags).is_ok()
    }

    /// Turns the in-memory columnar copies on and starts building every tenant's in the
    /// background; until a tenant's is ready, its queries read the store. `custodia serve` calls
    /// this once.
    pub fn start_analytics_copies(&self) -> Result<(), EngineError> {
        self.analytics_copies.0.enable(&self.store);
        for tenant in self.tenants()? {
            self.analytics_copies.0.start(&tenant);
        }
        Ok(())
    }

    /// Waits at most `timeout` until every analytics copy that was started is built; whether
    /// they are (for the benchmark and tests).
    pub fn wait_for_analytics_copies(&self, timeout: std::time::Duration) -> bool {
        self.analytics_copies.0.wait_until_built(timeout)
    }

    /// The building block of the analytics queries, for the benchmark: one plain pass over the
    /// tenant's in-memory fact columns summing the orders in `[from, to)`; facts read and the
    /// sum, or `None` while the copy is not built.
    pub fn analytics_copy_plain_pass(
        &self,
        tenant: &TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Option<(usize, i64)> {
        self.analytics_copies.0.plain_pass(tenant, from, to)
    }

    /// Facts and bytes of memory held by the in-memory analytics copies that are ready.
    pub fn analytics_copy_footprint(&self) -> (usize, usize) {
        self.analytics_copies.0.footprint()
    }

    /// Hands each subject's facts that analytics may use to `add`, one subject at a time, from
    /// the in-memory copy; returns how many subjects were left out. One buffer of one
    /// subject's facts is all it allocates.
    fn copy_each_allowed(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
        columns: &copy::Columns,
        add: &mut dyn FnMut(Pseudonym, &[Fact]),
    ) -> u64 {
        // One instant for the whole query: whether a consent has expired is judged against it.
        let now = self.clock.now();
        self.copy_share_allowed(caller, purpose, columns, &(..), now, add)
    }

    /// [`Engine::copy_each_allowed`] over the subjects whose pseudonyms are in `share`, with
    /// consent expiry judged at `now`.
    fn copy_share_allowed(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
        columns: &copy::Columns,
        share: &impl std::ops::RangeBounds<Pseudonym>,
        now: Timestamp,
        add: &mut dyn FnMut(Pseudonym, &[Fact]),
    ) -> u64 {
        let mut facts = Vec::new();
        let mut excluded = 0u64;
        columns.for_each_subject_in(share, |view| {
            if !view.has_facts() {
                return;
            }
            if self.analytics_decision(caller, purpose, view.consent, view.flags, now) {
                facts.clear();
                view.push_facts(&mut facts);
                add(view.pseudonym, &facts);
            } else {
                excluded += 1;
            }
        });
        excluded
    }

    /// Sums the allowed subjects of the copy into accumulators made by `init`, one per share
    /// of the subjects, each share on a thread of its own (this one included) when the copy
    /// is large enough to gain from it, then merges them in pseudonym order; and counts the
    /// subjects left out.
    fn copy_fold<A: Send>(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
        columns: &copy::Columns,
        fold: &Fold<'_, A>,
    ) -> (A, u64) {
        let threads = if cfg!(test) {
            // Tests sum in shares whatever their size and the machine's cores.
            3
        } else if columns.n_base_subjects() >= PARALLEL_FROM_SUBJECTS {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_QUERY_THREADS)
        } else {
            1
        };
        let now = self.clock.now();
        let run = |share: &(std::ops::Bound<Pseudonym>, std::ops::Bound<Pseudonym>)| {
            let mut acc = (fold.init)();
            let excluded =
                self.copy_share_allowed(caller, purpose, columns, share, now, &mut |_, facts| {
                    (fold.add)(&mut acc, facts)
                });
            (acc, excluded)
        };
        let shares = columns.shares(threads);
        let mut results = std::thread::scope(|scope| {
            let others: Vec<_> = shares[1..]
                .iter()
                .map(|share| scope.spawn(move || run(share)))
                .collect();
            let mut results = vec![run(&shares[0])];
            for other in others {
                results.push(
                    other
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            results
        })
        .into_iter();
        let (mut acc, mut excluded) = results.next().unwrap_or_else(|| ((fold.init)(), 0));
        for (theirs, their_excluded) in results {
            (fold.merge)(&mut acc, theirs);
            excluded += their_excluded;
        }
        (acc, excluded)
    }

    /// The `analytics` purpose, once the caller may use it for analytics; replays anything
    /// the consent view missed.
    fn analytics_purpose(&self, caller: &Caller) -> Result<&custodia_policy::Purpose, EngineError> {
        caller.require(Operation::Analytics)?;
        let purpose_id: PurposeId = ANALYTICS_PURPOSE
            .parse()
            .map_err(|_| EngineError::UnknownPurpose)?;
        let purpose = self
            .policies
            .purpose(&purpose_id)
            .ok_or(EngineError::UnknownPurpose)?;
        decision::decide_caller(&caller.role, Operation::Analytics, purpose).map_err(|_| {
            EngineError::PurposeNotPermitted {
                role: caller.role.name.to_string(),
                purpose: purpose_id.to_string(),
            }
        })?;
        self.ledger(&caller.tenant)?;
        Ok(purpose)
    }

    /// Hands each subject's facts that analytics may use to `add`, one subject at a time in
    /// pseudonym order, and returns how many subjects were left out: from the in-memory copy
    /// once it is built, else from the store.
    fn each_allowed(
        &self,
        caller: &Caller,
        add: &mut dyn FnMut(Pseudonym, &[Fact]),
    ) -> Result<u64, EngineError> {
        let purpose = self.analytics_purpose(caller)?;
        if let Some(excluded) = self.analytics_copies.0.query(&caller.tenant, |columns| {
            self.copy_each_allowed(caller, purpose, columns, &mut *add)
        }) {
            return Ok(excluded);
        }
        self.store_each_allowed(caller, purpose, add)
    }

    /// Sums every subject that analytics may use with `fold` and counts those left out: from
    /// the in-memory copy once it is built, in shares on several threads, else from the store
    /// on this one.
    fn fold_allowed<A: Send>(
        &self,
        caller: &Caller,
        fold: &Fold<'_, A>,
    ) -> Result<(A, u64), EngineError> {
        let purpose = self.analytics_purpose(caller)?;
        if let Some(folded) = self.analytics_copies.0.query(&caller.tenant, |columns| {
            self.copy_fold(caller, purpose, columns, fold)
        }) {
            return Ok(folded);
        }
        let mut acc = (fold.init)();
        let excluded =
            self.store_each_allowed(caller, purpose, &mut |_, facts| (fold.add)(&mut acc, facts))?;
        Ok((acc, excluded))
    }

    /// Every subject's facts that analytics may use, and how many subjects were left out,
    /// collected.
    #[cfg(test)]
    fn allowed_facts(&self, caller: &Caller) -> Result<(AllowedFacts, u64), EngineError> {
        let mut allowed = AllowedFacts::default();
        let excluded = self.each_allowed(caller, &mut |p, facts| allowed.push(p, facts))?;
        Ok((allowed, excluded))
    }

    /// As [`Engine::allowed_facts`], from the store even when the copy is built.
    #[cfg(test)]
    fn facts_from_store(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
    ) -> Result<(AllowedFacts, u64), EngineError> {
        let mut allowed = AllowedFacts::default();
        let excluded =
            self.store_each_allowed(caller, purpose, &mut |p, facts| allowed.push(p, facts))?;
        Ok((allowed, excluded))
    }

    /// Hands each subject's facts that analytics may use to `add`, one subject at a time, read
    /// from the store with two point reads per subject; returns how many were left out.
    fn store_each_allowed(
        &self,
        caller: &Caller,
        purpose: &custodia_policy::Purpose,
        add: &mut dyn FnMut(Pseudonym, &[Fact]),
    ) -> Result<u64, EngineError> {
        let mut facts: Vec<Fact> = Vec::new();
        let mut excluded = 0u64;
        // The subject being read, and whether analytics may use it.
        let mut current: Option<(Pseudonym, bool)> = None;
        let mut after = None;
        loop {
            let page = self.store.facts(&caller.tenant, after, PAGE)?;
            for (pseudonym, event, bytes) in &page {
                let allowed = match current {
                    Some((p, allowed)) if p == *pseudonym => allowed,
                    _ => {
                        if let Some((p, true)) = current {
                            add(p, &facts);
                        }
                        facts.clear();
                        let allowed = self.analytics_allowed(caller, purpose, pseudonym)?;
                        if !allowed {
                            excluded += 1;
                        }
                        current = Some((*pseudonym, allowed));
                        allowed
                    }
                };
                if !allowed {
                    continue;
                }
                // A fact that does not decode is skipped, not fatal: the figures rest on the rest.
                let Ok(fact) = Fact::decode_stored(*pseudonym, bytes) else {
                    tracing::warn!(event = %event, "analytics fact does not decode; skipped");
                    continue;
                };
                facts.push(fact);
            }
            after = page.last().map(|(p, e, _)| (*p, *e));
            if page.len() < PAGE {
                break;
            }
        }
        if let Some((p, true)) = current {
            add(p, &facts);
        }
        Ok(excluded)
    }

    fn analytics_params(&self, from: Timestamp, to: Timestamp) -> Result<Params, EngineError> {
        let config = self.analytics_config();
        fn invalid(
            field: &'static str,
        ) -> impl Fn(custodia_analytics::AnalyticsError) -> EngineError {
            move |e| EngineError::invalid(field, e.to_string())
        }
        let mut params = Params::new(from, to)
            .map_err(invalid("from"))?
            .with_k_anonymity(config.k_anonymity)
            .map_err(invalid("k_anonymity"))?
            .with_expected_lifespan_years(config.expected_lifespan_years)
            .map_err(invalid("expected_lifespan_years"))?;
        if let Some(rates) = config.rates {
            params = params.with_rates(rates);
        }
        Ok(params)
    }

    /// The KPIs over `[from, to)` (`analytics` operation and purpose).
    pub fn kpis(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Kpis, EngineError> {
        Ok(self
            .dashboard(caller, from, to, DashboardRequest::default())?
            .kpis)
    }

    /// The KPIs over `[from, to)` with what `request` adds: the previous period's and a time
    /// series (`analytics` operation and purpose). The subjects are read and filtered once,
    /// and each subject's facts are summed as they are read.
    pub fn dashboard(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
        request: DashboardRequest,
    ) -> Result<Dashboard, EngineError> {
        let params = self.analytics_params(from, to)?;
        // Refused before the scan.
        DashboardAccumulator::new(&params, request).map_err(dashboard_error)?;
        let fold = Fold {
            init: &|| {
                DashboardAccumulator::new(&params, request)
                    .unwrap_or_else(|_| unreachable!("the same request was accepted above"))
            },
            add: &|dashboard, facts| dashboard.add_subject(facts),
            merge: &|dashboard, theirs| dashboard.merge(theirs),
        };
        let (dashboard, excluded) = self.fold_allowed(caller, &fold)?;
        Ok(dashboard.finish(excluded))
    }

    /// RFM segment and journey-stage counts as of now (`analytics` operation and purpose).
    pub fn segments(&self, caller: &Caller) -> Result<Segments, EngineError> {
        let now = self.clock.now();
        // Segments look at each subject's whole history up to now.
        let params = self.analytics_params(Timestamp::from_unix_micros(0), now)?;
        let mut segments = SegmentsAccumulator::new(&params);
        let excluded = self.each_allowed(caller, &mut |_, facts| segments.add_subject(facts))?;
        Ok(segments.finish(excluded))
    }

    /// Removes every fact of a subject (erasure).
    pub(crate) fn delete_facts(
        &self,
        batch: &mut WriteBatch,
        tenant: &TenantId,
        subject: SubjectId,
    ) -> Result<(), EngineError> {
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        for event in self.store.subject_fact_ids(tenant, &pseudonym)? {
            batch.delete_fact(tenant, &pseudonym, event);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
