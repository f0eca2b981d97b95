//! Group commit of the engine's log writes (issue 16): a caller that arrives while a batch is
//! being written waits, and the next caller to lead writes everything waiting as one batch — one
//! ledger append with its syncs, one store batch and flush for the consent view, one checkpoint
//! check — then tells each caller its own result. There is no timer: a caller alone is written at
//! once, as before; under load, batches grow by themselves up to a weight of [`MAX_BATCH`] (log
//! entries, or ingest items), so that a caller's wait stays bounded.
//!
//! The leader's `write` may fail before it wrote anything (bringing the consent view up to date,
//! say): the leader gets that error, and the other requests of the batch go back to the front of
//! the queue to be written by the next leader, so an error is never lost and never duplicated.
//! Failures of the write itself are per-request results (`Out`), which every caller receives.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The most weight one batch holds (each request weighs at least 1); a request heavier than
/// this alone is written in a batch of its own.
pub(crate) const MAX_BATCH: usize = 512;

/// A queue of requests of type `Req`, each answered with an `Out`.
pub(crate) struct GroupCommit<Req, Out> {
    queue: Mutex<Queue<Req, Out>>,
    changed: Condvar,
}

struct Queue<Req, Out> {
    /// Whether a leader is writing a batch now.
    writing: bool,
    next_ticket: u64,
    /// Requests waiting for a leader, in arrival order, with their weights.
    pending: Vec<(u64, usize, Req)>,
    /// Results of written requests, until their callers take them.
    done: HashMap<u64, Out>,
    /// The most requests one batch held so far (for tests and metrics).
    largest: usize,
}

impl<Req, Out> Default for GroupCommit<Req, Out> {
    fn default() -> Self {
        GroupCommit {
            queue: Mutex::new(Queue {
                writing: false,
                next_ticket: 0,
                pending: Vec::new(),
                done: HashMap::new(),
                largest: 0,
            }),
            changed: Condvar::new(),
        }
    }
}

impl<Req, Out> GroupCommit<Req, Out> {
    fn lock(&self) -> MutexGuard<'_, Queue<Req, Out>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most requests one batch held so far.
    #[cfg(test)]
    pub(crate) fn largest_batch(&self) -> usize {
        self.lock().largest
    }

    /// Requests waiting for a leader now (for tests that make callers queue).
    #[cfg(test)]
    pub(crate) fn n_waiting(&self) -> usize {
        self.lock().pending.len()
    }

    /// Queues `request` and returns its result once a batch holding it was written: by this
    /// caller, when it leads, or by another. `write` gets a batch of requests in order and
    /// answers one `Out` per request, in the same order; an `Err` means it wrote nothing.
    /// `weight` is what the request counts towards [`MAX_BATCH`].
    pub(crate) fn submit<E>(
        &self,
        request: Req,
        weight: usize,
        mut write: impl FnMut(&[Req]) -> Result<Vec<Out>, E>,
    ) -> Result<Out, E> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push((ticket, weight.max(1), request));
        loop {
            if let Some(out) = queue.done.remove(&ticket) {
                return Ok(out);
            }
            if queue.writing {
                queue = self
                    .changed
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: the oldest requests, always with this caller's own (so that a leader whose
            // batch fails takes the error home, and every failed batch answers someone).
            queue.writing = true;
            let own = queue
                .pending
                .iter()
                .find(|(t, _, _)| *t == ticket)
                .map_or(1, |(_, w, _)| *w);
            let mut room = MAX_BATCH.saturating_sub(own);
            let mut batch: Vec<(u64, usize, Req)> = Vec::new();
            let mut rest = Vec::new();
            for (t, w, r) in std::mem::take(&mut queue.pending) {
                if t == ticket {
                    batch.push((t, w, r));
                } else if rest.is_empty() && w <= room {
                    // In arrival order: once one request is left for the next batch, every
                    // later one is too.
                    room -= w;
                    batch.push((t, w, r));
                } else {
                    rest.push((t, w, r));
                }
            }
            queue.pending = rest;
            queue.largest = queue.largest.max(batch.len());
            drop(queue);
            let mut weights: HashMap<u64, usize> = HashMap::with_capacity(batch.len());
            let (tickets, requests): (Vec<u64>, Vec<Req>) = batch
                .into_iter()
                .map(|(t, w, r)| {
                    weights.insert(t, w);
                    (t, r)
                })
                .unzip();
            let written = write(&requests);
            queue = self.lock();
            queue.writing = false;
            match written {
                Ok(outs) => {
                    debug_assert_eq!(outs.len(), tickets.len());
                    for (t, out) in tickets.into_iter().zip(outs) {
                        queue.done.insert(t, out);
                    }
                    self.changed.notify_all();
                }
                Err(e) => {
                    // Nothing was written: the others go back to the front, in order.
                    let mut back: Vec<(u64, usize, Req)> = tickets
                        .into_iter()
                        .zip(requests)
                        .filter(|(t, _)| *t != ticket)
                        .map(|(t, r)| (t, weights.remove(&t).unwrap_or(1), r))
                        .collect();
                    back.append(&mut queue.pending);
                    queue.pending = back;
                    self.changed.notify_all();
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn one_caller_is_written_at_once_in_a_batch_of_its_own() {
        let group: GroupCommit<u32, u32> = GroupCommit::default();
        let out = group.submit(7, 1, |batch| {
            assert_eq!(batch, &[7]);
            Ok::<_, ()>(batch.iter().map(|r| r * 2).collect())
        });
        assert_eq!(out, Ok(14));
    }

    #[test]
    fn concurrent_callers_share_batches_and_each_gets_its_own_answer() {
        let group: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..32u64)
            .map(|i| {
                let (group, batches, log) = (group.clone(), batches.clone(), log.clone());
                std::thread::spawn(move || {
                    (0..50u64)
                        .map(|j| {
                            let request = i * 1000 + j;
                            let out = group
                                .submit(request, 1, |batch| {
                                    batches.fetch_add(1, Ordering::SeqCst);
                                    std::thread::sleep(std::time::Duration::from_micros(200));
                                    let mut log = log.lock().unwrap();
                                    let first = log.len() as u64;
                                    log.extend_from_slice(batch);
                                    Ok::<_, ()>((first..first + batch.len() as u64).collect())
                                })
                                .unwrap();
                            (request, out)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let answers: Vec<(u64, u64)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 32 * 50, "every request written once");
        for (request, position) in answers {
            assert_eq!(
                log[position as usize], request,
                "each caller got its own position"
            );
        }
        assert!(
            batches.load(Ordering::SeqCst) < 32 * 50,
            "concurrent callers shared batches"
        );
    }

    #[test]
    fn a_failed_batch_answers_its_leader_and_requeues_the_rest() {
        let group: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let failures = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16u64)
            .map(|i| {
                let (group, failures) = (group.clone(), failures.clone());
                std::thread::spawn(move || {
                    group.submit(i, 1, |batch| {
                        // Every third batch fails before writing anything.
                        std::thread::sleep(std::time::Duration::from_micros(300));
                        if failures.fetch_add(1, Ordering::SeqCst) % 3 == 0 {
                            return Err(());
                        }
                        Ok(batch.to_vec())
                    })
                })
            })
            .collect();
        let results: Vec<Result<u64, ()>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (i, result) in results.iter().enumerate() {
            if let Ok(out) = result {
                assert_eq!(*out, i as u64, "a requeued request keeps its own answer");
            }
        }
        assert!(
            results.iter().any(Result::is_err),
            "a failure reached a caller"
        );
        assert!(results.iter().any(Result::is_ok));
    }
}
