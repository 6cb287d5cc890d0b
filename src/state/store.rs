//! Opening the database: location checks, connection settings, the
//! schema version, and errors a person can act on.
//!
//! The connection runs in WAL mode (readers such as `groupwarden findings`
//! never wait for a scan; the one exception is a first write into an
//! empty database, [`Store::begin_first_write`]) with `synchronous = FULL` (a commit survives a
//! power cut, which is what lets the outbox promise "delivered once") and
//! temporary tables on disk (a scan stages one row per group there, and
//! memory must not grow with the report). Page caches are fixed at 4 MiB
//! for the database and 2 MiB for the staging tables, a bound: a scan
//! reads the stored findings once, in order, and finds them in memory
//! (`known`), not through the cache. A writer takes the database's
//! write lock with `BEGIN IMMEDIATE` and the busy timeout makes a second
//! writer wait up to `lock_timeout` before it fails with [`StateError::Locked`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::schema::{self, CURRENT_VERSION};

/// The state database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database (or its folder) could not be created, or an existing
    /// one cannot be written or locked.
    #[error("state database {}: {}: {reason}", .path.display(), cannot_what(.path))]
    Unwritable {
        /// The database file.
        path: PathBuf,
        /// Why it could not be created or locked.
        reason: String,
    },
    /// The database does not exist and this command does not create it.
    #[error("state database {path} does not exist (a stateful `groupwarden scan` creates it)")]
    Missing {
        /// The database file.
        path: PathBuf,
    },
    /// The file is damaged or not SQLite at all.
    #[error(
        "state database {path} is corrupt or not a SQLite database ({detail}); move it aside to start afresh, or restore a backup"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The file is some other program's SQLite database.
    #[error(
        "{path} is a SQLite database but not groupwarden's; point --state or [state] path at another file"
    )]
    NotOurs {
        /// The file.
        path: PathBuf,
    },
    /// The database was written by a newer groupwarden.
    #[error(
        "state database {path} has schema version {found}, newer than the {supported} this groupwarden understands; \
         upgrade groupwarden, or point --state at another file"
    )]
    Newer {
        /// The database file.
        path: PathBuf,
        /// The schema version the file has.
        found: i32,
        /// The newest schema version this program knows.
        supported: i32,
    },
    /// Another scan holds the write lock, longer than the lock timeout.
    #[error(
        "state database {path} is in use by another groupwarden scan; gave up after waiting {waited:?}. \
         Try again when it has finished, or raise [state] lock_timeout"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// How long this scan waited for the lock.
        waited: Duration,
    },
    /// The file or its folder cannot be written.
    #[error(
        "state database {path} is read-only ({detail}); this command writes to it: make the file and its folder \
         writable for the user groupwarden runs as, or point --state or [state] path at a copy it may write"
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The report is older than the one the last scan read; both are
    /// refresh dates, `YYYY-MM-DD`.
    #[error(
        "the report was refreshed on {report}, before the report of the last scan ({last}); scanning it would \
         reopen findings that were fixed since. Pass --allow-older to scan it anyway"
    )]
    OlderReport {
        /// The refresh date of the report given.
        report: String,
        /// The refresh date of the last scan's report.
        last: String,
    },
    /// Any other SQLite failure.
    #[error("state database {path}: {error}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        error: rusqlite::Error,
    },
    /// Data that could not be stored or read back, or a setting SQLite
    /// refused (WAL mode).
    #[error("state database {path}: {message}")]
    Data {
        /// The database file.
        path: PathBuf,
        /// What could not be stored or read.
        message: String,
    },
}

/// How to open the database.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long to wait for another writer.
    pub lock_timeout: Duration,
    /// Create the file when it does not exist; commands that only read
    /// refuse a missing file instead.
    pub create: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lock_timeout: Duration::from_secs(600),
            create: true,
        }
    }
}

/// An open, migrated state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    lock_timeout: Duration,
    /// Held for a writer's whole life (see [`writer_lock`]).
    _writer_lock: Option<std::fs::File>,
    /// The open transaction runs with a rollback journal, not the WAL (see
    /// [`Store::begin_first_write`]); the WAL comes back when it ends.
    rollback_journal: std::cell::Cell<bool>,
    /// During a first write: asks a thread to start write-back of the
    /// file (see [`Store::start_write_back`]); it ends when this is
    /// dropped.
    written_behind: std::cell::RefCell<Option<std::sync::mpsc::SyncSender<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up
    /// to date.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Store, StateError> {
        check_location(path, options.create)?;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if options.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let writer_lock = if options.create {
            Some(writer_lock(path, options.lock_timeout)?)
        } else {
            None
        };
        let fail = |e| classify(path, options.lock_timeout, e);
        let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
        conn.busy_timeout(options.lock_timeout).map_err(fail)?;
        let store = Store {
            conn,
            path: path.to_owned(),
            lock_timeout: options.lock_timeout,
            _writer_lock: writer_lock,
            rollback_journal: std::cell::Cell::new(false),
            written_behind: std::cell::RefCell::new(None),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the existing database at `path` for reading only, for the
    /// commands that only look (`findings`, `history`, `exemptions`,
    /// `report`, `notify --dead-letters`): SQLite's read-only mode, so the
    /// file is never written and no write lock is taken. When the folder
    /// cannot be written either (SQLite could not make the `-shm` file
    /// WAL readers share) and no `-wal` file holds unmerged writes, the
    /// file is opened `immutable`: read as it is, without any lock files.
    /// A file whose schema is older than this program's is upgraded
    /// through [`Store::open`] first, which needs to write.
    pub fn open_read_only(path: &Path, options: &StoreOptions) -> Result<Store, StateError> {
        check_location(path, false)?;
        let store = match Self::connect_read_only(path, options, false) {
            Err(_) if !pending_wal(path) && !folder_writable(path) => {
                Self::connect_read_only(path, options, true)?
            }
            result => result?,
        };
        let identity = schema::identity(&store.conn).map_err(|e| store.fail(e))?;
        store.check_identity(identity)?;
        if identity.version < CURRENT_VERSION {
            drop(store);
            return Store::open(
                path,
                &StoreOptions {
                    create: false,
                    ..options.clone()
                },
            );
        }
        Ok(store)
    }

    /// A copy in memory of the existing database at `path`, for a scan
    /// whose recording is only previewed (`notify --dry-run --input`): the
    /// file is opened read-only (see [`Store::open_read_only`]) and copied
    /// with SQLite's backup API, so the preview may write what it likes and
    /// the file stays as it was, even in a folder nobody may write. Errors
    /// still name `path`.
    pub fn open_copy(path: &Path, options: &StoreOptions) -> Result<Store, StateError> {
        let file = Store::open_read_only(path, options)?;
        let fail = |e| classify(path, options.lock_timeout, e);
        let mut conn = Connection::open_in_memory().map_err(fail)?;
        rusqlite::backup::Backup::new(&file.conn, &mut conn)
            .and_then(|backup| backup.run_to_completion(256, Duration::ZERO, None))
            .map_err(fail)?;
        conn.execute_batch("PRAGMA foreign_keys = OFF;")
            .map_err(fail)?;
        Ok(Store::without_lock(conn, path, options))
    }

    /// A read-only connection, checked by reading the schema version;
    /// `immutable`: without locks or `-shm` (see [`Store::open_read_only`]).
    fn connect_read_only(
        path: &Path,
        options: &StoreOptions,
        immutable: bool,
    ) -> Result<Store, StateError> {
        let fail = |e| classify(path, options.lock_timeout, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
        } else if file_writable(path) && folder_writable(path) {
            // Where the file may be written, a read-write connection that
            // SQLite forbids to write (`query_only`): as the last one to
            // close it tidies away the `-wal` and `-shm` files, which a
            // read-only connection would leave behind (in a CI cache, on a
            // backup).
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|conn| {
                conn.pragma_update(None, "query_only", true)?;
                Ok(conn)
            })
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(fail)?;
        conn.busy_timeout(options.lock_timeout).map_err(fail)?;
        conn.pragma_query_value(None, "user_version", |row| row.get::<_, i32>(0))
            .map_err(fail)?;
        conn.execute_batch("PRAGMA cache_size = -32768;")
            .map_err(fail)?;
        Ok(Store::without_lock(conn, path, options))
    }

    /// A store on `conn` that holds no writer lock (it only reads, or it
    /// is a copy): errors name `path`.
    fn without_lock(conn: Connection, path: &Path, options: &StoreOptions) -> Store {
        conn.set_prepared_statement_cache_capacity(64);
        Store {
            conn,
            path: path.to_owned(),
            lock_timeout: options.lock_timeout,
            _writer_lock: None,
            rollback_journal: std::cell::Cell::new(false),
            written_behind: std::cell::RefCell::new(None),
        }
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i32, StateError> {
        schema::identity(&self.conn)
            .map(|identity| identity.version)
            .map_err(|e| self.fail(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the outbox and for queries. Inside a scan that
    /// has not been committed yet, writes through it join the scan's
    /// transaction.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A rusqlite error, as a message about this database.
    pub fn fail(&self, error: rusqlite::Error) -> StateError {
        classify(&self.path, self.lock_timeout, error)
    }

    /// Takes the write lock (waiting up to the lock timeout) and opens a
    /// transaction; pair with [`Store::commit`] or [`Store::rollback`].
    pub fn begin_write(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.fail(e))
    }

    /// [`Store::begin_write`] for a scan that may be the first: when the
    /// database holds no finding yet and no other connection has it open,
    /// the transaction runs with a rollback journal instead of the WAL.
    /// Every page it writes is then new and goes to the file once, where
    /// the WAL would take them all and copy them into the file at the
    /// checkpoint (for a million rows' findings, 140 MB written, synced,
    /// copied and synced again: 0.3 s of a 1.9 s first scan). Readers
    /// wait for this one transaction instead of reading beside it; there
    /// is nothing to read yet. The WAL comes back when the transaction
    /// ends ([`Store::commit`], [`Store::rollback`]), or at the next open
    /// if this process dies first (a crash leaves a hot journal, which
    /// SQLite rolls back as it opens the file).
    pub fn begin_first_write(&self) -> Result<(), StateError> {
        let empty = self
            .conn
            .query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM finding_state)",
                [],
                |row| row.get::<_, bool>(0),
            )
            .map_err(|e| self.fail(e))?;
        if empty && self.conn.is_autocommit() {
            // SQLite leaves the WAL only when no other connection has the
            // file open; otherwise the scan goes on in WAL mode.
            let switched = self.try_journal_mode("delete");
            self.rollback_journal.set(switched);
            if switched {
                *self.written_behind.borrow_mut() = write_back_thread(&self.path);
            }
        }
        let begun = self.begin_write();
        if begun.is_err() {
            self.back_to_wal();
        }
        begun
    }

    /// In a transaction [`Store::begin_first_write`] runs with a rollback
    /// journal, the pages SQLite has written to the file so far start
    /// going to the disk, so that the commit's sync finds little left to
    /// write: Linux `sync_file_range`, called on a thread of its own (it
    /// queues the writes itself, which took the time it saved from the
    /// thread every row of the scan waits on).
    pub fn start_write_back(&self) {
        if let Some(sender) = &*self.written_behind.borrow() {
            let _ = sender.try_send(());
        }
    }

    /// Commits the transaction opened by [`Store::begin_write`].
    pub fn commit(&self) -> Result<(), StateError> {
        let committed = self.conn.execute_batch("COMMIT").map_err(|e| self.fail(e));
        if committed.is_ok() {
            self.back_to_wal();
        }
        committed
    }

    /// Undoes the open transaction, if any. Errors are ignored: SQLite has
    /// already rolled back when a statement failed that way.
    pub fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.back_to_wal();
    }

    /// After a transaction [`Store::begin_first_write`] ran with a
    /// rollback journal: WAL mode again. Should that fail (a reader came
    /// in meanwhile), the next [`Store::open`] switches.
    fn back_to_wal(&self) {
        if self.rollback_journal.get() && self.conn.is_autocommit() {
            self.rollback_journal.set(false);
            // Its thread ends.
            self.written_behind.borrow_mut().take();
            if !self.try_journal_mode("wal") {
                tracing::debug!(
                    "state: {} keeps its rollback journal until the next open",
                    self.path.display()
                );
            }
        }
    }

    /// Switches the journal to `mode` if SQLite can at once (a switch
    /// between the WAL and a rollback journal needs the file to itself):
    /// one try, no wait. Whether the file is in `mode` now.
    fn try_journal_mode(&self, mode: &str) -> bool {
        let now = self.conn.busy_timeout(Duration::ZERO).and_then(|()| {
            self.conn
                .pragma_update_and_check(None, "journal_mode", mode, |row| row.get::<_, String>(0))
        });
        // As set at open; should it fail, the next statement says so.
        let _ = self.conn.busy_timeout(self.lock_timeout);
        now.is_ok_and(|now| now.eq_ignore_ascii_case(mode))
    }

    fn configure(&self) -> Result<(), StateError> {
        // Larger pages for a new file (a no-op for one that has pages): a
        // scan reads every finding's few columns in one pass, in a
        // quarter as many reads as with 4 KiB pages. Not larger: SQLite's
        // sorter (building an index) holds 250 pages in memory.
        self.conn
            .execute_batch("PRAGMA page_size = 16384;")
            .map_err(|e| self.fail(e))?;
        let mode = self.switch_to_wal()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Data {
                path: self.path.clone(),
                message: format!(
                    "cannot switch to WAL mode (the file system may not support it; journal mode is {mode})"
                ),
            });
        }
        self.conn
            .execute_batch(
                "PRAGMA synchronous = FULL; PRAGMA temp_store = FILE; PRAGMA foreign_keys = OFF; \
                 PRAGMA cache_size = -4096; PRAGMA temp.cache_size = -2048;",
            )
            .map_err(|e| self.fail(e))?;
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    /// Puts the database in WAL mode (a no-op once it is). Two processes
    /// switching a new file at once each hold a read lock while waiting
    /// for the other's to go, so the busy handler would only wait out the
    /// timeout: retry with the locks released instead.
    fn switch_to_wal(&self) -> Result<String, StateError> {
        let fail = |e| self.fail(e);
        self.conn.busy_timeout(Duration::ZERO).map_err(fail)?;
        let started = std::time::Instant::now();
        let mut attempt: u64 = 0;
        let mode = loop {
            match self
                .conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            {
                Err(error) if is_busy(&error) && started.elapsed() < self.lock_timeout => {
                    attempt += 1;
                    // Different processes wait different times, so one wins.
                    let jitter = (u64::from(std::process::id()) + attempt * 7) % 40;
                    std::thread::sleep(Duration::from_millis(10 + jitter));
                }
                result => break result.map_err(fail)?,
            }
        };
        self.conn.busy_timeout(self.lock_timeout).map_err(fail)?;
        Ok(mode)
    }

    fn migrate(&self) -> Result<(), StateError> {
        let identity = schema::identity(&self.conn).map_err(|e| self.fail(e))?;
        self.check_identity(identity)?;
        if identity.version == CURRENT_VERSION {
            return Ok(());
        }
        self.begin_write()?;
        let result = (|| {
            // Another process may have migrated while this one waited.
            let identity = schema::identity(&self.conn).map_err(|e| self.fail(e))?;
            self.check_identity(identity)?;
            schema::apply(&self.conn, identity.version).map_err(|e| self.fail(e))?;
            if identity.version > 0 {
                tracing::info!(
                    from = identity.version,
                    to = CURRENT_VERSION,
                    "state database {} upgraded",
                    self.path.display()
                );
            }
            self.commit()
        })();
        if result.is_err() {
            self.rollback();
        }
        result
    }

    fn check_identity(&self, identity: schema::Identity) -> Result<(), StateError> {
        if !identity.is_ours() {
            return Err(StateError::NotOurs {
                path: self.path.clone(),
            });
        }
        if identity.version > CURRENT_VERSION {
            return Err(StateError::Newer {
                path: self.path.clone(),
                found: identity.version,
                supported: CURRENT_VERSION,
            });
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.rollback();
    }
}

/// A thread that starts write-back of the file at `path` each time it is
/// asked (see [`Store::start_write_back`]); `None` where it cannot be had.
fn write_back_thread(path: &Path) -> Option<std::sync::mpsc::SyncSender<()>> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let (sender, asked) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("state write-back".into())
        .spawn(move || {
            for () in asked {
                #[cfg(target_os = "linux")]
                {
                    use std::os::fd::AsRawFd;
                    // SAFETY: a plain system call on an open descriptor;
                    // it only asks the kernel to begin writing pages
                    // already written. Errors are ignored: the commit's
                    // sync writes them anyway.
                    unsafe {
                        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
                    }
                }
            }
        })
        .ok()?;
    Some(sender)
}

/// Errors SQLite would give as "unable to open database file", said
/// plainly.
fn check_location(path: &Path, create: bool) -> Result<(), StateError> {
    let unwritable = |reason: String| StateError::Unwritable {
        path: path.to_owned(),
        reason,
    };
    if path.is_dir() {
        return Err(unwritable("it is a folder".into()));
    }
    if path.exists() {
        return Ok(());
    }
    if !create {
        return Err(StateError::Missing {
            path: path.to_owned(),
        });
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(unwritable(format!(
            "the folder {} does not exist",
            folder.display()
        )));
    }
    Ok(())
}

/// The database has a `-wal` file with writes not yet merged into it: an
/// `immutable` open would not see them.
fn pending_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// This process may write the database file itself.
fn file_writable(path: &Path) -> bool {
    may_write(path)
}

/// This process may create files in the database's folder.
fn folder_writable(path: &Path) -> bool {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => may_write(folder),
        _ => may_write(Path::new(".")),
    }
}

/// `access(2)` with `W_OK`: whether this process may write `path` (a file,
/// or a folder to create files in), by its real user and group.
fn may_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// `path` as an SQLite URI opening it read-only and `immutable`; bytes
/// outside the unreserved set are percent-encoded (a `?` or `#` in a
/// file name must not start the query).
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for &byte in absolute.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if matches!(failure.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Sorts SQLite's failures into the few a person can act on.
/// One writer at a time, for the writer's whole run: an exclusive lock on
/// `<database>.lock`, waited for up to `timeout`. SQLite's own locks cover
/// single transactions, and some of its lock changes (switching a new file
/// to WAL, upgrades it judges a deadlock) fail at once instead of waiting;
/// the file lock makes a second scan simply wait its turn. The operating
/// system releases it when the process ends, however it ends.
/// What went wrong with the file at `path`: it is there but cannot be
/// written, or it is not there and cannot be made.
fn cannot_what(path: &Path) -> &'static str {
    if path.exists() {
        "cannot write to it"
    } else {
        "cannot create it"
    }
}

fn writer_lock(path: &Path, timeout: Duration) -> Result<std::fs::File, StateError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StateError::Unwritable {
            path: path.to_owned(),
            reason: format!("cannot open its lock file: {e}"),
        })?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: path.to_owned(),
                    waited: timeout,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StateError::Unwritable {
                    path: path.to_owned(),
                    reason: format!("cannot lock it: {e}"),
                });
            }
        }
    }
}

/// Turns a rusqlite error on the database at `path` into an error a
/// person can act on (locked, read-only, corrupt, …).
pub fn classify(path: &Path, lock_timeout: Duration, error: rusqlite::Error) -> StateError {
    let path = path.to_owned();
    let code = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => failure.code,
        _ => return StateError::Sqlite { path, error },
    };
    match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StateError::Locked {
            path,
            waited: lock_timeout,
        },
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => StateError::Corrupt {
            path,
            detail: error.to_string(),
        },
        ErrorCode::ReadOnly | ErrorCode::PermissionDenied => StateError::ReadOnly {
            path,
            detail: error.to_string(),
        },
        ErrorCode::CannotOpen => StateError::Unwritable {
            path,
            reason: error.to_string(),
        },
        _ => StateError::Sqlite { path, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_created_in_wal_mode_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        assert_eq!(journal_mode(store.connection()), "wal");
        assert_eq!(
            schema::identity(store.connection()).unwrap().version,
            CURRENT_VERSION
        );
    }

    fn journal_mode(conn: &Connection) -> String {
        conn.pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap()
    }

    fn add_finding(conn: &Connection) {
        schema::insert_test_finding(conn, 1, "g");
    }

    fn findings(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM finding_state", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_first_write_into_an_empty_file_uses_the_rollback_journal_then_wal_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        store.begin_first_write().unwrap();
        assert_eq!(journal_mode(store.connection()), "delete");
        assert!(store.written_behind.borrow().is_some());
        add_finding(store.connection());
        store.start_write_back();
        store.commit().unwrap();
        assert_eq!(journal_mode(store.connection()), "wal");
        // The write-back thread is gone.
        assert!(store.written_behind.borrow().is_none());
        // Not again: the file holds a finding now.
        store.begin_first_write().unwrap();
        assert_eq!(journal_mode(store.connection()), "wal");
        store.rollback();
        drop(store);
        assert_eq!(findings(&Connection::open(&path).unwrap()), 1);
        assert!(!dir.path().join("s.db-journal").exists());
    }

    #[test]
    fn a_first_write_rolled_back_leaves_wal_mode_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        store.begin_first_write().unwrap();
        add_finding(store.connection());
        store.rollback();
        assert_eq!(journal_mode(store.connection()), "wal");
        assert_eq!(findings(store.connection()), 0);
    }

    #[test]
    fn a_first_write_stays_in_wal_mode_while_another_connection_has_the_file_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        let reader = Store::open_read_only(&path, &StoreOptions::default()).unwrap();
        store.begin_first_write().unwrap();
        assert_eq!(journal_mode(store.connection()), "wal");
        assert!(store.written_behind.borrow().is_none());
        add_finding(store.connection());
        store.commit().unwrap();
        assert_eq!(findings(reader.connection()), 1);
    }

    #[test]
    fn a_crash_inside_a_first_write_is_rolled_back_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        store.begin_first_write().unwrap();
        // 8 MB, twice the page cache: spilled into the file itself, as a
        // large scan's findings are. Then a "crash": the file and its
        // journal as they are, mid-transaction.
        store
            .connection()
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
                 INSERT INTO finding_state (key_hash, content_hash, status, status_scan, first_seen_scan, \
                 first_seen_at, rule, group_key, severity, message, evidence) \
                 SELECT i, 0, 'new', 1, 1, 0, 'r', 'g' || i, 'low', hex(randomblob(1000)), '{}' FROM n",
            )
            .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > before + 4_000_000);
        assert!(dir.path().join("s.db-journal").exists());
        let copy = tempfile::tempdir().unwrap();
        for name in ["s.db", "s.db-journal"] {
            std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
        }
        drop(store);
        let reopened = Store::open(&copy.path().join("s.db"), &StoreOptions::default()).unwrap();
        assert_eq!(journal_mode(reopened.connection()), "wal");
        assert_eq!(findings(reopened.connection()), 0);
    }

    #[test]
    fn an_immutable_open_reads_a_file_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd ?name#1%2é.db");
        drop(Store::open(&path, &StoreOptions::default()).unwrap());
        assert!(
            immutable_uri(&path).ends_with("odd%20%3Fname%231%252%C3%A9.db?mode=ro&immutable=1")
        );
        let store = Store::connect_read_only(&path, &StoreOptions::default(), true).unwrap();
        assert_eq!(
            schema::identity(store.connection()).unwrap().version,
            CURRENT_VERSION
        );
        let error = store
            .connection()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap_err();
        assert!(matches!(store.fail(error), StateError::ReadOnly { .. }));
    }

    #[test]
    fn a_read_only_open_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open(&path, &StoreOptions::default()).unwrap());
        let before = std::fs::read(&path).unwrap();
        let store = Store::open_read_only(&path, &StoreOptions::default()).unwrap();
        assert!(store.history("nobody").unwrap().is_empty());
        drop(store);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let copy = Store::open_copy(&path, &StoreOptions::default()).unwrap();
        copy.begin_write().unwrap();
        copy.connection()
            .execute_batch("CREATE TABLE scratch (x)")
            .unwrap();
        copy.commit().unwrap();
        assert_eq!(copy.path(), path);
        drop(copy);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn missing_folders_and_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("nope/s.db"), &StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let options = StoreOptions {
            create: false,
            ..Default::default()
        };
        let err = Store::open(&dir.path().join("s.db"), &options).unwrap_err();
        assert!(matches!(err, StateError::Missing { .. }), "{err}");
        let err = Store::open(dir.path(), &StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("it is a folder"), "{err}");
    }
}
