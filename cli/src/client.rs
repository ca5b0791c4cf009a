//! A GraphQL client for Cellar's API: `request` over HTTP, `subscribe` over a websocket
//! speaking `graphql-transport-ws` (the protocol of the npm `graphql-ws` client).

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::CliError;

/// Where the API is and which token to send.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    token: Option<String>,
}

fn unreachable(e: impl std::fmt::Display) -> CliError {
    CliError::Unreachable(e.to_string())
}

/// The first GraphQL error as a [`CliError`], or the data.
fn data_or_error(body: Value) -> Result<Value, CliError> {
    if let Some(e) = body["errors"].as_array().and_then(|e| e.first()) {
        return Err(CliError::Api {
            code: e["extensions"]["code"]
                .as_str()
                .unwrap_or("INVALID_INPUT")
                .to_string(),
            message: e["message"].as_str().unwrap_or("error").to_string(),
        });
    }
    Ok(body["data"].clone())
}

impl Api {
    /// A client for the API at `url` (trailing slash ignored).
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self {
            http: cellar_core::http::client(),
            url: url.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Runs a query or mutation; returns its `data`, or the first error with its code.
    pub async fn request(&self, query: &str, variables: Value) -> Result<Value, CliError> {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| unreachable(format!("HTTP {status}: {e}")))?;
        data_or_error(body)
    }

    /// Runs a subscription, calling `each` with every item's `data` until the server completes
    /// it (Ok) or `each` returns `false` (Ok, early).
    pub async fn subscribe(
        &self,
        query: &str,
        variables: Value,
        mut each: impl FnMut(&Value) -> bool,
    ) -> Result<(), CliError> {
        let ws_url = format!("{}/graphql/ws", self.url.replacen("http", "ws", 1));
        let mut req = ws_url.into_client_request().map_err(unreachable)?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header value"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(unreachable)?;
        let init = json!({"type": "connection_init", "payload": {"token": self.token}});
        ws.send(Message::text(init.to_string()))
            .await
            .map_err(unreachable)?;
        let sub = json!({"id": "1", "type": "subscribe",
                         "payload": {"query": query, "variables": variables}});
        let mut subscribed = false;
        while let Some(msg) = ws.next().await {
            let msg = msg.map_err(unreachable)?;
            let text = match msg {
                Message::Text(t) => t.to_string(),
                Message::Close(f) => return Err(closed(f)),
                _ => continue,
            };
            let m: Value = serde_json::from_str(&text).map_err(unreachable)?;
            match m["type"].as_str().unwrap_or_default() {
                "connection_ack" if !subscribed => {
                    subscribed = true;
                    ws.send(Message::text(sub.to_string()))
                        .await
                        .map_err(unreachable)?;
                }
                "ping" => {
                    let pong = json!({"type": "pong"}).to_string();
                    ws.send(Message::text(pong)).await.map_err(unreachable)?;
                }
                "next" => {
                    let data = data_or_error(m["payload"].clone())?;
                    if !each(&data) {
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                }
                "error" => return data_or_error(json!({"errors": m["payload"]})).map(drop),
                "complete" => {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(unreachable(
            "the websocket closed before the subscription ended",
        ))
    }
}

fn closed(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> CliError {
    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
    if reason.contains("authentication")
        || reason.contains("Forbidden")
        || reason.contains("UNAUTH")
    {
        CliError::Api {
            code: "UNAUTHENTICATED".into(),
            message: format!("the API refused the websocket: {reason}"),
        }
    } else {
        unreachable(format!("the websocket was closed: {reason}"))
    }
}
