//! Table `pool_config`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pool_config")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub limit_kind: String,
    #[sea_orm(column_type = "Double")]
    pub limit_value: f64,
    pub eviction: String,
    pub ttl_seconds: Option<i64>,
    /// JSON array of model names.
    pub preload: String,
    pub batch: i64,
    pub queue: i64,
    pub disk_cache_bytes: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
