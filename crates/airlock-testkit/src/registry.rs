//! A real OCI registry for a test: Debian's `docker-registry` (distribution 2.8) on a free 127.0.0.1 port.
//!
//! Started with its own configuration (the packaged one listens on every interface with password auth, see
//! TESTKIT.md), its data in a temporary directory, and killed through its own process handle when dropped,
//! so parallel tests never share or leak a registry.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_oci::{Digest, RegistryAuth, RegistryStore};

use crate::tools::free_port;

/// How long a fresh registry may take to accept connections (it is ready in well under a second here).
const START_WAIT: Duration = Duration::from_secs(10);

/// A `docker-registry` process serving `127.0.0.1:PORT` with its data in a temporary directory.
pub struct Registry {
    /// `127.0.0.1:PORT`, as clients address it.
    pub host: String,
    /// The loopback port it listens on (kept across [`Registry::restart`]).
    pub port: u16,
    dir: tempfile::TempDir,
    extra_config: String,
    child: Option<Child>,
}

impl Registry {
    /// Whether `docker-registry` can be run at all.
    pub fn installed() -> bool {
        Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_ok()
    }

    /// Starts a registry; panics with the install hint when `docker-registry` is missing.
    pub fn start() -> Registry {
        Registry::start_with("")
    }

    /// Like [`Registry::start`], with `extra_config` (YAML lines, e.g. an `auth:` block) appended to the
    /// configuration.
    pub fn start_with(extra_config: &str) -> Registry {
        assert!(
            Registry::installed(),
            "docker-registry is not installed: apt-get install -y docker-registry (scripts/setup)"
        );
        let mut registry = Registry::unstarted(extra_config);
        registry.restart();
        registry
    }

    /// Like [`Registry::start`], answering only `user` / `password` (distribution's htpasswd auth); panics
    /// with the install hint when `htpasswd` (apache2-utils) is missing.
    pub fn start_with_password(user: &str, password: &str) -> Registry {
        assert!(
            Registry::installed(),
            "docker-registry is not installed: apt-get install -y docker-registry (scripts/setup)"
        );
        let mut registry = Registry::unstarted("");
        let htpasswd = registry.dir.path().join("htpasswd");
        let made = Command::new("htpasswd")
            .arg("-Bbc")
            .arg(&htpasswd)
            .args([user, password])
            .output()
            .expect("htpasswd is installed (apt-get install -y apache2-utils; scripts/setup)");
        assert!(
            made.status.success(),
            "htpasswd: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        registry.extra_config = format!(
            "auth: {{ htpasswd: {{ realm: airlock-test, path: {} }} }}\n",
            htpasswd.display()
        );
        registry.restart();
        registry
    }

    /// Starts a registry, or returns `None` after printing a `SKIPPED` note when `docker-registry` is missing
    /// (for the tests that choose to skip rather than fail).
    pub fn try_start() -> Option<Registry> {
        Registry::try_start_with("")
    }

    /// [`Registry::try_start`] with `extra_config` appended to the configuration.
    pub fn try_start_with(extra_config: &str) -> Option<Registry> {
        if !Registry::installed() {
            eprintln!(
                "SKIPPED: docker-registry is not installed (apt-get install -y docker-registry)"
            );
            return None;
        }
        let mut registry = Registry::unstarted(extra_config);
        registry.restart();
        Some(registry)
    }

    fn unstarted(extra_config: &str) -> Registry {
        let port = free_port();
        Registry {
            host: format!("127.0.0.1:{port}"),
            port,
            dir: tempfile::tempdir().expect("a temporary directory for the registry"),
            extra_config: extra_config.to_string(),
            child: None,
        }
    }

    /// `127.0.0.1:PORT` (the same as the `host` field).
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Stops the registry: the port refuses connections until [`Registry::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts it on the same port with the same data, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let config = self.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\nhttp: {{ addr: {} }}\n{}",
                self.dir.path().join("data").display(),
                self.host,
                self.extra_config
            ),
        )
        .expect("writing the registry's config.yml");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is not installed: run scripts/setup (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + START_WAIT;
        while TcpStream::connect(&self.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start on {}",
                self.host
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// A store for repository `repository` of this registry (plain HTTP, anonymous).
    pub fn store(&self, repository: &str) -> RegistryStore {
        RegistryStore::new(&self.host, repository, RegistryAuth::Anonymous, true)
            .expect("a store for the test registry")
    }

    /// `HOST/REPOSITORY`, the Docker reference of a repository of this registry.
    pub fn reference(&self, repository: &str) -> String {
        format!("{}/{repository}", self.host)
    }

    /// Where the registry keeps a blob's bytes on disk (distribution's filesystem driver layout), for tests
    /// that tamper with stored content behind the registry's back.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_closes_the_port_and_restart_serves_the_same_port_again() {
        let mut registry = Registry::start();
        assert_eq!(registry.host(), format!("127.0.0.1:{}", registry.port));
        assert!(TcpStream::connect(&registry.host).is_ok());
        registry.stop();
        assert!(TcpStream::connect(&registry.host).is_err());
        registry.restart();
        assert!(TcpStream::connect(&registry.host).is_ok());
        assert_eq!(
            registry.reference("team/app"),
            format!("{}/team/app", registry.host)
        );
    }
}
