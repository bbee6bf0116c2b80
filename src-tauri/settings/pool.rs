//! The model pool's configuration: how much memory loaded models may use, how the
//! pool picks a model to unload, when idle models are unloaded, and which models to
//! load at start.
//!
//! The pool itself is built later; this module stores, validates and publishes the
//! configuration (a `watch` channel on [`App`]) so the pool can follow changes
//! without polling the database.
//!
//! "GB" means 2^30 bytes: the unit in which machines' RAM is sold and shown (a
//! "16 GB" Mac reports 17,179,869,184 bytes), so `--limit 16GB` fits a 16 GB machine.

use super::Warning;
use crate::app::App;
use crate::error::{Code, Error, Result};
use crate::store::audit::{self, Actor};
use crate::store::entities::{model, pool_config};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const GB: u64 = 1 << 30;
pub const MIN_PERCENT: f64 = 1.0;
pub const MAX_PERCENT: f64 = 95.0;
/// Longest idle TTL accepted.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
pub const MAX_PRELOAD: usize = 64;
/// Most generations a model runs together.
pub const MAX_BATCH: usize = 64;
/// Most generations a model accepts at once (running and waiting).
pub const MAX_QUEUE: usize = 1024;
/// Default bytes of the prefix cache on disk.
pub const DEFAULT_DISK_CACHE_BYTES: u64 = 4 * GB;
/// Most bytes the prefix cache on disk may take.
pub const MAX_DISK_CACHE_BYTES: u64 = 4096 * GB;

/// The memory limit as the user set it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Percent of physical RAM (1–95).
    Percent(f64),
    /// GB (2^30 bytes), > 0 and at most the physical RAM.
    Gb(f64),
}

impl Limit {
    /// Parse `75%`, `12GB`, `12G`, `1.5GiB` (case-insensitive). Ranges are checked by
    /// [`Limit::validate`], which needs the machine's RAM.
    pub fn parse(s: &str) -> Result<Limit> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::new(
                Code::PoolConfigInvalid,
                format!(
                    "bad memory limit {s:?}: give a percent of RAM like 75% or a size like 12GB"
                ),
            )
        };
        let (num, percent) = if let Some(n) = t.strip_suffix('%') {
            (n, true)
        } else if let Some(n) = ["gib", "gb", "g"].iter().find_map(|u| t.strip_suffix(u)) {
            (n, false)
        } else {
            return Err(bad());
        };
        let v: f64 = num.trim().parse().map_err(|_| bad())?;
        if !v.is_finite() {
            return Err(bad());
        }
        Ok(if percent {
            Limit::Percent(v)
        } else {
            Limit::Gb(v)
        })
    }

    /// Check the range against this machine's RAM.
    pub fn validate(self, physical_ram: u64) -> Result<()> {
        match self {
            Limit::Percent(p) if !(MIN_PERCENT..=MAX_PERCENT).contains(&p) => Err(Error::new(
                Code::PoolConfigInvalid,
                format!(
                    "memory limit {} is out of range: a percent of RAM must be between {MIN_PERCENT:.0}% and {MAX_PERCENT:.0}% (the system needs the rest)",
                    self.label()
                ),
            )),
            Limit::Gb(g) if g <= 0.0 => Err(Error::new(
                Code::PoolConfigInvalid,
                format!("memory limit {} must be more than 0", self.label()),
            )),
            Limit::Gb(g) if g * GB as f64 > physical_ram as f64 => Err(Error::new(
                Code::PoolConfigInvalid,
                format!(
                    "memory limit {} is more than this machine's {} of RAM",
                    self.label(),
                    human_gb(physical_ram)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Bytes the pool may use on a machine with `physical_ram` bytes. A GB limit
    /// stored on a bigger machine is capped at this one's RAM.
    pub fn budget_bytes(self, physical_ram: u64) -> u64 {
        match self {
            Limit::Percent(p) => (physical_ram as f64 * p / 100.0).floor() as u64,
            Limit::Gb(g) => ((g * GB as f64).floor() as u64).min(physical_ram),
        }
    }

    /// `75%` or `12GB`: how the limit is written on the command line.
    pub fn label(self) -> String {
        match self {
            Limit::Percent(p) => format!("{}%", num(p)),
            Limit::Gb(g) => format!("{}GB", num(g)),
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Limit::Percent(_) => "percent",
            Limit::Gb(_) => "gb",
        }
    }

    pub fn value(self) -> f64 {
        match self {
            Limit::Percent(v) | Limit::Gb(v) => v,
        }
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn human_gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / GB as f64)
}

/// Which loaded model the pool unloads when it needs room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// Least recently used.
    Lru,
    /// Least frequently used.
    Lfu,
    /// Idle longer than the TTL first, then least recently used.
    Ttl,
}

impl Eviction {
    pub fn parse(s: &str) -> Result<Eviction> {
        match s.trim() {
            "lru" => Ok(Eviction::Lru),
            "lfu" => Ok(Eviction::Lfu),
            "ttl" => Ok(Eviction::Ttl),
            other => Err(Error::new(
                Code::PoolConfigInvalid,
                format!("unknown eviction policy {other:?}: use lru, lfu or ttl"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Eviction::Lru => "lru",
            Eviction::Lfu => "lfu",
            Eviction::Ttl => "ttl",
        }
    }
}

/// Parse `30s`, `15m`, `2h`, `1d` into seconds (1 s up to 30 days).
pub fn parse_duration(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let bad = |why: &str| {
        Error::new(
            Code::PoolConfigInvalid,
            format!("bad duration {s:?}: {why} (examples: 30s, 15m, 2h, 1d)"),
        )
    };
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| bad("a unit is required"))?;
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad("expected a whole number"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad("the unit must be s, m, h or d")),
    };
    let secs = n.checked_mul(mult).ok_or_else(|| bad("too long"))?;
    if secs == 0 {
        return Err(bad("must be at least 1s"));
    }
    if secs > MAX_TTL_SECONDS {
        return Err(bad("must be at most 30d"));
    }
    Ok(secs)
}

/// `900` → `15m`, for display.
pub fn format_duration(secs: u64) -> String {
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// The configuration as published to the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    pub limit: Limit,
    pub eviction: Eviction,
    /// Idle time after which a model is unloaded (required for `ttl` eviction,
    /// optional for the others).
    pub ttl_seconds: Option<u64>,
    pub preload: Vec<String>,
    /// Generations a model runs together (their decode steps batched).
    pub batch: usize,
    /// Generations a model accepts at once, running and waiting; the next is
    /// `model_busy`.
    pub queue: usize,
    /// Bytes the prefix cache may keep on disk, all models together (0 = off).
    pub disk_cache_bytes: u64,
    /// Store revision this was read at; an older value never replaces a newer one.
    pub revision: i64,
}

impl Default for PoolSettings {
    /// The seeded row of the initial migration.
    fn default() -> Self {
        PoolSettings {
            limit: Limit::Percent(75.0),
            eviction: Eviction::Lru,
            ttl_seconds: None,
            preload: Vec::new(),
            batch: crate::engine::DEFAULT_MAX_BATCH,
            queue: crate::engine::DEFAULT_MAX_QUEUED,
            disk_cache_bytes: DEFAULT_DISK_CACHE_BYTES,
            revision: 0,
        }
    }
}

/// A change: `None` keeps a field; `ttl: Some(None)` clears the idle TTL.
#[derive(Debug, Clone, Default)]
pub struct PoolChange {
    pub limit: Option<Limit>,
    pub eviction: Option<Eviction>,
    pub ttl: Option<Option<u64>>,
    pub preload: Option<Vec<String>>,
    pub batch: Option<usize>,
    pub queue: Option<usize>,
    pub disk_cache_bytes: Option<u64>,
}

impl PoolChange {
    pub fn is_empty(&self) -> bool {
        self.limit.is_none()
            && self.eviction.is_none()
            && self.ttl.is_none()
            && self.preload.is_none()
            && self.batch.is_none()
            && self.queue.is_none()
            && self.disk_cache_bytes.is_none()
    }
}

/// Parse a disk cache size: `4GB`, `512MB`, `0` or `off`.
pub fn parse_disk_cache(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "off" || t == "0" {
        return Ok(0);
    }
    let bad = || {
        Error::new(
            Code::PoolConfigInvalid,
            format!("bad disk cache size {s:?}: give a size like 4GB or 512MB, or off"),
        )
    };
    let (num, unit) = if let Some(n) = ["gib", "gb", "g"].iter().find_map(|u| t.strip_suffix(u)) {
        (n, GB as f64)
    } else if let Some(n) = ["mib", "mb", "m"].iter().find_map(|u| t.strip_suffix(u)) {
        (n, (1u64 << 20) as f64)
    } else {
        return Err(bad());
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = v * unit;
    if !bytes.is_finite() || bytes < 0.0 || bytes > MAX_DISK_CACHE_BYTES as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// What `pool show` prints (interfaces.md: `limit`, `budget_bytes`, `eviction`,
/// `ttl_seconds`, `preload`, `loaded`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PoolView {
    pub limit: String,
    pub limit_kind: &'static str,
    pub limit_value: f64,
    /// The limit in bytes on this machine.
    pub budget_bytes: u64,
    pub physical_ram_bytes: u64,
    pub eviction: Eviction,
    pub ttl_seconds: Option<u64>,
    pub preload: Vec<String>,
    /// Generations a model runs together.
    pub batch: usize,
    /// Generations a model accepts at once (running and waiting).
    pub queue: usize,
    /// Bytes the prefix cache may keep on disk (0 = off).
    pub disk_cache_bytes: u64,
    /// Models loaded now in the process that serves this data dir (this one, or the
    /// `serve` / app process the CLI asks through the pool socket).
    pub loaded: Vec<crate::pool::LoadedModel>,
    /// Whether a process with a model pool (the gateway) runs for this data dir.
    pub serving: bool,
    pub warnings: Vec<Warning>,
}

/// Physical RAM of this machine in bytes.
pub fn physical_ram_bytes() -> Result<u64> {
    ram::physical()
}

#[cfg(target_os = "linux")]
mod ram {
    use crate::error::{Code, Error, Result};

    pub fn physical() -> Result<u64> {
        let text = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| Error::new(Code::Io, format!("cannot read /proc/meminfo: {e}")))?;
        parse_meminfo(&text)
            .ok_or_else(|| Error::new(Code::Io, "no MemTotal line in /proc/meminfo".to_string()))
    }

    /// `MemTotal:       16318208 kB` → bytes.
    pub fn parse_meminfo(text: &str) -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let mut parts = line["MemTotal:".len()..].split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | Some("KB") => n.checked_mul(1024),
            None => Some(n),
            Some(_) => None,
        }
    }
}

#[cfg(target_os = "macos")]
mod ram {
    use crate::error::{Code, Error, Result};

    pub fn physical() -> Result<u64> {
        let mut bytes: u64 = 0;
        let mut len = std::mem::size_of::<u64>();
        // SAFETY: hw.memsize is a 64-bit integer; we pass a buffer of exactly that
        // size and its length, and no new value.
        let rc = unsafe {
            libc::sysctlbyname(
                c"hw.memsize".as_ptr(),
                (&mut bytes as *mut u64).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 || bytes == 0 {
            return Err(Error::new(
                Code::Io,
                format!(
                    "sysctl hw.memsize failed: {}",
                    std::io::Error::last_os_error()
                ),
            ));
        }
        Ok(bytes)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod ram {
    use crate::error::{Code, Error, Result};

    pub fn physical() -> Result<u64> {
        Err(Error::new(
            Code::Io,
            "physical RAM is not known on this platform",
        ))
    }
}

fn from_row(r: &pool_config::Model, revision: i64) -> Result<PoolSettings> {
    let limit = match r.limit_kind.as_str() {
        "percent" => Limit::Percent(r.limit_value),
        "gb" => Limit::Gb(r.limit_value),
        other => {
            return Err(Error::internal(format!(
                "pool_config has unknown limit kind {other:?}"
            )));
        }
    };
    let preload: Vec<String> = serde_json::from_str(&r.preload).map_err(|e| {
        Error::internal(format!(
            "pool_config.preload is not a JSON list of names: {e}"
        ))
    })?;
    Ok(PoolSettings {
        limit,
        eviction: Eviction::parse(&r.eviction)?,
        ttl_seconds: r.ttl_seconds.map(|t| t.max(0) as u64),
        preload,
        batch: r.batch.clamp(1, MAX_BATCH as i64) as usize,
        queue: r.queue.clamp(1, MAX_QUEUE as i64) as usize,
        disk_cache_bytes: r.disk_cache_bytes.max(0) as u64,
        revision,
    })
}

/// Write `s` as the one `pool_config` row (inserted when the seeded row is missing).
pub(crate) async fn save_row<C: ConnectionTrait>(conn: &C, s: &PoolSettings) -> Result<()> {
    let row = pool_config::ActiveModel {
        id: Set(1),
        limit_kind: Set(s.limit.kind().to_string()),
        limit_value: Set(s.limit.value()),
        eviction: Set(s.eviction.as_str().to_string()),
        ttl_seconds: Set(s.ttl_seconds.map(|t| t as i64)),
        preload: Set(serde_json::to_string(&s.preload)?),
        batch: Set(s.batch as i64),
        queue: Set(s.queue as i64),
        disk_cache_bytes: Set(s.disk_cache_bytes as i64),
        updated_at: Set(crate::store::now_ms()),
    };
    if pool_config::Entity::find_by_id(1)
        .one(conn)
        .await?
        .is_some()
    {
        row.update(conn).await?;
    } else {
        row.insert(conn).await?;
    }
    Ok(())
}

/// The stored configuration (the seeded default if the row is missing).
pub async fn load<C: ConnectionTrait>(db: &C) -> Result<PoolSettings> {
    let revision = crate::store::revision(db).await?;
    match pool_config::Entity::find_by_id(1).one(db).await? {
        Some(r) => from_row(&r, revision),
        None => Ok(PoolSettings {
            revision,
            ..Default::default()
        }),
    }
}

/// Hand `s` to the pool unless what it has is newer.
fn publish(app: &App, s: PoolSettings) {
    app.pool_settings.send_if_modified(|cur| {
        if s.revision >= cur.revision && *cur != s {
            *cur = s;
            true
        } else {
            false
        }
    });
}

/// Re-read the store and publish (after another process changed it).
pub async fn republish(app: &App) -> Result<()> {
    let s = load(&app.db).await?;
    publish(app, s);
    Ok(())
}

async fn unknown_models<C: ConnectionTrait>(db: &C, names: &[String]) -> Result<Vec<Warning>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let known: std::collections::HashSet<String> = model::Entity::find()
        .filter(model::Column::Name.is_in(names.iter().cloned()))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.name)
        .collect();
    Ok(names
        .iter()
        .filter(|n| !known.contains(*n))
        .map(|n| {
            Warning::new(
                Code::ModelNotFound.as_str(),
                format!("preload: no local model named {n:?} is registered; it will be skipped until one is"),
            )
        })
        .collect())
}

async fn view<C: ConnectionTrait>(db: &C, s: &PoolSettings) -> Result<PoolView> {
    let ram = physical_ram_bytes()?;
    let mut warnings = Vec::new();
    if let Limit::Gb(g) = s.limit
        && g * GB as f64 > ram as f64
    {
        warnings.push(Warning::new(
            Code::PoolConfigInvalid.as_str(),
            format!(
                "the limit {} is more than this machine's {} of RAM; the budget is capped at the RAM",
                s.limit.label(),
                human_gb(ram)
            ),
        ));
    }
    warnings.extend(unknown_models(db, &s.preload).await?);
    Ok(PoolView {
        limit: s.limit.label(),
        limit_kind: s.limit.kind(),
        limit_value: s.limit.value(),
        budget_bytes: s.limit.budget_bytes(ram),
        physical_ram_bytes: ram,
        eviction: s.eviction,
        ttl_seconds: s.ttl_seconds,
        preload: s.preload.clone(),
        batch: s.batch,
        queue: s.queue,
        disk_cache_bytes: s.disk_cache_bytes,
        loaded: Vec::new(),
        serving: false,
        warnings,
    })
}

/// Fill in the loaded models: from this process's pool, else from the process that
/// serves the data dir (through its pool socket).
async fn with_loaded(app: &App, mut v: PoolView) -> Result<PoolView> {
    if let Some(pool) = app.pool() {
        v.loaded = pool.loaded();
        v.serving = true;
    } else if let Some(loaded) = crate::pool::control::loaded(app.data_dir()).await? {
        v.loaded = loaded;
        v.serving = true;
    }
    Ok(v)
}

/// The stored configuration with this machine's byte budget.
pub async fn show(app: &App) -> Result<PoolView> {
    let s = load(&app.db).await?;
    let v = view(&app.db, &s).await?;
    with_loaded(app, v).await
}

/// Trim, drop empties and repeats (keeping the first), and bound the list.
fn normalize_preload(names: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim();
        if n.is_empty() || out.iter().any(|o| o == n) {
            continue;
        }
        if n.chars().count() > crate::routing::pattern::MAX_PATTERN_CHARS {
            return Err(Error::new(
                Code::PoolConfigInvalid,
                "a preload model name is longer than 512 characters",
            ));
        }
        out.push(n.to_string());
    }
    if out.len() > MAX_PRELOAD {
        return Err(Error::new(
            Code::PoolConfigInvalid,
            format!("at most {MAX_PRELOAD} models can be preloaded"),
        ));
    }
    Ok(out)
}

/// The engine settings' ranges (`pool set` and a backup's pool both pass here).
pub fn check_engine(batch: usize, queue: usize, disk_cache_bytes: u64) -> Result<()> {
    let bad = |m: String| Err(Error::new(Code::PoolConfigInvalid, m));
    if !(1..=MAX_BATCH).contains(&batch) {
        return bad(format!(
            "the batch must be between 1 and {MAX_BATCH} generations"
        ));
    }
    if !(1..=MAX_QUEUE).contains(&queue) {
        return bad(format!(
            "the queue must be between 1 and {MAX_QUEUE} generations"
        ));
    }
    if disk_cache_bytes > MAX_DISK_CACHE_BYTES {
        return bad("the disk cache may take at most 4096GB".into());
    }
    if queue < batch {
        return bad(format!(
            "the queue ({queue}) must hold at least the batch ({batch}): it counts running generations too"
        ));
    }
    Ok(())
}

/// Apply `change`: validated in full before anything is written; one transaction
/// with its audit row; published to the pool after the commit.
pub async fn set(app: &App, actor: Actor, change: PoolChange) -> Result<PoolView> {
    if change.is_empty() {
        return Err(Error::invalid(
            "nothing to change: give at least one of --limit, --eviction, --ttl, --preload, --batch, --queue, --disk-cache",
        ));
    }
    if let Some(limit) = change.limit {
        limit.validate(physical_ram_bytes()?)?;
    }
    if let Some(Some(ttl)) = change.ttl
        && !(1..=MAX_TTL_SECONDS).contains(&ttl)
    {
        return Err(Error::new(
            Code::PoolConfigInvalid,
            "the idle TTL must be between 1s and 30d",
        ));
    }
    let preload = change.preload.clone().map(normalize_preload).transpose()?;
    let txn = crate::store::begin_immediate(&app.db).await?;
    let before = load(&txn).await?;
    let mut next = before.clone();
    if let Some(l) = change.limit {
        next.limit = l;
    }
    if let Some(e) = change.eviction {
        next.eviction = e;
    }
    if let Some(t) = change.ttl {
        next.ttl_seconds = t;
    }
    if let Some(p) = preload {
        next.preload = p;
    }
    if let Some(b) = change.batch {
        next.batch = b;
    }
    if let Some(q) = change.queue {
        next.queue = q;
    }
    if let Some(d) = change.disk_cache_bytes {
        next.disk_cache_bytes = d;
    }
    check_engine(next.batch, next.queue, next.disk_cache_bytes)?;
    if next.eviction == Eviction::Ttl && next.ttl_seconds.is_none() {
        return Err(Error::new(
            Code::PoolConfigInvalid,
            "ttl eviction needs an idle TTL: add --ttl (e.g. --ttl 15m)",
        ));
    }
    save_row(&txn, &next).await?;
    audit::record(
        &txn,
        actor,
        "pool.set",
        None,
        json!({
            "before": settings_json(&before),
            "after": settings_json(&next),
        }),
    )
    .await?;
    next.revision = crate::store::revision(&txn).await?;
    let shown = view(&txn, &next).await?;
    txn.commit().await?;
    publish(app, next);
    with_loaded(app, shown).await
}

fn settings_json(s: &PoolSettings) -> serde_json::Value {
    json!({
        "limit": s.limit.label(),
        "eviction": s.eviction,
        "ttl_seconds": s.ttl_seconds,
        "preload": s.preload,
        "batch": s.batch,
        "queue": s.queue,
        "disk_cache_bytes": s.disk_cache_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_cache_sizes_parse_and_off_is_zero() {
        assert_eq!(parse_disk_cache("4GB").unwrap(), 4 * GB);
        assert_eq!(parse_disk_cache(" 512mb ").unwrap(), 512 << 20);
        assert_eq!(parse_disk_cache("1.5G").unwrap(), 3 * GB / 2);
        assert_eq!(parse_disk_cache("off").unwrap(), 0);
        assert_eq!(parse_disk_cache("0").unwrap(), 0);
        for bad in ["4", "", "lots", "-1GB", "5000GB", "nanGB", "4TB"] {
            let e = parse_disk_cache(bad).unwrap_err();
            assert_eq!(e.code, Code::PoolConfigInvalid, "{bad:?}");
        }
    }

    #[test]
    fn limits_parse_percent_and_gb_forms() {
        assert_eq!(Limit::parse("75%").unwrap(), Limit::Percent(75.0));
        assert_eq!(Limit::parse(" 12.5 % ").unwrap(), Limit::Percent(12.5));
        assert_eq!(Limit::parse("12GB").unwrap(), Limit::Gb(12.0));
        assert_eq!(Limit::parse("12gb").unwrap(), Limit::Gb(12.0));
        assert_eq!(Limit::parse("1.5GiB").unwrap(), Limit::Gb(1.5));
        assert_eq!(Limit::parse("8G").unwrap(), Limit::Gb(8.0));
        for bad in [
            "75", "", "%", "GB", "twelveGB", "12MB", "nan%", "inf%", "1e400GB",
        ] {
            let e = Limit::parse(bad).unwrap_err();
            assert_eq!(e.code, Code::PoolConfigInvalid, "{bad:?}");
        }
    }

    #[test]
    fn limit_ranges_are_checked_against_the_ram() {
        let ram = 16 * GB;
        for ok in ["1%", "95%", "50%", "16GB", "0.5GB"] {
            Limit::parse(ok).unwrap().validate(ram).unwrap();
        }
        for bad in [
            "0%", "0.99%", "95.01%", "200%", "-5%", "0GB", "-1GB", "16.01GB",
        ] {
            let e = Limit::parse(bad).unwrap().validate(ram).unwrap_err();
            assert_eq!(e.code, Code::PoolConfigInvalid, "{bad}");
        }
    }

    #[test]
    fn the_budget_is_the_share_of_ram_or_the_size_capped_at_ram() {
        let ram = 16 * GB;
        assert_eq!(Limit::Percent(75.0).budget_bytes(ram), 12 * GB);
        assert_eq!(Limit::Gb(4.0).budget_bytes(ram), 4 * GB);
        assert_eq!(Limit::Gb(64.0).budget_bytes(ram), ram);
        assert_eq!(Limit::Percent(75.0).label(), "75%");
        assert_eq!(Limit::Gb(1.5).label(), "1.5GB");
    }

    #[test]
    fn durations_take_one_unit_and_stay_in_range() {
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("2H").unwrap(), 7200);
        assert_eq!(parse_duration("1d").unwrap(), 86400);
        for bad in [
            "",
            "15",
            "m",
            "0s",
            "15x",
            "1.5h",
            "-1m",
            "31d",
            "99999999999999999999s",
        ] {
            assert_eq!(
                parse_duration(bad).unwrap_err().code,
                Code::PoolConfigInvalid,
                "{bad:?}"
            );
        }
        assert_eq!(format_duration(900), "15m");
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(90), "90s");
    }

    #[test]
    fn preload_lists_are_trimmed_and_deduplicated() {
        let v = normalize_preload(vec![" a ".into(), "".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(v, vec!["a", "b"]);
        let many = (0..=MAX_PRELOAD).map(|i| format!("m{i}")).collect();
        assert_eq!(
            normalize_preload(many).unwrap_err().code,
            Code::PoolConfigInvalid
        );
    }

    async fn open() -> (tempfile::TempDir, crate::app::SharedApp) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::app::AppOptions {
            data_dir: Some(dir.path().to_path_buf()),
            vault: crate::vault::BackendKind::File,
        })
        .await
        .unwrap();
        (dir, app)
    }

    async fn dump(app: &App) -> String {
        let pool = pool_config::Entity::find().all(&app.db).await.unwrap();
        let audit = crate::store::entities::audit_log::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        format!("{pool:?}\n{audit:?}")
    }

    #[tokio::test]
    async fn a_set_is_stored_audited_and_published_to_subscribers() {
        let (_d, app) = open().await;
        let mut rx = app.pool_settings.subscribe();
        assert_eq!(rx.borrow_and_update().limit, Limit::Percent(75.0));
        let v = set(
            &app,
            Actor::Ui,
            PoolChange {
                limit: Some(Limit::Percent(50.0)),
                eviction: Some(Eviction::Ttl),
                ttl: Some(Some(900)),
                preload: Some(vec!["ghost".into()]),
                batch: Some(4),
                queue: Some(16),
                disk_cache_bytes: Some(0),
            },
        )
        .await
        .unwrap();
        assert_eq!(v.limit, "50%");
        assert_eq!(v.budget_bytes, v.physical_ram_bytes / 2);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert_eq!(v.warnings[0].code, "model_not_found");
        assert!(rx.has_changed().unwrap());
        let published = rx.borrow_and_update().clone();
        assert_eq!(published.eviction, Eviction::Ttl);
        assert_eq!(published.ttl_seconds, Some(900));
        assert_eq!(published.preload, vec!["ghost"]);
        assert_eq!(
            (published.batch, published.queue, published.disk_cache_bytes),
            (4, 16, 0)
        );
        let shown = show(&app).await.unwrap();
        assert_eq!(
            (shown.limit.as_str(), shown.ttl_seconds),
            ("50%", Some(900))
        );
        assert_eq!(
            (shown.batch, shown.queue, shown.disk_cache_bytes),
            (4, 16, 0)
        );
        assert!(shown.loaded.is_empty());
        let audit = crate::store::entities::audit_log::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].action.as_str(), audit[0].actor.as_str()),
            ("pool.set", "ui")
        );
    }

    #[tokio::test]
    async fn rejected_pool_changes_write_and_publish_nothing() {
        let (_d, app) = open().await;
        let mut rx = app.pool_settings.subscribe();
        rx.borrow_and_update();
        let before = dump(&app).await;
        let ram = physical_ram_bytes().unwrap();
        let too_big = Limit::Gb((ram / GB + 1) as f64);
        let cases = [
            PoolChange {
                limit: Some(Limit::Percent(0.0)),
                ..Default::default()
            },
            PoolChange {
                limit: Some(Limit::Percent(200.0)),
                ..Default::default()
            },
            PoolChange {
                limit: Some(too_big),
                ..Default::default()
            },
            PoolChange {
                eviction: Some(Eviction::Ttl),
                ..Default::default()
            },
            PoolChange {
                ttl: Some(Some(0)),
                ..Default::default()
            },
            PoolChange {
                batch: Some(0),
                ..Default::default()
            },
            PoolChange {
                batch: Some(65),
                queue: Some(100),
                ..Default::default()
            },
            // The queue counts running generations: it cannot be below the batch.
            PoolChange {
                batch: Some(16),
                ..Default::default()
            },
            PoolChange {
                queue: Some(1025),
                ..Default::default()
            },
            PoolChange {
                disk_cache_bytes: Some(MAX_DISK_CACHE_BYTES + 1),
                ..Default::default()
            },
        ];
        for c in cases {
            let e = set(&app, Actor::Cli, c.clone()).await.unwrap_err();
            assert_eq!(e.code, Code::PoolConfigInvalid, "{c:?}: {}", e.message);
            assert_eq!(e.code.exit_code(), 4);
        }
        assert_eq!(
            set(&app, Actor::Cli, PoolChange::default())
                .await
                .unwrap_err()
                .code,
            Code::InvalidArgument
        );
        assert_eq!(dump(&app).await, before);
        assert!(!rx.has_changed().unwrap());
    }

    #[tokio::test]
    async fn clearing_the_ttl_under_ttl_eviction_is_refused() {
        let (_d, app) = open().await;
        let change = PoolChange {
            eviction: Some(Eviction::Ttl),
            ttl: Some(Some(60)),
            ..Default::default()
        };
        set(&app, Actor::Cli, change).await.unwrap();
        let e = set(
            &app,
            Actor::Cli,
            PoolChange {
                ttl: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, Code::PoolConfigInvalid);
        let change = PoolChange {
            eviction: Some(Eviction::Lru),
            ttl: Some(None),
            ..Default::default()
        };
        assert_eq!(
            set(&app, Actor::Cli, change).await.unwrap().ttl_seconds,
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn meminfo_parsing_reads_memtotal_in_kib() {
        let text = "MemFree: 1 kB\nMemTotal:       16318208 kB\n";
        assert_eq!(ram::parse_meminfo(text), Some(16318208 * 1024));
        assert_eq!(ram::parse_meminfo("MemFree: 1 kB\n"), None);
        assert!(physical_ram_bytes().unwrap() > 64 << 20);
    }
}
