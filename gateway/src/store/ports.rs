//! The ports a session forwards and their visibility.

use super::{Backend, Result, SessionId, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who may open a forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only the session's participants (the default: a dev server is not for the world).
    #[default]
    Private,
    /// Anyone with the URL.
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Visibility {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "private" => Ok(Self::Private),
            "public" => Ok(Self::Public),
            other => Err(StoreError::InvalidData(format!(
                "unknown port visibility {other:?}"
            ))),
        }
    }
}

/// One forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionPort {
    pub port: u16,
    pub visibility: Visibility,
}

impl Store {
    /// Replaces the session's declared ports.
    pub async fn set_ports(&self, id: &SessionId, ports: &[SessionPort]) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM session_ports WHERE session_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            for port in ports {
                sqlx::query(
                    "INSERT INTO session_ports (session_id, port, visibility) VALUES ($1, $2, $3)",
                )
                .bind(id.as_str())
                .bind(i32::from(port.port))
                .bind(port.visibility.as_str())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The session's declared ports, lowest first.
    pub async fn ports(&self, id: &SessionId) -> Result<Vec<SessionPort>> {
        let rows: Vec<(i32, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT port, visibility FROM session_ports WHERE session_id = $1 ORDER BY port",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(port, visibility)| {
                Ok(SessionPort {
                    port: u16::try_from(port)
                        .map_err(|_| StoreError::InvalidData(format!("port {port}")))?,
                    visibility: visibility.parse()?,
                })
            })
            .collect()
    }

    /// Changes a declared port's visibility. A port that was not declared is not found.
    pub async fn set_port_visibility(
        &self,
        id: &SessionId,
        port: u16,
        visibility: Visibility,
    ) -> Result<()> {
        let updated = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE session_ports SET visibility = $3 WHERE session_id = $1 AND port = $2",
            )
            .bind(id.as_str())
            .bind(i32::from(port))
            .bind(visibility.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::PortNotFound(id.clone(), port));
        }
        Ok(())
    }
}
