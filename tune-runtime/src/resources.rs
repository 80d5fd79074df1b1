//! Resource accounting: what the experiment may use and what running trials hold.

use std::collections::BTreeMap;

use crate::trainable::Resources;

const EPS: f64 = 1e-9;

/// What one trial was granted: its resources and the GPU ids it may use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant {
    pub gpu_ids: Vec<usize>,
    /// (GPU slot, fraction) taken on each GPU.
    gpu_share: Vec<(usize, f64)>,
}

/// The experiment's resources and what is in use. Admission is by declared resources only.
#[derive(Debug, Clone)]
pub(crate) struct ResourcePool {
    total_cpu: f64,
    used_cpu: f64,
    gpu_ids: Vec<usize>,
    /// Free fraction of each GPU (same order as `gpu_ids`).
    gpu_free: Vec<f64>,
    custom_total: BTreeMap<String, f64>,
    custom_used: BTreeMap<String, f64>,
}

/// The GPUs visible to this process: the ids in `CUDA_VISIBLE_DEVICES`, none when unset.
pub(crate) fn visible_gpus() -> Vec<usize> {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(s) => s.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// CPUs of this machine, as `std::thread::available_parallelism` sees them.
pub(crate) fn detected_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl ResourcePool {
    pub fn new(total_cpu: f64, gpu_ids: Vec<usize>, custom: BTreeMap<String, f64>) -> Self {
        let gpu_free = vec![1.0; gpu_ids.len()];
        Self {
            total_cpu,
            used_cpu: 0.0,
            gpu_ids,
            gpu_free,
            custom_total: custom,
            custom_used: BTreeMap::new(),
        }
    }

    pub fn total_cpu(&self) -> f64 {
        self.total_cpu
    }
    pub fn used_cpu(&self) -> f64 {
        self.used_cpu
    }
    pub fn total_gpu(&self) -> f64 {
        self.gpu_ids.len() as f64
    }
    pub fn used_gpu(&self) -> f64 {
        self.gpu_free.iter().fold(0.0, |acc, f| acc + (1.0 - f))
    }

    /// Why `req` can never be granted, even on an idle pool; `None` when it fits.
    pub fn never_fits(&self, req: &Resources) -> Option<String> {
        let mut why = Vec::new();
        let bad = |x: f64| !x.is_finite() || x < 0.0;
        if bad(req.cpu) || bad(req.gpu) || bad(req.extra_cpu) || bad(req.extra_gpu) {
            return Some(format!(
                "the trial requests invalid resources {req:?}; amounts must be finite and >= 0"
            ));
        }
        if req.total_cpu() > self.total_cpu + EPS {
            why.push(format!("{} CPUs but the experiment has {}", req.total_cpu(), self.total_cpu));
        }
        if self.gpu_plan(req, &vec![1.0; self.gpu_ids.len()]).is_none() {
            why.push(format!(
                "{} GPUs but the experiment has {}",
                req.total_gpu(),
                self.gpu_ids.len()
            ));
        }
        for (name, amount) in &req.custom {
            let total = self.custom_total.get(name).copied().unwrap_or(0.0);
            if bad(*amount) || *amount > total + EPS {
                why.push(format!(
                    "{amount} of custom resource `{name}` but the experiment has {total}"
                ));
            }
        }
        if why.is_empty() {
            None
        } else {
            Some(format!(
                "the trial requests {}; lower the trainable's `resources(...)` or raise the totals \
                 with `Tuner::total_cpus`, `total_gpus`/`gpu_ids` or `total_resource`",
                why.join(", ")
            ))
        }
    }

    /// Which GPU slots and fractions `req` would take given the free fractions.
    fn gpu_plan(&self, req: &Resources, free: &[f64]) -> Option<Vec<(usize, f64)>> {
        let need = req.total_gpu();
        if need <= EPS {
            return Some(Vec::new());
        }
        if need < 1.0 {
            // A fraction shares one GPU: take the fullest one that still has room.
            let slot = (0..free.len())
                .filter(|&i| free[i] + EPS >= need)
                .min_by(|&a, &b| free[a].total_cmp(&free[b]))?;
            return Some(vec![(slot, need)]);
        }
        let whole = need.ceil() as usize;
        let slots: Vec<usize> =
            (0..free.len()).filter(|&i| free[i] >= 1.0 - EPS).take(whole).collect();
        if slots.len() < whole {
            return None;
        }
        let mut left = need;
        Some(
            slots
                .into_iter()
                .map(|s| {
                    let take = left.min(1.0);
                    left -= take;
                    (s, take)
                })
                .collect(),
        )
    }

    /// Takes `req` if it is free now.
    pub fn try_acquire(&mut self, req: &Resources) -> Option<Grant> {
        if self.used_cpu + req.total_cpu() > self.total_cpu + EPS {
            return None;
        }
        for (name, amount) in &req.custom {
            let total = self.custom_total.get(name).copied().unwrap_or(0.0);
            let used = self.custom_used.get(name).copied().unwrap_or(0.0);
            if used + amount > total + EPS {
                return None;
            }
        }
        let plan = self.gpu_plan(req, &self.gpu_free)?;
        self.used_cpu += req.total_cpu();
        for (name, amount) in &req.custom {
            *self.custom_used.entry(name.clone()).or_insert(0.0) += amount;
        }
        for &(slot, f) in &plan {
            self.gpu_free[slot] -= f;
        }
        let gpu_ids = plan.iter().map(|&(s, _)| self.gpu_ids[s]).collect();
        Some(Grant { gpu_ids, gpu_share: plan })
    }

    /// Returns what `grant` (made for `req`) took.
    pub fn release(&mut self, req: &Resources, grant: &Grant) {
        self.used_cpu = (self.used_cpu - req.total_cpu()).max(0.0);
        for (name, amount) in &req.custom {
            if let Some(u) = self.custom_used.get_mut(name) {
                *u = (*u - amount).max(0.0);
            }
        }
        for &(slot, f) in &grant.gpu_share {
            self.gpu_free[slot] = (self.gpu_free[slot] + f).min(1.0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(cpu: f64, gpu: f64) -> Resources {
        Resources { cpu, gpu, ..Resources::default() }
    }

    #[test]
    fn admits_until_full_and_releases() {
        let mut pool = ResourcePool::new(2.0, vec![4, 7], BTreeMap::new());
        let a = pool.try_acquire(&req(1.0, 1.0)).unwrap();
        assert_eq!(a.gpu_ids, vec![4]);
        let b = pool.try_acquire(&req(1.0, 0.5)).unwrap();
        assert_eq!(b.gpu_ids, vec![7]);
        assert!(pool.try_acquire(&req(0.0, 1.0)).is_none(), "no whole GPU left");
        let c = pool.try_acquire(&req(0.0, 0.5)).unwrap();
        assert_eq!(c.gpu_ids, vec![7]);
        assert!(pool.try_acquire(&req(1.0, 0.0)).is_none(), "CPUs exhausted");
        pool.release(&req(1.0, 1.0), &a);
        assert!(pool.try_acquire(&req(1.0, 1.0)).is_some());
    }

    #[test]
    fn impossible_requests_are_named() {
        let pool = ResourcePool::new(2.0, vec![], BTreeMap::from([("tpu".to_string(), 1.0)]));
        assert!(pool.never_fits(&req(2.0, 0.0)).is_none());
        let why = pool.never_fits(&req(3.0, 1.0)).unwrap();
        assert!(why.contains("3 CPUs") && why.contains("1 GPUs"), "{why}");
        let why = pool.never_fits(&req(1.0, 0.0).with_custom("tpu", 2.0)).unwrap();
        assert!(why.contains("`tpu`"), "{why}");
    }
}
