//! The SAFE-YOLO evidence store: events, snapshots, users, sessions, API keys, settings and
//! the audit log in one redb database, with JPEG snapshots beside it.
//!
//! # Layout
//!
//! ```text
//! <state dir>/store.redb                       the database (schema: see [`schema`])
//! <state dir>/snapshots/<event id:020>.jpg     evidence snapshots
//! <state dir>/store.redb.pre-v3.from-v2.bak    copy kept before a schema migration
//! <state dir>/store.redb.newer-v3-<ms>         a newer release's database, set aside on rollback
//! <state dir>/snapshots.newer-v3-<ms>/         its snapshots, set aside with it
//! ```
//!
//! # Guarantees
//!
//! - Every event write commits with redb's `Durability::Immediate`; an event is
//!   acknowledged (its [`Ticket`] resolves) only after its commit returned.
//! - Event ids come from a persistent sequence incremented in the same transaction as the
//!   insert: strictly increasing across restarts and crashes, never reused.
//! - Snapshots are written to a temporary file, fsynced, renamed and the directory fsynced
//!   before the transaction that references them commits.
//! - A full snapshot quota or disk refuses snapshots (counted in [`StoreMetrics`], flagged)
//!   but events are still recorded.
//! - Every event, change of an event's state, camera health change and output change
//!   writes its integration outbox entry in the same transaction ([`outbox`]); delivery
//!   cursors are persistent, the backlog bounded (oldest non-critical dropped first).
//! - An audit row appended with [`StoreTxn::append_audit`] commits together with the change
//!   it describes.
//! - An older database is copied aside, then migrated. One written by a newer release (the
//!   firmware was rolled back) is moved aside unchanged (`<db>.newer-v<N>-<ms>`, its
//!   unreferenced snapshots to `snapshots.newer-v<N>-<ms>/`), the pre-migration copy is
//!   restored (or the store starts empty), and the events only the newer file holds are
//!   listed in the log, the [`OpenReport`] and a `store.rollback` audit row.
//!
//! # Async use
//!
//! [`StoreHandle::start`] spawns the writer thread. The pipeline calls
//! [`StoreHandle::try_submit`] (never waits; a full queue hands the event back); the API
//! awaits [`StoreHandle::record`], [`StoreHandle::transaction`] or [`StoreHandle::run`],
//! which run on tokio's blocking pool.
//!
//! [`Storage`] wraps the handle for the daemon: a store that cannot be opened or written
//! does not stop anything; events wait in a bounded memory buffer, the store is retried,
//! and [`Storage::status`] says so.
//!
//! # RESTORE
//!
//! A backup ([`Store::backup`]) is a directory with `store.redb`, `snapshots/`,
//! `config.toml` (optional) and `MANIFEST.json`. To restore it:
//!
//! 1. Stop the daemon (`systemctl stop safe-yolo`) so the database is closed.
//! 2. Call [`restore`]`(backup_dir, state_dir)` (the daemon's `restore` subcommand does).
//!    It verifies every file against the manifest's SHA-256, moves the current
//!    `store.redb` and `snapshots/` aside as `*.replaced-<ms>` (nothing is deleted), and
//!    copies the backup in durably (temp file, fsync, rename, fsync of the directory).
//! 3. Install the returned config copy (`RestoreReport::config`) as the config file if the
//!    configuration should be restored as well.
//! 4. Start the daemon. A backup from an older firmware is migrated on open (with a copy
//!    kept aside); one from a newer firmware is refused with a clear error.
//!
//! By hand, the same is: stop the daemon, check `sha256sum` against `MANIFEST.json`,
//! move the old files aside, copy `store.redb` and `snapshots/` into the state directory,
//! start the daemon.
#![forbid(unsafe_code)]

pub mod backup;
pub mod error;
pub mod handle;
pub mod migrate;
pub mod model;
pub mod outbox;
pub mod retention;
pub mod schema;
pub mod signing;
pub mod snapshots;
pub mod storage;
pub mod store;

pub use backup::{BackupManifest, RestoreReport, parse_manifest, restore, verify_backup};
pub use error::StoreError;
pub use handle::{AckError, StoreHandle, SubmitError, Ticket, WriterThread};
pub use migrate::{NewerEvents, OpenReport, Rollback};
pub use model::*;
pub use outbox::{OutboxEntry, OutboxMessage, OutboxStatus, SinkCursor, SinkStatus};
pub use retention::{PruneReport, RetentionPolicy};
pub use schema::CURRENT_VERSION;
pub use signing::{BackupKey, Provenance};
pub use storage::{Committed, Opener, Storage, StorageSettings, StorageStatus};
pub use store::{
    AUDIT_NAME_MAX, AUDIT_TEXT_MAX, Store, StoreConfig, StoreMetrics, StoreStats, StoreTxn, capped,
};
