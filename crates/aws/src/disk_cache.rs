//! The on-disk credential cache of irsa's short-lived processes (`irsa login`, the docker
//! credential helper, `irsa argocd-credentials`, the kubelet credential provider): each runs as a
//! new process per call, so it answers from disk until the credential's refresh point instead of
//! calling STS and the registry every time.
//!
//! One file per (identity, registry) in a directory private to the user. Trust is checked on the
//! open file descriptors, not on paths: the directory and every file are opened with
//! `O_NOFOLLOW` (a symlink is refused), and `fstat` of the open descriptor must show this
//! process's uid as owner and no write access for group or others (files: no access at all).
//! Anything else is [`CacheError::Untrusted`]: the caller warns once and goes on without the
//! cache. Entries are written to a new file (`create_new`, mode 0600) and renamed into place, so a
//! reader never sees half a file. A file that is absent, corrupt or past its refresh point is a
//! miss, never an error.
//!
//! The cache is bounded: every write sweeps a bounded batch of entries (removing expired and
//! corrupt ones) and evicts the entries closest to their refresh point when there are more than
//! [`DiskCache::with_max_entries`] (default [`DEFAULT_MAX_ENTRIES`]). [`DiskCache::lock`] takes
//! an exclusive file lock per (identity, registry), hashed onto a fixed set of lock files, so
//! that processes started at the same moment make one upstream exchange between them (single
//! flight across processes) and lock files never pile up.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use irsa_core::cache_entry::CacheEntry;
use irsa_core::secret::SecretString;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::env::Env;

/// Environment variables that change whose credential comes back, or from where: part of every
/// disk-cache key ([`CacheKey::environment`]), so a change of endpoint, region, endpoint style,
/// ambient identity or session name is a miss. The one list for `irsa login`, the credential
/// helpers and the kubelet credential provider.
pub const KEY_ENV: &[&str] = &[
    // Where the calls go.
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    // Whose ambient identity (the node's or the workload's own), and its session.
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
];

/// The most entries a cache keeps by default (a node with thousands of service accounts still
/// fits; a flood of distinct keys does not fill the disk).
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// Entries read (and maybe removed) by one write's sweep: bounded work per invocation.
const SWEEP_BATCH: usize = 64;

/// Lock files: (identity, registry) pairs are hashed onto this many.
const LOCK_SHARDS: usize = 256;

/// A temporary file older than this belongs to a writer that died.
const STALE_TMP: Duration = Duration::from_secs(600);

/// The largest cache file read (an entry is a few hundred bytes).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A cached registry credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The registry host.
    pub registry: String,
    /// The registry user name.
    pub username: String,
    /// The registry password.
    pub password: SecretString,
    /// Unix seconds after which the registry refuses the password, when the registry said.
    /// Only credentials with a known, future expiry are ever stored.
    pub expires_at: Option<i64>,
    /// Unix seconds after which the entry is not served (a fraction of its lifetime).
    pub refresh_at: i64,
}

/// Why the cache cannot be used or written.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The directory or a file in it is not private to this process's user: it is not used.
    #[error("refusing the credential cache: {path} {reason}; going on without it")]
    Untrusted {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Writing an entry failed.
    #[error("could not write the credential cache {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A disk-cache identity: a hash of length-prefixed parts (so no two different inputs share a
/// key) and of the environment in [`KEY_ENV`].
#[derive(Clone)]
pub struct CacheKey {
    hasher: Sha256,
}

impl CacheKey {
    /// A key for `purpose` (`"login"`, `"kubelet"`…), so that two tools never share entries.
    pub fn new(purpose: &str) -> Self {
        let mut key = Self {
            hasher: Sha256::new(),
        };
        key.part(purpose);
        key
    }

    /// Adds one part.
    pub fn part(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let bytes = bytes.as_ref();
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
        self
    }

    /// Adds every variable of [`KEY_ENV`] as `env` has it (unset and empty are the same).
    pub fn environment(&mut self, env: &Env) -> &mut Self {
        for name in KEY_ENV {
            let value = env.get(name).unwrap_or_default();
            self.part(name).part(value);
        }
        self
    }

    /// The key, as hex.
    pub fn finish(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    max_entries: usize,
    /// The uid files must belong to; `None`: this process's effective uid.
    owner: Option<u32>,
}

impl DiskCache {
    /// The default location: `$XDG_CACHE_HOME/irsa/credentials` or `$HOME/.cache/irsa/credentials`;
    /// `None` when neither `XDG_CACHE_HOME` nor `HOME` is set.
    pub fn from_env() -> Option<Self> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(Self::at(base.join("irsa").join("credentials")))
    }

    /// A cache in `dir` (created, mode 0700, at the first write).
    pub fn at(dir: PathBuf) -> Self {
        Self {
            dir,
            max_entries: DEFAULT_MAX_ENTRIES,
            owner: None,
        }
    }

    /// Keeps at most `max` entries (at least 1).
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// Files must belong to `uid` (tests: a foreign owner without root).
    #[cfg(test)]
    fn with_owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for one (identity, registry): a hash, so no name or path leaks into file names.
    fn path(&self, identity: &str, registry: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", file_stem(identity, registry)))
    }

    fn untrusted(path: &Path, reason: impl Into<String>) -> CacheError {
        CacheError::Untrusted {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn check_owner(&self, path: &Path, meta: &fs::Metadata) -> Result<(), CacheError> {
        owned_by(self.owner.or_else(effective_uid), path, meta.uid())
    }

    /// Opens the directory without following a symlink and checks the open descriptor: a
    /// directory, ours, not writable by group or others (one that is only readable by them is
    /// made 0700). `Ok(false)`: it does not exist (and `create` is false).
    fn check_dir(&self, create: bool) -> Result<bool, CacheError> {
        if create {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|source| CacheError::Io {
                    path: self.dir.clone(),
                    source,
                })?;
        }
        let dir = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&self.dir)
        {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(false),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(Self::untrusted(
                    &self.dir,
                    "is a symlink or not a directory: credentials are kept only in a real directory",
                ));
            }
            Err(e) => return Err(Self::untrusted(&self.dir, format!("cannot be opened: {e}"))),
        };
        let meta = dir
            .metadata()
            .map_err(|e| Self::untrusted(&self.dir, format!("cannot be examined: {e}")))?;
        if !meta.is_dir() {
            return Err(Self::untrusted(&self.dir, "is not a directory"));
        }
        self.check_owner(&self.dir, &meta)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Self::untrusted(
                &self.dir,
                format!(
                    "is writable by group or others (mode {mode:o}), so another user could plant \
                     or swap entries: `chmod 700` it after checking its contents, or use another \
                     directory"
                ),
            ));
        }
        if mode & 0o077 != 0 {
            // Only readable by others: file names are hashes and files 0600, but tighten it.
            let _ = dir.set_permissions(fs::Permissions::from_mode(0o700));
        }
        Ok(true)
    }

    /// Opens one cache file without following a symlink and checks it: a regular file, ours,
    /// no access for group or others. `Ok(None)`: absent or unreadable (a miss).
    fn read_file(&self, path: &Path) -> Result<Option<CacheEntry>, CacheError> {
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Self::untrusted(path, "is a symlink"));
            }
            Err(_) => return Ok(None),
        };
        let meta = file
            .metadata()
            .map_err(|e| Self::untrusted(path, format!("cannot be examined: {e}")))?;
        if !meta.is_file() {
            return Err(Self::untrusted(path, "is not a regular file"));
        }
        self.check_owner(path, &meta)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Self::untrusted(
                path,
                format!("is open to group or others (mode {mode:o}); irsa writes entries 0600"),
            ));
        }
        let mut bytes = Vec::with_capacity(512);
        if file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).is_err() {
            return Ok(None);
        }
        Ok(CacheEntry::parse(&bytes))
    }

    /// The entry for (identity, registry) if present and not yet at its refresh point.
    /// [`CacheError::Untrusted`] when the directory or the file is not private to this user.
    pub fn get(
        &self,
        identity: &str,
        registry: &str,
        now: i64,
    ) -> Result<Option<Entry>, CacheError> {
        if !self.check_dir(false)? {
            return Ok(None);
        }
        let Some(d) = self.read_file(&self.path(identity, registry))? else {
            return Ok(None);
        };
        if !d.servable(registry, now) {
            return Ok(None);
        }
        Ok(Some(Entry {
            registry: d.registry,
            username: d.username,
            password: d.password,
            expires_at: Some(d.expires_at),
            refresh_at: d.refresh_at,
        }))
    }

    /// Stores an entry, then sweeps a bounded batch of other entries (expired, corrupt, or the
    /// oldest when over the limit). Failures are reported to the caller, who may ignore them.
    pub fn put(&self, identity: &str, entry: &Entry) -> Result<(), CacheError> {
        self.check_dir(true)?;
        let path = self.path(identity, &entry.registry);
        let json = CacheEntry {
            registry: entry.registry.clone(),
            username: entry.username.clone(),
            password: entry.password.clone(),
            expires_at: entry.expires_at.unwrap_or(entry.refresh_at),
            refresh_at: entry.refresh_at,
        }
        .to_json();
        write_private(&path, json.expose().as_bytes()).map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        self.sweep(&path, unix_now());
        Ok(())
    }

    /// Removes the entry for (identity, registry); absent is fine.
    pub fn remove(&self, identity: &str, registry: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(identity, registry)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Registries with a servable entry for this identity (for the credential helper's `list`).
    pub fn list(&self, identity: &str, now: i64) -> Vec<Entry> {
        if !matches!(self.check_dir(false), Ok(true)) {
            return Vec::new();
        }
        let mut out: Vec<Entry> = self
            .entry_files()
            .into_iter()
            .filter_map(|p| self.read_file(&p).ok().flatten())
            .filter_map(|d| self.get(identity, &d.registry, now).ok().flatten())
            .collect();
        out.sort_by(|a, b| a.registry.cmp(&b.registry));
        out.dedup_by(|a, b| a.registry == b.registry);
        out
    }

    /// The entry files, at most four times the entry limit (directory names only: cheap).
    fn entry_files(&self) -> Vec<PathBuf> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.take(self.max_entries.saturating_mul(4))
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect()
    }

    /// One write's housekeeping: reads at most [`SWEEP_BATCH`] entries from a random point,
    /// removes those that are corrupt, untrusted or past their refresh point, and when the cache
    /// holds more than its limit evicts the batch's entries closest to their refresh point.
    /// Temporary files of writers that died are removed too. `keep` (just written) stays.
    fn sweep(&self, keep: &Path, now: i64) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries = Vec::new();
        for e in dir.take(self.max_entries.saturating_mul(4)).flatten() {
            let path = e.path();
            match path.extension().and_then(|x| x.to_str()) {
                Some("json") if path != keep => entries.push(path),
                Some("tmp") => {
                    let stale = e
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_TMP);
                    if stale {
                        let _ = fs::remove_file(&path);
                    }
                }
                _ => {}
            }
        }
        if entries.is_empty() {
            return;
        }
        let total = entries.len() + 1;
        let start = fastrand::usize(..entries.len());
        let mut removed = 0;
        let mut live = Vec::new();
        for path in entries
            .iter()
            .cycle()
            .skip(start)
            .take(SWEEP_BATCH.min(entries.len()))
        {
            match self.read_file(path) {
                Ok(Some(d)) if now < d.refresh_at && now < d.expires_at => {
                    live.push((d.refresh_at, path));
                }
                _ => {
                    if fs::remove_file(path).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        let excess = (total - removed).saturating_sub(self.max_entries);
        live.sort();
        for (_, path) in live.into_iter().take(excess) {
            let _ = fs::remove_file(path);
        }
    }
}

/// An exclusive lock on one (identity, registry) of a [`DiskCache`], released on drop.
#[derive(Debug)]
pub struct DiskLock {
    file: fs::File,
}

impl Drop for DiskLock {
    fn drop(&mut self) {
        // No pair holds the shared file any more (the lock itself goes with the descriptor).
        let _ = self.file.write_all_at(&[0; STEM_LEN], 0);
    }
}

/// Length of [`file_stem`]: 16 bytes of SHA-256 in hex.
const STEM_LEN: usize = 32;

impl DiskCache {
    /// Waits (up to `wait`) for the exclusive lock of (identity, registry), so that only one
    /// process at a time fetches that credential; the others then find it in the cache. Pairs
    /// share [`LOCK_SHARDS`] lock files, so the lock files are bounded too (two pairs on one
    /// file do not take turns: the holder records its pair in the file, and a waiter of
    /// another pair goes on at once without the lock, so that one tenant's slow exchange never
    /// delays another's pull). `None` when the lock cannot be had in time, is held for another
    /// pair, or the directory is unusable: the caller goes on without it (one more upstream call
    /// is better than no answer, or than a late one).
    pub fn lock(&self, identity: &str, registry: &str, wait: Duration) -> Option<DiskLock> {
        self.check_dir(true).ok()?;
        let stem = file_stem(identity, registry);
        let shard = usize::from(Sha256::digest(stem.as_bytes())[0]) % LOCK_SHARDS;
        let path = self.dir.join(format!("{shard:02x}.lock"));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || self.check_owner(&path, &meta).is_err() {
            return None;
        }
        let deadline = Instant::now() + wait;
        let mut foreign: Option<[u8; STEM_LEN]> = None;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    // Whose fetch this is, for waiters of other pairs sharing the file (a failed
                    // write only costs them a wait).
                    let _ = file.write_all_at(stem.as_bytes(), 0);
                    return Some(DiskLock { file });
                }
                Err(fs::TryLockError::WouldBlock) => {
                    // Another process is fetching: it holds the lock for one round trip. Only
                    // a fetch of this same pair (or one not yet recorded) is worth waiting for.
                    // Another pair's record counts when read twice, 5 ms apart: a new holder
                    // that has not written its own yet, or a torn read, reads once.
                    let mut holder = [0; STEM_LEN];
                    let recorded = file.read_at(&mut holder, 0).ok() == Some(STEM_LEN)
                        && holder != [0; STEM_LEN];
                    if recorded && holder != stem.as_bytes() {
                        if foreign == Some(holder) {
                            return None;
                        }
                        foreign = Some(holder);
                    } else {
                        foreign = None;
                    }
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return None,
            }
        }
    }
}

/// The hash naming the files of one (identity, registry).
fn file_stem(identity: &str, registry: &str) -> String {
    let mut h = Sha256::new();
    h.update(identity.as_bytes());
    h.update([0]);
    h.update(registry.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a file of uid `found` may hold this process's credentials: only when it is ours.
/// When this process's uid is unknown (`None`: `/proc/self` unreadable) nothing is trusted,
/// since another user's file could not be told from ours.
fn owned_by(me: Option<u32>, path: &Path, found: u32) -> Result<(), CacheError> {
    match me {
        Some(me) if me == found => Ok(()),
        Some(me) => Err(DiskCache::untrusted(
            path,
            format!(
                "belongs to uid {found}, not to this process (uid {me}): another user could \
                 read or replace credentials there; use a directory of this user's own"
            ),
        )),
        None => Err(DiskCache::untrusted(
            path,
            "this process's uid is unknown (/proc/self cannot be read), so the owner of the \
             cache cannot be checked; mount /proc or run without the disk cache",
        )),
    }
}

/// This process's effective uid: the owner of `/proc/self` (Linux); `None` elsewhere.
fn effective_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Writes `bytes` to `path` with mode 0600 via a new temporary file (`create_new`: never an
/// existing file or symlink) and a rename, so a reader never sees half a file and the password
/// is never readable by others, not even for a moment.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    fn write_new(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(tmp, path)
    }
    let written = write_new(&tmp, path, bytes);
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry(registry: &str, refresh_at: i64) -> Entry {
        Entry {
            registry: registry.into(),
            username: "AWS".into(),
            password: "pw-very-secret".into(),
            expires_at: Some(refresh_at + 100),
            refresh_at,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("irsa-disk-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn files(dir: &Path, ext: &str) -> usize {
        fs::read_dir(dir)
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn serves_until_the_refresh_point_with_private_files() {
        let dir = temp("serve");
        let cache = DiskCache::at(dir.clone());
        let e = entry("cgr.dev", 1_000);
        cache.put("role-a", &e).expect("put");
        assert_eq!(
            cache.get("role-a", "cgr.dev", 999).unwrap(),
            Some(e.clone())
        );
        assert_eq!(
            cache.get("role-a", "cgr.dev", 1_000).unwrap(),
            None,
            "refresh point reached"
        );
        assert_eq!(
            cache.get("role-b", "cgr.dev", 10).unwrap(),
            None,
            "another identity"
        );
        let file = cache.path("role-a", "cgr.dev");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(
            !file.to_string_lossy().contains("cgr.dev"),
            "no registry names in file names"
        );
        assert_eq!(cache.list("role-a", 10).len(), 1);
        cache.remove("role-a", "cgr.dev").expect("remove");
        cache
            .remove("role-a", "cgr.dev")
            .expect("removing twice is fine");
        assert_eq!(cache.get("role-a", "cgr.dev", 10).unwrap(), None);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn refuses_a_symlinked_or_shared_directory_and_tightens_a_readable_one() {
        let base = temp("dirs");
        fs::create_dir_all(base.join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("link")).expect("symlink");
        let linked = DiskCache::at(base.join("link"));
        let err = linked.put("id", &entry("r", 1_000)).unwrap_err();
        assert!(
            matches!(err, CacheError::Untrusted { .. }) && err.to_string().contains("symlink"),
            "{err}"
        );
        assert!(
            linked.get("id", "r", 10).is_err(),
            "a symlinked cache dir is refused"
        );
        assert_eq!(
            fs::read_dir(base.join("elsewhere")).expect("dir").count(),
            0,
            "nothing written through the link"
        );
        // Writable by others: another user could plant an entry. Refused, not repaired.
        let shared = base.join("shared");
        fs::create_dir_all(&shared).expect("mkdir");
        DiskCache::at(shared.clone())
            .put("id", &entry("r", 1_000))
            .expect("put");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).expect("chmod");
        let cache = DiskCache::at(shared.clone());
        let err = cache.get("id", "r", 10).unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        assert!(cache.put("id", &entry("r", 2_000)).is_err());
        assert!(cache.lock("id", "r", Duration::ZERO).is_none());
        assert_eq!(mode(&shared), 0o777, "left as it is for its owner to judge");
        // Only readable by others: tightened.
        let readable = base.join("readable");
        fs::create_dir_all(&readable).expect("mkdir");
        fs::set_permissions(&readable, fs::Permissions::from_mode(0o755)).expect("chmod");
        DiskCache::at(readable.clone())
            .put("id", &entry("r", 1_000))
            .expect("put");
        assert_eq!(mode(&readable), 0o700);
        let _ = fs::remove_dir_all(base);
    }

    #[test]
    fn refuses_symlinked_open_or_foreign_entry_files() {
        let dir = temp("files");
        let cache = DiskCache::at(dir.clone());
        cache.put("id", &entry("r", 1_000)).expect("put");
        let good = cache.path("id", "r");
        // A symlink where an entry belongs, to a well-formed private file.
        let target = dir.join("planted");
        fs::copy(&good, &target).expect("copy");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).expect("chmod");
        let linked = cache.path("id", "linked");
        fs::write(
            &target,
            CacheEntry {
                registry: "linked".into(),
                username: "AWS".into(),
                password: "planted".into(),
                expires_at: 1_100,
                refresh_at: 1_000,
            }
            .to_json()
            .expose(),
        )
        .expect("write");
        std::os::unix::fs::symlink(&target, &linked).expect("symlink");
        let err = cache.get("id", "linked", 10).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        // An entry open to others.
        fs::set_permissions(&good, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = cache.get("id", "r", 10).unwrap_err();
        assert!(err.to_string().contains("mode 644"), "{err}");
        fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(cache.get("id", "r", 10).unwrap().is_some());
        // An unknown uid of our own trusts nothing (it used to skip the check).
        let err = owned_by(None, &good, 0).unwrap_err();
        assert!(err.to_string().contains("/proc/self"), "{err}");
        assert!(owned_by(Some(7), &good, 7).is_ok());
        // Files and directory of another uid.
        let me = effective_uid().expect("linux");
        let foreign = DiskCache::at(dir.clone()).with_owner(me + 1);
        let err = foreign.get("id", "r", 10).unwrap_err();
        assert!(
            err.to_string().contains(&format!("belongs to uid {me}")),
            "{err}"
        );
        assert!(foreign.lock("id", "r", Duration::ZERO).is_none());
        assert!(foreign.put("id", &entry("r", 2_000)).is_err());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_lock_is_exclusive_per_identity_and_registry_and_lock_files_are_bounded() {
        let dir = temp("lock");
        let cache = DiskCache::at(dir.clone());
        let held = cache
            .lock("id", "r", Duration::ZERO)
            .expect("a free lock is taken");
        assert!(
            cache.lock("id", "r", Duration::from_millis(20)).is_none(),
            "a held lock is not taken twice"
        );
        drop(held);
        assert!(cache.lock("id", "r", Duration::ZERO).is_some());
        for i in 0..1000 {
            drop(cache.lock(&format!("id-{i}"), "r", Duration::ZERO));
        }
        let locks = files(&dir, "lock");
        assert!(
            locks <= LOCK_SHARDS,
            "{locks} lock files for 1000 identities"
        );
        assert_eq!(
            cache.list("id", 10),
            Vec::new(),
            "lock files are not entries"
        );
        let _ = fs::remove_dir_all(dir);
    }

    /// Review L2 (stop 19): pairs share lock files, and a pull used to wait up to the whole
    /// lock wait (30 s for the provider) behind another tenant's slow exchange. A waiter now
    /// sees whose fetch holds the shared file and waits only for its own pair's.
    #[test]
    fn a_lock_held_for_another_pair_is_not_waited_for() {
        let dir = temp("lock-shard");
        let cache = DiskCache::at(dir.clone());
        let shard =
            |id: &str| usize::from(Sha256::digest(file_stem(id, "r").as_bytes())[0]) % LOCK_SHARDS;
        let other = (0..10_000)
            .map(|i| format!("other-{i}"))
            .find(|id| shard(id) == shard("id"))
            .expect("a pair sharing the lock file");
        let held = cache.lock("id", "r", Duration::ZERO).expect("free");
        let started = Instant::now();
        assert!(cache.lock(&other, "r", Duration::from_secs(5)).is_none());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "waited {:?} behind another pair's fetch",
            started.elapsed()
        );
        // The pair's own fetch is still waited for, up to the wait.
        let started = Instant::now();
        assert!(cache.lock("id", "r", Duration::from_millis(300)).is_none());
        assert!(started.elapsed() >= Duration::from_millis(300));
        drop(held);
        // Free again, the shared file serves the other pair (and then records it).
        let other_held = cache.lock(&other, "r", Duration::ZERO).expect("free");
        let started = Instant::now();
        assert!(cache.lock("id", "r", Duration::from_secs(5)).is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(other_held);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn corrupt_files_are_misses() {
        let dir = temp("corrupt");
        let cache = DiskCache::at(dir.clone());
        cache.put("id", &entry("r", 1_000)).expect("put");
        fs::write(cache.path("id", "r"), b"{not json").expect("corrupt it");
        assert_eq!(cache.get("id", "r", 10).unwrap(), None);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn writes_sweep_expired_entries_and_keep_the_cache_under_its_limit() {
        let dir = temp("sweep");
        let cache = DiskCache::at(dir.clone());
        let now = unix_now();
        // Expired entries (refresh point in 1970) are removed by the next writes.
        for i in 0..20 {
            cache
                .put(&format!("old-{i}"), &entry("r", 1_000))
                .expect("put");
        }
        fs::write(dir.join("0123.json"), b"garbage").expect("write");
        cache.put("live", &entry("r", now + 3_600)).expect("put");
        assert_eq!(files(&dir, "json"), 1, "only the live entry is left");
        assert!(cache.get("live", "r", now).unwrap().is_some());
        // A limit: never more entries than it, and the newest is always kept.
        let small = DiskCache::at(dir.clone()).with_max_entries(10);
        for i in 0..25 {
            let id = format!("new-{i}");
            small.put(&id, &entry("r", now + 3_600 + i)).expect("put");
            assert!(
                files(&dir, "json") <= 10,
                "after {i}: {}",
                files(&dir, "json")
            );
            assert!(small.get(&id, "r", now).unwrap().is_some(), "{id} kept");
        }
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn every_variable_that_changes_credentials_is_in_the_key() {
        let key = |vars: &[(&str, &str)]| {
            CacheKey::new("test")
                .part("identity")
                .environment(&Env::from_pairs(vars.iter().copied()))
                .finish()
        };
        let base = key(&[]);
        for name in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_ECR",
            "AWS_ENDPOINT_URL_ECR_PUBLIC",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "AWS_USE_FIPS_ENDPOINT",
            "AWS_USE_DUALSTACK_ENDPOINT",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_SESSION_NAME",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        ] {
            assert_ne!(key(&[(name, "x")]), base, "{name} is not in the key");
        }
        assert_ne!(
            key(&[("AWS_REGION", "eu-west-1")]),
            key(&[("AWS_DEFAULT_REGION", "eu-west-1")]),
            "a value is bound to its variable"
        );
        assert_eq!(key(&[("UNRELATED", "x")]), base);
        assert_ne!(
            CacheKey::new("a").part("bc").finish(),
            CacheKey::new("ab").part("c").finish(),
            "parts are length-prefixed"
        );
    }
}
