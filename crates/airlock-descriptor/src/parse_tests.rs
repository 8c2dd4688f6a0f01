use std::path::Path;

use crate::{AppDescriptor, BuildMode, DescriptorError};

const MINIMAL: &str = r#"
[app]
name = "hello"
team = "payments"

[run]
port = 8080
"#;

fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

fn err(text: &str) -> String {
    AppDescriptor::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn parses_minimal_descriptor_with_defaults() {
    let d = AppDescriptor::from_toml_str(MINIMAL).unwrap();
    assert_eq!(d.app.name, "hello");
    assert_eq!(d.run.port, 8080);
    assert_eq!(d.run.start_timeout_secs, 30);
    assert_eq!(d.deploy.replicas, 1);
    assert!(d.run.command.is_empty());
    assert_eq!(d.build.mode, None);
}

#[test]
fn rejects_unknown_key_naming_key_line_and_section() {
    let text = "[app]\nname = \"hello\"\nteam = \"t\"\n\n[run]\nport = 8080\nprot = 8081\n";
    assert_eq!(
        err(text),
        "airlock.toml line 7: unknown key `prot` in [run] (expected one of: command, port, health, start_timeout)"
    );
}

#[test]
fn rejects_unknown_top_level_section() {
    let e = err(&with("[deplyo]\nreplicas = 2\n"));
    assert!(
        e.starts_with("airlock.toml line 8: unknown key `deplyo` in the top level"),
        "{e}"
    );
    assert!(e.contains("app, build, run, deploy"), "{e}");
}

#[test]
fn rejects_unknown_key_in_nested_table_and_dotted_key() {
    let e = err(&with("[deploy.resources]\ncpu = \"1\"\ngpu = \"1\"\n"));
    assert!(
        e.starts_with("airlock.toml line 10: unknown key `gpu` in [deploy.resources]"),
        "{e}"
    );
    let e = err(&format!("deploy.replica = 2\n{MINIMAL}"));
    assert!(
        e.starts_with("airlock.toml line 1: unknown key `replica` in [deploy]"),
        "{e}"
    );
}

#[test]
fn rejects_unknown_key_in_artifact_table() {
    let e = err(&with(
        "[build]\nartifacts = [\"a/b\", { from = \"x\", to = \"/app/x\", mode = \"0755\" }]\n",
    ));
    assert!(
        e.contains("line 9: unknown key `mode` in [build.artifacts[1]]"),
        "{e}"
    );
}

#[test]
fn rejects_app_name_that_is_not_a_dns_label() {
    let text = "[app]\nname = \"Hello_World\"\nteam = \"t\"\n[run]\nport = 80\n";
    assert_eq!(
        err(text),
        "airlock.toml line 2: app.name \"Hello_World\" is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    );
    let long = "a".repeat(64);
    assert!(err(&text.replace("Hello_World", &long)).contains("is not a DNS-1123 label"));
}

#[test]
fn rejects_port_zero_and_above_65535() {
    assert!(err(&MINIMAL.replace("8080", "0")).contains("line 7: run.port 0 is not a TCP port"));
    assert!(err(&MINIMAL.replace("8080", "65536")).contains("run.port 65536 is not a TCP port"));
}

#[test]
fn rejects_port_given_as_string_naming_the_key() {
    let e = err(&MINIMAL.replace("8080", "\"8080\""));
    assert!(
        e.starts_with("airlock.toml line 7: run.port: invalid type"),
        "{e}"
    );
}

#[test]
fn rejects_negative_replicas() {
    let e = err(&with("[deploy]\nreplicas = -1\n"));
    assert_eq!(
        e,
        "airlock.toml line 9: deploy.replicas -1 is out of range (0 to 1000)"
    );
}

#[test]
fn rejects_memory_quantity_with_space() {
    let e = err(&with("[deploy.resources]\nmemory = \"12 GB\"\n"));
    assert!(
        e.starts_with(
            "airlock.toml line 9: deploy.resources.memory \"12 GB\" is not a valid memory quantity"
        ),
        "{e}"
    );
}

#[test]
fn rejects_request_above_limit() {
    let e = err(&with(
        "[deploy.resources]\ncpu = \"2\"\ncpu_limit = \"500m\"\n",
    ));
    assert!(
        e.contains("deploy.resources.cpu \"2\" is more than deploy.resources.cpu_limit \"500m\""),
        "{e}"
    );
}

#[test]
fn rejects_env_name_that_is_not_c_identifier() {
    let e = err(&with("[deploy.env]\nGOOD = \"1\"\n\"MY-VAR\" = \"x\"\n"));
    assert!(e.starts_with("airlock.toml line 10: deploy.env key \"MY-VAR\" is not a valid environment variable name"), "{e}");
    assert!(err(&with("[deploy.env]\n\"1X\" = \"x\"\n")).contains("\"1X\""));
}

#[test]
fn rejects_health_without_leading_slash() {
    let e = err(&MINIMAL.replace("port = 8080", "port = 8080\nhealth = \"healthz\""));
    assert!(
        e.contains("line 8: run.health \"healthz\" must be an HTTP path starting with '/'"),
        "{e}"
    );
}

#[test]
fn rejects_explicit_standard_mode_without_stack() {
    let e = err(&with("[build]\nmode = \"standard\"\ncommand = \"make\"\n"));
    assert!(
        e.contains("build.mode is \"standard\" but build.stack is missing"),
        "{e}"
    );
}

#[test]
fn rejects_unknown_build_mode() {
    let e = err(&with("[build]\nmode = \"docker\"\n"));
    assert!(
        e.starts_with("airlock.toml line 9: build.mode: unknown variant `docker`"),
        "{e}"
    );
}

#[test]
fn expands_artifact_strings_to_app_directory() {
    let d = AppDescriptor::from_toml_str(&with(
        "[build]\nartifacts = [\"target/release/hello\", { from = \"web/index.html\", to = \"/srv/index.html\" }]\n",
    ))
    .unwrap();
    assert_eq!(d.build.artifacts[0].from, "target/release/hello");
    assert_eq!(d.build.artifacts[0].to, "/app/hello");
    assert_eq!(d.build.artifacts[1].to, "/srv/index.html");
}

#[test]
fn rejects_artifact_target_relative_or_with_dotdot() {
    let e = err(&with(
        "[build]\nartifacts = [{ from = \"a\", to = \"app/a\" }]\n",
    ));
    assert!(
        e.contains("build.artifacts[0].to \"app/a\" must be an absolute path"),
        "{e}"
    );
    let e = err(&with(
        "[build]\nartifacts = [{ from = \"a\", to = \"/app/../etc/passwd\" }]\n",
    ));
    assert!(
        e.contains("line 9: build.artifacts[0].to \"/app/../etc/passwd\""),
        "{e}"
    );
    let e = err(&with("[build]\nartifacts = [\"../secret\"]\n"));
    assert!(e.contains("build.artifacts[0].from \"../secret\""), "{e}");
}

#[test]
fn rejects_autoscale_max_below_min() {
    let e = err(&with(
        "[deploy.autoscale]\nmin = 3\nmax = 2\ncpu_percent = 70\n",
    ));
    assert!(
        e.contains("deploy.autoscale.max 2 is less than deploy.autoscale.min 3"),
        "{e}"
    );
}

#[test]
fn reports_missing_required_key() {
    let e = err("[app]\nname = \"hello\"\nteam = \"t\"\n[run]\nhealth = \"/\"\n");
    assert!(e.contains("missing key `port` in [run]"), "{e}");
    let e = err("[app]\nname = \"hello\"\nteam = \"t\"\n");
    assert!(e.contains("missing key `run` in the top level"), "{e}");
}

#[test]
fn reports_toml_syntax_error_with_line() {
    let e = err("[app]\nname = \"hello\"\nteam = \n");
    assert!(e.starts_with("airlock.toml line 3:"), "{e}");
}

#[test]
fn rejects_oversized_text() {
    let big = format!("{MINIMAL}#{}", "x".repeat(300 * 1024));
    assert!(matches!(
        AppDescriptor::from_toml_str(&big),
        Err(DescriptorError::TooLarge { .. })
    ));
}

#[test]
fn detects_build_mode_from_dockerfile_presence() {
    let dir = tempfile::tempdir().unwrap();
    let d = AppDescriptor::from_toml_str(MINIMAL).unwrap();
    assert_eq!(d.build_mode(dir.path()), BuildMode::Standard);
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    assert_eq!(d.build_mode(dir.path()), BuildMode::Dockerfile);
    let text = MINIMAL.replace("port = 8080", "port = 8080\ncommand = [\"/app/a\"]");
    let explicit = AppDescriptor::from_toml_str(&format!(
        "{text}[build]\nmode = \"standard\"\nstack = \"rust\"\ncommand = \"make\"\nartifacts = [\"a\"]\n",
    ))
    .unwrap();
    assert_eq!(explicit.build_mode(dir.path()), BuildMode::Standard);
}

#[test]
fn load_requires_standard_inputs_when_no_dockerfile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("airlock.toml"), MINIMAL).unwrap();
    let e = AppDescriptor::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(
            "there is no Dockerfile, so this is a standard build but build.stack is missing"
        ),
        "{e}"
    );
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let d = AppDescriptor::load(dir.path()).unwrap();
    assert_eq!(d.build_mode(dir.path()), BuildMode::Dockerfile);
}

#[test]
fn load_names_missing_file() {
    let e = AppDescriptor::load(Path::new("/nonexistent/app")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/app/airlock.toml"),
        "{e}"
    );
}

#[test]
fn to_json_mirrors_fields_for_policy_input() {
    let d = AppDescriptor::from_toml_str(&with(
        "[deploy]\nreplicas = 3\nenv = { A = \"1\" }\n[deploy.resources]\nmemory = \"64Mi\"\n",
    ))
    .unwrap();
    let j = d.to_json();
    assert_eq!(j["app"]["name"], "hello");
    assert_eq!(j["run"]["port"], 8080);
    assert_eq!(j["run"]["start_timeout_secs"], 30);
    assert_eq!(j["deploy"]["replicas"], 3);
    assert_eq!(j["deploy"]["env"]["A"], "1");
    assert_eq!(j["deploy"]["resources"]["memory"], "64Mi");
    assert!(j["deploy"]["resources"]["cpu"].is_null());
    assert!(j["build"]["mode"].is_null());
}
