//! The on-disk credential cache of irsa's short-lived processes (`irsa login`, the docker
//! credential helper, `irsa argocd-credentials`, the kubelet credential provider): each runs as a
//! new process per call, so it answers from disk until the credential's refresh point instead of
//! calling STS and the registry every time.
//!
//! One file per (identity, registry) in a directory private to the user (mode 0700, owned by
//! the caller, not a symlink), files mode 0600, written atomically. A file that cannot be read,
//! is corrupt or is past its refresh point is a miss, never an error. [`DiskCache::lock`] takes
//! an exclusive file lock per (identity, registry), so that processes started at the same moment
//! make one upstream exchange between them (single flight across processes).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use irsa_core::cache_entry::CacheEntry;
use irsa_core::secret::SecretString;
use sha2::{Digest, Sha256};

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

/// A cache directory.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
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

    /// A cache in `dir` (created at the first write).
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
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

    /// Creates the directory (0700) if absent, and refuses one that is a symlink or not private
    /// to this user: a directory another user can write to could redirect or read passwords.
    /// A directory we own but that is too open is made 0700; one we do not own cannot be.
    fn ensure_private_dir(&self) -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        self.check_private_dir()
    }

    fn check_private_dir(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::symlink_metadata(&self.dir)?;
        if !meta.file_type().is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory (a symlink?): refusing to keep credentials there",
                self.dir.display()
            )));
        }
        // Another user's directory could be read or replaced by that user: never use it.
        if let Some(me) = effective_uid()
            && meta.uid() != me
        {
            return Err(std::io::Error::other(format!(
                "{} belongs to uid {}, not to this process (uid {me}): refusing to keep \
                 credentials there",
                self.dir.display(),
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// The entry for (identity, registry) if present and not yet at its refresh point.
    pub fn get(&self, identity: &str, registry: &str, now: i64) -> Option<Entry> {
        self.check_private_dir().ok()?;
        let bytes = fs::read(self.path(identity, registry)).ok()?;
        let d = CacheEntry::parse(&bytes)?;
        if !d.servable(registry, now) {
            return None;
        }
        Some(Entry {
            registry: d.registry,
            username: d.username,
            password: d.password,
            expires_at: Some(d.expires_at),
            refresh_at: d.refresh_at,
        })
    }

    /// Stores an entry; failures are reported to the caller, who may ignore them (a cache).
    pub fn put(&self, identity: &str, entry: &Entry) -> std::io::Result<()> {
        self.ensure_private_dir()?;
        let path = self.path(identity, &entry.registry);
        let json = CacheEntry {
            registry: entry.registry.clone(),
            username: entry.username.clone(),
            password: entry.password.clone(),
            expires_at: entry.expires_at.unwrap_or(entry.refresh_at),
            refresh_at: entry.refresh_at,
        }
        .to_json();
        write_private(&path, json.expose().as_bytes())
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
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Entry> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| CacheEntry::parse(&b))
            .filter_map(|d| self.get(identity, &d.registry, now))
            .collect();
        out.sort_by(|a, b| a.registry.cmp(&b.registry));
        out
    }
}

/// An exclusive lock on one (identity, registry) of a [`DiskCache`], released on drop.
#[derive(Debug)]
pub struct DiskLock {
    _file: fs::File,
}

impl DiskCache {
    /// Waits (up to `wait`) for the exclusive lock of (identity, registry), so that only one
    /// process at a time fetches that credential; the others then find it in the cache. `None`
    /// when the lock cannot be had in time or the directory is unusable: the caller goes on
    /// without it (one more upstream call is better than no answer).
    pub fn lock(&self, identity: &str, registry: &str, wait: Duration) -> Option<DiskLock> {
        self.ensure_private_dir().ok()?;
        let path = self
            .dir
            .join(format!("{}.lock", file_stem(identity, registry)));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .ok()?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Some(DiskLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    // Another process is fetching: it holds the lock for one round trip.
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

/// This process's effective uid: the owner of `/proc/self` (Linux); `None` elsewhere.
fn effective_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Writes `bytes` to `path` with mode 0600 via a temporary file and a rename, so a reader never
/// sees half a file and the password is never world-readable, not even for a moment.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
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

    #[test]
    fn serves_until_the_refresh_point_with_private_files() {
        let dir = temp("serve");
        let cache = DiskCache::at(dir.clone());
        let e = entry("cgr.dev", 1_000);
        cache.put("role-a", &e).expect("put");
        assert_eq!(cache.get("role-a", "cgr.dev", 999), Some(e.clone()));
        assert_eq!(
            cache.get("role-a", "cgr.dev", 1_000),
            None,
            "refresh point reached"
        );
        assert_eq!(cache.get("role-b", "cgr.dev", 10), None, "another identity");
        let file = fs::read_dir(&dir)
            .expect("dir")
            .next()
            .expect("one file")
            .expect("entry")
            .path();
        assert_eq!(
            fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        assert!(
            !file.to_string_lossy().contains("cgr.dev"),
            "no registry names in file names"
        );
        assert_eq!(cache.list("role-a", 10).len(), 1);
        cache.remove("role-a", "cgr.dev").expect("remove");
        cache
            .remove("role-a", "cgr.dev")
            .expect("removing twice is fine");
        assert_eq!(cache.get("role-a", "cgr.dev", 10), None);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn refuses_a_symlinked_directory_and_tightens_an_open_one() {
        use std::os::unix::fs::PermissionsExt;
        let base = temp("dirs");
        fs::create_dir_all(base.join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("link")).expect("symlink");
        let linked = DiskCache::at(base.join("link"));
        assert!(
            linked.put("id", &entry("r", 1_000)).is_err(),
            "a symlinked cache dir is refused"
        );
        assert_eq!(
            fs::read_dir(base.join("elsewhere")).expect("dir").count(),
            0,
            "nothing written through the link"
        );
        let open = base.join("open");
        fs::create_dir_all(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
        DiskCache::at(open.clone())
            .put("id", &entry("r", 1_000))
            .expect("put");
        assert_eq!(
            fs::metadata(&open).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        let _ = fs::remove_dir_all(base);
    }

    #[test]
    fn the_lock_is_exclusive_per_identity_and_registry_until_dropped() {
        let dir = temp("lock");
        let cache = DiskCache::at(dir.clone());
        let held = cache
            .lock("id", "r", Duration::ZERO)
            .expect("a free lock is taken");
        assert!(
            cache.lock("id", "r", Duration::from_millis(20)).is_none(),
            "a held lock is not taken twice"
        );
        assert!(
            cache.lock("id", "other", Duration::ZERO).is_some(),
            "another registry has its own lock"
        );
        drop(held);
        assert!(cache.lock("id", "r", Duration::ZERO).is_some());
        assert_eq!(
            cache.list("id", 10),
            Vec::new(),
            "lock files are not entries"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn corrupt_files_are_misses() {
        let dir = temp("corrupt");
        let cache = DiskCache::at(dir.clone());
        cache.put("id", &entry("r", 1_000)).expect("put");
        let file = fs::read_dir(&dir)
            .expect("dir")
            .next()
            .expect("file")
            .expect("entry")
            .path();
        fs::write(&file, b"{not json").expect("corrupt it");
        assert_eq!(cache.get("id", "r", 10), None);
        let _ = fs::remove_dir_all(dir);
    }
}
