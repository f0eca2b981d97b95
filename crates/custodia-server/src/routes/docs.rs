//! The API reference page at `/docs`: Redoc, vendored in `assets/docs/` and embedded in the
//! binary, rendering `GET /openapi.json`. A web page, not an API operation, so like the privacy
//! center it is not in `ROUTES` or the OpenAPI document: `/docs` and
//! `/docs/redoc.standalone.js`.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../../assets/docs/index.html");
/// Redoc 2.5.0's standalone bundle, unmodified (source and digest in `assets/docs/README.md`).
const REDOC: &[u8] = include_bytes!("../../assets/docs/redoc.standalone.js");

/// The page's Content-Security-Policy: the privacy center's, loosened only where Redoc needs it
/// (`assets/docs/README.md` says why): styled-components inserts `<style>` elements, the search
/// index runs in a worker made from a `blob:` URL, icons are `data:` SVGs. Scripts still come
/// from this origin only, with no inline script and no `eval`.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
                            style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                            worker-src blob:; connect-src 'self'; form-action 'none'; \
                            base-uri 'none'; frame-ancestors 'none'";

/// The reference page's routes.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/docs", get(index))
        .route("/docs/redoc.standalone.js", get(script))
}

fn hardened(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_TYPE, content_type);
    set(header::CACHE_CONTROL, "no-cache");
    set(header::CONTENT_SECURITY_POLICY, DOCS_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    response
}

/// `GET /docs`.
async fn index() -> Response {
    hardened("text/html; charset=utf-8", INDEX)
}

/// `GET /docs/redoc.standalone.js`.
async fn script() -> Response {
    hardened("text/javascript; charset=utf-8", REDOC)
}
