//! Waivers: a time-boxed, approved exception for one advisory in one package,
//! optionally scoped to a team or an app, read from `waivers.toml`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;

use crate::PolicyError;

/// Largest waivers file accepted, in bytes.
pub const MAX_WAIVERS_FILE_BYTES: u64 = 1024 * 1024;
/// Most waivers accepted in one file.
pub const MAX_WAIVERS: usize = 10_000;
/// How far in the future a waiver may expire, counted from the day the file is loaded.
pub const MAX_WAIVER_DAYS: i64 = 90;
/// Longest value of one waiver field accepted through [`Waiver::validate_new`].
pub const MAX_WAIVER_FIELD_BYTES: usize = 2048;

/// An approved exception: violations whose `advisories` contain `id` and whose
/// `package` is `package` are not counted against the image until `expires`
/// (inclusive), within the optional team/app scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiver {
    /// Advisory id or alias, e.g. `CVE-2014-1402` or `PYSEC-2014-8`.
    pub id: String,
    /// Affected package name as the scanner reports it (compared case-insensitively).
    pub package: String,
    /// Only for this team, when set.
    pub team: Option<String>,
    /// Only for this app, when set.
    pub app: Option<String>,
    /// Last day the waiver applies, `YYYY-MM-DD`.
    pub expires: String,
    /// Why the risk is accepted.
    pub reason: String,
    /// Who approved it.
    pub approver: String,
}

impl Waiver {
    /// The expiry as a date; an error names the waiver when it is not `YYYY-MM-DD`.
    pub fn expiry_date(&self) -> Result<Date, PolicyError> {
        parse_date(&self.expires).ok_or_else(|| PolicyError::WaiverExpiry {
            id: self.id.clone(),
            package: self.package.clone(),
            expires: self.expires.clone(),
        })
    }

    /// Whether the waiver still applies on `today` (the expiry day included).
    pub fn is_active_on(&self, today: Date) -> Result<bool, PolicyError> {
        Ok(self.expiry_date()? >= today)
    }

    /// Checks a waiver handed in whole (through the admin API rather than a file):
    /// every required field non-empty and at most [`MAX_WAIVER_FIELD_BYTES`], `team` and
    /// `app` non-empty when given, and `expires` a `YYYY-MM-DD` date from `today` to
    /// [`MAX_WAIVER_DAYS`] days after it. A new waiver that has already expired is refused:
    /// it could never apply. The error names the waiver and the field.
    pub fn validate_new(&self, today: Date) -> Result<(), PolicyError> {
        let invalid = |field: &str, message: String| PolicyError::InvalidWaiver {
            id: self.id.clone(),
            field: field.to_string(),
            message,
        };
        let fields = [
            ("id", Some(&self.id)),
            ("package", Some(&self.package)),
            ("team", self.team.as_ref()),
            ("app", self.app.as_ref()),
            ("expires", Some(&self.expires)),
            ("reason", Some(&self.reason)),
            ("approver", Some(&self.approver)),
        ];
        for (field, value) in fields {
            let Some(value) = value else { continue };
            if value.trim().is_empty() {
                return Err(invalid(field, "must not be empty".into()));
            }
            if value.len() > MAX_WAIVER_FIELD_BYTES {
                return Err(invalid(
                    field,
                    format!("is longer than {MAX_WAIVER_FIELD_BYTES} bytes"),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(invalid(field, "must not contain control characters".into()));
            }
        }
        let expiry = parse_date(&self.expires).ok_or_else(|| {
            invalid(
                "expires",
                format!("{:?} is not a YYYY-MM-DD date", self.expires),
            )
        })?;
        if expiry < today {
            return Err(invalid(
                "expires",
                format!("{} is in the past (today is {today})", self.expires),
            ));
        }
        let latest = latest_expiry(today);
        if expiry > latest {
            return Err(invalid(
                "expires",
                format!(
                    "{} is more than {MAX_WAIVER_DAYS} days away (latest allowed: {latest})",
                    self.expires
                ),
            ));
        }
        Ok(())
    }

    /// Whether the waiver covers a violation with these advisories and package,
    /// for a submission of `team`/`app` (ignoring expiry).
    pub fn covers(
        &self,
        advisories: &[String],
        package: Option<&str>,
        team: Option<&str>,
        app: Option<&str>,
    ) -> bool {
        let id_matches = advisories.iter().any(|a| a.eq_ignore_ascii_case(&self.id));
        let package_matches = package.is_some_and(|p| p.eq_ignore_ascii_case(&self.package));
        let scope_matches = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have == Some(w.as_str()),
        };
        id_matches
            && package_matches
            && scope_matches(&self.team, team)
            && scope_matches(&self.app, app)
    }
}

/// The last expiry date a waiver may have when it is loaded or added on `today`.
pub(crate) fn latest_expiry(today: Date) -> Date {
    today
        .checked_add(time::Duration::days(MAX_WAIVER_DAYS))
        .unwrap_or(Date::MAX)
}

/// Parses a `YYYY-MM-DD` date.
pub(crate) fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

const REQUIRED: [&str; 5] = ["id", "package", "expires", "reason", "approver"];
const OPTIONAL: [&str; 2] = ["team", "app"];

/// Reads a `waivers.toml` made of `[[waiver]]` tables.
///
/// Every waiver needs `id`, `package`, `expires` (`YYYY-MM-DD`, a quoted string or a
/// TOML date), `reason` and `approver`, and may have `team` and `app`. An unknown key,
/// a missing or empty field, or an expiry more than [`MAX_WAIVER_DAYS`] days after
/// `today` is an error naming the waiver (index and id) and the field. A waiver that
/// has already expired is loaded: `evaluate` reports it in `expired_waivers` when it
/// matches, so the developer learns why it no longer helps.
pub fn load_waivers(path: &Path, today: Date) -> Result<Vec<Waiver>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_WAIVERS_FILE_BYTES {
        return Err(PolicyError::TooLarge {
            what: "waivers file bytes",
            limit: MAX_WAIVERS_FILE_BYTES as usize,
            subject: path.display().to_string(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_waivers(&text, path, today)
}

/// Parses the text of a waivers file; `path` is only used in errors.
pub fn parse_waivers(text: &str, path: &Path, today: Date) -> Result<Vec<Waiver>, PolicyError> {
    let file_err = |message: String| PolicyError::WaiversFile {
        path: path.to_path_buf(),
        message,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
    if let Some(key) = table.keys().find(|k| k.as_str() != "waiver") {
        return Err(file_err(format!(
            "unknown key `{key}` (only [[waiver]] tables are allowed)"
        )));
    }
    let entries = match table.get("waiver") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => {
            return Err(file_err(
                "`waiver` must be an array of [[waiver]] tables".into(),
            ));
        }
    };
    if entries.len() > MAX_WAIVERS {
        return Err(PolicyError::TooLarge {
            what: "number of waivers",
            limit: MAX_WAIVERS,
            subject: path.display().to_string(),
        });
    }
    let latest = latest_expiry(today);
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| parse_one(entry, index, path, latest))
        .collect()
}

fn parse_one(
    entry: &toml::Value,
    index: usize,
    path: &Path,
    latest: Date,
) -> Result<Waiver, PolicyError> {
    let table = entry.as_table();
    let id = table
        .and_then(|t| t.get("id"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let err = |field: &str, message: String| PolicyError::Waiver {
        path: path.to_path_buf(),
        index,
        id: id.clone(),
        field: field.to_string(),
        message,
    };
    let Some(table) = table else {
        return Err(err("waiver", "must be a table".into()));
    };
    if let Some(key) = table
        .keys()
        .find(|k| !REQUIRED.contains(&k.as_str()) && !OPTIONAL.contains(&k.as_str()))
    {
        return Err(err(
            key,
            format!(
                "unknown key (allowed: {}, {})",
                REQUIRED.join(", "),
                OPTIONAL.join(", ")
            ),
        ));
    }
    let text = |field: &str| -> Result<Option<String>, PolicyError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) if s.trim().is_empty() => {
                Err(err(field, "must not be empty".into()))
            }
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(toml::Value::Datetime(d)) if field == "expires" => Ok(Some(d.to_string())),
            Some(other) => Err(err(
                field,
                format!("must be a string, found {}", other.type_str()),
            )),
        }
    };
    let required = |field: &str| -> Result<String, PolicyError> {
        text(field)?.ok_or_else(|| err(field, "is missing".into()))
    };
    let waiver = Waiver {
        id: required("id")?,
        package: required("package")?,
        team: text("team")?,
        app: text("app")?,
        expires: required("expires")?,
        reason: required("reason")?,
        approver: required("approver")?,
    };
    let expiry = parse_date(&waiver.expires).ok_or_else(|| {
        err(
            "expires",
            format!("{:?} is not a YYYY-MM-DD date", waiver.expires),
        )
    })?;
    if expiry > latest {
        return Err(err(
            "expires",
            format!(
                "{} is more than {MAX_WAIVER_DAYS} days away (latest allowed: {latest})",
                waiver.expires
            ),
        ));
    }
    Ok(waiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 23);

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waivers.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const GOOD: &str = r#"
[[waiver]]
id = "CVE-2014-1402"
package = "jinja2"
team = "demo"
expires = "2026-12-31"
reason = "template input is constant"
approver = "alice@example.com"

[[waiver]]
id = "PYSEC-2014-8"
package = "Jinja2"
expires = 2027-01-15
reason = "same"
approver = "bob"
"#;

    #[test]
    fn loads_waivers_with_quoted_and_bare_dates() {
        let (_d, path) = write(GOOD);
        let waivers = load_waivers(&path, TODAY).unwrap();
        assert_eq!(waivers.len(), 2);
        assert_eq!(waivers[0].team.as_deref(), Some("demo"));
        assert_eq!(waivers[0].app, None);
        assert_eq!(waivers[1].expires, "2027-01-15");
    }

    #[test]
    fn empty_or_comment_only_file_has_no_waivers() {
        let (_d, path) = write("# [[waiver]]\n# id = \"x\"\n");
        assert!(load_waivers(&path, TODAY).unwrap().is_empty());
    }

    #[test]
    fn rejects_expiry_more_than_90_days_ahead_naming_the_waiver() {
        let (_d, path) = write(
            "[[waiver]]\nid = \"CVE-1\"\npackage = \"p\"\nexpires = \"2027-03-01\"\nreason = \"r\"\napprover = \"a\"\n",
        );
        let err = load_waivers(&path, TODAY).unwrap_err().to_string();
        assert!(err.contains("waiver #0"), "{err}");
        assert!(err.contains("CVE-1"), "{err}");
        assert!(err.contains("`expires`"), "{err}");
        assert!(err.contains("2027-02-21"), "{err}");
    }

    #[test]
    fn accepts_expiry_exactly_90_days_ahead() {
        let (_d, path) = write(
            "[[waiver]]\nid = \"CVE-1\"\npackage = \"p\"\nexpires = \"2027-02-21\"\nreason = \"r\"\napprover = \"a\"\n",
        );
        assert_eq!(load_waivers(&path, TODAY).unwrap().len(), 1);
    }

    #[test]
    fn rejects_missing_approver_naming_index_id_and_field() {
        let text = format!(
            "{GOOD}\n[[waiver]]\nid = \"GHSA-x\"\npackage = \"p\"\nexpires = \"2026-12-01\"\nreason = \"r\"\n"
        );
        let (_d, path) = write(&text);
        let err = load_waivers(&path, TODAY).unwrap_err().to_string();
        assert!(
            err.contains("waiver #2 (id \"GHSA-x\"), field `approver`: is missing"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_key_in_waiver() {
        let (_d, path) = write(
            "[[waiver]]\nid = \"CVE-1\"\npackage = \"p\"\nexpires = \"2026-12-01\"\nreason = \"r\"\napprover = \"a\"\nexpiry = \"x\"\n",
        );
        let err = load_waivers(&path, TODAY).unwrap_err().to_string();
        assert!(err.contains("field `expiry`: unknown key"), "{err}");
    }

    #[test]
    fn rejects_unknown_top_level_key() {
        let (_d, path) = write("[waivers]\nid = \"x\"\n");
        let err = load_waivers(&path, TODAY).unwrap_err().to_string();
        assert!(err.contains("unknown key `waivers`"), "{err}");
    }

    #[test]
    fn rejects_malformed_date() {
        let (_d, path) = write(
            "[[waiver]]\nid = \"CVE-1\"\npackage = \"p\"\nexpires = \"31/12/2026\"\nreason = \"r\"\napprover = \"a\"\n",
        );
        let err = load_waivers(&path, TODAY).unwrap_err().to_string();
        assert!(err.contains("not a YYYY-MM-DD date"), "{err}");
    }

    #[test]
    fn rejects_empty_reason() {
        let (_d, path) = write(
            "[[waiver]]\nid = \"CVE-1\"\npackage = \"p\"\nexpires = \"2026-12-01\"\nreason = \"  \"\napprover = \"a\"\n",
        );
        let err = load_waivers(&path, TODAY).unwrap_err().to_string();
        assert!(err.contains("field `reason`: must not be empty"), "{err}");
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = load_waivers(Path::new("/nonexistent/waivers.toml"), TODAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/waivers.toml"), "{err}");
    }

    #[test]
    fn covers_matches_alias_package_case_and_scope() {
        let w = Waiver {
            id: "PYSEC-2014-8".into(),
            package: "Jinja2".into(),
            team: Some("demo".into()),
            app: None,
            expires: "2026-12-01".into(),
            reason: "r".into(),
            approver: "a".into(),
        };
        let adv = vec!["CVE-2014-1402".to_string(), "PYSEC-2014-8".to_string()];
        assert!(w.covers(&adv, Some("jinja2"), Some("demo"), Some("hello")));
        assert!(!w.covers(&adv, Some("jinja2"), Some("other"), Some("hello")));
        assert!(!w.covers(&adv, Some("flask"), Some("demo"), Some("hello")));
        assert!(!w.covers(&adv, None, Some("demo"), Some("hello")));
        assert!(!w.covers(&["CVE-1".into()], Some("jinja2"), Some("demo"), None));
    }

    #[test]
    fn waiver_is_active_through_its_expiry_day() {
        let w = Waiver {
            id: "x".into(),
            package: "p".into(),
            team: None,
            app: None,
            expires: "2026-11-23".into(),
            reason: "r".into(),
            approver: "a".into(),
        };
        assert!(w.is_active_on(TODAY).unwrap());
        assert!(!w.is_active_on(date!(2026 - 11 - 24)).unwrap());
    }
}
