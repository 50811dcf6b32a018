//! Events (list, get, snapshot, acknowledge) and the audit log.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use safe_yolo_alarms::DispatchError;
use safe_yolo_domain::{CameraId, RuleId};
use safe_yolo_store::{Event, EventQuery, StateFilter};
use serde::Deserialize;

use crate::audit;
use crate::auth::Principal;
use crate::error::HttpError;
use crate::state::AppState;
use crate::views::{AuditPageView, EventPageView, EventView};

/// Query string of the event list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsParams {
    from: Option<u64>,
    to: Option<u64>,
    camera: Option<CameraId>,
    rule: Option<RuleId>,
    state: Option<StateFilter>,
    cursor: Option<u64>,
    limit: Option<usize>,
    order: Option<Order>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Order {
    Asc,
    Desc,
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, HttpError> {
    q.map(|Query(v)| v)
        .map_err(|e| HttpError::bad_request("query", e.body_text()))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<EventsParams>, QueryRejection>,
) -> Result<axum::Json<EventPageView>, HttpError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let eq = EventQuery {
        from: q.from,
        to: q.to,
        camera: q.camera,
        rule: q.rule,
        state: q.state,
        cursor: q.cursor,
        oldest_first: q.order == Some(Order::Asc),
        limit,
    };
    let page = s
        .store()?
        .query_events(eq)
        .await
        .map_err(|e| HttpError::store("querying events", e))?;
    // The page's cost beyond its request: the events it looked at.
    #[allow(clippy::cast_precision_loss, reason = "a count of at most 10,000")]
    s.rate.charge_principal_cost(
        &p.actor,
        (page.scanned / crate::ratelimit::EVENTS_PER_TOKEN) as f64,
    );
    Ok(axum::Json(EventPageView {
        events: page.events.into_iter().map(EventView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn load(s: &AppState, id: u64) -> Result<Event, HttpError> {
    s.store()?
        .get_event(id)
        .await
        .map_err(|e| HttpError::store("reading an event", e))?
        .ok_or_else(|| HttpError::not_found(format!("event {id}")))
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<axum::Json<EventView>, HttpError> {
    Ok(axum::Json(load(&s, id).await?.into()))
}

pub(crate) async fn snapshot(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Response, HttpError> {
    let e = load(&s, id).await?;
    let r = e
        .snapshot
        .stored()
        .ok_or_else(|| HttpError::not_found(format!("snapshot of event {id}")))?;
    let path = s.store()?.store().snapshot_path(r).map_err(|e| {
        tracing::warn!(event = id, error = %e, "refusing to serve a snapshot row that names no snapshot file (a restored, crafted backup?)");
        HttpError::not_found(format!("snapshot of event {id}"))
    })?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| HttpError::not_found(format!("snapshot of event {id}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
            (header::ETAG, format!("\"{}\"", r.sha256)),
        ],
        bytes,
    )
        .into_response())
}

/// Acknowledges through the dispatcher's one acknowledge path: the state change
/// and its audit row commit together, then the alarm's outputs are released and
/// subscribers told.
pub(crate) async fn acknowledge(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<u64>,
) -> Result<axum::Json<EventView>, HttpError> {
    let audit = audit::row(&p, "event.acknowledge", format!("event/{id}"), None, None);
    let event = s
        .alarms
        .acknowledge(id, &p.actor, Some(audit))
        .await
        .map_err(|e| match e {
            DispatchError::Store { source, .. } => {
                HttpError::store("acknowledging an event", source)
            }
            other => HttpError::internal("acknowledging an event", &other),
        })?;
    Ok(axum::Json(event.into()))
}

/// Query string of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    cursor: Option<u64>,
    limit: Option<usize>,
    order: Option<Order>,
}

pub(crate) async fn audit(
    State(s): State<AppState>,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<axum::Json<AuditPageView>, HttpError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let asc = q.order == Some(Order::Asc);
    let (rows, next_cursor) = s
        .store()?
        .run(move |st| st.audit_page(q.cursor, limit, asc))
        .await
        .map_err(|e| HttpError::store("reading the audit log", e))?;
    Ok(axum::Json(AuditPageView {
        rows: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
