//! Policy decisions for airlock, written in Rego and evaluated with `regorus`.
//!
//! The gate hands this crate a JSON description of a build (submission, descriptor,
//! image, SBOM summary, vulnerability findings; see `policies/README.md` and
//! `policies/input.schema.json`) and asks whether it may cross the boundary. The
//! outer-loop agent asks the same of a release before admitting it. Policies are
//! plain Rego v1 files whose `deny` and `warn` sets hold entries of the form
//! `{"rule", "message", "evidence", "fix", "advisories", "package"}`, so every "no"
//! names the rule, the facts and what to do about it.
//!
//! Waivers (`waivers.toml`) let a named approver accept one advisory in one package
//! for a limited time (at most 90 days ahead); expired waivers are reported, not
//! silently ignored. [`WaiverBook`] adds the waivers an operator adds at run time
//! (the gate's admin API) and keeps them in a file of the same format.
//! [`dockerfile_facts`] reads the Dockerfile facts of the input. [`run_tests`] runs the policies' own `test_` rules, like
//! `opa test`. Every [`Decision`] records the digest of the policy set that made it.

mod book;
mod decision;
mod dockerfile;
mod error;
mod set;
mod source;
mod testing;
mod waiver;

pub use book::{ListedWaiver, WaiverBook, WaiverOrigin, waiver_key};
pub use decision::{AppliedWaiver, Decision, Violation};
pub use dockerfile::{MAX_DOCKERFILE_BYTES, dockerfile_facts};
pub use error::PolicyError;
pub use set::{EVAL_TIME_LIMIT, PolicySet, PolicySource};
pub use source::{MAX_POLICY_BYTES, MAX_POLICY_FILES, MAX_TEST_DEPTH};
pub use testing::{TestReport, run_tests};
pub use waiver::{
    MAX_WAIVER_DAYS, MAX_WAIVER_FIELD_BYTES, MAX_WAIVERS, MAX_WAIVERS_FILE_BYTES, Waiver,
    load_waivers, parse_waivers,
};
