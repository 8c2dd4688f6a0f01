//! Fetching one commit of a git repository and writing its tree as plain files.
//!
//! The clone goes into a temporary bare repository; only the commit's tree is written into the destination,
//! so the build sees the files and nothing of git (no `.git`, no hooks, no config). The same limits and
//! symlink rules as for tarballs apply to the tree.

use std::fs;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::objs::tree::EntryKind;

use crate::error::SourceError;
use crate::source::{UnpackLimits, check_symlink_target, prepare_dest, safe_relative, set_mode};

/// The commit a fetch resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// Full hex object id of the commit.
    pub commit: String,
    /// Committer time of the commit, unix seconds (used as SOURCE_DATE_EPOCH and layer mtime).
    pub commit_time: i64,
}

/// Fetches `commit_or_ref` (a full commit id, `HEAD`, a branch or tag name, or a full ref name) from `url`
/// (`file://`, a local path, `ssh://`, or `http(s)://`) and writes that commit's tree into `dest`, which must
/// not exist or be empty. On error `dest` is removed.
///
/// An `https://user:token@host/...` URL fetches with that token as HTTP Basic auth (how GitHub, GitLab and
/// Gitea take access tokens). The token is given to gix only through an in-memory credential callback:
/// never through the environment, argv, a git config file or the host's credential helpers, and errors name
/// the URL with `***` for it. A refused token is a [`SourceError::Git`] saying "authentication failed".
/// Credentials are never sent over plain `http://` (gix refuses, an error) except in this crate's test builds.
pub fn fetch_git(url: &str, commit_or_ref: &str, dest: &Path) -> Result<GitSource, SourceError> {
    fetch_git_with_ssh(url, commit_or_ref, dest, None)
}

/// [`fetch_git`] with the command `ssh://` URLs run, like git's `core.sshCommand` (for example
/// `ssh -i KEY -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=FILE`). It is set for
/// this fetch only, in memory: no environment variable or config file of the process changes, so concurrent
/// fetches of other repositories use their own keys.
pub fn fetch_git_with_ssh(
    url: &str,
    commit_or_ref: &str,
    dest: &Path,
    ssh_command: Option<&str>,
) -> Result<GitSource, SourceError> {
    prepare_dest(dest)?;
    // The token leaves the URL here: gix gets it only through the credential callback below, so it is never
    // written to the temporary repository's config nor quoted by gix in an error.
    let (fetch_url, credentials) = split_http_credentials(url);
    let result = fetch_inner(
        &fetch_url,
        url,
        credentials.as_ref(),
        commit_or_ref,
        dest,
        ssh_command,
    );
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn git_err(url: &str, rev: &str, what: &str, e: impl std::error::Error) -> SourceError {
    let mut message = format!("{what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    // Transport errors may quote the URL: its password goes nowhere.
    if let Some(password) = url_password(url) {
        message = message.replace(password, "***");
    }
    SourceError::Git {
        url: redact_url(url),
        rev: rev.to_string(),
        message,
    }
}

/// A username and password (a repository token) for HTTP Basic auth, taken out of an `http(s)://` URL.
#[derive(Clone)]
struct HttpCredentials {
    username: String,
    password: String,
}

// Hand-written so that a `{:?}` anywhere (a debug log, a panic message) cannot print the token.
impl std::fmt::Debug for HttpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCredentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Splits `user:password@` off an `http://` or `https://` URL. Other URLs (ssh, file, paths) and http URLs
/// without a password come back unchanged: for ssh the user info is the login name, not a secret.
/// The user info is percent-decoded as in any URL; a raw token (what the gate writes) has no `%` and passes
/// unchanged. The host part starts after the *last* `@`, so a raw `@` or `:` in the token does not move it.
fn split_http_credentials(url: &str) -> (String, Option<HttpCredentials>) {
    // The last `@` ends the user info, as in `redact_url`: a raw token may itself hold `@`, `:` or `/`.
    let Some((scheme, user, password, host)) = split_userinfo(url) else {
        return (url.to_string(), None);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return (url.to_string(), None);
    }
    if password.is_empty() {
        return (url.to_string(), None);
    }
    let stripped = format!("{scheme}://{host}");
    (
        stripped,
        Some(HttpCredentials {
            username: percent_decode(user),
            password: percent_decode(password),
        }),
    )
}

/// Decodes `%XX` escapes; anything else (including a `%` not followed by two hex digits) is kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The credential callback gix calls when the server answers 401: it gives this repository's token and
/// nothing else. It replaces gix's default, which would run the host's git credential helpers (possibly
/// `store`, writing the token to `~/.git-credentials`) and prompt on a terminal; a gate must do neither.
/// Without a token for the repository, the fetch fails at once instead.
fn credential_callback(
    credentials: Option<HttpCredentials>,
) -> impl FnMut(
    gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>>
+ 'static {
    use gix::credentials::helper::Action;
    move |action| match action {
        Action::Get(context) => match &credentials {
            Some(c) => Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: c.username.clone(),
                    password: c.password.clone(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            })),
            None => Err(gix::error::Message::new(
                "the server requires credentials and none are configured for this repository",
            )
            .unauthenticated_error()),
        },
        // Nothing is stored or erased anywhere: the token lives in the gate's config only.
        Action::Store(_) | Action::Erase(_) => Ok(None),
    }
}

/// `scheme://user:password@host...` as (scheme, user, password, host and the rest); `None` without a
/// `:` in the user info. The host starts after the *last* `@`.
fn split_userinfo(url: &str) -> Option<(&str, &str, &str, &str)> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let at = rest.rfind('@')?;
    let (user, password) = rest[..at].split_once(':')?;
    Some((&url[..scheme_end], user, password, &rest[at + 1..]))
}

fn url_password(url: &str) -> Option<&str> {
    split_userinfo(url)
        .map(|(_, _, password, _)| password)
        .filter(|p| !p.is_empty())
}

/// `url` with the password of its user info replaced by `***`: fetch URLs may carry a repository token, and
/// errors (and the debug log lines made from them) must not.
fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, user, _, host)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn is_full_hex(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `url` is what gix connects to (no password in it); `shown_url` is the caller's URL, used (redacted) in
/// errors and to scrub its password from any message.
fn fetch_inner(
    url: &str,
    shown_url: &str,
    credentials: Option<&HttpCredentials>,
    rev: &str,
    dest: &Path,
    ssh_command: Option<&str>,
) -> Result<GitSource, SourceError> {
    if rev.is_empty() || rev.len() > 256 || rev.starts_with('-') {
        return Err(SourceError::Git {
            url: redact_url(shown_url),
            rev: rev.to_string(),
            message: "not a usable commit id or ref name".into(),
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix("airlock-git-")
        .tempdir()
        .map_err(|source| SourceError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let repo_dir = tmp.path().join("repo.git");
    let interrupt = AtomicBool::new(false);
    let depth_one = gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN);
    let auth_failed = std::cell::Cell::new(false);

    let clone = |revision: bool, shallow: bool| -> Result<gix::Repository, SourceError> {
        let _ = fs::remove_dir_all(&repo_dir);
        let mut prep = gix::prepare_clone_bare(url, &repo_dir)
            .map_err(|e| git_err(shown_url, rev, "cannot open remote", e))?;
        let callback_credentials = credentials.cloned();
        prep = prep.configure_connection(move |connection| {
            connection.set_credentials(credential_callback(callback_credentials.clone()));
            Ok(())
        });
        if let Some(command) = ssh_command {
            prep = prep.with_in_memory_config_overrides([format!("core.sshCommand={command}")]);
        }
        if revision {
            prep = prep
                .with_revision(Some(rev))
                .map_err(|e| git_err(shown_url, rev, "bad revision", e))?;
        } else if !is_full_hex(rev) && rev != "HEAD" {
            prep = prep
                .with_ref_name(Some(rev))
                .map_err(|e| git_err(shown_url, rev, "bad ref name", e))?;
        }
        if shallow {
            prep = prep.with_shallow(depth_one.clone());
        }
        let (repo, _outcome) = prep
            .fetch_only(gix::progress::Discard, &interrupt)
            .map_err(|e| {
                if e.is_unauthenticated() {
                    auth_failed.set(true);
                    git_err(
                        shown_url,
                        rev,
                        "authentication failed (the server refused the credentials, or none are \
                         configured for this repository)",
                        e,
                    )
                } else {
                    git_err(shown_url, rev, "fetch failed", e)
                }
            })?;
        Ok(repo)
    };

    let repo = if is_full_hex(rev) || rev.starts_with("refs/") {
        // Ask for exactly this commit; servers that refuse unadvertised ids get a full clone instead.
        match clone(true, true) {
            Ok(repo) => repo,
            // Other credentials would not come from a second try: report the refusal as it is.
            Err(first) if auth_failed.get() => return Err(first),
            Err(first) => {
                tracing::debug!(error = %first, "fetching the commit directly failed; cloning everything");
                clone(false, false)?
            }
        }
    } else {
        clone(false, true)?
    };

    let id = if is_full_hex(rev) {
        repo.rev_parse_single(rev)
            .map_err(|e| git_err(shown_url, rev, "commit not found in the repository", e))?
            .detach()
    } else {
        repo.head_id()
            .map_err(|e| git_err(shown_url, rev, "ref did not resolve to a commit", e))?
            .detach()
    };
    let commit = repo
        .find_commit(id)
        .map_err(|e| git_err(shown_url, rev, "not a commit", e))?;
    let commit_time = commit
        .time()
        .map_err(|e| git_err(shown_url, rev, "unreadable commit time", e))?
        .seconds;
    let tree = commit
        .tree()
        .map_err(|e| git_err(shown_url, rev, "unreadable tree", e))?;
    let mut writer = TreeWriter {
        repo: &repo,
        url: shown_url,
        rev,
        limits: UnpackLimits::default(),
        entries: 0,
        bytes: 0,
    };
    writer.write_tree(tree.id, dest, Path::new(""), 0)?;
    Ok(GitSource {
        commit: id.to_string(),
        commit_time,
    })
}

/// Maximum directory depth written from a git tree.
const MAX_TREE_DEPTH: usize = 64;

struct TreeWriter<'r> {
    repo: &'r gix::Repository,
    url: &'r str,
    rev: &'r str,
    limits: UnpackLimits,
    entries: u64,
    bytes: u64,
}

impl TreeWriter<'_> {
    fn write_tree(
        &mut self,
        tree_id: gix::ObjectId,
        root: &Path,
        rel: &Path,
        depth: usize,
    ) -> Result<(), SourceError> {
        if depth > MAX_TREE_DEPTH {
            return Err(SourceError::LimitExceeded {
                path: rel.display().to_string(),
                what: format!("tree deeper than {MAX_TREE_DEPTH} directories"),
            });
        }
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(|e| git_err(self.url, self.rev, "missing tree object", e))?;
        let decoded = tree
            .decode()
            .map_err(|e| git_err(self.url, self.rev, "corrupt tree object", e))?;
        for entry in &decoded.entries {
            let name = String::from_utf8_lossy(entry.filename).into_owned();
            let child_rel: PathBuf = rel.join(&name);
            let shown = child_rel.display().to_string();
            // A single normal component; git forbids `/`, `.` and `..` but the server is untrusted.
            match safe_relative(&name) {
                Ok(p) if p.components().count() == 1 && name != ".git" => {}
                _ => {
                    return Err(SourceError::UnsafeEntry {
                        path: shown,
                        reason: "tree entry name is not a plain file name".into(),
                    });
                }
            }
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(SourceError::LimitExceeded {
                    path: shown,
                    what: format!("more than {} entries", self.limits.max_entries),
                });
            }
            let target = root.join(&child_rel);
            let oid = entry.oid.to_owned();
            match entry.mode.kind() {
                EntryKind::Tree => {
                    fs::create_dir(&target).map_err(|source| SourceError::Io {
                        path: target.clone(),
                        source,
                    })?;
                    set_mode(&target, 0o755)?;
                    self.write_tree(oid, root, &child_rel, depth + 1)?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let blob = self
                        .repo
                        .find_blob(oid)
                        .map_err(|e| git_err(self.url, self.rev, "missing blob", e))?;
                    let size = blob.data.len() as u64;
                    self.bytes += size;
                    if size > self.limits.max_file_bytes || self.bytes > self.limits.max_total_bytes
                    {
                        return Err(SourceError::LimitExceeded {
                            path: shown,
                            what: format!(
                                "file of {size} bytes exceeds the file ({}) or total ({}) limit",
                                self.limits.max_file_bytes, self.limits.max_total_bytes
                            ),
                        });
                    }
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&target)
                        .map_err(|source| SourceError::Io {
                            path: target.clone(),
                            source,
                        })?;
                    f.write_all(&blob.data).map_err(|source| SourceError::Io {
                        path: target.clone(),
                        source,
                    })?;
                    let mode = if entry.mode.kind() == EntryKind::BlobExecutable {
                        0o755
                    } else {
                        0o644
                    };
                    set_mode(&target, mode)?;
                }
                EntryKind::Link => {
                    let blob = self
                        .repo
                        .find_blob(oid)
                        .map_err(|e| git_err(self.url, self.rev, "missing symlink blob", e))?;
                    let link = String::from_utf8_lossy(&blob.data).into_owned();
                    check_symlink_target(&child_rel, &link).map_err(|reason| {
                        SourceError::UnsafeEntry {
                            path: shown.clone(),
                            reason,
                        }
                    })?;
                    std::os::unix::fs::symlink(&link, &target).map_err(|source| {
                        SourceError::Io {
                            path: target.clone(),
                            source,
                        }
                    })?;
                }
                EntryKind::Commit => {
                    // Submodules are not fetched; leave the empty directory git itself would leave.
                    fs::create_dir(&target).map_err(|source| SourceError::Io {
                        path: target.clone(),
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_errors_never_carry_the_url_password() {
        let e = git_err(
            "https://oauth2:s3cret@git.example/a.git",
            "main",
            "fetch failed",
            std::io::Error::other("cannot reach https://oauth2:s3cret@git.example/a.git"),
        );
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("https://oauth2:***@git.example/a.git"),
            "{text}"
        );
        assert_eq!(redact_url("ssh://git@host/a.git"), "ssh://git@host/a.git");
    }

    #[test]
    fn http_credentials_leave_the_url_and_ssh_users_stay() {
        let (url, creds) =
            split_http_credentials("https://oauth2:glpat-a:b@c@git.example/acme/x.git");
        assert_eq!(url, "https://git.example/acme/x.git");
        let creds = creds.expect("credentials");
        assert_eq!(creds.username, "oauth2");
        assert_eq!(creds.password, "glpat-a:b@c");
        assert!(!format!("{creds:?}").contains("glpat"), "{creds:?}");

        let (_, creds) = split_http_credentials("HTTP://me%40corp:p%2Fw%zz@host/x.git");
        let creds = creds.expect("credentials");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("me@corp", "p/w%zz")
        );

        for unchanged in [
            "ssh://git@host/x.git",
            "https://host/x.git",
            "https://user@host/x.git",
            "https://user:@host/x.git",
            "file:///srv/x.git",
            "/srv/x.git",
        ] {
            let (url, creds) = split_http_credentials(unchanged);
            assert_eq!(url, unchanged);
            assert!(creds.is_none(), "{unchanged}");
        }
    }
    use std::os::unix::fs::PermissionsExt;

    use airlock_testkit::tools::git;

    /// A repository with two commits on `main`; returns (dir, first commit, second commit).
    fn make_repo() -> (tempfile::TempDir, String, String) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q", "-b", "main"]);
        fs::write(dir.join("README"), "one\n").unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "one"]);
        let first = git(dir, &["rev-parse", "HEAD"]);
        fs::create_dir(dir.join("bin")).unwrap();
        fs::write(dir.join("bin/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(dir.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("bin/run.sh", dir.join("run")).unwrap();
        fs::write(dir.join("README"), "two\n").unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "two"]);
        git(dir, &["tag", "v1"]);
        let second = git(dir, &["rev-parse", "HEAD"]);
        (tmp, first, second)
    }

    #[test]
    fn fetches_branch_over_file_url_without_dot_git() {
        let (repo, _first, second) = make_repo();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("src");
        let url = format!("file://{}", repo.path().display());
        let got = fetch_git(&url, "main", &dest).unwrap();
        assert_eq!(got.commit, second);
        assert_eq!(got.commit_time, 1_700_000_000);
        assert_eq!(fs::read_to_string(dest.join("README")).unwrap(), "two\n");
        let mode = fs::metadata(dest.join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o755);
        assert_eq!(
            fs::read_link(dest.join("run")).unwrap(),
            Path::new("bin/run.sh")
        );
        assert!(!dest.join(".git").exists());
    }

    #[test]
    fn fetches_older_commit_by_full_id_from_plain_path() {
        let (repo, first, _second) = make_repo();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("src");
        let got = fetch_git(&repo.path().display().to_string(), &first, &dest).unwrap();
        assert_eq!(got.commit, first);
        assert_eq!(fs::read_to_string(dest.join("README")).unwrap(), "one\n");
        assert!(!dest.join("bin").exists());
    }

    #[test]
    fn fetches_tag_and_head() {
        let (repo, _first, second) = make_repo();
        let out = tempfile::tempdir().unwrap();
        for (i, rev) in ["v1", "HEAD"].into_iter().enumerate() {
            let dest = out.path().join(format!("src{i}"));
            let got = fetch_git(&repo.path().display().to_string(), rev, &dest).unwrap();
            assert_eq!(got.commit, second, "{rev}");
        }
    }

    #[test]
    fn unknown_ref_is_an_error_naming_it_and_leaves_nothing() {
        let (repo, _first, _second) = make_repo();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("src");
        let err =
            fetch_git(&repo.path().display().to_string(), "no-such-branch", &dest).unwrap_err();
        match &err {
            SourceError::Git { rev, .. } => assert_eq!(rev, "no-such-branch"),
            other => panic!("expected Git error, got {other:?}"),
        }
        assert!(!dest.exists());
    }

    #[test]
    fn unknown_commit_id_is_an_error() {
        let (repo, _first, _second) = make_repo();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("src");
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = fetch_git(&repo.path().display().to_string(), missing, &dest).unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
        assert!(!dest.exists());
    }

    #[test]
    fn refuses_symlink_out_of_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q", "-b", "main"]);
        std::os::unix::fs::symlink("/etc/passwd", dir.join("pw")).unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "evil"]);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("src");
        let err = fetch_git(&dir.display().to_string(), "main", &dest).unwrap_err();
        assert!(
            matches!(&err, SourceError::UnsafeEntry { path, .. } if path == "pw"),
            "{err}"
        );
        assert!(!dest.exists());
    }
}
