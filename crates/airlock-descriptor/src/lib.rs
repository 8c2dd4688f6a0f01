//! The app descriptor `airlock.toml`: what a team writes at the root of its repository to tell
//! the airlock gate how to build, run and deploy the app.
//!
//! [`AppDescriptor::load`] reads and validates the file. Every error says where it is and what
//! is wrong, for example
//! `airlock.toml line 12: unknown key `prot` in [run] (expected one of: command, port, health, start_timeout)`
//! or `airlock.toml line 2: app.name "Hello_World" is not a DNS-1123 label (...)`.
//! [`AppDescriptor::to_json`] gives the form used in the policy input, and [`quantity`] parses
//! Kubernetes CPU and memory quantities.
//!
//! # Reference
//!
//! ```
//! # use airlock_descriptor::{AppDescriptor, BuildMode};
//! # let text = r#"
//! [app]
//! name = "hello"            # DNS-1123 label (a-z, 0-9, '-'), at most 63; names every Kubernetes object
//! team = "payments"         # DNS-1123 label; becomes the airlock.dev/team label
//!
//! [build]
//! mode = "standard"         # "dockerfile" or "standard"; when absent: "dockerfile" if the
//!                           ## Dockerfile (see `dockerfile`) exists, else "standard"
//! stack = "rust"            # standard: an approved stack (builder + run image) of the platform
//! command = "cargo build --release --locked"   # standard: shell command run in the builder
//! artifacts = [             # standard: files copied into the image; a plain string
//!   "target/release/hello", #   "path" means { from = "path", to = "/app/<basename>" }
//!   { from = "static/index.html", to = "/app/static/index.html" },
//! ]
//! ## dockerfile = "Dockerfile"   # dockerfile: relative path of the Dockerfile (default "Dockerfile")
//! ## target = "runtime"          # dockerfile: multi-stage target
//! ## args = { VERSION = "1" }    # dockerfile: build arguments
//!
//! [run]
//! command = ["/app/hello", "--port", "8080"]  # argv; may be empty for Dockerfile builds (image ENTRYPOINT)
//! port = 8080               # 1..=65535, required
//! health = "/healthz"       # optional HTTP path for probes; without it probes are TCP connects
//! start_timeout = 30        # seconds to become healthy, 1..=3600, default 30
//!
//! [deploy]
//! replicas = 2              # 0..=1000, default 1; an environment may override it
//! env = { RUST_LOG = "info" }   # names are C identifiers
//!
//! [deploy.resources]        # Kubernetes quantities; missing ones come from the environment
//! cpu = "250m"
//! memory = "128Mi"
//! cpu_limit = "1"
//! memory_limit = "256Mi"
//!
//! [deploy.autoscale]        # optional HorizontalPodAutoscaler on CPU
//! min = 2                   # 1..=1000
//! max = 5                   # min..=1000
//! cpu_percent = 70          # 1..=100, of the CPU request
//! # "#;
//! # let d = AppDescriptor::from_toml_str(text).unwrap();
//! # assert_eq!(d.build.mode, Some(BuildMode::Standard));
//! # assert_eq!(d.build.artifacts[0].to, "/app/hello");
//! ```
//!
//! Unknown keys anywhere are errors (typos must not be silently ignored). Sections `[build]` and
//! `[deploy]` may be omitted; `[app]` and `[run]` are required. Limits: the file is at most
//! 256 KiB, lists and maps at most 256 entries, strings at most 4096 bytes (env values 32 KiB).
//!
//! # JSON form (policy input)
//!
//! [`AppDescriptor::to_json`] serialises the validated descriptor with the Rust field names:
//! `app{name,team}`, `build{mode,stack,command,artifacts[{from,to}],dockerfile,target,args}`,
//! `run{command,port,health,start_timeout_secs}`,
//! `deploy{replicas,resources{cpu,memory,cpu_limit,memory_limit},env,autoscale{min,max,cpu_percent}}`;
//! absent optional values are `null`, `build.mode` is as written (not detected).

mod error;
mod locate;
mod model;
mod parse;
pub mod quantity;

use std::io::Read;
use std::path::Path;

pub use error::DescriptorError;
pub use model::{
    AppDescriptor, AppSection, Artifact, Autoscale, BuildMode, BuildSection, DeploySection,
    Resources, RunSection,
};
pub use parse::MAX_DESCRIPTOR_BYTES;

/// File name of the descriptor at the root of an app's repository.
pub const DESCRIPTOR_FILE: &str = "airlock.toml";

impl AppDescriptor {
    /// Parses and validates descriptor text. Standard-build inputs (stack, command, artifacts,
    /// run command) are required here only when `build.mode = "standard"` is explicit; use
    /// [`AppDescriptor::load`] to also check them when the mode is detected.
    pub fn from_toml_str(text: &str) -> Result<AppDescriptor, DescriptorError> {
        parse::parse(text, None)
    }

    /// Reads and validates `dir/airlock.toml`, resolving the build mode against `dir`.
    pub fn load(dir: &Path) -> Result<AppDescriptor, DescriptorError> {
        let path = dir.join(DESCRIPTOR_FILE);
        let read_err = |source| DescriptorError::Read {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_DESCRIPTOR_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() > MAX_DESCRIPTOR_BYTES {
            let size = std::fs::metadata(&path)
                .map(|m| m.len())
                .unwrap_or(text.len() as u64);
            return Err(DescriptorError::TooLarge {
                what: path.display().to_string(),
                size,
                limit: MAX_DESCRIPTOR_BYTES as u64,
            });
        }
        parse::parse(&text, Some(dir))
    }

    /// The build mode: the explicit `build.mode`, else `Dockerfile` when the Dockerfile
    /// (`build.dockerfile`, default `Dockerfile`) exists in `dir`, else `Standard`.
    pub fn build_mode(&self, dir: &Path) -> BuildMode {
        if let Some(mode) = self.build.mode {
            return mode;
        }
        let dockerfile = self.build.dockerfile.as_deref().unwrap_or("Dockerfile");
        if dir.join(dockerfile).is_file() {
            BuildMode::Dockerfile
        } else {
            BuildMode::Standard
        }
    }

    /// The descriptor as JSON, for the policy input (shape documented in the crate docs).
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising plain structs of strings, integers and string maps cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
