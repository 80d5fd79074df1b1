//! CPU budgets: a trial's code runs inside a rayon thread pool sized by its CPU grant, so
//! that rayon-parallel work (burn's and ndarray's CPU backends, linfa, the user's own
//! `par_iter`) uses the trial's CPUs, not rayon's global pool shared by every trial.
//!
//! A pool serves one task at a time. A worker thread is itself thread 0 of a pool of the
//! first size it runs (`use_current_thread`), so `ThreadPool::install` runs those tasks
//! inline, without waking another thread; for another size it takes a pool from a free list
//! (or builds one), runs the task inside it, and puts it back. Two trials never share a pool, so one trial's blocking code cannot hold up
//! another's, and pools are built once per size and concurrency, not once per task.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::trainable::Resources;

/// The most threads one trial's pool gets, whatever it declares.
const MAX_THREADS: usize = 1024;

/// The threads of a trial that declares `resources`: its `cpu` rounded up, at least 1
/// (`extra_cpu` is for processes the trainable starts itself, which size their own).
pub(crate) fn threads_for(resources: &Resources) -> usize {
    let cpu = resources.cpu;
    if !cpu.is_finite() || cpu <= 1.0 {
        return 1;
    }
    (cpu.ceil() as usize).min(MAX_THREADS)
}

thread_local! {
    /// The budget of the task running on this thread (`None` outside a budgeted task).
    static BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
    /// A pool this thread belongs to (built with `use_current_thread`), with its size.
    static OWN: std::cell::RefCell<Option<(usize, ThreadPool)>> =
        const { std::cell::RefCell::new(None) };
}

/// The CPU budget (threads) of the trial whose code runs on this thread, when the run
/// limits threads: function trainables give their own thread the same budget, isolated
/// trials give it to their process.
pub(crate) fn current_budget() -> Option<usize> {
    BUDGET.with(Cell::get)
}

/// Idle pools by size.
fn free_pools() -> &'static Mutex<HashMap<usize, Vec<ThreadPool>>> {
    static FREE: OnceLock<Mutex<HashMap<usize, Vec<ThreadPool>>>> = OnceLock::new();
    FREE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A pool lent to one task; back to the free list when dropped (even by a panic).
struct Lent {
    threads: usize,
    pool: Option<ThreadPool>,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(pool), Ok(mut free)) = (self.pool.take(), free_pools().lock()) {
            free.entry(self.threads).or_default().push(pool);
        }
    }
}

/// Puts back the budget a thread had before a task (even when the task panics).
/// The thread's own pool while a task runs on it; back in `OWN` when the task ends, also
/// when it panics.
struct Own(Option<(usize, ThreadPool)>);

impl Drop for Own {
    fn drop(&mut self) {
        if let Some(own) = self.0.take() {
            let _ = OWN.try_with(|o| *o.borrow_mut() = Some(own));
        }
    }
}

struct Budget(Option<usize>);

impl Drop for Budget {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(self.0));
    }
}

fn lend(threads: usize) -> Option<Lent> {
    let idle = free_pools().lock().ok().and_then(|mut f| f.get_mut(&threads).and_then(Vec::pop));
    let pool = match idle {
        Some(pool) => pool,
        None => ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("tune-cpu{threads}-{i}"))
            .build()
            .ok()?,
    };
    Some(Lent { threads, pool: Some(pool) })
}

/// Runs `f` inside a pool of `threads` threads (`None`: on this thread, no budget), with
/// [`current_budget`] set for it. When no pool can be built (the system refuses threads)
/// `f` runs on this thread with the budget still recorded.
pub(crate) fn run_within<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    let Some(threads) = threads else { return f() };
    let budgeted = move || {
        let _restore = Budget(BUDGET.with(|b| b.replace(Some(threads))));
        f()
    };
    // The calling thread's own pool (it is thread 0 of it): `install` runs inline, with no
    // hand-off to another thread. Pools lent from the free list cost a wake-up per task.
    let own = OWN.with(|own| {
        let mut own = own.borrow_mut();
        if own.is_none() {
            *own = ThreadPoolBuilder::new()
                .num_threads(threads)
                .use_current_thread()
                .thread_name(move |i| format!("tune-cpu{threads}-{i}"))
                .build()
                .ok()
                .map(|pool| (threads, pool));
        }
        matches!(own.as_ref(), Some((n, _)) if *n == threads)
    });
    if own {
        // The pool is not borrowed while the task runs: a task that runs a nested task on
        // this thread finds it busy and takes a lent pool.
        if let Some(own) = OWN.with(|o| o.borrow_mut().take()) {
            let own = Own(Some(own));
            return match &own.0 {
                Some((_, pool)) => pool.install(budgeted),
                None => unreachable!("taken just above"),
            };
        }
    }
    match lend(threads) {
        Some(lent) => match &lent.pool {
            Some(pool) => pool.install(budgeted),
            None => budgeted(),
        },
        None => budgeted(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn cpu(cpu: f64) -> Resources {
        Resources { cpu, ..Resources::default() }
    }

    #[test]
    fn threads_are_the_cpu_grant_rounded_up_and_at_least_one() {
        assert_eq!(threads_for(&cpu(0.0)), 1);
        assert_eq!(threads_for(&cpu(0.5)), 1);
        assert_eq!(threads_for(&cpu(1.0)), 1);
        assert_eq!(threads_for(&cpu(1.5)), 2);
        assert_eq!(threads_for(&cpu(2.0)), 2);
        assert_eq!(threads_for(&Resources { cpu: 1.0, extra_cpu: 3.0, ..cpu(1.0) }), 1);
        assert_eq!(threads_for(&cpu(f64::NAN)), 1);
        assert_eq!(threads_for(&cpu(1e30)), MAX_THREADS);
    }

    #[test]
    fn work_runs_on_a_pool_of_the_budget_and_the_budget_is_visible() {
        for n in [1, 3] {
            let (seen, budget, distinct) = run_within(Some(n), || {
                let ids: std::collections::HashSet<_> = (0..64)
                    .into_par_iter()
                    .map(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        std::thread::current().id()
                    })
                    .collect();
                (rayon::current_num_threads(), current_budget(), ids.len())
            });
            assert_eq!(seen, n);
            assert_eq!(budget, Some(n));
            assert!(distinct <= n, "{distinct} threads for a budget of {n}");
        }
        assert_eq!(current_budget(), None, "the budget ends with the task");
        assert_eq!(run_within(None, current_budget), None);
    }

    #[test]
    fn a_panicking_task_gives_its_pool_back() {
        // On a thread of its own, so that the thread's own pool is of size 5.
        std::thread::spawn(|| {
            let r = std::panic::catch_unwind(|| run_within(Some(5), || panic!("boom")));
            assert!(r.is_err());
            let own = OWN.with(|o| o.borrow().as_ref().map(|(n, _)| *n));
            assert_eq!(own, Some(5), "the thread keeps its own pool after a panic");
            // The next task runs on it again, inline.
            let caller = std::thread::current().id();
            let (n, on) =
                run_within(Some(5), || (rayon::current_num_threads(), std::thread::current().id()));
            assert_eq!((n, on), (5, caller));
            // Another size on the same thread takes a pool from the free list, given back
            // after a panic too.
            let r = std::panic::catch_unwind(|| run_within(Some(6), || panic!("boom")));
            assert!(r.is_err());
            let free = free_pools().lock().unwrap().get(&6).map_or(0, Vec::len);
            assert!(free >= 1, "the lent pool went back to the free list");
        })
        .join()
        .unwrap();
    }
}
