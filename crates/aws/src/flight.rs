//! The mechanism of both credential stores (this crate's [`crate::cache`] and the controller's):
//! slots keyed by strings, each with its policy's state (last good credential, backoff) and at
//! most one exchange in flight, which every caller asking meanwhile awaits. The exchange runs as
//! a task of its own (in the caller's span), so it completes into the slot whether or not anyone
//! still waits; a panic in it is caught and completes the slot as a failure. What to do (serve,
//! exchange, what an answer does to the state) is the store's policy, passed in as closures.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;
use tracing::Instrument as _;

/// Why an exchange ended without an answer for its waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// The runtime dropped the exchange's task midway.
    #[error("the credential exchange was cancelled (runtime shutting down); retry")]
    Cancelled,
    /// Completing the exchange panicked (a bug).
    #[error("the credential exchange failed unexpectedly (a bug: the log has the panic); retry")]
    Panicked,
    /// No tokio runtime to run the exchange on.
    #[error("the credential exchange needs a tokio runtime and none is running")]
    NoRuntime,
}

/// So that a plain message can be a store's error (tests, benches).
impl From<Ended> for String {
    fn from(e: Ended) -> String {
        e.to_string()
    }
}

/// Clears its flight from the slot when dropped: a task the runtime drops midway (or before it
/// ever ran) must not leave its key "in flight" for ever. A newer flight is left alone.
struct Landing<S, O> {
    map: Arc<Mutex<Map<S, O>>>,
    key: String,
    id: u64,
}

impl<S, O> Drop for Landing<S, O> {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if let Some(s) = map.slots.get_mut(&self.key)
            && s.flight.as_ref().is_some_and(|(f, _)| *f == self.id)
        {
            s.flight = None;
        }
    }
}

/// A slot's policy state.
pub trait State: Default + Send + 'static {
    /// Whether nothing worth keeping is held: such slots go first when the store is full.
    fn spent(&self) -> bool;
}

/// What every waiter of one exchange gets.
type Flight<O> = Shared<BoxFuture<'static, Result<O, Ended>>>;

struct Slot<S, O> {
    state: S,
    /// The exchange in flight, numbered to tell it from a later one under the same key.
    flight: Option<(u64, Flight<O>)>,
    last_used: Instant,
}

struct Map<S, O> {
    slots: HashMap<String, Slot<S, O>>,
    flights: u64,
    ended: bool,
    in_use: Option<(u64, HashSet<String>)>,
}

impl<S, O> Map<S, O> {
    fn keeps(&self, key: &str) -> bool {
        !self.ended && self.in_use.as_ref().is_none_or(|(_, k)| k.contains(key))
    }
}

/// Single-flight slots; see the [module docs](self).
pub struct Flights<S, O> {
    map: Arc<Mutex<Map<S, O>>>,
    capacity: usize,
}

impl<S: State, O: Clone + Send + Sync + 'static> Flights<S, O> {
    /// No slots; at most `capacity` kept (spent, then least recently used ones go first).
    pub fn new(capacity: usize) -> Self {
        let map = Map {
            slots: HashMap::new(),
            flights: 0,
            ended: false,
            in_use: None,
        };
        Self {
            map: Arc::new(Mutex::new(map)),
            capacity: capacity.max(1),
        }
    }

    /// Asks the slot of `key`: `decide` (told whether an exchange is in flight) answers from the
    /// state, or (`None`) the call awaits the exchange in flight or starts `start`'s. `complete`
    /// turns the exchange's answer (`None`: it panicked) into the new state and the outcome all
    /// its waiters get, in the exchange's task; with a detached state when the slot is gone.
    /// Also says whether the outcome is that of an exchange another call started. [`Ended`]:
    /// the exchange ended without an outcome; the slot is left as it was, not in flight.
    pub async fn ask<A, Fut>(
        &self,
        key: &str,
        decide: impl FnOnce(&mut S, bool) -> Option<O>,
        start: impl FnOnce(&mut S) -> Fut,
        complete: impl FnOnce(&mut S, Option<A>) -> O + Send + 'static,
    ) -> (Result<O, Ended>, bool)
    where
        Fut: Future<Output = A> + Send + 'static,
        A: Send + 'static,
    {
        let (flight, joined, spawn) = {
            let mut map = self.lock();
            let map = &mut *map;
            let keeps = map.keeps(key);
            if keeps && !map.slots.contains_key(key) {
                self.make_room(&mut map.slots);
                map.slots.insert(key.to_owned(), slot());
            }
            let mut detached = slot();
            let slot = match map.slots.get_mut(key).filter(|_| keeps) {
                Some(slot) => slot,
                None => &mut detached,
            };
            slot.last_used = Instant::now();
            if let Some(answer) = decide(&mut slot.state, slot.flight.is_some()) {
                return (Ok(answer), false);
            }
            match &slot.flight {
                Some((_, flight)) => (flight.clone(), true, None),
                None => {
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        return (Err(Ended::NoRuntime), false);
                    };
                    map.flights += 1;
                    let id = map.flights;
                    let exchange = AssertUnwindSafe(start(&mut slot.state)).catch_unwind();
                    let landing = Landing {
                        map: self.map.clone(),
                        key: key.to_owned(),
                        id,
                    };
                    // The waiters' end: nothing sent means the runtime dropped the task.
                    let (send, answer) = tokio::sync::oneshot::channel();
                    let flight = answer
                        .map(|sent| sent.unwrap_or(Err(Ended::Cancelled)))
                        .boxed()
                        .shared();
                    slot.flight = Some((id, flight.clone()));
                    let task = async move {
                        let landing = landing;
                        let answer = exchange.await.ok();
                        let outcome = {
                            let mut map = lock(&landing.map);
                            let mut detached = S::default();
                            let state = match map.slots.get_mut(&landing.key) {
                                Some(s) if s.flight.as_ref().is_some_and(|(f, _)| *f == id) => {
                                    s.flight = None;
                                    &mut s.state
                                }
                                _ => &mut detached,
                            };
                            // Caught before the guard drops, so the lock is not poisoned.
                            std::panic::catch_unwind(AssertUnwindSafe(|| complete(state, answer)))
                                .map_err(|_| Ended::Panicked)
                        };
                        let _ = send.send(outcome);
                    };
                    // Spawned once the lock is released: a runtime shutting down drops the task
                    // at once, on this thread, and its landing takes the lock.
                    (flight, false, Some((runtime, task)))
                }
            }
        };
        if let Some((runtime, task)) = spawn {
            drop(runtime.spawn(task.instrument(tracing::Span::current())));
        }
        (flight.await, joined)
    }

    /// Reads the state of `key`, if the store holds a slot for it.
    pub fn peek<T>(&self, key: &str, read: impl FnOnce(&S) -> T) -> Option<T> {
        self.lock().slots.get(key).map(|s| read(&s.state))
    }

    /// Changes the state of `key` (created if need be) unless the store does not keep it.
    pub fn update(&self, key: &str, change: impl FnOnce(&mut S)) {
        let mut map = self.lock();
        if map.keeps(key) {
            change(&mut map.slots.entry(key.to_owned()).or_insert_with(slot).state);
        }
    }

    /// How many slots are held.
    pub fn held(&self) -> usize {
        self.lock().slots.len()
    }

    /// Drops every slot (exchanges in flight complete into nothing kept); with `end_term`,
    /// nothing is kept until [`Self::resume`] either.
    pub fn clear(&self, end_term: bool) {
        let mut map = self.lock();
        map.ended |= end_term;
        map.slots.clear();
    }

    /// A new term: slots are kept again.
    pub fn resume(&self) {
        self.lock().ended = false;
    }

    /// Whether the term ended and no new one began.
    pub fn ended(&self) -> bool {
        self.lock().ended
    }

    /// Keeps slots only for the keys in `in_use`, now and until the next call: a key nobody
    /// uses any more gets no slot back, even from a call that was already running. The sets
    /// are numbered as their caller took them (`generation`, rising): a set that arrives after
    /// a newer one (two callers racing from their lock to this one) changes nothing.
    pub fn retain(&self, generation: u64, in_use: HashSet<String>) {
        let mut map = self.lock();
        if map
            .in_use
            .as_ref()
            .is_some_and(|(held, _)| *held > generation)
        {
            return;
        }
        map.slots.retain(|k, _| in_use.contains(k));
        map.in_use = Some((generation, in_use));
    }

    fn make_room(&self, slots: &mut HashMap<String, Slot<S, O>>) {
        if slots.len() < self.capacity {
            return;
        }
        slots.retain(|_, s| s.flight.is_some() || !s.state.spent());
        while slots.len() >= self.capacity {
            let oldest = slots
                .iter()
                .filter(|(_, s)| s.flight.is_none())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => slots.remove(&k),
                // Every slot has an exchange in flight: let the map grow past the bound briefly.
                None => break,
            };
        }
    }

    fn lock(&self) -> MutexGuard<'_, Map<S, O>> {
        lock(&self.map)
    }
}

fn slot<S: Default, O>() -> Slot<S, O> {
    Slot {
        state: S::default(),
        flight: None,
        last_used: Instant::now(),
    }
}

/// A panic while holding the lock leaves the map consistent (no multi-step updates).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Nothing;

    impl State for Nothing {
        fn spent(&self) -> bool {
            true
        }
    }

    /// An exchange asked for on a runtime that is shutting down: tokio drops the new task at
    /// once, on the asking thread. That must end the call (cancelled) and leave the key free,
    /// never deadlock on the store's own lock.
    #[test]
    fn an_exchange_asked_for_on_a_runtime_shutting_down_ends_and_leaves_the_key_free() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let handle = runtime.handle().clone();
            drop(runtime);
            let _entered = handle.enter();
            let flights: Flights<Nothing, u32> = Flights::new(4);
            let mut answers = Vec::new();
            for _ in 0..2 {
                let ask = flights.ask(
                    "k",
                    |_, _| None,
                    |_| async { 1u32 },
                    |_, answer: Option<u32>| answer.unwrap_or(0),
                );
                answers.push(ask.now_or_never().map(|(answer, _)| answer));
            }
            tx.send(answers).unwrap();
        });
        let answers = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("asking on a runtime shutting down hung");
        assert_eq!(
            answers,
            vec![Some(Err(Ended::Cancelled)), Some(Err(Ended::Cancelled))],
            "each ask ends at once, cancelled, and the second is not stuck behind the first"
        );
    }
    /// Two callers take their sets in one order and hand them over in the other: the older set
    /// must not drop the key only the newer one holds (it would never get a slot again).
    #[test]
    fn an_older_set_of_keys_in_use_arriving_late_changes_nothing() {
        let flights: Flights<Nothing, u32> = Flights::new(4);
        let keys = |k: &[&str]| k.iter().map(|k| (*k).to_owned()).collect::<HashSet<_>>();
        flights.retain(2, keys(&["a", "b"]));
        flights.retain(1, keys(&["a"]));
        flights.update("b", |_| ());
        assert!(flights.peek("b", |_| ()).is_some(), "b is still in use");
        flights.retain(3, keys(&["a"]));
        assert!(
            flights.peek("b", |_| ()).is_none(),
            "a newer set still frees b"
        );
    }
}
