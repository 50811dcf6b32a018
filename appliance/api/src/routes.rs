//! The route table: every route with its method, path, minimum access and summary.
//!
//! The router is built only from [`table`], and one middleware (`gate_fn`) enforces
//! each route's [`Access`] and the request rate limit ([`crate::ratelimit`]): handlers
//! never check roles themselves. The integration test walks the table and proves 401
//! without credentials, 403 below the minimum role and success at it for every entry.

use std::net::IpAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use safe_yolo_store::{AuditResult, NewAudit, Role, now_ms};

use crate::auth::{Principal, authenticate, presented_token, rank, role_name};
use crate::error::HttpError;
use crate::handlers::{
    auth as h_auth, cameras as h_cameras, download, events, live as h_live, settings as h_settings,
    system, users,
};
use crate::state::{AppState, peer};
use crate::ui;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (setup, login, refresh, health). Each such route does its own gating
    /// (setup networks/token, throttling).
    Public,
    /// A single-use WebSocket ticket minted for a viewer or above.
    Ticket,
    /// An authenticated caller with at least this role.
    Role(Role),
}

/// The remote address, available to every handler.
#[derive(Debug, Clone, Copy)]
pub struct Source(pub IpAddr);

/// Produces the JSON schema of a request body (a `$ref` into the generator's definitions).
pub type BodySchema = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// What a route's success response carries, for the OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub enum ResponseDoc {
    /// A JSON body of this schema: taken from the handler's return type
    /// (`Json<T>`), or declared with `returns` when the handler builds its
    /// [`Response`] itself (to set a cookie, say).
    Json(BodySchema),
    /// No body (`204 No Content`, or a status only).
    Empty,
    /// Not JSON: the media types in [`RouteSpec::produces`] (downloads, the UI, streams).
    Other,
    /// A WebSocket: `101 Switching Protocols`, then the socket's own messages.
    Upgrade,
    /// A handler returning a bare [`Response`] that declared nothing: the
    /// integration test fails on it.
    Undocumented,
}

/// The [`ResponseDoc`] of a handler's return type.
pub trait Responds {
    /// The documentation of this type as a response.
    fn doc() -> ResponseDoc;
}

impl<T: schemars::JsonSchema> Responds for axum::Json<T> {
    fn doc() -> ResponseDoc {
        ResponseDoc::Json(|g| g.subschema_for::<T>())
    }
}

impl<T: Responds, E> Responds for Result<T, E> {
    fn doc() -> ResponseDoc {
        T::doc()
    }
}

impl<T: Responds> Responds for (StatusCode, T) {
    fn doc() -> ResponseDoc {
        T::doc()
    }
}

impl Responds for StatusCode {
    fn doc() -> ResponseDoc {
        ResponseDoc::Empty
    }
}

impl Responds for Response {
    fn doc() -> ResponseDoc {
        ResponseDoc::Undocumented
    }
}

/// The output type of a handler function, whatever its extractors: lets
/// [`route`] document the response from the handler's own signature.
pub trait HandlerOutput<Args> {
    /// What the handler's future resolves to.
    type Output;
}

macro_rules! handler_output {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> HandlerOutput<($($arg,)*)> for F
        where
            F: FnOnce($($arg),*) -> Fut,
            Fut: std::future::Future,
        {
            type Output = Fut::Output;
        }
    };
}
handler_output!();
handler_output!(A1);
handler_output!(A1, A2);
handler_output!(A1, A2, A3);
handler_output!(A1, A2, A3, A4);
handler_output!(A1, A2, A3, A4, A5);
handler_output!(A1, A2, A3, A4, A5, A6);

/// A route's description, independent of its handler.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template (axum syntax, `{id}` for parameters).
    pub path: &'static str,
    /// Minimum access.
    pub access: Access,
    /// One-line description (also the OpenAPI summary).
    pub summary: &'static str,
    /// Largest body accepted, when it differs from the default.
    pub body_limit: Option<usize>,
    /// Whether the route changes state (and therefore writes an audit row). True for
    /// every method but GET unless the table says otherwise with a reason.
    pub changes_state: bool,
    /// Whether a single-use ticket (`?ticket=`) is accepted instead of a bearer token,
    /// for clients that cannot send headers (VLC opening the MJPEG stream).
    pub accepts_ticket: bool,
    /// Schema of the JSON request body, if the route takes one.
    pub body: Option<BodySchema>,
    /// Query parameters, for the OpenAPI document: `(name, required, description)`.
    pub query: &'static [QueryParam],
    /// Media types of a successful response when it is not JSON (downloads).
    pub produces: &'static [&'static str],
    /// The success response's body.
    pub response: ResponseDoc,
    /// Whether the route may take longer than `[api] request_timeout_s` before its
    /// response starts (a backup or an export prepares a file first); such a route
    /// has its own budget ([`SLOW_DEADLINE`], one-at-a-time gates, free-space checks).
    pub slow: bool,
}

/// The deadline of a [`RouteSpec::slow`] route.
pub const SLOW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A query parameter: `(name, required, description)`.
pub type QueryParam = (&'static str, bool, &'static str);

/// The event list's filters, shared by the list and the export.
const EVENT_FILTERS: [QueryParam; 5] = [
    (
        "from",
        false,
        "Only events that started at or after this Unix time (ms)",
    ),
    (
        "to",
        false,
        "Only events that started before this Unix time (ms)",
    ),
    ("camera", false, "Only this camera id"),
    ("rule", false, "Only this rule id"),
    (
        "state",
        false,
        "Only events in this state: open, active, acknowledged or cleared",
    ),
];

const EVENT_LIST_QUERY: [QueryParam; 8] = [
    EVENT_FILTERS[0],
    EVENT_FILTERS[1],
    EVENT_FILTERS[2],
    EVENT_FILTERS[3],
    EVENT_FILTERS[4],
    ("order", false, "asc or desc (default: newest first)"),
    (
        "cursor",
        false,
        "Resume after this event id (the previous page's next_cursor). A page looks at no more than 10,000 events, so a filter that matches rarely may give a short or empty page with next_cursor set: follow it until it is null",
    ),
    ("limit", false, "Page size, 1-1000 (default 100)"),
];

const EVENT_EXPORT_QUERY: [QueryParam; 7] = [
    ("format", true, "csv or json"),
    EVENT_FILTERS[0],
    EVENT_FILTERS[1],
    EVENT_FILTERS[2],
    EVENT_FILTERS[3],
    EVENT_FILTERS[4],
    ("order", false, "asc or desc (default: oldest first)"),
];

const BACKUP_QUERY: [QueryParam; 1] = [(
    "snapshots",
    false,
    "true (default) or false: include the snapshot JPEGs",
)];

impl RouteSpec {
    /// Whether the route changes state (and therefore writes an audit row).
    pub fn mutating(&self) -> bool {
        self.changes_state
    }
}

/// A route: its spec and its handler.
pub struct Route {
    /// The description.
    pub spec: RouteSpec,
    router: MethodRouter<AppState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.spec.fmt(f)
    }
}

fn route<H, T, A>(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    h: H,
) -> Route
where
    H: Handler<T, AppState> + HandlerOutput<A>,
    <H as HandlerOutput<A>>::Output: Responds,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        spec: RouteSpec {
            method: method.clone(),
            path,
            access,
            changes_state: method != Method::GET && method != Method::HEAD,
            accepts_ticket: false,
            body: None,
            query: &[],
            produces: &[],
            response: <<H as HandlerOutput<A>>::Output as Responds>::doc(),
            summary,
            body_limit: None,
            slow: false,
        },
        router: on(filter, h),
    }
}

impl Route {
    fn limit(mut self, bytes: usize) -> Self {
        self.spec.body_limit = Some(bytes);
        self
    }

    /// Declares the JSON request body (for the OpenAPI document).
    fn body<B: schemars::JsonSchema>(mut self) -> Self {
        self.spec.body = Some(|g| g.subschema_for::<B>());
        self
    }

    /// Declares the query parameters (for the OpenAPI document).
    fn query(mut self, params: &'static [QueryParam]) -> Self {
        self.spec.query = params;
        self
    }

    /// Declares a non-JSON success response (for the OpenAPI document).
    fn produces(mut self, media_types: &'static [&'static str]) -> Self {
        self.spec.produces = media_types;
        self.spec.response = ResponseDoc::Other;
        self
    }

    /// Declares that a handler building its [`Response`] itself sends no body.
    fn no_body(mut self) -> Self {
        self.spec.response = ResponseDoc::Empty;
        self
    }

    /// Declares a WebSocket upgrade (`101 Switching Protocols`).
    fn switches_protocols(mut self) -> Self {
        self.spec.response = ResponseDoc::Upgrade;
        self
    }

    /// Declares the JSON body of a handler that builds its [`Response`] itself.
    fn returns<B: schemars::JsonSchema>(mut self) -> Self {
        self.spec.response = ResponseDoc::Json(|g| g.subschema_for::<B>());
        self
    }

    /// Allows [`SLOW_DEADLINE`] instead of the request deadline.
    fn slow(mut self) -> Self {
        self.spec.slow = true;
        self
    }

    /// Also accepts a single-use ticket in the query (read-only streams only).
    fn ticket_ok(mut self) -> Self {
        self.spec.accepts_ticket = true;
        self
    }

    /// Marks a POST that changes no stored state (e.g. minting an in-memory,
    /// single-use ticket), so it writes no audit row.
    fn no_state_change(mut self) -> Self {
        self.spec.changes_state = false;
        self
    }
}

const VIEWER: Access = Access::Role(Role::Viewer);
const OPERATOR: Access = Access::Role(Role::Operator);
const ADMIN: Access = Access::Role(Role::Admin);

/// Every route of the API. `max_cert_body` is the body limit of the certificate upload.
pub fn table(max_cert_body: usize) -> Vec<Route> {
    use Method as M;
    vec![
        // --- public ---
        route(
            M::GET,
            "/api/v1/health",
            Access::Public,
            "Liveness probe",
            system::health,
        ),
        route(
            M::POST,
            "/api/v1/setup",
            Access::Public,
            "First-boot setup: create the first admin",
            h_auth::setup,
        )
        .returns::<h_auth::Account>()
        .body::<h_auth::SetupBody>(),
        route(
            M::POST,
            "/api/v1/auth/login",
            Access::Public,
            "Log in; returns an access JWT and a refresh token",
            h_auth::login,
        )
        .returns::<h_auth::Tokens>()
        .body::<h_auth::LoginBody>(),
        route(
            M::POST,
            "/api/v1/auth/refresh",
            Access::Public,
            "Exchange a refresh token for a new access JWT and a new refresh token (the used one is spent; reusing it revokes the session)",
            h_auth::refresh,
        )
        .returns::<h_auth::Tokens>()
        .body::<h_auth::RefreshBody>(),
        route(M::GET, "/", Access::Public, "The web UI page", ui::index).produces(&["text/html"]),
        route(
            M::GET,
            "/ui/{file}",
            Access::Public,
            "A static asset of the web UI (embedded in the binary)",
            ui::asset,
        )
        .produces(&["text/javascript", "text/css", "image/svg+xml"]),
        // --- viewer ---
        route(
            M::GET,
            "/api/v1/auth/me",
            VIEWER,
            "The caller's identity and role",
            h_auth::me,
        ),
        route(
            M::POST,
            "/api/v1/auth/logout",
            VIEWER,
            "Revoke the current session",
            h_auth::logout,
        )
        .no_body(),
        route(
            M::POST,
            "/api/v1/auth/password",
            VIEWER,
            "Change the caller's password (revokes its sessions)",
            h_auth::change_password,
        )
        .no_body()
        .body::<h_auth::PasswordBody>(),
        route(
            M::GET,
            "/api/v1/events",
            VIEWER,
            "List events (filter by time, camera, rule, state; paginated)",
            events::list,
        )
        .query(&EVENT_LIST_QUERY),
        route(
            M::GET,
            "/api/v1/events/export",
            VIEWER,
            "Export events for incident reports: format=csv|json, the list's filters (from, to, camera, rule, state, order); an attachment",
            download::export,
        )
        .query(&EVENT_EXPORT_QUERY)
        .produces(&["text/csv", "application/json"])
        .slow(),
        route(
            M::GET,
            "/api/v1/events/{id}",
            VIEWER,
            "One event",
            events::get_one,
        ),
        route(
            M::GET,
            "/api/v1/events/{id}/snapshot",
            VIEWER,
            "The event's JPEG snapshot",
            events::snapshot,
        )
        .produces(&["image/jpeg"]),
        route(
            M::GET,
            "/api/v1/cameras",
            VIEWER,
            "Cameras: health and settings",
            h_settings::list_cameras,
        ),
        route(
            M::GET,
            "/api/v1/zones",
            VIEWER,
            "Zones (areas)",
            h_settings::list_zones,
        ),
        route(
            M::GET,
            "/api/v1/lines",
            VIEWER,
            "Counting lines (line-crossing rules name one in `zone`)",
            h_settings::list_lines,
        ),
        route(
            M::GET,
            "/api/v1/rules",
            VIEWER,
            "Safety rules",
            h_settings::list_rules,
        ),
        route(
            M::GET,
            "/api/v1/outputs",
            VIEWER,
            "Output states",
            system::outputs_status,
        ),
        route(
            M::GET,
            "/api/v1/system",
            VIEWER,
            "Version, health, storage, model, certificate",
            system::info,
        ),
        route(
            M::GET,
            "/api/v1/system/integrations",
            VIEWER,
            "Delivery of the plant integrations: the outbox and, per sink, its backlog, last delivered event and last error",
            system::integrations,
        ),
        route(
            M::GET,
            "/api/v1/system/interlocks",
            VIEWER,
            "Every interlock (a machine state that arms rules) with its level now (armed, disarmed, or unknown: arms) and the rules it arms",
            system::interlocks,
        )
        .returns::<Vec<system::InterlockView>>(),
        route(
            M::GET,
            "/api/v1/system/modbus",
            VIEWER,
            "The Modbus TCP server's register map (coils, discrete inputs, input registers), generated from the configuration and the live rules, cameras and zones",
            system::modbus,
        )
        .returns::<system::ModbusMap>(),
        route(
            M::POST,
            "/api/v1/system/integrations/test",
            ADMIN,
            "Send a test message through every configured integration (MQTT topic `test`, every webhook)",
            system::test_integrations,
        ),
        route(
            M::GET,
            "/api/v1/system/integrations/settings",
            ADMIN,
            "The integration settings (MQTT, webhooks, Modbus, interlocks) as running; secrets are never shown, only whether each is set",
            h_settings::get_integration_settings,
        ),
        route(
            M::PUT,
            "/api/v1/system/integrations/settings",
            ADMIN,
            "Replace the integration settings, validated as the configuration file's [integrations]; a secret left out is kept; applied live (the integrations restart, the alarm path does not)",
            h_settings::put_integration_settings,
        )
        .body::<h_settings::PutBody<h_settings::IntegrationsDoc>>(),
        route(
            M::GET,
            "/api/v1/openapi.json",
            VIEWER,
            "This API's OpenAPI document",
            system::openapi,
        )
        .returns::<crate::openapi::Document>(),
        route(
            M::GET,
            "/metrics",
            VIEWER,
            "Prometheus metrics",
            system::metrics,
        )
        .produces(&["text/plain"]),
        route(
            M::GET,
            "/api/v1/cameras/{id}/mjpeg",
            VIEWER,
            "Live view as multipart MJPEG",
            h_live::mjpeg,
        )
        .produces(&["multipart/x-mixed-replace"])
        .ticket_ok(),
        route(
            M::POST,
            "/api/v1/live/ticket",
            VIEWER,
            "A single-use ticket for the live WebSocket",
            h_live::ticket,
        )
        .no_state_change(),
        route(
            M::GET,
            "/api/v1/live/ws",
            Access::Ticket,
            "Live WebSocket (binary JPEG frames + JSON detections)",
            h_live::ws,
        )
        .switches_protocols(),
        // --- operator ---
        route(
            M::POST,
            "/api/v1/events/{id}/ack",
            OPERATOR,
            "Acknowledge an event",
            events::acknowledge,
        ),
        route(
            M::GET,
            "/api/v1/cameras/discovery",
            OPERATOR,
            "The V4L2 capture devices present (stable path, driver, card, formats with frame sizes and rates), for choosing a camera's source",
            h_cameras::discovery,
        ),
        route(
            M::POST,
            "/api/v1/cameras/preview",
            OPERATOR,
            "One still JPEG of a camera source (the `source` document of PUT /api/v1/cameras/{id}), opened through the capture sandbox within 5 s; nothing is stored",
            h_cameras::preview,
        )
        .body::<safe_yolo_config::RawSource>()
        .produces(&["image/jpeg"])
        .no_state_change(),
        route(
            M::POST,
            "/api/v1/cameras/{id}/tamper/relearn",
            OPERATOR,
            "Have a running camera's tamper check learn its view again after the camera was re-aimed on purpose: `moved` and `defocused` clear at once and are judged against the next `learn` seconds of pictures (audited)",
            h_cameras::relearn_tamper,
        ),
        route(
            M::PUT,
            "/api/v1/cameras/{id}",
            OPERATOR,
            "Create or replace a camera",
            h_settings::put_camera,
        )
        .body::<h_settings::PutBody<h_settings::CameraDoc>>(),
        route(
            M::DELETE,
            "/api/v1/cameras/{id}",
            OPERATOR,
            "Delete an API-defined camera",
            h_settings::delete_camera,
        ),
        route(
            M::PUT,
            "/api/v1/zones/{id}",
            OPERATOR,
            "Create or replace a zone",
            h_settings::put_zone,
        )
        .body::<h_settings::PutBody<h_settings::ZoneDoc>>(),
        route(
            M::DELETE,
            "/api/v1/zones/{id}",
            OPERATOR,
            "Delete an API-defined zone",
            h_settings::delete_zone,
        ),
        route(
            M::PUT,
            "/api/v1/lines/{id}",
            OPERATOR,
            "Create or replace a counting line",
            h_settings::put_line,
        )
        .body::<h_settings::PutBody<h_settings::LineDoc>>(),
        route(
            M::DELETE,
            "/api/v1/lines/{id}",
            OPERATOR,
            "Delete an API-defined counting line",
            h_settings::delete_line,
        ),
        route(
            M::PUT,
            "/api/v1/rules/{id}",
            OPERATOR,
            "Create or replace a safety rule",
            h_settings::put_rule,
        )
        .body::<h_settings::PutBody<h_settings::RuleDoc>>(),
        route(
            M::DELETE,
            "/api/v1/rules/{id}",
            OPERATOR,
            "Delete an API-defined rule",
            h_settings::delete_rule,
        ),
        // --- admin ---
        route(
            M::GET,
            "/api/v1/users",
            ADMIN,
            "List users",
            users::list_users,
        ),
        route(
            M::POST,
            "/api/v1/users",
            ADMIN,
            "Create a user",
            users::create_user,
        )
        .body::<users::NewUserBody>(),
        route(
            M::PATCH,
            "/api/v1/users/{name}",
            ADMIN,
            "Change a user's role, state or password",
            users::update_user,
        )
        .body::<users::UpdateUserBody>(),
        route(
            M::DELETE,
            "/api/v1/users/{name}",
            ADMIN,
            "Delete a user and its sessions",
            users::delete_user,
        ),
        route(
            M::GET,
            "/api/v1/keys",
            ADMIN,
            "List API keys",
            users::list_keys,
        ),
        route(
            M::POST,
            "/api/v1/keys",
            ADMIN,
            "Create an API key (the secret is shown once)",
            users::create_key,
        )
        .body::<users::NewKeyBody>(),
        route(
            M::DELETE,
            "/api/v1/keys/{id}",
            ADMIN,
            "Revoke an API key",
            users::revoke_key,
        ),
        route(
            M::GET,
            "/api/v1/audit",
            ADMIN,
            "The audit log (append-only)",
            events::audit,
        ),
        route(
            M::POST,
            "/api/v1/outputs/{id}/test",
            ADMIN,
            "Manual output test",
            system::test_output,
        )
        .body::<system::TestBody>(),
        route(
            M::PUT,
            "/api/v1/system/certificate",
            ADMIN,
            "Install a TLS certificate and key (used without restart)",
            system::put_certificate,
        )
        .body::<system::CertBody>()
        .limit(max_cert_body),
        route(
            M::GET,
            "/api/v1/system/backup",
            ADMIN,
            "Download a consistent backup as a tar (database, snapshots unless snapshots=false, config, MANIFEST.json with SHA-256); one at a time, audited",
            download::backup,
        )
        .query(&BACKUP_QUERY)
        .produces(&["application/x-tar"])
        .slow(),
        route(
            M::POST,
            "/api/v1/system/jwt-key/rotate",
            ADMIN,
            "Rotate the JWT signing key (ends every access token)",
            system::rotate_jwt_key,
        ),
    ]
}

#[derive(Clone)]
struct Gate {
    app: AppState,
    access: Access,
    action: String,
    mutating: bool,
    ticket_ok: bool,
    deadline: std::time::Duration,
}

/// Builds the router from the table; every route goes through `gate_fn`.
pub fn router(state: AppState) -> Router {
    let default_limit = state.settings.api.max_body_bytes;
    let mut r: Router<AppState> = Router::new();
    for route in table(state.settings.max_cert_body_bytes) {
        let gate = Gate {
            app: state.clone(),
            access: route.spec.access,
            action: format!("{} {}", route.spec.method, route.spec.path),
            mutating: route.spec.mutating(),
            ticket_ok: route.spec.accepts_ticket,
            deadline: if route.spec.slow {
                SLOW_DEADLINE
            } else {
                state.settings.api.request_timeout
            },
        };
        let limit = route.spec.body_limit.unwrap_or(default_limit);
        let mr = route
            .router
            .layer(DefaultBodyLimit::max(limit))
            .route_layer(from_fn_with_state(gate, gate_fn));
        r = r.route(route.spec.path, mr);
    }
    r.fallback(not_found).with_state(state)
}

/// An unknown path costs the caller like any public request: a scan of the URL
/// space is throttled per source too.
async fn not_found(State(app): State<AppState>, req: Request) -> Response {
    if let Err(secs) = app.rate.charge_source(peer(&req)) {
        app.api_metrics.rate_limited.inc();
        tokio::time::sleep(TARPIT.min(std::time::Duration::from_secs(secs))).await;
        return HttpError::too_many(
            "rate_limited",
            secs,
            format!("too many requests; try again in {secs} s"),
        )
        .into_response();
    }
    HttpError::not_found("route").into_response()
}

async fn gate_fn(State(g): State<Gate>, mut req: Request, next: Next) -> Response {
    let source = peer(&req);
    req.extensions_mut().insert(Source(source));
    req.extensions_mut()
        .insert(crate::body::BodyDeadline(g.app.settings.api.body_timeout));
    let principal = match g.access {
        Access::Public => {
            if let Err(secs) = g.app.rate.charge_source(source) {
                return rate_limited(&g, secs).await;
            }
            None
        }
        Access::Ticket => {
            if let Err(secs) = g.app.rate.check_source(source) {
                return rate_limited(&g, secs).await;
            }
            match query_ticket(&req).and_then(|t| g.app.tickets.redeem(&t, source)) {
                Some(p) => {
                    if let Err(secs) = g.app.rate.charge_principal(&p.actor) {
                        return rate_limited(&g, secs).await;
                    }
                    Some(p)
                }
                None => {
                    let _ = g.app.rate.charge_source(source);
                    return HttpError::unauthorized("missing, used or expired ticket")
                        .into_response();
                }
            }
        }
        Access::Role(min) => {
            // A source that keeps failing is refused before its credential is checked.
            if let Err(secs) = g.app.rate.check_source(source) {
                return rate_limited(&g, secs).await;
            }
            let ticket = (g.ticket_ok && presented_token(req.headers()).is_none())
                .then(|| query_ticket(&req))
                .flatten();
            let authenticated = match ticket {
                Some(t) => g
                    .app
                    .tickets
                    .redeem(&t, source)
                    .ok_or_else(|| HttpError::unauthorized("missing, used or expired ticket")),
                None => match g.app.store() {
                    Ok(store) => authenticate(&store, &g.app.keys, req.headers(), source).await,
                    // Not a failed credential: nothing to charge to the source.
                    Err(unavailable) => return unavailable.into_response(),
                },
            };
            let p = match authenticated {
                Ok(p) => p,
                Err(e) => {
                    let _ = g.app.rate.charge_source(source);
                    g.app.api_metrics.unauthorized.inc();
                    return e.into_response();
                }
            };
            if let Err(secs) = g.app.rate.charge_principal(&p.actor) {
                return rate_limited(&g, secs).await;
            }
            if rank(p.role) < rank(min) {
                let msg = format!(
                    "{} role required, caller is {}",
                    role_name(min),
                    role_name(p.role)
                );
                g.app.api_metrics.forbidden.inc();
                if g.mutating {
                    record_refusal(&g, &p, AuditResult::Denied(msg.clone())).await;
                }
                return HttpError::forbidden(msg).into_response();
            }
            Some(p)
        }
    };
    if let Some(p) = &principal {
        req.extensions_mut().insert(p.clone());
    }
    let resp = match tokio::time::timeout(g.deadline, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            g.app.api_metrics.deadlines.inc();
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "deadline",
                format!(
                    "the request did not complete within {} s",
                    g.deadline.as_secs()
                ),
            )
            .into_response()
        }
    };
    let status = resp.status();
    if let Some(p) = principal.filter(|_| g.mutating)
        && (status.is_server_error()
            || (status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS))
    {
        record_refusal(
            &g,
            &p,
            AuditResult::Failed(format!("HTTP {}", status.as_u16())),
        )
        .await;
    }
    resp
}

/// Longest a refused request is held before its 429 goes out.
const TARPIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The 429 answer, sent after a pause: a client hammering the API gets at
/// most one answer per connection per [`TARPIT`], so its flood costs the box
/// (TLS, parsing, the answer) almost nothing, and the CPU stays with the
/// safety pipeline. The pause is a timer, not a busy thread.
async fn rate_limited(g: &Gate, secs: u64) -> Response {
    g.app.api_metrics.rate_limited.inc();
    tokio::time::sleep(TARPIT.min(std::time::Duration::from_secs(secs))).await;
    HttpError::too_many(
        "rate_limited",
        secs,
        format!("too many requests; try again in {secs} s"),
    )
    .into_response()
}

fn query_ticket(req: &Request) -> Option<String> {
    req.uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")))
        .map(str::to_owned)
}

/// Records a refused or failed change (the change itself did not happen).
async fn record_refusal(g: &Gate, p: &Principal, result: AuditResult) {
    let row = NewAudit {
        at: now_ms(),
        actor: p.actor.clone(),
        role: Some(p.role),
        source: Some(p.source.to_string()),
        action: g.action.clone(),
        target: String::new(),
        before: None,
        after: None,
        result,
    };
    let Ok(store) = g.app.store() else {
        tracing::error!(action = %g.action, "cannot record a refused request in the audit log: the store is not available");
        return;
    };
    if let Err(e) = store.transaction(move |t| t.append_audit(row)).await {
        tracing::error!(error = %e, "cannot record a refused request in the audit log");
    }
}
