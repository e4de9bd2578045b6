//! `compare`: a session's runs compared from their directories, as `thaw compare` prints them.

use crate::compare::{compare, read_session};
use crate::paths::Paths;
use crate::protocol::Response;

pub fn handle(paths: &Paths, session: &str, target: Option<f64>) -> Response {
    if let Some(t) = target
        && !(t > 0.0 && t <= 1.0)
    {
        return Response::error(format!(
            "target accuracy {t} is not a fraction: expected a number above 0 and at most 1"
        ));
    }
    match read_session(paths, session) {
        Ok(records) => Response::Compare {
            session: session.to_string(),
            comparison: compare(&records, target),
        },
        Err(e) => Response::error(format!("{e:#}")),
    }
}
