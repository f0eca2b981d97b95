//! The in-memory columnar copy of the analytics projection: every subject's facts as a struct of
//! arrays sorted by pseudonym (then event), with the subject's `analytics` consent and flags
//! beside them, so a query reads neither the store nor two records per subject.
//!
//! It is built in the background from the store ([`AnalyticsCopies::start`]) and kept current
//! by the store's write observer: every write that puts or deletes a fact or sets a consent or
//! the flags tells the copy once it applied, in apply order (ingest, merges, retention, erasure
//! and consent changes all write through those records). Writes made while the copy is being
//! built wait in a list and are replayed onto it; replaying is idempotent, since each change
//! sets a record to its value. Until a tenant's copy is ready, queries read the store.
//!
//! Changes go to a small sorted overlay of whole subjects (`delta`) that replaces the subjects'
//! rows of the columns; the overlay is folded into new columns once it holds an eighth of the
//! subjects (at least 4,096), so a write costs a few map operations and a fold is amortized.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use custodia_analytics::{Currency, Fact, FactKind};
use custodia_core::{EventId, Pseudonym, PurposeId, TenantId, Timestamp};
use custodia_store::{
    ConsentState, ProjectionChange, Store, StoreError, SubjectFlagsRecord, WriteObserver,
};

/// Facts read from the store per page while building.
const BUILD_PAGE: usize = 4_096;

/// A subject's latest decision on the `analytics` purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AnalyticsConsent {
    pub(crate) state: ConsentState,
    pub(crate) since: Timestamp,
}

/// What the access decision needs of a subject besides its consent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) restricted: bool,
    pub(crate) objected: bool,
}

impl From<&SubjectFlagsRecord> for Flags {
    fn from(record: &SubjectFlagsRecord) -> Flags {
        Flags {
            restricted: record.restricted,
            objected: record.objected,
        }
    }
}

/// One subject as the overlay holds it: consent, flags and facts sorted by event.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SubjectRow {
    pub(crate) consent: Option<AnalyticsConsent>,
    pub(crate) flags: Flags,
    pub(crate) facts: Vec<(EventId, Fact)>,
}

/// The fact kinds as one byte each in the `kind` column.
const ORDER: u8 = 1;
const REFUND: u8 = 2;
const NPS: u8 = 3;
const REVIEW: u8 = 4;
const PRODUCT_VIEWED: u8 = 5;
const PRODUCT_ADDED: u8 = 6;
const CHECKOUT_STARTED: u8 = 7;
const IDENTIFIED: u8 = 8;

/// The columns: subject arrays (one entry per subject, sorted by pseudonym) and fact arrays
/// (one entry per fact, grouped by subject in the same order, sorted by event within).
#[derive(Debug, Default)]
struct Base {
    pseudonyms: Vec<Pseudonym>,
    /// Subject `i`'s facts are `fact_start[i]..fact_start[i + 1]`; one more entry than subjects.
    fact_start: Vec<u32>,
    consent: Vec<Option<AnalyticsConsent>>,
    flags: Vec<Flags>,
    event: Vec<EventId>,
    time: Vec<i64>,
    kind: Vec<u8>,
    /// The amount in minor units for orders and refunds, the score or rating for NPS and
    /// reviews, 0 otherwise.
    value: Vec<i64>,
    /// The currency of orders and refunds (EUR, unused, for the other kinds).
    currency: Vec<Currency>,
}

impl Base {
    fn n_subjects(&self) -> usize {
        self.pseudonyms.len()
    }

    fn facts_of(&self, subject_idx: usize) -> std::ops::Range<usize> {
        self.fact_start[subject_idx] as usize..self.fact_start[subject_idx + 1] as usize
    }

    fn fact(&self, pseudonym: Pseudonym, fact_idx: usize) -> Fact {
        let value = self.value[fact_idx];
        let small = u8::try_from(value).unwrap_or(u8::MAX);
        let currency = self.currency[fact_idx];
        let kind = match self.kind[fact_idx] {
            ORDER => FactKind::Order {
                amount_minor: value,
                currency,
            },
            REFUND => FactKind::Refund {
                amount_minor: value,
                currency,
            },
            NPS => FactKind::Nps { score: small },
            REVIEW => FactKind::Review { rating: small },
            PRODUCT_VIEWED => FactKind::ProductViewed,
            PRODUCT_ADDED => FactKind::ProductAdded,
            CHECKOUT_STARTED => FactKind::CheckoutStarted,
            _ => FactKind::Identified,
        };
        Fact {
            pseudonym,
            time: Timestamp::from_unix_micros(self.time[fact_idx]),
            kind,
        }
    }

    fn push_subject(&mut self, pseudonym: Pseudonym, row: &SubjectRow) {
        if self.fact_start.is_empty() {
            self.fact_start.push(0);
        }
        self.pseudonyms.push(pseudonym);
        self.consent.push(row.consent);
        self.flags.push(row.flags);
        for (event, fact) in &row.facts {
            self.push_fact(*event, fact);
        }
        self.fact_start
            .push(u32::try_from(self.event.len()).unwrap_or(u32::MAX));
    }

    fn push_fact(&mut self, event: EventId, fact: &Fact) {
        let (kind, value, currency) = match fact.kind {
            FactKind::Order {
                amount_minor,
                currency,
            } => (ORDER, amount_minor, currency),
            FactKind::Refund {
                amount_minor,
                currency,
            } => (REFUND, amount_minor, currency),
            FactKind::Nps { score } => (NPS, i64::from(score), Currency::EUR),
            FactKind::Review { rating } => (REVIEW, i64::from(rating), Currency::EUR),
            FactKind::ProductViewed => (PRODUCT_VIEWED, 0, Currency::EUR),
            FactKind::ProductAdded => (PRODUCT_ADDED, 0, Currency::EUR),
            FactKind::CheckoutStarted => (CHECKOUT_STARTED, 0, Currency::EUR),
            FactKind::Identified => (IDENTIFIED, 0, Currency::EUR),
        };
        self.event.push(event);
        self.time.push(fact.time.unix_micros());
        self.kind.push(kind);
        self.value.push(value);
        self.currency.push(currency);
    }

    fn row(&self, subject_idx: usize) -> SubjectRow {
        let pseudonym = self.pseudonyms[subject_idx];
        SubjectRow {
            consent: self.consent[subject_idx],
            flags: self.flags[subject_idx],
            facts: self
                .facts_of(subject_idx)
                .map(|fact_idx| (self.event[fact_idx], self.fact(pseudonym, fact_idx)))
                .collect(),
        }
    }

    fn position(&self, pseudonym: &Pseudonym) -> Option<usize> {
        self.pseudonyms.binary_search(pseudonym).ok()
    }

    fn heap_bytes(&self) -> usize {
        fn bytes<T>(column: &Vec<T>) -> usize {
            column.capacity() * std::mem::size_of::<T>()
        }
        bytes(&self.pseudonyms)
            + bytes(&self.fact_start)
            + bytes(&self.consent)
            + bytes(&self.flags)
            + bytes(&self.event)
            + bytes(&self.time)
            + bytes(&self.kind)
            + bytes(&self.value)
            + bytes(&self.currency)
    }

    fn shrink_to_fit(&mut self) {
        self.pseudonyms.shrink_to_fit();
        self.fact_start.shrink_to_fit();
        self.consent.shrink_to_fit();
        self.flags.shrink_to_fit();
        self.event.shrink_to_fit();
        self.time.shrink_to_fit();
        self.kind.shrink_to_fit();
        self.value.shrink_to_fit();
        self.currency.shrink_to_fit();
    }
}

/// One subject as a query sees it.
pub(crate) struct SubjectView<'a> {
    pub(crate) pseudonym: Pseudonym,
    pub(crate) consent: Option<AnalyticsConsent>,
    pub(crate) flags: Flags,
    source: ViewSource<'a>,
}

enum ViewSource<'a> {
    Base(&'a Base, usize),
    Delta(&'a SubjectRow),
}

impl SubjectView<'_> {
    /// Whether the subject has no fact (queries skip it, as the store has nothing of it).
    pub(crate) fn has_facts(&self) -> bool {
        match self.source {
            ViewSource::Base(base, subject_idx) => !base.facts_of(subject_idx).is_empty(),
            ViewSource::Delta(row) => !row.facts.is_empty(),
        }
    }

    /// Appends the subject's facts, in event order, to `out`.
    pub(crate) fn push_facts(&self, out: &mut Vec<Fact>) {
        match self.source {
            ViewSource::Base(base, subject_idx) => out.extend(
                base.facts_of(subject_idx)
                    .map(|fact_idx| base.fact(self.pseudonym, fact_idx)),
            ),
            ViewSource::Delta(row) => out.extend(row.facts.iter().map(|(_, fact)| *fact)),
        }
    }
}

/// A tenant's copy: the columns and the overlay of subjects changed since they were built.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    base: Base,
    /// Whole subjects that replace their base rows (a subject with no fact left is kept here
    /// until the next fold, so that later changes to it are not lost).
    delta: BTreeMap<Pseudonym, SubjectRow>,
}

impl Columns {
    /// Columns of subjects given in pseudonym order.
    pub(crate) fn from_sorted(
        subjects: impl IntoIterator<Item = (Pseudonym, SubjectRow)>,
    ) -> Columns {
        let mut base = Base::default();
        base.fact_start.push(0);
        for (pseudonym, row) in subjects {
            debug_assert!(base.pseudonyms.last().is_none_or(|last| *last < pseudonym));
            base.push_subject(pseudonym, &row);
        }
        base.shrink_to_fit();
        Columns {
            base,
            delta: BTreeMap::new(),
        }
    }

    /// Calls `visit` for every subject in pseudonym order.
    pub(crate) fn for_each_subject(&self, visit: impl FnMut(&SubjectView<'_>)) {
        self.for_each_subject_in(&(..), visit);
    }

    /// How many subjects the columns hold (those changed since they were built not counted).
    pub(crate) fn n_base_subjects(&self) -> usize {
        self.base.n_subjects()
    }

    /// Cuts the subjects into at most `n` shares of about as many base rows each, as ranges of
    /// pseudonyms that together cover every pseudonym once, in order.
    pub(crate) fn shares(&self, n: usize) -> Vec<(Bound<Pseudonym>, Bound<Pseudonym>)> {
        let n_subjects = self.base.n_subjects();
        let n = n.clamp(1, n_subjects.max(1));
        // Strictly increasing: the base's pseudonyms are, and n is at most their number.
        let cuts: Vec<Pseudonym> = (1..n)
            .map(|share| self.base.pseudonyms[share * n_subjects / n])
            .collect();
        (0..n)
            .map(|share| {
                let start = match share {
                    0 => Bound::Unbounded,
                    _ => Bound::Included(cuts[share - 1]),
                };
                let end = cuts
                    .get(share)
                    .map_or(Bound::Unbounded, |cut| Bound::Excluded(*cut));
                (start, end)
            })
            .collect()
    }

    /// Calls `visit` for every subject whose pseudonym is in `range`, in pseudonym order.
    pub(crate) fn for_each_subject_in(
        &self,
        range: &impl RangeBounds<Pseudonym>,
        mut visit: impl FnMut(&SubjectView<'_>),
    ) {
        fn of_delta<'a>(pseudonym: &Pseudonym, row: &'a SubjectRow) -> SubjectView<'a> {
            SubjectView {
                pseudonym: *pseudonym,
                consent: row.consent,
                flags: row.flags,
                source: ViewSource::Delta(row),
            }
        }
        let base = &self.base;
        let first = match range.start_bound() {
            Bound::Included(start) => base.pseudonyms.partition_point(|p| p < start),
            Bound::Excluded(start) => base.pseudonyms.partition_point(|p| p <= start),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(end) => base.pseudonyms.partition_point(|p| p <= end),
            Bound::Excluded(end) => base.pseudonyms.partition_point(|p| p < end),
            Bound::Unbounded => base.n_subjects(),
        };
        let mut delta = self
            .delta
            .range((range.start_bound(), range.end_bound()))
            .peekable();
        for subject_idx in first..end.max(first) {
            let pseudonym = base.pseudonyms[subject_idx];
            while let Some((changed, row)) = delta.next_if(|(changed, _)| **changed < pseudonym) {
                visit(&of_delta(changed, row));
            }
            if let Some((changed, row)) = delta.next_if(|(changed, _)| **changed == pseudonym) {
                visit(&of_delta(changed, row));
                continue;
            }
            visit(&SubjectView {
                pseudonym,
                consent: base.consent[subject_idx],
                flags: base.flags[subject_idx],
                source: ViewSource::Base(base, subject_idx),
            });
        }
        for (changed, row) in delta {
            visit(&of_delta(changed, row));
        }
    }

    /// The subject's row to change, moved into the overlay; `None` if the copy does not know
    /// the subject.
    fn known_row(&mut self, pseudonym: Pseudonym) -> Option<&mut SubjectRow> {
        if !self.delta.contains_key(&pseudonym) {
            let subject_idx = self.base.position(&pseudonym)?;
            let row = self.base.row(subject_idx);
            self.delta.insert(pseudonym, row);
        }
        self.delta.get_mut(&pseudonym)
    }

    /// Applies one change of the tenant. `load` gives the consent and flags of a subject the
    /// copy does not know yet, as the store holds them now (the write has applied).
    pub(crate) fn apply(
        &mut self,
        change: &ProjectionChange,
        purpose: &PurposeId,
        load: &dyn Fn(&Pseudonym) -> Result<SubjectRow, StoreError>,
    ) -> Result<(), StoreError> {
        match change {
            ProjectionChange::PutFact {
                subject,
                event,
                fact,
                ..
            } => {
                // A fact that does not decode is left out, as the store path skips it.
                let Ok(fact) = Fact::decode_stored(*subject, fact) else {
                    return Ok(());
                };
                if self.known_row(*subject).is_none() {
                    self.delta.insert(*subject, load(subject)?);
                }
                if let Some(row) = self.delta.get_mut(subject) {
                    match row.facts.binary_search_by_key(event, |(e, _)| *e) {
                        Ok(fact_idx) => row.facts[fact_idx].1 = fact,
                        Err(fact_idx) => row.facts.insert(fact_idx, (*event, fact)),
                    }
                }
            }
            ProjectionChange::DeleteFact { subject, event, .. } => {
                if let Some(row) = self.known_row(*subject)
                    && let Ok(fact_idx) = row.facts.binary_search_by_key(event, |(e, _)| *e)
                {
                    row.facts.remove(fact_idx);
                }
            }
            ProjectionChange::Consent {
                subject,
                purpose: changed,
                state,
                since,
                ..
            } => {
                // A subject unknown to the copy has no fact; its consent is read with its
                // first one.
                if changed == purpose
                    && let Some(row) = self.known_row(*subject)
                {
                    row.consent = Some(AnalyticsConsent {
                        state: *state,
                        since: *since,
                    });
                }
            }
            ProjectionChange::Flags { subject, flags, .. } => {
                if let Some(row) = self.known_row(*subject) {
                    row.flags = Flags::from(flags);
                }
            }
        }
        Ok(())
    }

    /// Folds the overlay into new columns once it holds an eighth of the subjects (at least
    /// 4,096), dropping subjects with no fact left.
    fn fold_if_large(&mut self) {
        if self.delta.len() < (self.base.n_subjects() / 8).max(4_096) {
            return;
        }
        let mut rows = Vec::new();
        self.for_each_subject(|view| {
            if view.has_facts() {
                let row = match view.source {
                    ViewSource::Base(base, subject_idx) => base.row(subject_idx),
                    ViewSource::Delta(row) => row.clone(),
                };
                rows.push((view.pseudonym, row));
            }
        });
        *self = Columns::from_sorted(rows);
    }

    /// Facts held (the overlay's included).
    pub(crate) fn n_facts(&self) -> usize {
        let replaced: usize = self
            .delta
            .keys()
            .filter_map(|p| self.base.position(p))
            .map(|subject_idx| self.base.facts_of(subject_idx).len())
            .sum();
        let added: usize = self.delta.values().map(|row| row.facts.len()).sum();
        self.base.event.len() - replaced + added
    }

    /// The building block of the queries, for the benchmark: one plain pass over the fact
    /// columns (kind, time, amount) summing the orders in `[from, to)`; facts read and the sum.
    pub(crate) fn plain_pass(&self, from: Timestamp, to: Timestamp) -> (usize, i64) {
        let (from, to) = (from.unix_micros(), to.unix_micros());
        let base = &self.base;
        let mut sum = 0i64;
        for ((kind, time), value) in base.kind.iter().zip(&base.time).zip(&base.value) {
            if *kind == ORDER && from <= *time && *time < to {
                sum = sum.wrapping_add(*value);
            }
        }
        (base.event.len(), sum)
    }

    /// Bytes of memory held, the overlay's included.
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_row = std::mem::size_of::<(Pseudonym, SubjectRow)>() + 32;
        let delta: usize = self
            .delta
            .values()
            .map(|row| per_row + row.facts.capacity() * std::mem::size_of::<(EventId, Fact)>())
            .sum();
        self.base.heap_bytes() + delta
    }
}

/// A tenant's copy while it is built, and once it is ready.
enum TenantCopy {
    /// Changes written since the build began, to replay onto it.
    Building {
        pending: Vec<ProjectionChange>,
    },
    Ready(Box<Columns>),
}

/// The copies of every tenant whose copy was started, and the observer that keeps them current.
pub(crate) struct AnalyticsCopies {
    /// The purpose whose consent the copies keep.
    purpose: PurposeId,
    /// Whether copies are built at all (`custodia serve` turns them on; commands and tests that
    /// open an engine for a moment read the store).
    enabled: AtomicBool,
    tenants: RwLock<HashMap<TenantId, TenantCopy>>,
    /// Changes told while a query held the copies (a write never waits for a query), in the
    /// order they were told; the next write or query applies them first.
    deferred: Mutex<Vec<ProjectionChange>>,
    /// The store, to read a new subject's consent and flags; `None` until started.
    store: RwLock<Option<Store>>,
}

impl AnalyticsCopies {
    pub(crate) fn new(purpose: PurposeId) -> AnalyticsCopies {
        AnalyticsCopies {
            purpose,
            enabled: AtomicBool::new(false),
            tenants: RwLock::default(),
            deferred: Mutex::default(),
            store: RwLock::default(),
        }
    }

    /// Turns the copies on: the store tells them of every write from now on.
    pub(crate) fn enable(self: &Arc<Self>, store: &Store) {
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = Some(store.clone());
        store.observe(Arc::clone(self) as Arc<dyn WriteObserver>);
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Turns the copies off and lets go of the store (so that it can close).
    pub(crate) fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        if let Some(store) = self.store.write().unwrap_or_else(|p| p.into_inner()).take() {
            store.stop_observing();
        }
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Starts building the tenant's copy in the background, unless copies are off or it is
    /// already built or being built.
    pub(crate) fn start(self: &Arc<Self>, tenant: &TenantId) {
        if !self.enabled.load(Ordering::SeqCst) {
            return;
        }
        let Some(store) = self.store.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        {
            let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
            if tenants.contains_key(tenant) {
                return;
            }
            tenants.insert(
                tenant.clone(),
                TenantCopy::Building {
                    pending: Vec::new(),
                },
            );
        }
        let copies = Arc::clone(self);
        let tenant = tenant.clone();
        let spawned = std::thread::Builder::new()
            .name("analytics-copy".to_owned())
            .spawn({
                let tenant = tenant.clone();
                move || copies.build(&store, &tenant)
            });
        if spawned.is_err() {
            self.forget(&tenant);
        }
    }

    fn forget(&self, tenant: &TenantId) {
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }

    /// Reads the tenant's projection, then replays what was written meanwhile.
    fn build(&self, store: &Store, tenant: &TenantId) {
        let started = std::time::Instant::now();
        let columns = match build_columns(store, tenant, &self.purpose) {
            Ok(columns) => columns,
            Err(error) => {
                tracing::warn!(%error, "analytics copy not built; queries read the store");
                self.forget(tenant);
                return;
            }
        };
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        let Some(TenantCopy::Building { pending }) = tenants.remove(tenant) else {
            return;
        };
        let mut columns = columns;
        let load = |subject: &Pseudonym| load_row(store, tenant, &self.purpose, subject);
        for change in &pending {
            if let Err(error) = columns.apply(change, &self.purpose, &load) {
                tracing::warn!(%error, "analytics copy not built; queries read the store");
                return;
            }
        }
        tracing::info!(
            n_facts = columns.n_facts(),
            bytes = columns.heap_bytes(),
            millis = started.elapsed().as_millis() as u64,
            "analytics copy ready"
        );
        tenants.insert(tenant.clone(), TenantCopy::Ready(Box::new(columns)));
    }

    /// Runs `query` over the tenant's copy if it is ready; otherwise starts building it (when
    /// copies are on) and answers `None`, so that the caller reads the store.
    pub(crate) fn query<T>(
        self: &Arc<Self>,
        tenant: &TenantId,
        query: impl FnOnce(&Columns) -> T,
    ) -> Option<T> {
        // Every write acknowledged before this query is in the copy or deferred: apply those.
        self.apply_deferred();
        {
            let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            match tenants.get(tenant) {
                Some(TenantCopy::Ready(columns)) => return Some(query(columns)),
                Some(TenantCopy::Building { .. }) => return None,
                None => {}
            }
        }
        self.start(tenant);
        None
    }

    /// Waits at most `timeout` until no copy is being built; whether none is.
    pub(crate) fn wait_until_built(&self, timeout: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        loop {
            let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            if tenants
                .values()
                .all(|copy| matches!(copy, TenantCopy::Ready(_)))
            {
                return true;
            }
            drop(tenants);
            if started.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Whether the tenant's copy is ready; for tests.
    #[cfg(test)]
    pub(crate) fn is_ready(&self, tenant: &TenantId) -> bool {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        matches!(tenants.get(tenant), Some(TenantCopy::Ready(_)))
    }

    /// [`Columns::plain_pass`] over the tenant's copy, if it is ready.
    pub(crate) fn plain_pass(
        &self,
        tenant: &TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Option<(usize, i64)> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        match tenants.get(tenant) {
            Some(TenantCopy::Ready(columns)) => Some(columns.plain_pass(from, to)),
            _ => None,
        }
    }

    /// Facts held and bytes of memory, over every ready copy.
    pub(crate) fn footprint(&self) -> (usize, usize) {
        self.apply_deferred();
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        tenants
            .values()
            .filter_map(|copy| match copy {
                TenantCopy::Ready(columns) => Some((columns.n_facts(), columns.heap_bytes())),
                TenantCopy::Building { .. } => None,
            })
            .fold((0, 0), |(facts, bytes), (f, b)| (facts + f, bytes + b))
    }
}

impl AnalyticsCopies {
    /// Applies the changes deferred while queries held the copies, if any.
    fn apply_deferred(&self) {
        if self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return;
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        let deferred =
            std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        self.apply_locked(&mut tenants, &deferred);
    }

    /// Applies `changes`, in order, to the copies they concern (queued on one being built).
    fn apply_locked(
        &self,
        tenants: &mut HashMap<TenantId, TenantCopy>,
        changes: &[ProjectionChange],
    ) {
        let store = self.store.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(store) = store else {
            return;
        };
        let mut failed: Option<TenantId> = None;
        for change in changes {
            let tenant = change_tenant(change);
            match tenants.get_mut(tenant) {
                None => {}
                Some(TenantCopy::Building { pending }) => pending.push(change.clone()),
                Some(TenantCopy::Ready(columns)) => {
                    let load =
                        |subject: &Pseudonym| load_row(&store, tenant, &self.purpose, subject);
                    if let Err(error) = columns.apply(change, &self.purpose, &load) {
                        // A copy that missed a change would be wrong: drop it, and let the
                        // next query rebuild it.
                        tracing::warn!(%error, "analytics copy dropped; it will be rebuilt");
                        failed = Some(tenant.clone());
                    }
                }
            }
        }
        if let Some(tenant) = failed {
            tenants.remove(&tenant);
        }
        for copy in tenants.values_mut() {
            if let TenantCopy::Ready(columns) = copy {
                columns.fold_if_large();
            }
        }
    }
}

impl WriteObserver for AnalyticsCopies {
    /// Applies the write's changes, after any deferred ones; while a query holds the copies,
    /// defers them instead of waiting. The store tells one write at a time, so changes are
    /// deferred and applied in the order the writes applied.
    fn applied(&self, changes: &[ProjectionChange]) {
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        let mut tenants = match self.tenants.try_write() {
            Ok(tenants) => tenants,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                deferred.extend_from_slice(changes);
                return;
            }
        };
        let mut all = std::mem::take(&mut *deferred);
        drop(deferred);
        all.extend_from_slice(changes);
        self.apply_locked(&mut tenants, &all);
    }
}

fn change_tenant(change: &ProjectionChange) -> &TenantId {
    match change {
        ProjectionChange::PutFact { tenant, .. }
        | ProjectionChange::DeleteFact { tenant, .. }
        | ProjectionChange::Consent { tenant, .. }
        | ProjectionChange::Flags { tenant, .. } => tenant,
    }
}

/// A subject's consent and flags as the store holds them, with no fact.
fn load_row(
    store: &Store,
    tenant: &TenantId,
    purpose: &PurposeId,
    subject: &Pseudonym,
) -> Result<SubjectRow, StoreError> {
    let consent = store
        .consent(tenant, subject, purpose)?
        .map(|record| AnalyticsConsent {
            state: record.state,
            since: record.since,
        });
    let flags = Flags::from(&store.subject_flags(tenant, subject)?);
    Ok(SubjectRow {
        consent,
        flags,
        facts: Vec::new(),
    })
}

/// The tenant's projection from the store, with each subject's consent and flags.
pub(crate) fn build_columns(
    store: &Store,
    tenant: &TenantId,
    purpose: &PurposeId,
) -> Result<Columns, StoreError> {
    let mut base = Base::default();
    base.fact_start.push(0);
    let mut after = None;
    loop {
        let page = store.facts(tenant, after, BUILD_PAGE)?;
        for (pseudonym, event, bytes) in &page {
            if base.pseudonyms.last() != Some(pseudonym) {
                if !base.pseudonyms.is_empty() {
                    base.fact_start
                        .push(u32::try_from(base.event.len()).unwrap_or(u32::MAX));
                }
                let row = load_row(store, tenant, purpose, pseudonym)?;
                base.pseudonyms.push(*pseudonym);
                base.consent.push(row.consent);
                base.flags.push(row.flags);
            }
            // A fact that does not decode is left out, as the store path skips it.
            if let Ok(fact) = Fact::decode_stored(*pseudonym, bytes) {
                base.push_fact(*event, &fact);
            }
        }
        after = page.last().map(|(p, e, _)| (*p, *e));
        if page.len() < BUILD_PAGE {
            break;
        }
    }
    if !base.pseudonyms.is_empty() {
        base.fact_start
            .push(u32::try_from(base.event.len()).unwrap_or(u32::MAX));
    }
    base.shrink_to_fit();
    Ok(Columns {
        base,
        delta: BTreeMap::new(),
    })
}
