//! The OpenAPI document, generated from the route table (committed as
//! `config/openapi.json`; the integration test fails when it drifts).
//!
//! Regenerate with:
//! `SAFEYOLO_UPDATE_OPENAPI=1 cargo test -p safe-yolo-api --test api openapi_document_is_current`

use serde_json::{Map, Value, json};

use crate::auth::role_name;
use crate::routes::{Access, ResponseDoc, table};

/// The OpenAPI document as a response body.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Document(pub Value);

impl schemars::JsonSchema for Document {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OpenApiDocument".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)",
            "required": ["openapi", "info", "paths"],
        })
    }
}

/// The document as JSON.
pub fn document(max_cert_body: usize) -> Value {
    let mut paths = Map::new();
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    for r in table(max_cert_body) {
        let spec = &r.spec;
        let params: Vec<Value> = spec
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .chain(spec.query.iter().map(|(name, required, description)| {
                json!({"name": name, "in": "query", "required": required, "description": description, "schema": {"type": "string"}})
            }))
            .collect();
        let (security, role) = match spec.access {
            Access::Public => (json!([]), "public".to_owned()),
            Access::Ticket => (json!([{"wsTicket": []}]), "viewer (ticket)".to_owned()),
            Access::Role(r) if spec.accepts_ticket => (
                json!([{"bearer": []}, {"cookie": []}, {"apiKey": []}, {"wsTicket": []}]),
                role_name(r).to_owned(),
            ),
            Access::Role(r) => (
                json!([{"bearer": []}, {"cookie": []}, {"apiKey": []}]),
                role_name(r).to_owned(),
            ),
        };
        let mut responses = Map::new();
        match spec.response {
            ResponseDoc::Json(schema) => {
                responses.insert(
                    "2XX".into(),
                    json!({"description": "Success", "content": {"application/json": {"schema": schema(&mut generator)}}}),
                );
            }
            ResponseDoc::Empty => {
                responses.insert("2XX".into(), json!({"description": "Success, no body"}));
            }
            ResponseDoc::Upgrade => {
                responses.insert(
                    "101".into(),
                    json!({"description": "Switching Protocols: the WebSocket"}),
                );
            }
            ResponseDoc::Other => {
                let content: Map<String, Value> = spec
                    .produces
                    .iter()
                    .map(|m| {
                        (
                            (*m).to_owned(),
                            json!({"schema": {"type": "string", "format": "binary"}}),
                        )
                    })
                    .collect();
                responses.insert(
                    "2XX".into(),
                    json!({"description": "Success (not JSON)", "content": content}),
                );
            }
            ResponseDoc::Undocumented => {
                responses.insert("2XX".into(), json!({"description": "Success"}));
            }
        }
        responses.insert(
            "429".into(),
            json!({"$ref": "#/components/responses/TooManyRequests"}),
        );
        if spec.access != Access::Public {
            responses.insert(
                "401".into(),
                json!({"$ref": "#/components/responses/Unauthorized"}),
            );
        }
        if matches!(spec.access, Access::Role(r) if role_name(r) != "viewer") {
            responses.insert(
                "403".into(),
                json!({"$ref": "#/components/responses/Forbidden"}),
            );
        }
        if spec.mutating() {
            responses.insert(
                "413".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
            responses.insert(
                "422".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
        }
        let op_id = format!(
            "{}{}",
            spec.method.as_str().to_lowercase(),
            spec.path
                .split(['/', '{', '}', '-', '.'])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<String>()
        );
        let mut op = json!({
            "summary": spec.summary,
            "operationId": op_id,
            "security": security,
            "x-min-role": role,
            "responses": responses,
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = spec.body {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": body(&mut generator)}},
            });
        }
        if let Some(limit) = spec.body_limit {
            op["x-body-limit-bytes"] = json!(limit);
        }
        let entry = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[spec.method.as_str().to_lowercase()] = op;
    }
    // The live WebSocket's commands are documented as a schema of their own.
    let _ = generator.subschema_for::<crate::handlers::live::Command>();
    let _ = generator.subschema_for::<crate::handlers::live::LiveMessage>();
    let _ = generator.subschema_for::<crate::live::FrameMessage>();
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string"},
                "field": {"type": ["string", "null"]},
                "message": {"type": "string"},
            },
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "SAFE-YOLO appliance API",
            "version": "1",
            "description": "HTTPS only. JSON bodies reject unknown fields (422 names the field); bodies over the limit get 413. Every change is written to the audit log.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::ACCESS_COOKIE},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "API key token sy_<id>_<secret>"},
                "wsTicket": {"type": "apiKey", "in": "query", "name": "ticket", "description": "Single-use ticket from POST /api/v1/live/ticket (WebSocket, and MJPEG for players that cannot send headers)"},
            },
            "responses": {
                "Unauthorized": {"description": "Missing, invalid, expired or revoked credentials", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Forbidden": {"description": "The caller's role is too low", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "TooManyRequests": {"description": "Request rate limit of the credential (or of the source address, for requests without a valid credential) exceeded; see Retry-After", "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Error": {"description": "Invalid request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
            "schemas": schemas,
        },
    })
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn render(max_cert_body: usize) -> String {
    let mut s = serde_json::to_string_pretty(&document(max_cert_body)).unwrap_or_default();
    s.push('\n');
    s
}
