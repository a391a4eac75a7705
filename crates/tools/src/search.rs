//! `web_search` and `news_search` on the Brave Search API's wire format: `GET
//! /res/v1/web/search` and `/res/v1/news/search` with `q` and `count`, the key in
//! `X-Subscription-Token`, results mapped to `{title, url, description}`. The key is the
//! workspace's or the platform's (see [`crate::services`]); the platform's base URL setting
//! points it at a compatible endpoint or a local test server. Calls go through egress.

use chatterfly_domain::Service;
use chatterfly_egress::OutboundRequest;
use chatterfly_vault::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::{ToolError, ToolInfo, Tools};

pub const DEFAULT_BASE: &str = "https://api.search.brave.com";

fn schema() -> Value {
    json!({"type": "object", "required": ["query"], "additionalProperties": false, "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 400, "description": "What to search for"},
        "count": {"type": "integer", "minimum": 1, "maximum": 20, "default": 10, "description": "How many results"}}})
}

pub fn infos() -> Vec<ToolInfo> {
    vec![
        ToolInfo {
            name: "web_search".into(),
            description: "Search the web. Returns a list of {title, url, description}.".into(),
            input_schema: schema(),
        },
        ToolInfo {
            name: "news_search".into(),
            description: "Search recent news. Returns a list of {title, url, description}.".into(),
            input_schema: schema(),
        },
    ]
}

/// Which search a built-in name is.
pub fn kind(name: &str) -> Option<&'static str> {
    match name {
        "web_search" => Some("web"),
        "news_search" => Some("news"),
        _ => None,
    }
}

impl Tools {
    pub(crate) async fn search(&self, kind: &str, workspace: (&str, &str), args: &Value) -> Result<Value, ToolError> {
        let validator = jsonschema::validator_for(&schema()).map_err(|e| ToolError::Internal(e.to_string()))?;
        if let Some(err) = validator.iter_errors(args).next() {
            return Err(ToolError::InvalidArguments {
                pointer: err.instance_path().to_string(),
                detail: err.to_string(),
            });
        }
        let query = args.get("query").and_then(Value::as_str).unwrap_or_default();
        let count = args.get("count").and_then(Value::as_u64).unwrap_or(10);
        let key = crate::services::service_key(&self.store, &self.keys, Some(workspace), Service::Brave).await?;
        let base = key.base_url.as_deref().unwrap_or(DEFAULT_BASE).trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}/res/v1/{kind}/search"))
            .map_err(|e| ToolError::Internal(format!("search base URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("count", &count.to_string());
        let mut req = OutboundRequest::new(http::Method::GET, url);
        req.tenant = Some(workspace.0.into());
        req.headers
            .insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
        let mut token = http::HeaderValue::from_str(key.key.expose_secret())
            .map_err(|_| ToolError::Internal("the search key cannot be sent in a header".into()))?;
        token.set_sensitive(true);
        let name = http::HeaderName::from_static("x-subscription-token");
        req.headers.insert(name.clone(), token);
        req.credential_headers.push(name);
        // the results go to the caller: a service that echoes the key must not hand it over
        let redactor = crate::redact::Redactor::for_values(vec![key.key.expose_secret().to_owned()]);
        let resp = self.egress.send(req, None).await?;
        if !resp.status.is_success() {
            return Err(ToolError::Egress(chatterfly_egress::EgressError::Http(format!(
                "the search service answered {}",
                resp.status
            ))));
        }
        let body: Value = serde_json::from_slice(&resp.body).map_err(|_| {
            ToolError::Egress(chatterfly_egress::EgressError::Http(
                "the search service did not answer JSON".into(),
            ))
        })?;
        let results = match kind {
            "web" => body.pointer("/web/results"),
            _ => body.pointer("/results"),
        };
        let list: Vec<Value> = results
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .take(usize::try_from(count).unwrap_or(10))
                    .map(|r| {
                        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                        json!({"title": text("title"), "url": text("url"), "description": text("description")})
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(redactor.value(Value::Array(list)))
    }
}
