//! sea-orm entities, one module per table (see migrations for the schema).

pub mod audit_log;
pub mod client;
pub mod download;
pub mod model;
pub mod pool_config;
pub mod provider;
pub mod request_log;
pub mod routing_rule;
pub mod vault_key;
pub mod vault_meta;
