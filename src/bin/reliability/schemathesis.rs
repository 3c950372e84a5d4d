//! Part `schemathesis`: does the REST API's OpenAPI description tell the
//! truth? Schemathesis (PyPI; `bench/reliability.sh` installs it into
//! `target/schemathesis-venv`) generates requests from `/v1.1/openapi.json`
//! — valid ones, which must be accepted, and invalid ones, which must be
//! refused — and runs all of its checks on every answer (no server errors,
//! statuses and bodies as described, content types, headers, …), against a
//! real murmur with an app, an API key and a few users, on each backend.
//!
//! Options: `--st PATH` (default `target/schemathesis-venv/bin/st`),
//! `--max-examples N` (per operation and phase, default 100),
//! `--max-seconds S` (each backend's bound, default 900).

use std::time::{Duration, Instant};

use crate::{
    server::{repo_root, Options, Server},
    Args,
};

pub async fn run(args: &Args) -> Result<bool, String> {
    let st = args.get("st").map(std::path::PathBuf::from).unwrap_or_else(|| repo_root().join("target/schemathesis-venv/bin/st"));
    if !st.exists() {
        return Err(format!("schemathesis is not at {} (bench/reliability.sh installs it)", st.display()));
    }
    let examples = args.number("max-examples", 100)?;
    let bound = Duration::from_secs(args.number("max-seconds", 900)?);
    let mut all_passed = true;
    println!("## The OpenAPI description against the server (schemathesis, all checks)\n");
    println!("| backend | operations | test cases | failures | seconds | result |\n|---|---:|---:|---:|---:|---|");
    let mut details = String::new();
    for backend in args.backends()? {
        let server = Server::start(Options::new(args.murmur(), backend)).await?;
        let session = server.setup_owner("Olive Owner", "owner@example.com", "owner password 1").await?;
        let app_id = server.create_app(&session, "Schema").await?;
        let key = server.create_key(&session, &app_id, "schemathesis").await?;
        // Users the path parameters can name (schemathesis also makes up its own).
        for user in ["u1", "u2"] {
            let body = format!(r#"{{"userId":"{user}","givenName":"Ann"}}"#);
            let auth = key.basic();
            let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
            let r = server.request("POST", "/v1.1/appusers", &headers, body.as_bytes()).await.map_err(|e| e.to_string())?;
            if r.status != 201 {
                return Err(format!("could not create user {user}: {} {}", r.status, r.text()));
            }
        }
        let schema = format!("{}/v1.1/openapi.json", server.origin());
        // The app's id for the `/v1.1/apps/{appId}/…` paths (a made-up one
        // would only ever get 404).
        let config = server.data_dir().join("schemathesis.toml");
        std::fs::write(&config, format!("[parameters]\n\"path.appId\" = \"{app_id}\"\n")).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(&st);
        cmd.arg("--config-file").arg(&config).arg("run")
            .arg(&schema)
            .args(["--checks", "all"])
            .args(["--max-examples", &examples.to_string()])
            .args(["--header", &format!("Authorization: {}", key.basic())])
            .args(["--request-timeout", "10"])
            .args(["--max-time", &bound.as_secs().to_string()])
            .args(["--seed", "1"])
            .env("NO_COLOR", "1")
            .current_dir(std::env::temp_dir())
            .kill_on_drop(true);
        let out = tokio::time::timeout(bound + Duration::from_secs(60), cmd.output())
            .await
            .map_err(|_| format!("schemathesis ran past {} s", bound.as_secs()))?
            .map_err(|e| format!("cannot run {}: {e}", st.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        let passed = out.status.success();
        all_passed &= passed;
        let (operations, cases, failures) = summary(&text);
        println!(
            "| {} | {operations} | {cases} | {failures} | {:.0} | {} |",
            backend.name(),
            started.elapsed().as_secs_f64(),
            if passed { "pass" } else { "FAIL" }
        );
        if !passed {
            details.push_str(&format!("\n### {} (schemathesis output)\n\n```\n{}\n```\n", backend.name(), text.trim()));
        }
        let (panics, lines) = server.panics(5);
        if panics > 0 {
            all_passed = false;
            details.push_str(&format!("\n{} panics in the server's log: {lines:?}\n", panics));
        }
    }
    println!(
        "\nCommand: `st --config-file <appId> run <server>/v1.1/openapi.json --checks all --max-examples {examples} --seed 1` \
         with an app key."
    );
    print!("{details}");
    Ok(all_passed)
}

/// Operations, test cases and failures from schemathesis' summary lines
/// (`"API Operations:  20 selected / 20 tested"`, `"Test cases: 1234 generated, …"`,
/// `"Failures: 3 …"`), or "?" where a line is missing.
fn summary(text: &str) -> (String, String, String) {
    let after = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).find(|n| !n.is_empty()).map(str::to_string))
            .unwrap_or_else(|| "?".into())
    };
    let operations = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("API Operations:"))
        .and_then(|r| r.split('/').nth(1))
        .map(|r| r.trim().split(' ').next().unwrap_or("?").to_string())
        .unwrap_or_else(|| "?".into());
    let failures = if text.lines().any(|l| l.trim().starts_with("Failures:")) { after("Failures:") } else { "0".into() };
    (operations, after("Test cases:"), failures)
}
