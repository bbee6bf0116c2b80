//! Settings services: one function per user action, shared by the CLI and the UI's
//! Tauri commands. Each write validates first, then changes the database and records
//! an audit row in one transaction.

pub mod providers;
