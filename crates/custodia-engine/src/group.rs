//! Group commit of the engine's writes (issue 16): a caller that arrives while a batch is being
//! written waits, and the next caller to lead writes everything waiting as one batch, then tells
//! each caller its own result. There is no timer: a caller alone is written at once, as before;
//! under load, batches grow by themselves up to a weight of [`MAX_BATCH`] (log entries, or
//! ingest items), so that a caller's wait stays bounded.
//!
//! The leader's `write` may fail before it wrote anything (bringing the consent view up to date,
//! say): the leader gets that error, and the other requests of the batch go back to the front of
//! the queue to be written by the next leader, so an error is never lost and never duplicated.
//! Failures of the write itself are per-request results (`Out`), which every caller receives.
//!
//! Waiting callers sleep until they are woken by name: a finished batch wakes its own callers
//! and the first caller still waiting (who leads next), never everyone, so that 64 waiting
//! callers do not cost 64 wake-ups per batch. A leader that panics wakes its callers, who panic
//! in turn (their requests are lost with it), rather than leaving them asleep.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

/// The most weight one batch holds (each request weighs at least 1); a request heavier than
/// this alone is written in a batch of its own.
pub(crate) const MAX_BATCH: usize = 512;

/// A queue of requests of type `Req`, each answered with an `Out`.
pub(crate) struct GroupCommit<Req, Out> {
    queue: Mutex<Queue<Req, Out>>,
}

/// A request waiting for a leader.
struct Waiting<Req> {
    ticket: u64,
    weight: usize,
    request: Req,
    /// The caller, to wake when there is news for it.
    caller: Thread,
}

struct Queue<Req, Out> {
    /// Whether a leader is writing a batch now.
    writing: bool,
    next_ticket: u64,
    /// Requests waiting for a leader, in arrival order.
    pending: Vec<Waiting<Req>>,
    /// Results of written requests, until their callers take them.
    done: HashMap<u64, Out>,
    /// Requests whose leader panicked while writing them.
    lost: HashSet<u64>,
    /// The most requests one batch held so far (for tests).
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
                lost: HashSet::new(),
                largest: 0,
            }),
        }
    }
}

/// What a leader holds while it writes: its batch's callers, to wake when it is done. Dropped
/// during a panic, it marks the batch lost and wakes them (and the next leader).
struct Leading<'a, Req, Out> {
    group: &'a GroupCommit<Req, Out>,
    /// (ticket, weight, caller) of every request of the batch, the leader's own included.
    batch: Vec<(u64, usize, Thread)>,
    finished: bool,
}

impl<Req, Out> Drop for Leading<'_, Req, Out> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut queue = self.group.lock();
        queue.writing = false;
        for (ticket, _, _) in &self.batch {
            queue.lost.insert(*ticket);
        }
        wake(&self.batch, &queue);
    }
}

/// Wakes the callers of a finished batch and the first caller still waiting, who leads next.
fn wake<Req, Out>(batch: &[(u64, usize, Thread)], queue: &Queue<Req, Out>) {
    let me = std::thread::current().id();
    for (_, _, caller) in batch {
        if caller.id() != me {
            caller.unpark();
        }
    }
    if let Some(next) = queue.pending.first() {
        next.caller.unpark();
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
        queue.pending.push(Waiting {
            ticket,
            weight: weight.max(1),
            request,
            caller: std::thread::current(),
        });
        loop {
            if let Some(out) = queue.done.remove(&ticket) {
                return Ok(out);
            }
            if queue.lost.remove(&ticket) {
                drop(queue);
                panic!("the leader of a group commit panicked while writing this request");
            }
            if queue.writing {
                // Woken by the leader when this request is done or this caller may lead; a
                // wake-up that came before the park makes it return at once.
                drop(queue);
                std::thread::park();
                queue = self.lock();
                continue;
            }
            // Lead: the oldest requests, always with this caller's own (so that a leader whose
            // batch fails takes the error home, and every failed batch answers someone).
            queue.writing = true;
            let own = queue
                .pending
                .iter()
                .find(|w| w.ticket == ticket)
                .map_or(1, |w| w.weight);
            let mut room = MAX_BATCH.saturating_sub(own);
            let mut requests: Vec<Req> = Vec::new();
            let mut leading = Leading {
                group: self,
                batch: Vec::new(),
                finished: false,
            };
            let mut rest = Vec::new();
            for waiting in std::mem::take(&mut queue.pending) {
                let take = waiting.ticket == ticket || (rest.is_empty() && waiting.weight <= room);
                if !take {
                    // In arrival order: once one request is left for the next batch, every
                    // later one is too.
                    rest.push(waiting);
                    continue;
                }
                if waiting.ticket != ticket {
                    room -= waiting.weight;
                }
                leading
                    .batch
                    .push((waiting.ticket, waiting.weight, waiting.caller));
                requests.push(waiting.request);
            }
            queue.pending = rest;
            queue.largest = queue.largest.max(requests.len());
            drop(queue);
            let written = write(&requests);
            queue = self.lock();
            queue.writing = false;
            leading.finished = true;
            match written {
                Ok(outs) => {
                    debug_assert_eq!(outs.len(), leading.batch.len());
                    for ((t, _, _), out) in leading.batch.iter().zip(outs) {
                        queue.done.insert(*t, out);
                    }
                    wake(&leading.batch, &queue);
                }
                Err(e) => {
                    // Nothing was written: the others go back to the front, in order.
                    let mut back: Vec<Waiting<Req>> = std::mem::take(&mut leading.batch)
                        .into_iter()
                        .zip(requests)
                        .filter(|((t, _, _), _)| *t != ticket)
                        .map(|((ticket, weight, caller), request)| Waiting {
                            ticket,
                            weight,
                            request,
                            caller,
                        })
                        .collect();
                    back.append(&mut queue.pending);
                    queue.pending = back;
                    wake(&[], &queue);
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

    /// A leader that panics while writing leaves no caller of its batch asleep: each panics in
    /// turn, and the callers that came later are written by the next leader.
    #[test]
    fn a_panicking_leader_wakes_its_batch_and_the_queue_goes_on() {
        let group: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let write = |gate: Arc<Mutex<()>>| {
            move |batch: &[u64]| {
                drop(gate.lock().unwrap_or_else(PoisonError::into_inner));
                assert!(
                    batch.len() < 2,
                    "a batch of {} that the test makes fail",
                    batch.len()
                );
                Ok::<_, ()>(batch.to_vec())
            }
        };
        let spawn = |i: u64| {
            let (group, gate) = (group.clone(), gate.clone());
            std::thread::spawn(move || group.submit(i, 1, write(gate)))
        };
        // The first leads alone and waits at the gate; the next two queue behind it and form
        // the next batch, whose leader panics.
        let first = spawn(0);
        while !group.lock().writing {
            std::thread::yield_now();
        }
        let others: Vec<_> = (1..3).map(spawn).collect();
        while group.n_waiting() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        assert_eq!(first.join().unwrap(), Ok(0));
        for other in others {
            assert!(
                other.join().is_err(),
                "a caller of the panicking batch panics"
            );
        }
        // Later callers are served.
        assert_eq!(spawn(3).join().unwrap(), Ok(3));
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
