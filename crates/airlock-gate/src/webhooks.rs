//! Push events from git hosts (GitHub, GitLab, Gitea/Forgejo), read into one shape, and the rules that decide
//! whether a push starts a run: the repository is mapped to an app, the branch is configured, tags only when asked.

use crate::config::{RepositoryConfig, WebhookConfig};
use serde::Deserialize;

/// The git hosts the gate takes webhooks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    GitHub,
    GitLab,
    Gitea,
}

impl Host {
    /// The name used in routes, metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Host::GitHub => "github",
            Host::GitLab => "gitlab",
            Host::Gitea => "gitea",
        }
    }
}

/// A push, whatever host sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/BRANCH` or `refs/tags/TAG`.
    pub git_ref: String,
    /// The commit the ref points at after the push (all zeros when the ref was deleted).
    pub after: String,
    pub clone_url: String,
    /// `owner/name` (GitHub, Gitea) or `group/project` (GitLab).
    pub full_name: String,
    pub pusher: String,
    pub deleted: bool,
}

impl Push {
    /// The branch or tag name without its `refs/...` prefix.
    pub fn short_ref(&self) -> &str {
        self.git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| self.git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&self.git_ref)
    }
    /// Whether this push is of a tag.
    pub fn is_tag(&self) -> bool {
        self.git_ref.starts_with("refs/tags/")
    }
}

#[derive(Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    repository: GithubRepository,
    #[serde(default)]
    pusher: Option<GithubPusher>,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct GithubRepository {
    clone_url: String,
    #[serde(default)]
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct GithubPusher {
    #[serde(default)]
    name: Option<String>,
    /// Gitea's pusher has `login` and `username` rather than `name`.
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct GitlabPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    project: GitlabProject,
    #[serde(default)]
    user_username: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
}

#[derive(Deserialize)]
struct GitlabProject {
    git_http_url: String,
    path_with_namespace: String,
}

/// Reads a push event body of `host`. The error names the field and where it was wrong.
pub fn parse_push(host: Host, body: &[u8]) -> Result<Push, String> {
    fn de<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
        let mut d = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut d).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("field `{path}`: {inner}")
            }
        })
    }
    let zero = |s: &str| !s.is_empty() && s.chars().all(|c| c == '0');
    match host {
        Host::GitHub | Host::Gitea => {
            let p: GithubPush = de(body)?;
            let pusher = p
                .pusher
                .and_then(|u| u.name.or(u.login).or(u.username))
                .unwrap_or_default();
            Ok(Push {
                deleted: p.deleted || zero(&p.after),
                full_name: p
                    .repository
                    .full_name
                    .unwrap_or_else(|| p.repository.clone_url.clone()),
                clone_url: p.repository.clone_url,
                git_ref: p.git_ref,
                after: p.after,
                pusher,
            })
        }
        Host::GitLab => {
            let p: GitlabPush = de(body)?;
            Ok(Push {
                deleted: zero(&p.after),
                git_ref: p.git_ref,
                after: p.after,
                clone_url: p.project.git_http_url,
                full_name: p.project.path_with_namespace,
                pusher: p.user_username.or(p.user_name).unwrap_or_default(),
            })
        }
    }
}

/// What the gate does with a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Start a run; with the mapping when repositories are configured.
    Start(Option<&'a RepositoryConfig>),
    /// Answer 202 and do nothing, for this reason.
    Ignore(String),
}

/// Decides whether a push starts a run, by the configured repositories, branches and tags.
pub fn route<'a>(config: &'a WebhookConfig, push: &Push) -> Route<'a> {
    if push.deleted {
        return Route::Ignore(format!("{} was deleted", push.git_ref));
    }
    if config.repositories.is_empty() {
        // No mapping: every branch push builds, the app's own airlock.toml names app and team.
        return if push.is_tag() {
            Route::Ignore(format!(
                "tag push {} (no repository is configured for tags)",
                push.git_ref
            ))
        } else {
            Route::Start(None)
        };
    }
    let Some(repo) = config
        .repositories
        .iter()
        .find(|r| r.matches(&push.full_name, &push.clone_url))
    else {
        return Route::Ignore(format!(
            "repository {} is not mapped to an app on this gate, so this push started nothing; an operator maps \
             it under [[webhooks.repositories]] in the gate's config (repository, app, team)",
            push.full_name
        ));
    };
    if push.is_tag() {
        return if repo.tags {
            Route::Start(Some(repo))
        } else {
            Route::Ignore(format!(
                "tag pushes of {} are not configured to start runs",
                push.full_name
            ))
        };
    }
    let branch = push.short_ref();
    if repo.branches.iter().any(|b| b == "*" || b == branch) {
        Route::Start(Some(repo))
    } else {
        Route::Ignore(format!(
            "branch {branch} of {} is not configured to start runs (configured: {})",
            push.full_name,
            repo.branches.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(branches: &[&str], tags: bool) -> RepositoryConfig {
        RepositoryConfig {
            repository: "acme/hello".into(),
            app: "hello".into(),
            team: "payments".into(),
            branches: branches.iter().map(|b| b.to_string()).collect(),
            tags,
            clone_url: None,
            fetch_token: None,
            fetch_user: None,
            ssh_key_file: None,
            ssh_known_hosts: None,
        }
    }

    fn push(git_ref: &str) -> Push {
        Push {
            git_ref: git_ref.into(),
            after: "a".repeat(40),
            clone_url: "https://git.example/acme/hello.git".into(),
            full_name: "acme/hello".into(),
            pusher: "dev".into(),
            deleted: false,
        }
    }

    #[test]
    fn parses_a_gitlab_push_hook() {
        let body = br#"{"object_kind":"push","ref":"refs/heads/main","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "user_username":"jsmith","project":{"git_http_url":"http://example.com/mike/diaspora.git",
            "path_with_namespace":"mike/diaspora"}}"#;
        let p = parse_push(Host::GitLab, body).expect("gitlab push");
        assert_eq!(p.full_name, "mike/diaspora");
        assert_eq!(p.pusher, "jsmith");
        assert_eq!(p.short_ref(), "main");
        let err =
            parse_push(Host::GitLab, br#"{"ref":"refs/heads/main","after":"x"}"#).unwrap_err();
        assert!(err.contains("project"), "{err}");
    }

    #[test]
    fn parses_a_gitea_push_with_login_as_pusher() {
        let body = br#"{"ref":"refs/tags/v1","after":"0000000000000000000000000000000000000000",
            "repository":{"clone_url":"http://gitea/acme/hello.git","full_name":"acme/hello"},"pusher":{"login":"ann"}}"#;
        let p = parse_push(Host::Gitea, body).expect("gitea push");
        assert_eq!(
            (p.pusher.as_str(), p.is_tag(), p.deleted),
            ("ann", true, true)
        );
    }

    #[test]
    fn routes_by_repository_branch_and_tag() {
        let mut cfg = WebhookConfig::default();
        assert_eq!(route(&cfg, &push("refs/heads/feature")), Route::Start(None));
        assert!(matches!(
            route(&cfg, &push("refs/tags/v1")),
            Route::Ignore(_)
        ));
        cfg.repositories = vec![repo(&["main"], false)];
        assert!(matches!(
            route(&cfg, &push("refs/heads/main")),
            Route::Start(Some(_))
        ));
        match route(&cfg, &push("refs/heads/feature")) {
            Route::Ignore(why) => assert!(why.contains("branch feature"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route(&cfg, &push("refs/tags/v1")),
            Route::Ignore(_)
        ));
        cfg.repositories = vec![repo(&["*"], true)];
        assert!(matches!(
            route(&cfg, &push("refs/tags/v1")),
            Route::Start(Some(_))
        ));
        let mut other = push("refs/heads/main");
        other.full_name = "acme/other".into();
        other.clone_url = "https://git.example/acme/other.git".into();
        match route(&cfg, &other) {
            Route::Ignore(why) => assert!(why.contains("not mapped"), "{why}"),
            x => panic!("{x:?}"),
        }
    }
}
