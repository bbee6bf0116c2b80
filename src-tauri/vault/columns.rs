//! The registry of sealed columns: every place in the schema that holds a vault
//! envelope. `keys rotate --data` re-encrypts exactly these, `keys status` counts them,
//! and a missing root is replaced only when all of them are empty. A new secret column
//! (say, a token signing key) is added here, with the context its rows are sealed for.

use super::envelope::SecretContext;
use crate::error::{Code, Error, Result};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

/// One sealed value as stored.
pub struct SealedRow {
    pub id: i64,
    /// Whatever the context needs besides the id (providers: the base URL).
    pub binding: String,
    pub sealed: Vec<u8>,
    column: Column,
}

impl SealedRow {
    /// The AAD context this row's value is sealed for.
    pub fn context(&self) -> Result<SecretContext> {
        match self.column {
            Column::ProviderApiKey => provider_key_context(self.id, &self.binding),
            Column::TokenSigningKey => Ok(token_key_context(self.id, &self.binding)),
        }
    }
}

/// The normalized origin (`scheme://host[:port]`) a key is bound to.
pub fn origin_of(base_url: &str) -> Result<String> {
    let url = url::Url::parse(base_url).map_err(|e| {
        Error::new(
            Code::VaultCorrupt,
            format!("stored base URL {base_url:?} does not parse: {e}"),
        )
    })?;
    Ok(url.origin().ascii_serialization())
}

/// The AAD context of provider `id`'s key when its base URL is `base_url`.
pub fn provider_key_context(id: i64, base_url: &str) -> Result<SecretContext> {
    Ok(SecretContext {
        table: "providers",
        column: "api_key",
        row: id.to_string(),
        origin: origin_of(base_url)?,
    })
}

/// The AAD context of the token-signing private key in row `id` whose public half is
/// `public_hex` (a private key cannot be paired with another public key unnoticed).
pub fn token_key_context(id: i64, public_hex: &str) -> SecretContext {
    SecretContext {
        table: "token_keys",
        column: "private_key",
        row: id.to_string(),
        origin: format!("ed25519:{public_hex}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `providers.api_key`, bound to the provider's row id and origin.
    ProviderApiKey,
    /// `token_keys.private_key`, bound to its row and its public key.
    TokenSigningKey,
}

pub const ALL: &[Column] = &[Column::ProviderApiKey, Column::TokenSigningKey];

/// Rows per multi-row UPDATE: far below SQLite's 32766 bound parameters.
const UPDATE_CHUNK: usize = 500;

impl Column {
    pub fn table(self) -> &'static str {
        match self {
            Column::ProviderApiKey => "providers",
            Column::TokenSigningKey => "token_keys",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            Column::ProviderApiKey => "api_key",
            Column::TokenSigningKey => "private_key",
        }
    }

    fn select_sql(self) -> &'static str {
        match self {
            Column::ProviderApiKey => {
                "SELECT id, base_url, api_key FROM providers WHERE api_key IS NOT NULL ORDER BY id"
            }
            Column::TokenSigningKey => {
                "SELECT id, public_key, private_key FROM token_keys ORDER BY id"
            }
        }
    }

    pub async fn rows<C: ConnectionTrait>(self, conn: &C) -> Result<Vec<SealedRow>> {
        let rows = conn
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, self.select_sql()))
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(SealedRow {
                    id: r.try_get_by_index(0)?,
                    binding: r.try_get_by_index(1)?,
                    sealed: r.try_get_by_index(2)?,
                    column: self,
                })
            })
            .collect()
    }

    pub async fn count<C: ConnectionTrait>(self, conn: &C) -> Result<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} IS NOT NULL",
            self.table(),
            self.column()
        );
        let row = conn
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await?;
        Ok(match row {
            Some(r) => r.try_get_by_index::<i64>(0)? as u64,
            None => 0,
        })
    }

    /// Write new sealed values by row id, a chunk of rows per statement (one statement
    /// per row costs more than the cryptography when rotating 10,000 secrets).
    pub async fn update_many<C: ConnectionTrait>(
        self,
        conn: &C,
        updates: Vec<(i64, Vec<u8>)>,
    ) -> Result<()> {
        for chunk in updates.chunks(UPDATE_CHUNK) {
            let mut sql = format!("UPDATE {} SET {} = CASE id", self.table(), self.column());
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
            for (id, sealed) in chunk {
                sql.push_str(" WHEN ? THEN ?");
                values.push((*id).into());
                values.push(sealed.clone().into());
            }
            sql.push_str(" END WHERE id IN (");
            for (i, (id, _)) in chunk.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                values.push((*id).into());
            }
            sql.push(')');
            conn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        }
        Ok(())
    }
}
