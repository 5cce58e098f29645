//! Liveness: whether the controller's loops still make progress, for `/healthz`.
//!
//! Two kinds of parts register here. A *loop* (the lease elector, each watch feed) beats on
//! every turn, including a periodic tick while idle, so an idle steady state keeps beating and
//! only a loop that stopped turning (wedged inside one step) goes quiet past its bound. A kind
//! of *work* (the reconciles of one resource kind) tracks each run from start to end: it is
//! stuck when one run has lasted longer than its bound; when nothing runs it is idle, not
//! stuck. Time is the monotonic `tokio::time::Instant`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The parts whose progress `/healthz` checks; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Liveness {
    parts: Mutex<Vec<Part>>,
}

#[derive(Debug)]
struct Part {
    name: &'static str,
    bound: Duration,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Loop(Arc<Mutex<Instant>>),
    Work(Arc<Mutex<Runs>>),
}

#[derive(Debug, Default)]
struct Runs {
    next: u64,
    started: BTreeMap<u64, Instant>,
}

impl Liveness {
    /// Registers a loop named `name` that must beat at least every `bound`.
    pub fn heartbeat(&self, name: &'static str, bound: Duration) -> Heartbeat {
        let last = Arc::new(Mutex::new(Instant::now()));
        self.lock().push(Part {
            name,
            bound,
            kind: Kind::Loop(last.clone()),
        });
        Heartbeat(last)
    }

    /// Registers a kind of work named `name` of which no run may last longer than `bound`.
    pub fn work(&self, name: &'static str, bound: Duration) -> Work {
        let runs = Arc::new(Mutex::new(Runs::default()));
        self.lock().push(Part {
            name,
            bound,
            kind: Kind::Work(runs.clone()),
        });
        Work(runs)
    }

    /// What is stuck now, one sentence each (empty: alive).
    pub fn stuck(&self) -> Vec<String> {
        let now = Instant::now();
        let parts = self.lock();
        let mut stuck = Vec::new();
        for part in parts.iter() {
            match &part.kind {
                Kind::Loop(last) => {
                    let quiet = now.saturating_duration_since(*lock(last));
                    if quiet > part.bound {
                        stuck.push(format!(
                            "{} made no progress for {}s (limit {}s)",
                            part.name,
                            quiet.as_secs(),
                            part.bound.as_secs()
                        ));
                    }
                }
                Kind::Work(runs) => {
                    let runs = lock(runs);
                    let oldest = runs.started.values().min().copied();
                    if let Some(started) = oldest {
                        let running = now.saturating_duration_since(started);
                        if running > part.bound {
                            stuck.push(format!(
                                "{} has run for {}s (limit {}s; {} running)",
                                part.name,
                                running.as_secs(),
                                part.bound.as_secs(),
                                runs.started.len()
                            ));
                        }
                    }
                }
            }
        }
        stuck
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Part>> {
        lock(&self.parts)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A loop's heartbeat: [`Heartbeat::beat`] once per turn.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Mutex<Instant>>);

impl Heartbeat {
    /// Records progress now.
    pub fn beat(&self) {
        *lock(&self.0) = Instant::now();
    }
}

/// A kind of work: [`Work::start`] at the start of each run, and keep the guard until it ends.
#[derive(Debug, Clone)]
pub struct Work(Arc<Mutex<Runs>>);

impl Work {
    /// A run starts; it ends when the guard drops.
    pub fn start(&self) -> Running {
        let mut runs = lock(&self.0);
        let id = runs.next;
        runs.next = runs.next.wrapping_add(1);
        runs.started.insert(id, Instant::now());
        Running {
            runs: self.0.clone(),
            id,
        }
    }
}

/// One run of a [`Work`], in progress until dropped.
#[derive(Debug)]
pub struct Running {
    runs: Arc<Mutex<Runs>>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.runs).started.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_beating_loop_is_alive_however_long_it_idles() {
        let liveness = Liveness::default();
        let beat = liveness.heartbeat("the lease loop", MINUTE);
        for _ in 0..120 {
            tokio::time::advance(Duration::from_secs(30)).await;
            beat.beat();
            assert_eq!(liveness.stuck(), Vec::<String>::new());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_is_named_once_past_its_bound() {
        let liveness = Liveness::default();
        let _lease = liveness.heartbeat("the lease loop", MINUTE);
        let feed = liveness.heartbeat("the namespaces watch", 2 * MINUTE);
        tokio::time::advance(MINUTE).await;
        assert!(liveness.stuck().is_empty(), "at the bound, not past it");
        tokio::time::advance(Duration::from_secs(1)).await;
        feed.beat();
        let stuck = liveness.stuck();
        assert_eq!(stuck.len(), 1, "{stuck:?}");
        assert!(
            stuck[0].starts_with("the lease loop made no progress for 61s"),
            "{stuck:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn work_is_stuck_only_while_one_run_outlasts_its_bound() {
        let liveness = Liveness::default();
        let reconciles = liveness.work("a clusterpullsecrets reconcile", MINUTE);
        // Idle for an hour: nothing runs, nothing is stuck.
        tokio::time::advance(60 * MINUTE).await;
        assert!(liveness.stuck().is_empty());
        let wedged = reconciles.start();
        for _ in 0..10 {
            // Other runs keep finishing; the wedged one still counts.
            drop(reconciles.start());
            tokio::time::advance(Duration::from_secs(7)).await;
        }
        let stuck = liveness.stuck();
        assert_eq!(stuck.len(), 1, "{stuck:?}");
        assert!(
            stuck[0].contains("a clusterpullsecrets reconcile has run for 70s"),
            "{stuck:?}"
        );
        drop(wedged);
        assert!(liveness.stuck().is_empty(), "it finished");
    }
}
