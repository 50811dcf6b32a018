//! The local web UI: static assets embedded in the binary and served without a CDN.
//!
//! The UI is plain JavaScript modules and CSS (no build step), compatible with the strict
//! Content-Security-Policy of [`crate::headers::CSP`]: no inline script or style, no
//! `eval`. Every asset is public (it holds no data); the data comes from the API, which
//! enforces roles.

use crate::state::AppState;
use axum::extract::Path;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;

/// One embedded asset.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// File name under `/ui/`.
    pub name: &'static str,
    /// MIME type.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every asset of the UI (the page itself is [`INDEX`]).
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../ui/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_bytes!("../ui/api.js"),
    },
    Asset {
        name: "live.js",
        content_type: JS,
        body: include_bytes!("../ui/live.js"),
    },
    Asset {
        name: "views.js",
        content_type: JS,
        body: include_bytes!("../ui/views.js"),
    },
    Asset {
        name: "zones.js",
        content_type: JS,
        body: include_bytes!("../ui/zones.js"),
    },
    Asset {
        name: "admin.js",
        content_type: JS,
        body: include_bytes!("../ui/admin.js"),
    },
    Asset {
        name: "cameras.js",
        content_type: JS,
        body: include_bytes!("../ui/cameras.js"),
    },
    Asset {
        name: "wizard.js",
        content_type: JS,
        body: include_bytes!("../ui/wizard.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../ui/favicon.svg"),
    },
];

/// The single HTML page of the UI.
pub const INDEX: &str = include_str!("../ui/index.html");

fn respond(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidated on every load so a firmware update is picked up at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the UI page.
pub(crate) async fn index(State(s): State<AppState>) -> Result<Response, HttpError> {
    if !s.settings.web_ui {
        return Err(HttpError::not_found(
            "the web UI (disabled by features.web_ui)".to_owned(),
        ));
    }
    Ok(respond("text/html; charset=utf-8", INDEX.as_bytes()))
}

/// `GET /ui/{file}`: one embedded asset.
pub(crate) async fn asset(
    State(s): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, HttpError> {
    if !s.settings.web_ui {
        return Err(HttpError::not_found(format!("UI asset {file}")));
    }
    ASSETS
        .iter()
        .find(|a| a.name == file)
        .map(|a| respond(a.content_type, a.body))
        .ok_or_else(|| HttpError::not_found(format!("UI asset {file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_references_only_embedded_assets_and_no_inline_code() {
        for part in INDEX.split("/ui/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html references /ui/{name}, which is not embedded"
            );
        }
        assert!(!INDEX.contains("<style"), "inline style element");
        assert!(!INDEX.contains(" style="), "inline style attribute");
        assert!(!INDEX.contains("<script>"), "inline script");
        assert!(!INDEX.contains("http://") && !INDEX.contains("https://"));
    }

    #[test]
    fn every_imported_module_is_embedded() {
        // A module imported but not in ASSETS would 404 in the browser and blank the UI.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for part in text.split(" from './").skip(1) {
                let name = part.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|b| b.name == name),
                    "{} imports ./{name}, which is not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn scripts_use_no_eval_and_no_external_urls() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            assert!(!text.contains("eval("), "{} uses eval", a.name);
            assert!(!text.contains("new Function"), "{} uses Function", a.name);
            assert!(!text.contains("innerHTML"), "{} writes innerHTML", a.name);
            for scheme in ["http://", "https://"] {
                assert!(!text.contains(scheme), "{} names an external URL", a.name);
            }
        }
    }
}
