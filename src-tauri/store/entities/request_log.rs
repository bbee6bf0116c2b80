//! Table `request_log`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "request_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub ts: i64,
    pub protocol: String,
    pub endpoint: String,
    pub requested_model: Option<String>,
    pub rule_id: Option<i64>,
    pub backend: Option<String>,
    pub upstream_model: Option<String>,
    pub status: i64,
    #[sea_orm(column_type = "Double")]
    pub latency_ms: f64,
    #[sea_orm(column_type = "Double", nullable)]
    pub ttfb_ms: Option<f64>,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    pub fallback: bool,
    pub fallback_reason: Option<String>,
    pub error_code: Option<String>,
    pub client_id: Option<i64>,
    pub stream: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
