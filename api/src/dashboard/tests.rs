//! The embedded dashboard is complete and self-contained: every file the page references is
//! served with its type and the CSP, and nothing needs inline script or another origin.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::{ASSETS, CSP, INDEX, routes};

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let resp = routes::<()>().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into(),
    )
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("assets are UTF-8")
}

/// `"/assets/x"` in src/href attributes and `'./x.js'` in JS imports.
fn references() -> Vec<String> {
    let mut refs = Vec::new();
    for part in text(INDEX).split("=\"/assets/").skip(1) {
        refs.push(part.split('"').next().unwrap().to_string());
    }
    for a in ASSETS
        .iter()
        .filter(|a| a.path.ends_with(".js") && !a.path.contains('/'))
    {
        for part in text(a.body).split("from './").skip(1) {
            refs.push(part.split('\'').next().unwrap().to_string());
        }
    }
    refs
}

#[tokio::test]
async fn index_is_served_with_the_policy() {
    let (status, headers, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(body.contains("<title>Cellar</title>"), "{body}");
}

#[tokio::test]
async fn every_referenced_file_is_served_with_its_type() {
    let refs = references();
    assert!(refs.len() >= 10, "{refs:?}");
    for r in refs {
        let (status, headers, _) = get(&format!("/assets/{r}")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let ty = headers[header::CONTENT_TYPE].to_str().unwrap();
        let want = if r.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(ty.starts_with(want), "{r}: {ty}");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP, "{r}");
    }
}

#[tokio::test]
async fn unknown_files_are_not_found() {
    for path in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/vendor"] {
        assert_eq!(get(path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
}

#[test]
fn every_embedded_file_is_used_or_a_licence() {
    let refs = references();
    for a in ASSETS {
        assert!(
            refs.iter().any(|r| r == a.path) || a.path.contains("LICENSE"),
            "{} is embedded but never referenced",
            a.path
        );
    }
}

#[test]
fn the_page_needs_no_inline_code_and_no_other_origin() {
    let html = text(INDEX);
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap();
        assert!(open.contains("src="), "inline <script{open}>");
    }
    for bad in [" style=", " onclick=", " onload=", "<style", "javascript:"] {
        assert!(!html.contains(bad), "index.html contains {bad}");
    }
    let ours = ASSETS.iter().filter(|a| !a.path.starts_with("vendor/"));
    for a in ours
        .map(|a| (a.path, text(a.body)))
        .chain([("index.html", html)])
    {
        // The SVG namespace is a name, not a request.
        let body = a.1.replace("http://www.w3.org/2000/svg", "");
        for bad in [
            "http://",
            "https://",
            "innerHTML",
            "eval(",
            "setAttribute('style'",
        ] {
            assert!(!body.contains(bad), "{} contains {bad}", a.0);
        }
    }
}
