//! Entry points for the fuzz targets (`fuzz/`; cargo feature `fuzzing`, never in an
//! image): the API's parsing of hostile input, through the very functions the
//! handlers call, so a target cannot drift from the route it stands for.

use std::path::Path;

use safe_yolo_config::{RawCamera, RawIntegrations, RawLine, RawRule, RawSource, RawZone};

use crate::body::parse_json;
use crate::control::ControlError;
use crate::error::HttpError;
use crate::handlers::settings::{PutBody, own_problems};
use crate::handlers::{auth, system, users};

pub use crate::handlers::live::Command as LiveCommand;

/// A JSON request body of the API (each is read with [`crate::body::ValidJson`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `POST /setup`.
    Setup,
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/refresh`.
    Refresh,
    /// `POST /auth/password`.
    Password,
    /// `POST /users`.
    NewUser,
    /// `PATCH /users/{name}`.
    UpdateUser,
    /// `POST /keys`.
    NewKey,
    /// `POST /outputs/{id}/test`.
    OutputTest,
    /// `PUT /system/certificate`.
    Certificate,
    /// `POST /cameras/preview`.
    CameraPreview,
    /// `PUT /cameras/{id}`.
    PutCamera,
    /// `PUT /zones/{id}`.
    PutZone,
    /// `PUT /lines/{id}`.
    PutLine,
    /// `PUT /rules/{id}`.
    PutRule,
    /// `PUT /system/integrations/settings`.
    PutIntegrations,
}

impl Body {
    /// Every body, in a fixed order (a target picks one by its first input byte).
    pub const ALL: [Body; 15] = [
        Body::Setup,
        Body::Login,
        Body::Refresh,
        Body::Password,
        Body::NewUser,
        Body::UpdateUser,
        Body::NewKey,
        Body::OutputTest,
        Body::Certificate,
        Body::CameraPreview,
        Body::PutCamera,
        Body::PutZone,
        Body::PutLine,
        Body::PutRule,
        Body::PutIntegrations,
    ];
}

/// The settings document id of the `PUT` routes (from the path; fixed here).
const DOC_ID: &str = "fuzz-doc";
/// The media directory replay sources are checked against (never opened here).
const MEDIA_DIR: &str = "/var/lib/safe-yolo/media";

/// Reads `bytes` as `body` with the API's JSON extractor ([`parse_json`]) and, for the
/// documents, runs the checks their handler makes before it touches any state: a
/// settings document's own problems (at `doc.<key>`), a camera source's configuration
/// checks. The error is what the client would get.
pub fn parse_body(body: Body, bytes: &[u8]) -> Result<(), HttpError> {
    let media_dir = Path::new(MEDIA_DIR);
    match body {
        Body::Setup => parse_json::<auth::SetupBody>(bytes).map(drop),
        Body::Login => parse_json::<auth::LoginBody>(bytes).map(drop),
        Body::Refresh => parse_json::<auth::RefreshBody>(bytes).map(drop),
        Body::Password => parse_json::<auth::PasswordBody>(bytes).map(drop),
        Body::NewUser => parse_json::<users::NewUserBody>(bytes).map(drop),
        Body::UpdateUser => parse_json::<users::UpdateUserBody>(bytes).map(drop),
        Body::NewKey => parse_json::<users::NewKeyBody>(bytes).map(drop),
        Body::OutputTest => parse_json::<system::TestBody>(bytes).map(drop),
        Body::Certificate => parse_json::<system::CertBody>(bytes).map(drop),
        Body::CameraPreview => {
            let doc: RawSource = parse_json(bytes)?;
            doc.validate(media_dir).map(drop).map_err(|problems| {
                HttpError::control(ControlError::Invalid {
                    problems,
                    object: String::new(),
                })
            })
        }
        Body::PutCamera => {
            let doc = parse_json::<PutBody<RawCamera>>(bytes)?.into_doc();
            own_problems(doc.problems(DOC_ID, "doc", media_dir))
        }
        Body::PutZone => {
            let doc = parse_json::<PutBody<RawZone>>(bytes)?.into_doc();
            own_problems(doc.problems(DOC_ID, "doc"))
        }
        Body::PutLine => {
            let doc = parse_json::<PutBody<RawLine>>(bytes)?.into_doc();
            own_problems(doc.problems(DOC_ID, "doc"))
        }
        Body::PutRule => {
            let doc = parse_json::<PutBody<RawRule>>(bytes)?.into_doc();
            own_problems(doc.problems(DOC_ID, "doc"))
        }
        Body::PutIntegrations => {
            let doc = parse_json::<PutBody<RawIntegrations>>(bytes)?.into_doc();
            own_problems(doc.problems("doc"))
        }
    }
}

/// A live WebSocket text message, parsed and checked as the viewer does: the command
/// it applies, or the error message sent back.
pub fn live_command(text: &str) -> Result<LiveCommand, String> {
    LiveCommand::parse(text)
}
