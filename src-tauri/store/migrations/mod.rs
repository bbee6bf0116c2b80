//! Schema migrations, applied in order at start-up. Never edit a released one.

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0004_responses;
mod m0005_provider_health;
mod m0006_pool;
mod m0007_models_dismissed;
mod m0008_tokens;
mod m0009_pool_engine;
mod m0010_models_active;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0004_responses::Migration),
            Box::new(m0005_provider_health::Migration),
            Box::new(m0006_pool::Migration),
            Box::new(m0007_models_dismissed::Migration),
            Box::new(m0008_tokens::Migration),
            Box::new(m0009_pool_engine::Migration),
            Box::new(m0010_models_active::Migration),
        ]
    }
}
