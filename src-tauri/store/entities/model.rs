//! Table `models`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "models")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub path: String,
    pub format: String,
    pub architecture: String,
    pub parameters: Option<i64>,
    /// Mixture-of-experts models: the parameters one token runs through.
    pub active_parameters: Option<i64>,
    pub quantization: Option<String>,
    pub size_bytes: i64,
    pub context_length: Option<i64>,
    pub pinned: bool,
    pub source: Option<String>,
    pub revision: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Unload after idle this long (overrides the pool's TTL).
    pub ttl_seconds: Option<i64>,
    /// The context the pool serves and budgets this model with (overrides the default).
    pub context_override: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
