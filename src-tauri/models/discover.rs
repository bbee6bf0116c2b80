//! Models already on disk in other apps' caches, used in place (never copied): the
//! Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`: `models--ORG--NAME/snapshots/REV/…`, files symlinked into
//! `blobs/`) and LM Studio's models folder (`$SWITCHYARD_LMSTUDIO_MODELS`, else
//! `~/.lmstudio/models`: `PUBLISHER/REPO/…`).
//!
//! [`sync`] registers what it finds as registry rows (source `hf-cache` / `lmstudio`,
//! named `ORG/NAME`, or `ORG/NAME/FILE` for each GGUF file) and drops rows of those
//! sources whose files are gone. It is what `models list` and the Models page run; a
//! model is then routed, loaded and pinned like an imported one.
//!
//! The caches are other programs' folders, so they are read as hostile: headers only
//! (`engine::inspect`, under its budgets), at most [`MAX_REPOS`] repositories, a
//! symlink that leads outside the cache root makes its model skipped, and nothing that
//! fails to parse stops the listing.

use super::ModelEntry;
use crate::engine;
use crate::error::Result;
use crate::store::entities::model;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::path::{Path, PathBuf};

/// Repositories looked at per cache.
pub const MAX_REPOS: usize = 1000;

/// A model found in a cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub name: String,
    pub path: PathBuf,
    pub source: &'static str,
    pub revision: Option<String>,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The Hugging Face hub cache directory.
pub fn hf_cache_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p).join("hub"));
    }
    home().map(|h| h.join(".cache/huggingface/hub"))
}

/// LM Studio's models folder.
pub fn lmstudio_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SWITCHYARD_LMSTUDIO_MODELS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    home().map(|h| h.join(".lmstudio/models"))
}

/// Every entry of `dir` resolves inside `root` (symlinks included).
fn stays_inside(dir: &Path, root: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().all(|e| {
        std::fs::canonicalize(e.path())
            .map(|p| p.starts_with(root))
            .unwrap_or(false)
    })
}

/// Models in one folder: the folder itself when it has a config.json, and each GGUF
/// file in it.
pub(crate) fn models_in(
    dir: &Path,
    root: &Path,
    name: &str,
    source: &'static str,
    rev: Option<&str>,
) -> Vec<Found> {
    let mut out = Vec::new();
    if !stays_inside(dir, root) {
        tracing::debug!(
            "skipping {}: a link leads outside {}",
            dir.display(),
            root.display()
        );
        return out;
    }
    let found = |n: String, p: PathBuf| Found {
        name: n,
        path: p,
        source,
        revision: rev.map(str::to_string),
    };
    if dir.join("config.json").is_file() {
        out.push(found(name.to_string(), dir.to_path_buf()));
    }
    let mut ggufs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
        })
        .collect();
    ggufs.sort();
    for p in ggufs {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(found(format!("{name}/{stem}"), p));
    }
    // File names are someone else's: no control characters, bounded like an import's.
    out.retain(|f| f.name.len() <= 200 && !f.name.chars().any(char::is_control));
    out
}

fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Models in the Hugging Face cache at `root` (the revision `refs/main` names, else the
/// newest snapshot).
pub fn scan_hf_cache(root: &Path) -> Vec<Found> {
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&root) else {
        return out;
    };
    let mut repos: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    repos.sort();
    for repo in repos.into_iter().take(MAX_REPOS) {
        let Some(dir_name) = repo.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = dir_name.strip_prefix("models--") else {
            continue;
        };
        let Some((org, name)) = rest.split_once("--") else {
            continue;
        };
        if !safe_component(org) || !safe_component(name) {
            continue;
        }
        let snapshots = repo.join("snapshots");
        let main = std::fs::read_to_string(repo.join("refs/main"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| safe_component(s) && snapshots.join(s).is_dir());
        let rev = main.or_else(|| {
            std::fs::read_dir(&snapshots)
                .ok()?
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.file_name())))
                .max()
                .and_then(|(_, n)| n.into_string().ok())
                .filter(|s| safe_component(s))
        });
        let Some(rev) = rev else { continue };
        out.extend(models_in(
            &snapshots.join(&rev),
            &root,
            &format!("{org}/{name}"),
            "hf-cache",
            Some(&rev),
        ));
    }
    out
}

/// Models in LM Studio's folder at `root` (`PUBLISHER/REPO/`).
pub fn scan_lmstudio(root: &Path) -> Vec<Found> {
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = 0;
    let Ok(pubs) = std::fs::read_dir(&root) else {
        return out;
    };
    for publisher in pubs.flatten() {
        let Ok(repos) = std::fs::read_dir(publisher.path()) else {
            continue;
        };
        for repo in repos.flatten() {
            seen += 1;
            if seen > MAX_REPOS {
                return out;
            }
            let (Some(p), Some(r)) = (
                publisher.file_name().to_str().map(str::to_string),
                repo.file_name().to_str().map(str::to_string),
            ) else {
                continue;
            };
            if safe_component(&p) && safe_component(&r) && repo.path().is_dir() {
                out.extend(models_in(
                    &repo.path(),
                    &root,
                    &format!("{p}/{r}"),
                    "lmstudio",
                    None,
                ));
            }
        }
    }
    out
}

/// Register new models found in the caches and drop rows of cache sources whose files
/// are gone. Models the user removed from the registry stay out (`models_dismissed`)
/// until they are imported or pulled again. Returns how many rows were added and removed.
pub async fn sync(db: &DatabaseConnection) -> Result<(usize, usize)> {
    let found = tokio::task::spawn_blocking(|| {
        let mut v = Vec::new();
        if let Some(r) = hf_cache_root() {
            v.extend(scan_hf_cache(&r));
        }
        if let Some(r) = lmstudio_root() {
            v.extend(scan_lmstudio(&r));
        }
        v
    })
    .await
    .unwrap_or_default();
    let rows = model::Entity::find().all(db).await?;
    let mut removed = 0;
    for r in &rows {
        let cached = matches!(r.source.as_deref(), Some("hf-cache" | "lmstudio"));
        if cached && !Path::new(&r.path).exists() {
            model::Entity::delete_by_id(r.id).exec(db).await?;
            removed += 1;
        }
    }
    let dismissed = super::dismissed(db).await?;
    let found: Vec<Found> = found
        .into_iter()
        .filter(|f| !dismissed.contains(&f.path.display().to_string()))
        .collect();
    let added = register(db, found).await?.len();
    Ok((added, removed))
}

/// [`sync`] in the background, for a starting gateway: models already in the caches are
/// routable by name without a `models list` first, and the start does not wait for it.
pub fn sync_in_background(db: &DatabaseConnection) {
    let db = db.clone();
    tokio::spawn(async move {
        match sync(&db).await {
            Ok((0, 0)) => {}
            Ok((added, removed)) => tracing::info!(
                "model caches: {added} new model(s) registered, {removed} gone from disk"
            ),
            Err(e) => tracing::warn!("could not look for models in the caches: {}", e.message),
        }
    });
}

/// Register the models in `found` that are not registered yet (by path) and return
/// the registry entries of all of them, new and old. A model whose headers do not parse
/// is skipped (logged); a taken name gets the source as a suffix.
pub(crate) async fn register(
    db: &DatabaseConnection,
    found: Vec<Found>,
) -> Result<Vec<ModelEntry>> {
    let mut out = Vec::new();
    for f in found {
        let path = f.path.display().to_string();
        super::undismiss(db, &path).await?;
        if let Some(row) = model::Entity::find()
            .filter(model::Column::Path.eq(&path))
            .one(db)
            .await?
        {
            out.push(row.into());
            continue;
        }
        let p = f.path.clone();
        let meta = match tokio::task::spawn_blocking(move || engine::inspect(&p)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::debug!("skipping {}: {}", f.path.display(), e.message);
                continue;
            }
            Err(_) => continue,
        };
        let mut name = f.name.clone();
        if model::Entity::find()
            .filter(model::Column::Name.eq(&name))
            .one(db)
            .await?
            .is_some()
        {
            name = format!("{name} ({})", f.source);
        }
        let row = super::new_row(&meta, name, path, f.source, f.revision.clone());
        if let Ok(row) = row.insert(db).await {
            out.push(row.into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_and_revisions_cannot_escape_the_cache() {
        for bad in ["", ".", "..", "a/b", "a\\b", "x y", "../etc"] {
            assert!(!safe_component(bad), "{bad:?}");
        }
        assert!(safe_component("SmolLM2-135M-Instruct"));
        assert!(safe_component("a1b2c3"));
    }
}
