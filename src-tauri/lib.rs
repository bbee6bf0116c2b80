//! Switchyard's core, shared by the desktop app, the CLI and the gateway.
//! This file is the module tree only; ARCHITECTURE.md maps the modules.

pub mod app;
pub mod backup;
pub mod cli;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod ipc;
pub mod mlx_support;
pub mod models;
pub mod pool;
pub mod protocol;
pub mod routing;
pub mod settings;
pub mod store;
pub mod tokens;
pub mod upstream;
pub mod vault;

#[cfg(feature = "desktop")]
pub mod desktop;

/// The gateway's default port on 127.0.0.1.
pub const DEFAULT_PORT: u16 = 8399;

pub use error::{Code, Error, Result};
