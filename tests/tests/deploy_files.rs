//! The deployment files agree with each other and with the code: docker-compose.yml parses and
//! names the services, ports, volumes and variables the README describes; every variable it
//! gives Cellar is one the binaries read and `.env.sample` documents; the Dockerfile's client
//! is new enough for the compose servers. (No Docker engine runs here; this is what can be
//! checked without one.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses")
}

/// The README's Docker Compose section.
fn readme_section() -> String {
    let readme = read("README.md");
    let start = readme
        .find("## Run with Docker Compose")
        .expect("README has a '## Run with Docker Compose' section");
    let rest = &readme[start + 3..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
}

/// Every `env = "NAME"` in the binaries' and core's sources: the variables Cellar reads.
fn clap_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in ["core/src", "api/src", "worker/src", "cli/src"] {
        collect_env_names(&root().join(dir), &mut names);
    }
    assert!(names.contains("DATABASE_URL"), "{names:?}");
    names
}

fn collect_env_names(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_env_names(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let src = std::fs::read_to_string(&path).unwrap();
            for part in src.split("env = \"").skip(1) {
                names.insert(part.split('"').next().unwrap().to_string());
            }
        }
    }
}

/// Variables `.env.sample` documents, set (`NAME=`) or commented out (`# NAME=`).
fn sample_variables() -> BTreeSet<String> {
    read(".env.sample")
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

/// `${NAME}`, `${NAME:-default}` and `${NAME:?message}` in the compose file (comments aside).
fn interpolated(text: &str) -> BTreeSet<String> {
    let code: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    code.join("\n")
        .split("${")
        .skip(1)
        .map(|p| p.split(['}', ':', '-', '?']).next().unwrap().to_string())
        .collect()
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    &c["services"][name]
}

#[test]
fn compose_names_what_the_readme_describes() {
    let c = compose();
    let services: BTreeSet<&str> = c["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["api", "catalog", "source", "worker"])
    );
    let volumes: Vec<&String> = c["volumes"].as_object().unwrap().keys().collect();
    let section = readme_section();
    for name in services
        .iter()
        .copied()
        .chain(volumes.iter().map(|v| v.as_str()))
    {
        assert!(
            section.contains(&format!("`{name}`")),
            "README's compose section does not name `{name}`"
        );
    }
    for var in interpolated(&read("docker-compose.yml")) {
        assert!(
            section.contains(&format!("`{var}`")),
            "README's compose section does not name `{var}`"
        );
    }
    // The published port is the one the API listens on, and the one the README gives.
    let api = service(&c, "api");
    let port = api["ports"][0].as_str().unwrap();
    let container_port = port.rsplit(':').next().unwrap();
    let listen = api["environment"]["CELLAR_LISTEN"].as_str().unwrap();
    assert_eq!(listen.rsplit(':').next().unwrap(), container_port);
    assert!(
        section.contains(&format!("localhost:{container_port}")),
        "README gives the dashboard URL"
    );
    assert!(
        service(&c, "worker")["deploy"]["replicas"]
            .as_u64()
            .unwrap()
            >= 2,
        "several workers"
    );
}

#[test]
fn compose_volumes_are_declared_used_and_shared_by_workers() {
    let c = compose();
    let declared: BTreeSet<String> = c["volumes"].as_object().unwrap().keys().cloned().collect();
    let mut used = BTreeSet::new();
    for (name, svc) in c["services"].as_object().unwrap() {
        for mount in svc["volumes"].as_array().into_iter().flatten() {
            let (from, _) = mount.as_str().unwrap().split_once(':').unwrap();
            if from.starts_with('.') {
                assert!(
                    root().join(from).exists(),
                    "{name} mounts {from}, which does not exist"
                );
            } else {
                used.insert(from.to_string());
            }
        }
    }
    assert_eq!(declared, used, "named volumes declared vs used");
    let worker = service(&c, "worker");
    let dir = worker["environment"]["CELLAR_BACKUP_DIR"].as_str().unwrap();
    let mounts: Vec<&str> = worker["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        mounts.contains(&format!("backups:{dir}").as_str()),
        "workers share `backups` at {dir}: {mounts:?}"
    );
}

#[test]
fn compose_variables_are_read_by_cellar_and_documented() {
    let c = compose();
    let clap = clap_variables();
    let sample = sample_variables();
    for name in ["api", "worker"] {
        for key in service(&c, name)["environment"].as_object().unwrap().keys() {
            assert!(
                clap.contains(key),
                "{name} sets {key}, which no Cellar binary reads"
            );
            assert!(
                sample.contains(key),
                "{name} sets {key}, missing from .env.sample"
            );
        }
    }
    for var in interpolated(&read("docker-compose.yml")) {
        assert!(
            sample.contains(&var),
            "docker-compose.yml uses ${{{var}}}, missing from .env.sample"
        );
    }
    for var in &clap {
        assert!(
            sample.contains(var),
            "{var} is read by a binary but missing from .env.sample"
        );
    }
}

#[test]
fn compose_health_and_start_order_hold_together() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    for (name, svc) in services {
        for (dep, cond) in svc["depends_on"].as_object().into_iter().flatten() {
            assert_eq!(cond["condition"], "service_healthy", "{name} -> {dep}");
            assert!(
                services[dep]["healthcheck"]["test"].is_array(),
                "{dep} needs a healthcheck"
            );
        }
    }
    let probe = service(&c, "api")["healthcheck"]["test"].to_string();
    assert!(probe.contains("/healthz"), "{probe}");
    assert!(read("api/src/lib.rs").contains(".route(\"/healthz\""));
    assert_eq!(service(&c, "worker")["healthcheck"]["disable"], true);
}

#[test]
fn dockerfile_builds_locked_runs_unprivileged_with_a_new_enough_client() {
    let df = read("Dockerfile");
    assert!(
        df.contains("cargo build --release --locked"),
        "--locked build"
    );
    assert!(df.contains("SQLX_OFFLINE=true"), "offline sqlx data");
    for bin in ["cellar-api", "cellar-worker", "target/release/cellar "] {
        assert!(df.contains(bin), "the image ships {bin}");
    }
    let user = df
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.ends_with(" 0"), "{user}");
    assert!(df.contains("HEALTHCHECK") && df.contains("/healthz"));
    let major: u32 = df
        .lines()
        .find_map(|l| l.strip_prefix("ARG PG_MAJOR="))
        .expect("ARG PG_MAJOR=")
        .parse()
        .unwrap();
    assert!(df.contains("postgresql-client-${PG_MAJOR}"));
    // pg_dump refuses servers of a newer major version: the client must cover every server.
    let c = compose();
    for svc in c["services"].as_object().unwrap().values() {
        if let Some(tag) = svc["image"]
            .as_str()
            .and_then(|i| i.strip_prefix("postgres:"))
        {
            let server: u32 = tag.split(['.', '-']).next().unwrap().parse().unwrap();
            assert!(
                major >= server,
                "client {major} cannot dump server {server}"
            );
        }
    }
    let ignore = read(".dockerignore");
    for needed in [".sqlx", "migrations", "Cargo.lock", "api", "core"] {
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            ".dockerignore drops {needed}"
        );
    }
}
