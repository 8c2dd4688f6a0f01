//! Test support: a throwaway PostgreSQL cluster from Debian's package, and the database URLs the store tests run
//! against (SQLite always, PostgreSQL always too: a missing PostgreSQL fails the test rather than skipping it).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_testkit::tools::free_port;

/// A PostgreSQL cluster in a temporary directory on a free loopback port; stopped and removed on drop.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_postgres_user: bool,
}

fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("AIRLOCK_PG_BIN") {
        return PathBuf::from(dir);
    }
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    let v = versions
        .last()
        .expect("PostgreSQL is not installed under /usr/lib/postgresql: run scripts/setup");
    base.join(v.to_string()).join("bin")
}

impl Postgres {
    /// initdb + pg_ctl start. PostgreSQL refuses to run as root, so as root the cluster runs as `postgres`.
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("airlock-pg-")
            .tempdir()
            .expect("temp dir");
        // The effective uid, through `id -u` (no libc dependency for one number).
        let uid = Command::new("id").arg("-u").output().expect("id runs");
        let as_postgres_user = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if as_postgres_user {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(ok.success(), "chown of the cluster directory failed");
        }
        let pg = Postgres {
            port: free_port(),
            dir,
            bin,
            as_postgres_user,
        };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "airlock",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            pg.port,
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("pg.log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-o",
                &opts,
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "start",
            ],
        );
        pg
    }

    /// `tool` of this PostgreSQL installation, run as `postgres` when the tests run as root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.join(tool).display()));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a fresh database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "airlock",
                name,
            ],
        );
        format!("postgres://airlock@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        if let Some(d) = data.to_str() {
            let _ = self
                .command("pg_ctl")
                .args(["-D", d, "-m", "immediate", "stop"])
                .output();
        }
    }
}
