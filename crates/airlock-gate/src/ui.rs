//! The web UI: server-rendered HTML, no JavaScript. Runs (filter by app, team, state), one run with its steps,
//! findings, decision, image and signed release, and apps with their releases. A page of a run still in
//! progress reloads itself every few seconds (`<meta http-equiv="refresh">`), which is its live view.
//!
//! Sign-in: the same bearer tokens as the API, entered once at `/ui/login` and kept in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/ui`; the same role rules as the API apply.

use crate::auth::{self, Caller};
use crate::http::{AppState, runs_filter, visible_run};
use airlock_cli::api::{RunState, RunView, StepState};
use airlock_cli::render::{DecisionSummary, FindingSummary, format_duration_ms};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use std::fmt::Write as _;

const COOKIE: &str = "airlock_token";

/// The UI's routes, merged into the gate's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/runs", get(runs_page))
        .route("/ui/runs/{id}", get(run_page))
        .route("/ui/apps", get(apps_page))
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, refresh: bool, body: &str) -> Html<String> {
    let refresh = if refresh {
        r#"<meta http-equiv="refresh" content="3">"#
    } else {
        ""
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · airlock</title>{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}}
header{{background:#1d2330;color:#fff;padding:.7em 1.5em;display:flex;gap:1.5em;align-items:center}}
header a{{color:#cfd6e4;text-decoration:none}} header b{{color:#fff;font-size:1.1em}}
main{{padding:1.2em 1.5em;max-width:75em}}
table{{border-collapse:collapse;width:100%;background:#fff}}
th,td{{text-align:left;padding:.4em .6em;border-bottom:1px solid #e3e6ec;vertical-align:top}}
th{{background:#eef0f4;font-weight:600}}
code{{font:13px ui-monospace,monospace;word-break:break-all}}
.state{{display:inline-block;padding:.05em .55em;border-radius:.8em;font-size:.85em;background:#e3e6ec}}
.published,.succeeded{{background:#d3f2dc;color:#14532d}} .rejected,.failed{{background:#fde0e0;color:#7f1d1d}}
.running,.fetching,.building,.scanning,.gating,.signing,.publishing,.queued{{background:#fff3c4;color:#713f12}}
.card{{background:#fff;border:1px solid #e3e6ec;border-radius:6px;padding:.8em 1em;margin:1em 0}}
form.filters{{display:flex;gap:.6em;margin-bottom:1em}} input,select,button{{font:inherit;padding:.25em .4em}}
</style></head>
<body><header><b>airlock</b><a href="/ui/runs">Runs</a><a href="/ui/apps">Apps</a></header>
<main>{body}</main></body></html>"#,
        title = esc(title),
    ))
}

fn state_badge(state: &str) -> String {
    format!(r#"<span class="state {0}">{0}</span>"#, esc(state))
}

/// The signed-in caller from the cookie (or an `Authorization` header), else a redirect to the sign-in page.
#[allow(clippy::result_large_err)] // the Err is the response itself, returned straight away
fn ui_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    if headers.contains_key(header::AUTHORIZATION) {
        return crate::http::caller(state, headers).map_err(IntoResponse::into_response);
    }
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string());
    token
        .and_then(|t| auth::authenticate(&state.pipeline.config.teams, &t))
        .ok_or_else(|| Redirect::to("/ui/login").into_response())
}

async fn login_page() -> Html<String> {
    page(
        "Sign in",
        false,
        r#"<h1>Sign in</h1><div class="card"><form method="post" action="/ui/login">
<label>Team token <input type="password" name="token" id="token" size="70" autocomplete="off"></label>
<button type="submit" id="signin">Sign in</button></form>
<p>Use the token from <code>airlock-gate token</code> or <code>airlock login</code>.</p></div>"#,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim();
    if auth::authenticate(&state.pipeline.config.teams, token).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            page(
                "Sign in",
                false,
                r#"<h1>Sign in</h1><p class="card">This token is not known to the gate. Ask an operator for a team token. <a href="/ui/login">Try again</a></p>"#,
            ),
        )
            .into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict"),
            ),
            (header::LOCATION, "/ui/runs".to_string()),
        ],
    )
        .into_response()
}

#[derive(Deserialize, Default)]
struct RunsForm {
    app: Option<String>,
    team: Option<String>,
    state: Option<String>,
}

async fn runs_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RunsForm>,
) -> Response {
    let who = match ui_caller(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let filter = match runs_filter(
        &who,
        q.app.clone(),
        q.team.clone(),
        q.state.clone(),
        Some(200),
    ) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let runs = match state.pipeline.store.find_runs(&filter).await {
        Ok(r) => r,
        Err(e) => return crate::http::HttpError::internal(e).into_response(),
    };
    let mut body = String::from("<h1>Runs</h1>");
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let _ = write!(
        body,
        r#"<form class="filters" method="get" action="/ui/runs">
<input name="app" placeholder="app" value="{}"><input name="team" placeholder="team" value="{}">
<select name="state"><option value="">any state</option>"#,
        v(&q.app),
        v(&q.team)
    );
    for s in RunState::ALL {
        let sel = if q.state.as_deref() == Some(s.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, r#"<option{sel}>{}</option>"#, s.as_str());
    }
    body.push_str(r#"</select><button type="submit">Filter</button></form>"#);
    body.push_str("<table><tr><th>run</th><th>app</th><th>team</th><th>state</th><th>branch</th><th>commit</th><th>author</th><th>created</th></tr>");
    for r in &runs {
        let _ = write!(
            body,
            r#"<tr><td><a href="/ui/runs/{id}"><code>{short}</code></a></td><td>{app}</td><td>{team}</td><td>{state}</td><td>{branch}</td><td><code>{commit}</code></td><td>{author}</td><td>{created}</td></tr>"#,
            id = esc(&r.id),
            short = esc(r.id.get(..12).unwrap_or(&r.id)),
            app = esc(&r.app),
            team = esc(&r.team),
            state = state_badge(r.state.as_str()),
            branch = esc(&r.branch),
            commit = esc(r.commit.get(..12).unwrap_or(&r.commit)),
            author = esc(&r.author),
            created = esc(&r.created_at),
        );
    }
    body.push_str("</table>");
    if runs.is_empty() {
        body.push_str("<p>No runs match.</p>");
    }
    page("Runs", false, &body).into_response()
}

fn run_body(r: &RunView) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<h1>Run <code>{id}</code> {state}</h1>
<div class="card"><table>
<tr><th>app</th><td>{app}</td><th>team</th><td>{team}</td></tr>
<tr><th>repository</th><td>{repo}</td><th>branch</th><td>{branch}</td></tr>
<tr><th>commit</th><td><code>{commit}</code></td><th>author</th><td>{author}</td></tr>
<tr><th>builder</th><td>{builder}</td><th>updated</th><td>{updated}</td></tr></table></div>"#,
        id = esc(&r.id),
        state = state_badge(r.state.as_str()),
        app = esc(&r.app),
        team = esc(&r.team),
        repo = esc(&r.repository),
        branch = esc(&r.branch),
        commit = esc(&r.commit),
        author = esc(&r.author),
        builder = esc(r.builder.as_deref().unwrap_or("-")),
        updated = esc(&r.updated_at),
    );
    b.push_str(
        "<h2>Steps</h2><table><tr><th>step</th><th>state</th><th>took</th><th>detail</th></tr>",
    );
    for s in &r.steps {
        let state = match s.state {
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            state_badge(state),
            s.duration_ms.map(format_duration_ms).unwrap_or_default(),
            esc(s.detail.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</table>");
    if let Some(e) = &r.error {
        let _ = write!(
            b,
            r#"<div class="card"><b>{} failed:</b> {}</div>"#,
            esc(&e.step),
            esc(&e.message)
        );
    }
    if r.image.is_some() || r.release.is_some() {
        b.push_str("<h2>Image, signatures and release</h2><div class=\"card\"><table>");
        if let Some(i) = &r.image {
            let _ = write!(
                b,
                "<tr><th>image</th><td><code>{}</code></td></tr><tr><th>digest</th><td><code>{}</code></td></tr>\
                 <tr><th>cosign signature</th><td><code>{}</code></td></tr>",
                esc(&i.reference),
                esc(&i.digest),
                esc(&format!("{}.sig", i.digest.replace(':', "-")))
            );
        }
        if let Some(rel) = &r.release {
            let _ = write!(
                b,
                "<tr><th>release</th><td>#{} <code>{}</code></td></tr><tr><th>release digest</th><td><code>{}</code></td></tr>",
                rel.sequence,
                esc(&rel.reference),
                esc(&rel.digest)
            );
        }
        b.push_str("</table></div>");
    }
    if let Some(d) = &r.decision {
        let d = DecisionSummary::from_json(d);
        let verdict = match d.allowed {
            Some(true) => "allowed",
            Some(false) => "denied",
            None => "unknown",
        };
        let _ = write!(b, "<h2>Decision: {}</h2>", esc(verdict));
        for (title, list) in [
            ("Violations", &d.violations),
            ("Warnings", &d.warnings),
            ("Waived", &d.waived),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = write!(
                b,
                "<h3>{title}</h3><table><tr><th>rule</th><th>message</th><th>fix</th></tr>"
            );
            for o in list {
                let _ = write!(
                    b,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(&o.rule),
                    esc(&o.message),
                    esc(o.fix.as_deref().or(o.reason.as_deref()).unwrap_or(""))
                );
            }
            b.push_str("</table>");
        }
    }
    let _ = write!(b, "<h2>Findings ({})</h2>", r.findings.len());
    if !r.findings.is_empty() {
        b.push_str("<table><tr><th>advisory</th><th>package</th><th>installed</th><th>fixed</th><th>severity</th></tr>");
        for f in &r.findings {
            let f = FindingSummary::from_json(f);
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.advisory),
                esc(&f.package),
                esc(&f.installed),
                esc(f.fixed.as_deref().unwrap_or("-")),
                esc(f.severity.as_deref().unwrap_or("-"))
            );
        }
        b.push_str("</table>");
    }
    if !r.state.is_terminal() {
        b.push_str("<p><i>This page reloads every 3 seconds while the run is in progress.</i></p>");
    }
    b
}

async fn run_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match ui_caller(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match visible_run(&state, &who, &id).await {
        Ok(run) => page(
            &format!("Run {id}"),
            !run.state.is_terminal(),
            &run_body(&run),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn apps_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match ui_caller(&state, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let apps = match state.pipeline.store.apps().await {
        Ok(a) => a,
        Err(e) => return crate::http::HttpError::internal(e).into_response(),
    };
    let mut b = String::from("<h1>Apps</h1>");
    for a in apps.iter().filter(|a| who.may_see_team(&a.team)) {
        let _ = write!(
            b,
            r#"<div class="card"><h2>{app} <small>team {team}</small></h2><p>{runs} runs, last at {last}. <a href="/ui/runs?app={app}">runs</a></p>"#,
            app = esc(&a.app),
            team = esc(&a.team),
            runs = a.runs,
            last = esc(&a.last_run_at),
        );
        if a.published.is_empty() {
            b.push_str("<p>No release yet.</p>");
        } else {
            b.push_str(
                "<table><tr><th>release</th><th>image digest</th><th>commit</th><th>run</th></tr>",
            );
            for r in &a.published {
                let seq = r
                    .release
                    .as_ref()
                    .map(|x| x.sequence.to_string())
                    .unwrap_or_default();
                let digest = r.image.as_ref().map(|x| x.digest.as_str()).unwrap_or("");
                let _ = write!(
                    b,
                    r#"<tr><td>#{seq}</td><td><code>{}</code></td><td><code>{}</code></td><td><a href="/ui/runs/{id}">{short}</a></td></tr>"#,
                    esc(digest),
                    esc(r.commit.get(..12).unwrap_or(&r.commit)),
                    id = esc(&r.id),
                    short = esc(r.id.get(..12).unwrap_or(&r.id)),
                );
            }
            b.push_str("</table>");
        }
        b.push_str("</div>");
    }
    page("Apps", false, &b).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_user_text() {
        assert_eq!(
            esc(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }
}
