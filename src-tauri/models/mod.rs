//! The local model registry: the `models` table, the models users imported (later
//! also downloaded), and the resolution of a user's `--model M` to a file or folder.
//!
//! The registry records where a model is; it does not own user files. Removing an entry
//! deletes files only when they live inside the data dir's `models/` folder; an imported
//! path elsewhere is left untouched, and a model of the Hugging Face cache or LM Studio's
//! folder (found by [`discover`], or downloaded there by [`pull`]) stays on disk and is
//! remembered as dismissed, so that discovery does not list it again.

pub mod discover;
pub mod pull;

use crate::engine::{self, ModelMetadata};
use crate::error::{Code, Error, Result};
use crate::store::audit::{self, Actor};
use crate::store::entities::model;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, Set, Statement, TransactionTrait,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A registry row as `models list --json` shows it (interfaces.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ModelEntry {
    pub id: i64,
    pub name: String,
    pub path: String,
    pub format: String,
    pub architecture: String,
    pub parameters: Option<i64>,
    /// Mixture-of-experts models only: the parameters one token runs through.
    pub active_parameters: Option<i64>,
    pub quantization: Option<String>,
    pub size_bytes: i64,
    pub context_length: Option<i64>,
    pub pinned: bool,
    /// In memory in the pool of the process that serves (filled in by the caller that
    /// asked the pool; false from the registry alone).
    pub loaded: bool,
    /// Where it came from: `import`, `hf-cache` (used in place), `lmstudio`.
    pub source: Option<String>,
    /// The Hugging Face snapshot revision, for `hf-cache` models.
    pub revision: Option<String>,
    /// Idle TTL of its own (seconds), over the pool's.
    pub ttl_seconds: Option<i64>,
    /// Context length the pool serves it with, over the default.
    pub context_override: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<model::Model> for ModelEntry {
    fn from(m: model::Model) -> Self {
        ModelEntry {
            id: m.id,
            name: m.name,
            path: m.path,
            format: m.format,
            architecture: m.architecture,
            parameters: m.parameters,
            active_parameters: m.active_parameters,
            quantization: m.quantization,
            size_bytes: m.size_bytes,
            context_length: m.context_length,
            pinned: m.pinned,
            loaded: false,
            source: m.source,
            revision: m.revision,
            ttl_seconds: m.ttl_seconds,
            context_override: m.context_override,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// The folder for downloaded models inside the data dir.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Names are what users type after `--model` and what clients send as `model`.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.chars().any(|c| c.is_control())
        && name.trim() == name
        && name.parse::<i64>().is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidArgument,
            format!(
                "model name {name:?} is not usable: it must be 1-200 printable characters without surrounding spaces, and not a number"
            ),
        ))
    }
}

/// Inspect `path` (GGUF file or model folder, headers only) and register it.
/// The same path twice, or a taken name, is `model_exists`.
pub async fn import(
    db: &DatabaseConnection,
    path: &Path,
    name: Option<String>,
    actor: Actor,
) -> Result<ModelEntry> {
    let p = path.to_path_buf();
    let meta: ModelMetadata = tokio::task::spawn_blocking(move || engine::inspect(&p))
        .await
        .map_err(|e| Error::internal(format!("inspecting the model crashed: {e}")))??;
    let path_str = std::fs::canonicalize(&meta.path)
        .unwrap_or_else(|_| meta.path.clone())
        .display()
        .to_string();
    let name = name.unwrap_or_else(|| meta.name.clone());
    validate_name(&name)?;
    let txn = db.begin().await?;
    if let Some(existing) = model::Entity::find()
        .filter(model::Column::Path.eq(&path_str))
        .one(&txn)
        .await?
    {
        return Err(Error::new(
            Code::ModelExists,
            format!(
                "{path_str} is already registered as '{}' (id {})",
                existing.name, existing.id
            ),
        ));
    }
    if model::Entity::find()
        .filter(model::Column::Name.eq(&name))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(Error::new(
            Code::ModelExists,
            format!("a model named '{name}' already exists; pick another with --name"),
        ));
    }
    let row = new_row(&meta, name.clone(), path_str.clone(), "import", None)
        .insert(&txn)
        .await?;
    undismiss(&txn, &path_str).await?;
    audit::record(
        &txn,
        actor,
        "model.import",
        Some(&name),
        serde_json::json!({"id": row.id, "path": path_str, "format": row.format}),
    )
    .await?;
    txn.commit().await?;
    Ok(row.into())
}

/// A new registry row for the model `meta` describes.
pub(crate) fn new_row(
    meta: &ModelMetadata,
    name: String,
    path: String,
    source: &str,
    revision: Option<String>,
) -> model::ActiveModel {
    model::ActiveModel {
        name: Set(name),
        path: Set(path),
        format: Set(meta.format.as_str().to_string()),
        architecture: Set(meta.architecture.clone()),
        parameters: Set(meta.parameters.map(|p| p as i64)),
        active_parameters: Set(meta.active_parameters.map(|p| p as i64)),
        quantization: Set(meta.quantization.clone()),
        size_bytes: Set(meta.size_bytes as i64),
        context_length: Set(meta.context_length.map(i64::from)),
        pinned: Set(false),
        source: Set(Some(source.to_string())),
        revision: Set(revision),
        created_at: Set(crate::store::now_ms()),
        last_used_at: Set(None),
        ..Default::default()
    }
}

pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<ModelEntry>> {
    Ok(model::Entity::find()
        .order_by_asc(model::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(ModelEntry::from)
        .collect())
}

/// A registered model by id (all digits) or exact name.
pub async fn find<C: ConnectionTrait>(db: &C, id_or_name: &str) -> Result<Option<model::Model>> {
    if let Ok(id) = id_or_name.parse::<i64>()
        && let Some(m) = model::Entity::find_by_id(id).one(db).await?
    {
        return Ok(Some(m));
    }
    Ok(model::Entity::find()
        .filter(model::Column::Name.eq(id_or_name))
        .one(db)
        .await?)
}

/// Remove a registry entry (and its files if they are inside `models_root`).
pub async fn remove(
    db: &DatabaseConnection,
    models_root: &Path,
    id_or_name: &str,
    actor: Actor,
) -> Result<ModelEntry> {
    let txn = db.begin().await?;
    let m = find(&txn, id_or_name)
        .await?
        .ok_or_else(|| not_found(id_or_name))?;
    model::Entity::delete_by_id(m.id).exec(&txn).await?;
    if matches!(m.source.as_deref(), Some("hf-cache" | "lmstudio")) {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT OR REPLACE INTO models_dismissed (path, dismissed_at) VALUES (?, ?)",
            [m.path.clone().into(), crate::store::now_ms().into()],
        ))
        .await?;
    }
    audit::record(
        &txn,
        actor,
        "model.remove",
        Some(&m.name),
        serde_json::json!({"id": m.id, "path": m.path}),
    )
    .await?;
    txn.commit().await?;
    let path = PathBuf::from(&m.path);
    if let (Ok(root), Ok(p)) = (
        std::fs::canonicalize(models_root),
        std::fs::canonicalize(&path),
    ) && p.starts_with(&root)
        && p != root
    {
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(e) = r {
            tracing::warn!(
                "model {} removed from the registry, but its files remain: {e}",
                m.name
            );
        }
    }
    Ok(m.into())
}

/// Paths of cache models the user removed (discovery skips them).
pub(crate) async fn dismissed<C: ConnectionTrait>(
    db: &C,
) -> Result<std::collections::HashSet<String>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT path FROM models_dismissed",
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "path").ok())
        .collect())
}

/// A model imported or pulled again is no longer dismissed.
pub(crate) async fn undismiss<C: ConnectionTrait>(db: &C, path: &str) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "DELETE FROM models_dismissed WHERE path = ?",
        [path.into()],
    ))
    .await?;
    Ok(())
}

fn not_found(spec: &str) -> Error {
    Error::new(
        Code::ModelNotFound,
        format!("no model '{spec}' in the registry (see `switchyard models list`)"),
    )
}

/// What `--model M` names: a registered model (id or name), else a path on disk.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub path: PathBuf,
    /// The registry row, when M was registered.
    pub entry: Option<ModelEntry>,
}

pub async fn resolve<C: ConnectionTrait>(db: &C, spec: &str) -> Result<Resolved> {
    if let Some(m) = find(db, spec).await? {
        return Ok(Resolved {
            path: PathBuf::from(&m.path),
            entry: Some(m.into()),
        });
    }
    let p = PathBuf::from(spec);
    if p.exists() {
        return Ok(Resolved {
            path: p,
            entry: None,
        });
    }
    Err(Error::new(
        Code::ModelNotFound,
        format!(
            "'{spec}' is neither a registered model nor an existing path (see `switchyard models list`)"
        ),
    ))
}

/// Record that a registered model served a request.
pub async fn touch<C: ConnectionTrait>(db: &C, id: i64) -> Result<()> {
    model::ActiveModel {
        id: Set(id),
        last_used_at: Set(Some(crate::store::now_ms())),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_be_ambiguous_or_unprintable_are_refused() {
        for bad in ["", " x", "x ", "42", "a\nb"] {
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
        validate_name("SmolLM2-135M-Instruct.Q4_1").unwrap();
    }

    #[tokio::test]
    async fn unknown_models_resolve_to_not_found_and_paths_to_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).await.unwrap();
        let e = resolve(&db, "no-such-model").await.unwrap_err();
        assert_eq!(e.code, Code::ModelNotFound);
        let r = resolve(&db, dir.path().to_str().unwrap()).await.unwrap();
        assert!(r.entry.is_none());
        let e = remove(&db, &models_dir(dir.path()), "7", Actor::Cli)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::ModelNotFound);
        // A file that is not a model is refused and nothing is written.
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"nothing").unwrap();
        let e = import(&db, &junk, None, Actor::Cli).await.unwrap_err();
        assert_eq!(e.code, Code::ModelInvalid);
        assert!(list(&db).await.unwrap().is_empty());
    }
}
