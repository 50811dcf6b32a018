//! The store's error type.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed during `op`.
    #[error("database error during {op}")]
    Db {
        /// What the store was doing.
        op: &'static str,
        /// The engine's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A file-system operation on `path` failed.
    #[error("{op} failed for {path}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A stored record could not be decoded.
    #[error("record {key} in table {table} is corrupt")]
    Decode {
        /// Table the record lives in.
        table: &'static str,
        /// The record's key, rendered for humans.
        key: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be encoded.
    #[error("record for table {table} could not be encoded")]
    Encode {
        /// Table the record was meant for.
        table: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The database was written by a newer release of the firmware.
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this firmware \
         supports; it was written by a newer release (restore the pre-upgrade copy or upgrade)"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The database has no schema version although it holds tables.
    #[error("database {path} has tables but no schema version; it is not a SAFE-YOLO store")]
    NotAStore {
        /// The database file.
        path: PathBuf,
    },
    /// A migration step failed; the database is unchanged and a copy was kept at `backup`.
    #[error(
        "migration of {path} from schema v{from} to v{to} failed (pre-migration copy: {backup})"
    )]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version being migrated from.
        from: u32,
        /// The version being migrated to.
        to: u32,
        /// Where the untouched copy lives.
        backup: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<StoreError>,
    },
    /// No record with this key exists.
    #[error("{what} {key} not found")]
    NotFound {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// The record already exists.
    #[error("{what} {key} already exists")]
    AlreadyExists {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// An optimistic-concurrency check failed: someone else changed the record first.
    #[error("{what} {key} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// The version the caller based its change on.
        expected: u64,
        /// The version currently stored.
        actual: u64,
    },
    /// The requested state change is not allowed from the current state.
    #[error("event {id} cannot go from {from} to {to}")]
    BadTransition {
        /// The event.
        id: u64,
        /// Its current state.
        from: &'static str,
        /// The state asked for.
        to: &'static str,
    },
    /// The change would break a rule the store keeps (e.g. at least one enabled
    /// admin), checked in the same transaction as the change.
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: &'static str,
    },
    /// A caller-supplied value is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A backup directory is incomplete or does not match its manifest.
    #[error("backup {path} is not usable: {reason}")]
    BadBackup {
        /// The backup directory or file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The store is not open (it could not be opened, or is closed): events wait in memory,
    /// everything else that needs it is refused until it opens.
    #[error("the store is not available: {reason}")]
    Unavailable {
        /// Why it is not open (the last error opening it).
        reason: String,
    },
    /// The store's writer thread has stopped, so the write could not be queued or acknowledged.
    #[error("the store writer has stopped")]
    WriterGone,
    /// A blocking task running store work panicked or was cancelled.
    #[error("a blocking store task did not complete")]
    TaskFailed {
        /// The runtime's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl StoreError {
    /// Builds an [`StoreError::Io`] from its parts.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Adds an operation name to a redb error.
pub(crate) trait DbContext<T> {
    /// Maps the error into [`StoreError::Db`] naming `op`.
    fn db(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbContext<T> for Result<T, E> {
    fn db(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db {
            op,
            source: Box::new(e.into()),
        })
    }
}
