//! Table `routing_rules`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "routing_rules")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub position: i64,
    pub pattern: String,
    pub match_type: String,
    /// NULL = the local engine.
    pub target_provider_id: Option<i64>,
    pub upstream_model: Option<String>,
    /// NULL = no fallback; 'local' or 'provider' (then `fallback_provider_id` is set).
    pub fallback_kind: Option<String>,
    pub fallback_provider_id: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
