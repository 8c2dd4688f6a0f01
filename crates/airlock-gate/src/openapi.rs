//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Written by hand next to the router; a test
//! requests every path it lists against the live router and checks that each route exists with the documented
//! method, so the two cannot drift apart unnoticed.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApiError" } } } })
}

fn run_id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } })
}

fn hook(host: &str, auth_header: &str, delivery_header: &str) -> Value {
    json!({ "post": {
        "operationId": format!("{host}Webhook"),
        "summary": format!("A {host} push event (branches and, when configured, tags start runs)"),
        "parameters": [
            { "name": auth_header, "in": "header", "required": true, "schema": { "type": "string" } },
            { "name": delivery_header, "in": "header", "required": false, "schema": { "type": "string" } }
        ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
        "responses": {
            "200": { "description": "A redelivery of an accepted event: the existing run",
                     "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SubmissionAccepted" } } } },
            "202": { "description": "A run was stored, or the event was ignored (other events, unmapped branches)",
                     "content": { "application/json": { "schema": { "type": "object" } } } },
            "400": error_response("The event is not a valid push"),
            "401": error_response("Missing or wrong signature or token"),
            "404": error_response("This host's webhooks are not configured"),
            "408": error_response("The body was not received within body_read_timeout_secs; nothing was stored"),
            "413": error_response("The body is larger than max_webhook_bytes"),
            "415": error_response("The body is not application/json")
        }
    }})
}

/// The document.
pub fn document() -> Value {
    let bearer = json!([{ "bearer": [] }]);
    json!({
      "openapi": "3.1.0",
      "info": { "title": "airlock gate", "version": env!("CARGO_PKG_VERSION"),
                "description": "Submit commits, follow runs, receive git host webhooks. Roles: developer (own team), operator (all teams), admin (waivers, audit)." },
      "components": {
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        "schemas": {
          "ApiError": { "type": "object", "required": ["error", "code"],
                        "properties": { "error": { "type": "string" }, "code": { "type": "string" } } },
          "SubmissionAccepted": { "type": "object", "required": ["run_id", "status_url", "state"],
                        "properties": { "run_id": { "type": "string" }, "status_url": { "type": "string" },
                                        "state": { "type": "string" } } },
          "Run": { "type": "object", "required": ["id", "app", "team", "state", "steps"],
                   "properties": { "id": { "type": "string" }, "app": { "type": "string" }, "team": { "type": "string" },
                                   "state": { "type": "string", "enum": ["queued","fetching","building","scanning","gating","signing","publishing","published","rejected","failed","cancelled"] },
                                   "steps": { "type": "array", "items": { "type": "object" } } } }
        }
      },
      "paths": {
        "/healthz": { "get": { "operationId": "healthz", "summary": "The process answers",
                               "responses": { "200": { "description": "ok", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
        "/readyz": { "get": { "operationId": "readyz", "summary": "The store answers",
                              "responses": { "200": { "description": "ready", "content": { "text/plain": { "schema": { "type": "string" } } } },
                                             "503": { "description": "not ready", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
        "/metrics": { "get": { "operationId": "metrics", "summary": "Prometheus text exposition",
                               "responses": { "200": { "description": "metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
        "/api/v1/openapi.json": { "get": { "operationId": "openapi", "summary": "This document",
                               "responses": { "200": { "description": "the document", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
        "/api/v1/submissions": { "post": {
            "operationId": "submit", "summary": "Upload a gzip tarball of an app's source; starts a run", "security": bearer,
            "requestBody": { "required": true, "content": { "multipart/form-data": { "schema": { "type": "object", "required": ["source"],
                "properties": { "source": { "type": "string", "format": "binary" }, "repository": { "type": "string" },
                                "commit": { "type": "string" }, "branch": { "type": "string" }, "author": { "type": "string" },
                                "commit_time": { "type": "string" }, "app": { "type": "string" } } } } } },
            "responses": { "202": { "description": "Stored and queued", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SubmissionAccepted" } } } },
                           "400": error_response("A field is missing or malformed"),
                           "401": error_response("No or unknown token"),
                           "403": error_response("The app belongs to another team (its airlock.toml, the platform config, or its releases say so)"),
                           "408": error_response("The body was not received within body_read_timeout_secs; nothing was stored"),
                           "413": error_response("The tarball is larger than max_body_bytes"),
                           "415": error_response("Not multipart/form-data, or `source` is not gzip") } } },
        "/api/v1/runs": { "get": {
            "operationId": "listRuns", "summary": "Runs, newest first (developers: their team's only)", "security": bearer,
            "parameters": [
              { "name": "app", "in": "query", "required": false, "schema": { "type": "string" } },
              { "name": "team", "in": "query", "required": false, "schema": { "type": "string" } },
              { "name": "state", "in": "query", "required": false, "schema": { "type": "string" } },
              { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }
            ],
            "responses": { "200": { "description": "runs", "content": { "application/json": { "schema": { "type": "object",
                             "properties": { "runs": { "type": "array", "items": { "$ref": "#/components/schemas/Run" } } } } } } },
                           "400": error_response("A filter is not valid"),
                           "401": error_response("No or unknown token"),
                           "403": error_response("A developer asked for another team's runs") } } },
        "/api/v1/runs/{id}": { "get": {
            "operationId": "getRun", "summary": "One run with its steps, findings and decision", "security": bearer,
            "parameters": [ run_id_param() ],
            "responses": { "200": { "description": "the run", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Run" } } } },
                           "401": error_response("No or unknown token"),
                           "404": error_response("No such run visible to this token") } } },
        "/api/v1/runs/{id}/cancel": { "post": {
            "operationId": "cancelRun", "summary": "Ask a run to stop before its next step", "security": bearer,
            "parameters": [ run_id_param() ],
            "responses": { "202": { "description": "cancel requested", "content": { "application/json": { "schema": { "type": "object" } } } },
                           "401": error_response("No or unknown token"),
                           "404": error_response("No such run visible to this token"),
                           "409": error_response("The run has already finished") } } },
        "/api/v1/runs/{id}/events": { "get": {
            "operationId": "runEvents", "summary": "Server-sent events: state, step, and a final end event", "security": bearer,
            "parameters": [ run_id_param() ],
            "responses": { "200": { "description": "event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                           "401": error_response("No or unknown token"),
                           "404": error_response("No such run visible to this token") } } },
        "/api/v1/audit": { "get": {
            "operationId": "auditExport", "summary": "Admin-only: the audit log as JSON lines", "security": bearer,
            "parameters": [
              { "name": "after", "in": "query", "required": false, "schema": { "type": "integer" } },
              { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 10000 } }
            ],
            "responses": { "200": { "description": "entries", "content": { "application/x-ndjson": { "schema": { "type": "string" } } } },
                           "400": error_response("A parameter is not valid"),
                           "401": error_response("No or unknown token"),
                           "403": error_response("Not an admin token") } } },
        "/api/v1/waivers": {
          "get": { "operationId": "listWaivers", "summary": "Admin-only: every waiver", "security": bearer,
                   "responses": { "200": { "description": "waivers", "content": { "application/json": { "schema": { "type": "object" } } } },
                                  "401": error_response("No or unknown token"), "403": error_response("Not an admin token") } },
          "post": { "operationId": "addWaiver", "summary": "Admin-only: add a waiver", "security": bearer,
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                        "required": ["id", "package", "expires", "reason", "approver"],
                        "properties": { "id": { "type": "string" }, "package": { "type": "string" }, "team": { "type": "string" },
                                        "app": { "type": "string" }, "expires": { "type": "string" }, "reason": { "type": "string" },
                                        "approver": { "type": "string" } } } } } },
                    "responses": { "201": { "description": "added", "content": { "application/json": { "schema": { "type": "object" } } } },
                                   "400": error_response("The waiver is not valid"),
                                   "401": error_response("No or unknown token"), "403": error_response("Not an admin token"),
                                   "409": error_response("The waiver exists") } } },
        "/api/v1/waivers/{key}": { "delete": {
            "operationId": "removeWaiver", "summary": "Admin-only: remove a waiver the API added", "security": bearer,
            "parameters": [ { "name": "key", "in": "path", "required": true, "schema": { "type": "string" } } ],
            "responses": { "200": { "description": "removed", "content": { "application/json": { "schema": { "type": "object" } } } },
                           "401": error_response("No or unknown token"), "403": error_response("Not an admin token"),
                           "404": error_response("No such waiver"), "409": error_response("The waiver is in the reviewed file") } } },
        "/api/v1/rebases": { "post": {
            "operationId": "rebase", "summary": "Admin-only: rebase a release (or every app's newest on a base) onto a newer approved base of the same lineage, as new releases", "security": bearer,
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                "required": ["onto"],
                "properties": { "app": { "type": "string" }, "run": { "type": "string" }, "from": { "type": "string" },
                                "all_on": { "type": "string" }, "onto": { "type": "string" } } } } } },
            "responses": { "202": { "description": "rebased and queued from the scan step", "content": { "application/json": { "schema": { "type": "object" } } } },
                           "400": error_response("The request is not valid"),
                           "401": error_response("No or unknown token"), "403": error_response("Not an admin token"),
                           "404": error_response("No such app, run or release"),
                           "409": error_response("The run is not a published release"),
                           "422": error_response("The platform refuses this rebase (unapproved base, another lineage, already on it)") } } },
        "/api/v1/hooks/github": hook("github", "X-Hub-Signature-256", "X-GitHub-Delivery"),
        "/api/v1/hooks/gitlab": hook("gitlab", "X-Gitlab-Token", "X-Gitlab-Event-UUID"),
        "/api/v1/hooks/gitea": hook("gitea", "X-Gitea-Signature", "X-Gitea-Delivery")
      }
    })
}
