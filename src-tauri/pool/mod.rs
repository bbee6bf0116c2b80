//! The model pool: which local models are in memory, within a budget.
//!
//! - The budget comes from the pool settings (percent of RAM or GB) and follows them
//!   live (`app.pool_settings`): a smaller budget unloads idle models at once.
//! - Before a load the footprint is estimated from the model's headers (weights + a KV
//!   cache for its context, `engine::memory`); after it, MLX's measured figure is kept
//!   (load + the most a generation added) and a model is charged the larger of the two.
//! - A load that does not fit unloads idle, unpinned models by the policy
//!   (`policy.rs`); a model serving a request is never unloaded. If it still does not
//!   fit: `insufficient_memory`, naming what is loaded and what was needed.
//! - Loads are single-flight and one at a time (`load_lock`, so that measurements and
//!   room-making do not race); a request to a model already loaded never waits for it.
//! - Idle models past their TTL (their own, else the pool's) are unloaded by a
//!   once-a-second reaper; `preload` models load at start, in order, only into free room.
//! - Every load, unload and eviction is one log line (target `pool`) and a [`PoolEvent`].

pub mod control;
pub mod model_settings;
pub mod policy;

use crate::app::App;
use crate::engine::{self, ModelHandle, memory::MemoryEstimate};
use crate::error::{Code, Error, Result};
use crate::settings::pool::PoolSettings;
use crate::store::entities::model;
use policy::{Candidate, Popularity};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The context a model is served and budgeted with unless it has its own setting
/// (`models set ID --context N`): the model's own, up to this many tokens. A 128k-token
/// KV reserve would keep an 8B model off a 16 GB Mac for prompts that are almost always
/// far shorter.
pub const DEFAULT_CONTEXT_CAP: u32 = 32_768;

/// How often idle TTLs and other processes' changes (pins, per-model settings) are checked.
const TICK: Duration = Duration::from_secs(1);

/// A loaded model as `pool show` lists it (interfaces.md).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LoadedModel {
    pub id: i64,
    pub name: String,
    /// Weights + the KV cache for `context` tokens, from the headers.
    pub bytes_estimated: u64,
    /// What MLX measured: the load, plus the most a generation has added since.
    pub bytes_measured: u64,
    pub pinned: bool,
    /// Serving or queued requests right now.
    pub busy: bool,
    pub in_flight: u32,
    pub uses: u64,
    pub last_used_ms: i64,
    pub loaded_ms: i64,
    /// The context length requests to it may use.
    pub context: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PoolEventKind {
    Loading,
    Loaded,
    LoadFailed,
    Unloaded,
}

/// What the pool did, for the log and the UI.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PoolEvent {
    pub at_ms: i64,
    pub kind: PoolEventKind,
    pub model: String,
    /// Why: `request`, `preload 1/2`, `load command`, `evicted (lru) for M`, `idle 900s
    /// (ttl)`, `budget lowered`, `unload command`, `removed from the registry`, …
    pub reason: String,
    pub bytes: Option<u64>,
    /// The error of a failed load.
    pub error: Option<String>,
}

/// Why a load happens; preloads only use free room, they never evict.
#[derive(Debug, Clone, PartialEq)]
enum Why {
    Request,
    Command,
    Preload(String),
}

impl Why {
    fn label(&self) -> String {
        match self {
            Why::Request => "request".into(),
            Why::Command => "load command".into(),
            Why::Preload(p) => p.clone(),
        }
    }
}

struct Slot {
    id: i64,
    name: String,
    handle: ModelHandle,
    estimate: MemoryEstimate,
    context: u32,
    pinned: bool,
    /// The model's own TTL (seconds), else the pool's applies.
    ttl_seconds: Option<u64>,
    leases: Arc<AtomicUsize>,
    uses: u64,
    popularity: Popularity,
    last_used_ms: i64,
    last_touched_ms: i64,
    loaded_ms: i64,
}

impl Slot {
    fn estimated(&self) -> u64 {
        self.estimate.footprint(self.context)
    }
    /// What it counts against the budget.
    fn charge(&self) -> u64 {
        self.estimated().max(self.handle.measured_bytes())
    }
    fn in_flight(&self) -> usize {
        self.leases
            .load(Ordering::Acquire)
            .max(self.handle.in_flight())
    }
    fn candidate(&self, pool_ttl: Option<u64>) -> Candidate {
        Candidate {
            id: self.id,
            bytes: self.charge(),
            pinned: self.pinned,
            busy: self.in_flight() > 0,
            last_used_ms: self.last_used_ms,
            popularity: self.popularity,
            ttl_ms: self
                .ttl_seconds
                .or(pool_ttl)
                .map(|s| (s as i64).saturating_mul(1000)),
        }
    }
    fn view(&self) -> LoadedModel {
        let n = self.in_flight();
        LoadedModel {
            id: self.id,
            name: self.name.clone(),
            bytes_estimated: self.estimated(),
            bytes_measured: self.handle.measured_bytes(),
            pinned: self.pinned,
            busy: n > 0,
            in_flight: n as u32,
            uses: self.uses,
            last_used_ms: self.last_used_ms,
            loaded_ms: self.loaded_ms,
            context: self.context,
        }
    }
}

/// A model handed out for one request: it is busy (never unloaded) until this is dropped.
pub struct Lease {
    pub handle: ModelHandle,
    /// The context this request may use (the model's, or its pool setting).
    pub context: u32,
    _busy: Busy,
}

struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Pool {
    pub(crate) db: DatabaseConnection,
    settings: watch::Receiver<PoolSettings>,
    /// Where models keep their prefix cache on disk (`<data dir>/prefix-cache`).
    prefix_cache_dir: std::path::PathBuf,
    physical_ram: u64,
    slots: Mutex<HashMap<i64, Slot>>,
    load_lock: tokio::sync::Mutex<()>,
    events: broadcast::Sender<PoolEvent>,
    /// Store revision the loaded models' rows were last read at.
    rows_revision: AtomicI64,
    /// Itself, for the tasks a load runs on.
    me: Weak<Pool>,
}

fn now_ms() -> i64 {
    crate::store::now_ms()
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1_000_000.0)
}

/// The context a registry row is served with.
fn context_for(row: &model::Model, model_context: u32) -> u32 {
    match row.context_override {
        Some(c) if c > 0 => (c.min(u32::MAX as i64) as u32).min(model_context),
        _ => model_context.min(DEFAULT_CONTEXT_CAP),
    }
}

impl Pool {
    /// The app's pool: follows the pool settings, reaps idle models, preloads. The
    /// background task ends when the pool is dropped.
    pub fn start(app: &App) -> Arc<Pool> {
        let pool = Arc::new_cyclic(|me| Pool {
            me: me.clone(),
            db: app.db.clone(),
            settings: app.pool_settings.subscribe(),
            prefix_cache_dir: app.data_dir().join("prefix-cache"),
            physical_ram: crate::settings::pool::physical_ram_bytes().unwrap_or(0),
            slots: Mutex::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
            events: broadcast::channel(256).0,
            rows_revision: AtomicI64::new(0),
        });
        *app.pool.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&pool);
        tokio::spawn(background(Arc::downgrade(&pool)));
        pool
    }

    /// Pool events as they happen (loads, unloads with their reason).
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.events.subscribe()
    }

    /// The memory budget in bytes now.
    pub fn budget_bytes(&self) -> u64 {
        self.settings.borrow().limit.budget_bytes(self.physical_ram)
    }

    /// The loaded models, the most recently used first.
    pub fn loaded(&self) -> Vec<LoadedModel> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<LoadedModel> = slots.values().map(Slot::view).collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.last_used_ms));
        v
    }

    fn emit(
        &self,
        kind: PoolEventKind,
        model: &str,
        reason: &str,
        bytes: Option<u64>,
        error: Option<&Error>,
    ) {
        match kind {
            PoolEventKind::LoadFailed => {
                tracing::warn!(target: "pool", model, reason, error = %error.map(|e| e.to_string()).unwrap_or_default(), "load failed")
            }
            _ => tracing::info!(target: "pool", model, reason, bytes, "{}", match kind {
                PoolEventKind::Loading => "loading",
                PoolEventKind::Loaded => "loaded",
                _ => "unloaded",
            }),
        }
        let _ = self.events.send(PoolEvent {
            at_ms: now_ms(),
            kind,
            model: model.to_string(),
            reason: reason.to_string(),
            bytes,
            error: error.map(|e| format!("{}: {}", e.code, e.message)),
        });
    }

    /// Hand out `slot` for one request.
    fn lease(slot: &mut Slot, db: &DatabaseConnection) -> Lease {
        let now = now_ms();
        slot.leases.fetch_add(1, Ordering::AcqRel);
        slot.uses += 1;
        slot.popularity = slot.popularity.used(now);
        slot.last_used_ms = now;
        if now - slot.last_touched_ms > 5_000 {
            slot.last_touched_ms = now;
            let (db, id) = (db.clone(), slot.id);
            tokio::spawn(async move {
                let _ = crate::models::touch(&db, id).await;
            });
        }
        Lease {
            handle: slot.handle.clone(),
            context: slot.context,
            _busy: Busy(slot.leases.clone()),
        }
    }

    fn lease_where(&self, pick: impl Fn(&Slot) -> bool) -> Option<Lease> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.values_mut().find(|s| pick(s))?;
        Some(Self::lease(slot, &self.db))
    }

    /// The model for one request: loaded now if it is not (making room by the policy).
    pub async fn acquire(&self, name: &str) -> Result<Lease> {
        if let Some(l) = self.lease_where(|s| s.name == name) {
            return Ok(l);
        }
        let row = find(&self.db, name).await?;
        // The load runs on its own task: a client that leaves while it loads does not
        // abort it half-way (the next request finds the model loaded).
        let me = self.arc()?;
        tokio::spawn(async move { me.load_row(row, Why::Request).await })
            .await
            .map_err(|e| Error::internal(format!("the model load stopped: {e}")))?
    }

    /// `models load`: load (or keep) a model without a request.
    pub async fn load(&self, name: &str) -> Result<LoadedModel> {
        let row = find(&self.db, name).await?;
        let id = row.id;
        let me = self.arc()?;
        let lease = tokio::spawn(async move { me.load_row(row, Why::Command).await })
            .await
            .map_err(|e| Error::internal(format!("the model load stopped: {e}")))??;
        drop(lease);
        self.view(id)
            .ok_or_else(|| Error::internal("the model was unloaded right after its load"))
    }

    fn arc(&self) -> Result<Arc<Pool>> {
        self.me
            .upgrade()
            .ok_or_else(|| Error::new(Code::Engine, "the model pool has stopped"))
    }

    fn view(&self, id: i64) -> Option<LoadedModel> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.get(&id).map(Slot::view)
    }

    /// `models unload`: unload an idle model now; a busy one is `model_busy`.
    pub async fn unload(&self, name: &str) -> Result<LoadedModel> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let id = slots
                .values()
                .find(|s| s.name == name || s.id.to_string() == name)
                .map(|s| s.id)
                .ok_or_else(|| {
                    Error::new(
                        Code::ModelNotFound,
                        format!("no loaded model is named {name:?} (see `switchyard pool show`)"),
                    )
                })?;
            let n = slots[&id].in_flight();
            if n > 0 {
                return Err(Error::new(
                    Code::ModelBusy,
                    format!("{name} is serving {n} request(s); unload it when they finish"),
                ));
            }
            slots.remove(&id).expect("present")
        };
        let view = slot.view();
        self.release(slot, "unload command").await;
        Ok(view)
    }

    /// Unload a slot already taken out of the map.
    async fn release(&self, slot: Slot, reason: &str) {
        let bytes = slot.charge();
        let name = slot.name.clone();
        if let Err(e) = slot.handle.unload().await {
            tracing::debug!(target: "pool", model = %name, "unload: {}", e.message);
        }
        self.emit(PoolEventKind::Unloaded, &name, reason, Some(bytes), None);
    }

    fn candidates(&self, slots: &HashMap<i64, Slot>) -> Vec<Candidate> {
        let ttl = self.settings.borrow().ttl_seconds;
        slots.values().map(|s| s.candidate(ttl)).collect()
    }

    async fn load_row(self: Arc<Self>, row: model::Model, why: Why) -> Result<Lease> {
        let _one_at_a_time = self.load_lock.lock().await;
        if let Some(l) = self.lease_where(|s| s.id == row.id) {
            return Ok(l);
        }
        let path = PathBuf::from(&row.path);
        let p = path.clone();
        let estimate = tokio::task::spawn_blocking(move || engine::memory::estimate(&p))
            .await
            .map_err(|e| Error::internal(format!("estimating the model crashed: {e}")))??;
        let context = context_for(&row, estimate.context_length);
        let need = estimate.footprint(context);
        self.sync_rows().await;
        let (policy, budget) = {
            let s = self.settings.borrow();
            (s.eviction, s.limit.budget_bytes(self.physical_ram))
        };
        let victims: Vec<Slot> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let cands = self.candidates(&slots);
            let chosen = policy::make_room(policy, now_ms(), &cands, need, budget)
                .filter(|v| v.is_empty() || !matches!(why, Why::Preload(_)));
            match chosen {
                Some(ids) => ids.iter().filter_map(|id| slots.remove(id)).collect(),
                None => {
                    let err = insufficient(&row.name, &estimate, context, budget, &slots, &why);
                    drop(slots);
                    self.emit(
                        PoolEventKind::LoadFailed,
                        &row.name,
                        &why.label(),
                        Some(need),
                        Some(&err),
                    );
                    return Err(err);
                }
            }
        };
        for v in victims {
            let reason = format!("evicted ({}) for {}", policy.as_str(), row.name);
            self.release(v, &reason).await;
        }
        self.emit(
            PoolEventKind::Loading,
            &row.name,
            &why.label(),
            Some(need),
            None,
        );
        let opts = {
            let s = self.settings.borrow();
            engine::LoadOptions {
                max_batch: s.batch,
                max_queued: s.queue.max(s.batch),
                disk_cache: (s.disk_cache_bytes > 0).then(|| {
                    engine::disk_cache::DiskCacheOptions {
                        dir: self.prefix_cache_dir.clone(),
                        max_bytes: s.disk_cache_bytes,
                        block_tokens: engine::disk_cache::DEFAULT_BLOCK_TOKENS,
                        min_tokens: engine::disk_cache::DEFAULT_MIN_TOKENS,
                    }
                }),
                ..engine::LoadOptions::default()
            }
        };
        let handle = match engine::load(&path, opts).await {
            Ok(h) => h,
            Err(e) => {
                self.emit(
                    PoolEventKind::LoadFailed,
                    &row.name,
                    &why.label(),
                    None,
                    Some(&e),
                );
                return Err(e);
            }
        };
        let now = now_ms();
        let mut slot = Slot {
            id: row.id,
            name: row.name.clone(),
            context: context.min(handle.info().context_length),
            handle,
            estimate,
            pinned: row.pinned,
            ttl_seconds: row.ttl_seconds.map(|t| t.max(1) as u64),
            leases: Arc::new(AtomicUsize::new(0)),
            uses: 0,
            popularity: Popularity::default(),
            last_used_ms: now,
            last_touched_ms: 0,
            loaded_ms: now,
        };
        let lease = (why == Why::Request).then(|| Self::lease(&mut slot, &self.db));
        let lease = match lease {
            Some(l) => l,
            // Held only until the caller drops it: a command or preload does not count as a use.
            None => {
                slot.leases.fetch_add(1, Ordering::AcqRel);
                Lease {
                    handle: slot.handle.clone(),
                    context: slot.context,
                    _busy: Busy(slot.leases.clone()),
                }
            }
        };
        let bytes = slot.handle.measured_bytes();
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(slot.id, slot);
        self.emit(
            PoolEventKind::Loaded,
            &row.name,
            &why.label(),
            Some(bytes),
            None,
        );
        // Measured larger than estimated may have pushed the total over the budget.
        self.enforce_budget("over budget after a load").await;
        Ok(lease)
    }

    /// Unload idle, unpinned models by the policy until the total fits the budget.
    async fn enforce_budget(&self, reason: &str) {
        let victims: Vec<Slot> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let (policy, budget) = {
                let s = self.settings.borrow();
                (s.eviction, s.limit.budget_bytes(self.physical_ram))
            };
            let cands = self.candidates(&slots);
            let mut used: u64 = cands.iter().map(|c| c.bytes).sum();
            let mut out = Vec::new();
            for id in policy::eviction_order(policy, now_ms(), &cands) {
                if used <= budget {
                    break;
                }
                if let Some(s) = slots.remove(&id) {
                    used = used.saturating_sub(s.charge());
                    out.push(s);
                }
            }
            out
        };
        for v in victims {
            self.release(v, reason).await;
        }
    }

    /// Unload models idle past their TTL.
    async fn reap(&self) {
        let victims: Vec<(Slot, i64)> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let now = now_ms();
            let cands = self.candidates(&slots);
            policy::expired(now, &cands)
                .into_iter()
                .filter_map(|id| slots.remove(&id))
                .map(|s| {
                    let idle = (now - s.last_used_ms) / 1000;
                    (s, idle)
                })
                .collect()
        };
        for (v, idle) in victims {
            self.release(v, &format!("idle {idle}s (ttl)")).await;
        }
    }

    /// Re-read the loaded models' rows (pin, TTL, context) when the store changed: the
    /// CLI pins a model in another process.
    async fn sync_rows(&self) {
        let Ok(rev) = crate::store::revision(&self.db).await else {
            return;
        };
        if rev == self.rows_revision.load(Ordering::Acquire) {
            return;
        }
        let ids: Vec<i64> = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.keys().copied().collect()
        };
        let Ok(rows) = model::Entity::find()
            .filter(model::Column::Id.is_in(ids.clone()))
            .all(&self.db)
            .await
        else {
            return;
        };
        let gone: Vec<Slot> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            for r in &rows {
                if let Some(s) = slots.get_mut(&r.id) {
                    s.pinned = r.pinned;
                    s.ttl_seconds = r.ttl_seconds.map(|t| t.max(1) as u64);
                    s.context = context_for(r, s.estimate.context_length)
                        .min(s.handle.info().context_length);
                }
            }
            let idle_gone: Vec<i64> = ids
                .iter()
                .filter(|id| !rows.iter().any(|r| r.id == **id))
                .filter(|id| slots.get(id).is_some_and(|s| s.in_flight() == 0))
                .copied()
                .collect();
            idle_gone.iter().filter_map(|id| slots.remove(id)).collect()
        };
        for s in gone {
            self.release(s, "removed from the registry").await;
        }
        self.rows_revision.store(rev, Ordering::Release);
    }

    /// Load the preload list, in order, into free room only.
    async fn preload(self: &Arc<Self>, names: Vec<String>) {
        let n = names.len();
        for (i, name) in names.into_iter().enumerate() {
            let why = Why::Preload(format!("preload {}/{n}", i + 1));
            match find(&self.db, &name).await {
                Ok(row) => {
                    let _ = self.clone().load_row(row, why).await;
                }
                Err(e) => self.emit(
                    PoolEventKind::LoadFailed,
                    &name,
                    &why.label(),
                    None,
                    Some(&e),
                ),
            }
        }
    }
}

/// Refuse to remove a model that the running gateway has loaded or that the pool
/// preloads (`model_in_use`): unload it / take it off the preload list first.
pub async fn check_removable(app: &App, row: &model::Model) -> Result<()> {
    let preload = crate::settings::pool::load(&app.db).await?.preload;
    if preload.contains(&row.name) {
        return Err(Error::new(
            Code::ModelInUse,
            format!(
                "{} is in the pool's preload list; take it off first (`switchyard pool set --preload ...`)",
                row.name
            ),
        ));
    }
    let loaded = match app.pool() {
        Some(p) => p.loaded(),
        None => control::loaded(app.data_dir()).await?.unwrap_or_default(),
    };
    if loaded.iter().any(|m| m.id == row.id) {
        return Err(Error::new(
            Code::ModelInUse,
            format!(
                "{} is loaded in the running gateway; unload it first (`switchyard models unload {}`)",
                row.name, row.id
            ),
        ));
    }
    Ok(())
}

fn find_err(name: &str) -> Error {
    Error::new(
        Code::ModelNotFound,
        format!("no local model is named {name:?}"),
    )
}

async fn find(db: &DatabaseConnection, name: &str) -> Result<model::Model> {
    crate::models::find(db, name)
        .await?
        .ok_or_else(|| find_err(name))
}

fn insufficient(
    name: &str,
    est: &MemoryEstimate,
    context: u32,
    budget: u64,
    slots: &HashMap<i64, Slot>,
    why: &Why,
) -> Error {
    let loaded: Vec<String> = slots
        .values()
        .map(|s| {
            let mut tags = Vec::new();
            if s.pinned {
                tags.push("pinned".to_string());
            }
            let n = s.in_flight();
            if n > 0 {
                tags.push(format!("serving {n}"));
            }
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(" ({})", tags.join(", "))
            };
            format!("{} {}{tags}", s.name, mb(s.charge()))
        })
        .collect();
    let held = if loaded.is_empty() {
        "nothing is loaded".to_string()
    } else {
        format!("loaded: {}", loaded.join(", "))
    };
    let hint = if matches!(why, Why::Preload(_)) {
        "preloads only use free room"
    } else {
        "unpin or unload a model, raise the limit (`switchyard pool set --limit`), or give this model a smaller context (`switchyard models set ID --context N`)"
    };
    Error::new(
        Code::InsufficientMemory,
        format!(
            "{name} needs about {} (weights {} + KV cache for {context} tokens) and does not fit the pool's budget of {}; {held}; {hint}",
            mb(est.footprint(context)),
            mb(est.weights_bytes),
            mb(budget),
        ),
    )
}

/// Follow the settings (budget, TTL, preload), reap idle models, sync rows; preload at start.
async fn background(weak: Weak<Pool>) {
    let (mut settings, first) = match weak.upgrade() {
        Some(p) => {
            let s = p.settings.clone();
            let preload = s.borrow().preload.clone();
            (s, preload)
        }
        None => return,
    };
    if let Some(p) = weak.upgrade() {
        tokio::spawn(async move { p.preload(first).await });
    }
    let mut last_preload = settings.borrow().preload.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(p) = weak.upgrade() else { return };
                p.sync_rows().await;
                p.reap().await;
            }
            changed = settings.changed() => {
                if changed.is_err() { return; }
                let Some(p) = weak.upgrade() else { return };
                p.enforce_budget("budget lowered").await;
                let now = settings.borrow_and_update().preload.clone();
                let added: Vec<String> = now.iter().filter(|n| !last_preload.contains(n)).cloned().collect();
                last_preload = now;
                if !added.is_empty() {
                    tokio::spawn(async move { p.preload(added).await });
                }
            }
        }
    }
}
