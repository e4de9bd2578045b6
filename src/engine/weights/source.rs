//! Where a run's starting weights come from: nothing, a file, or another run's best weights.

use std::fmt;
use std::path::PathBuf;

use crate::run::RunDir;

/// The `weights` key of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// Train from scratch.
    None,
    /// A `.bpk`, `.safetensors`, `.pt` or `.pth` file.
    File(PathBuf),
    /// Another run's `best.bpk`: `run:RUN/best` (same session) or `run:SESSION/RUN/best`.
    Run {
        session: Option<String>,
        run: String,
    },
}

impl WeightsSource {
    /// Parses the `weights` value; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "none" {
            return Ok(Self::None);
        }
        if let Some(rest) = text.strip_prefix("run:") {
            let parts: Vec<&str> = rest.split('/').collect();
            return match parts.as_slice() {
                [run, "best"] if !run.is_empty() => Ok(Self::Run {
                    session: None,
                    run: run.to_string(),
                }),
                [session, run, "best"] if !session.is_empty() && !run.is_empty() => Ok(Self::Run {
                    session: Some(session.to_string()),
                    run: run.to_string(),
                }),
                _ => Err(format!(
                    "{text:?}: expected run:RUN/best (a run of this session) or run:SESSION/RUN/best"
                )),
            };
        }
        if text.is_empty() {
            return Err("empty: use \"none\", a weights file, or run:RUN/best".into());
        }
        Ok(Self::File(PathBuf::from(text)))
    }

    /// The file to read, for a run whose directory is `run_dir` (`<data>/sessions/S/runs/R`).
    pub fn path(&self, run_dir: &RunDir) -> Option<PathBuf> {
        match self {
            Self::None => None,
            Self::File(path) => Some(path.clone()),
            Self::Run { session, run } => run_dir.best_of(session.as_deref(), run),
        }
    }
}

impl fmt::Display for WeightsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Run { session: None, run } => write!(f, "run:{run}/best"),
            Self::Run {
                session: Some(s),
                run,
            } => write!(f, "run:{s}/{run}/best"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_and_resolves_every_form() {
        let run_dir = &RunDir::new("/d/sessions/s/runs/ft");
        assert_eq!(WeightsSource::parse("none"), Ok(WeightsSource::None));
        let same = WeightsSource::parse("run:pretrain/best").unwrap();
        assert_eq!(
            same.path(run_dir).unwrap(),
            Path::new("/d/sessions/s/runs/pretrain/best.bpk")
        );
        let other = WeightsSource::parse("run:old/pre/best").unwrap();
        assert_eq!(
            other.path(run_dir).unwrap(),
            Path::new("/d/sessions/old/runs/pre/best.bpk")
        );
        assert_eq!(other.to_string(), "run:old/pre/best");
        let file = WeightsSource::parse("/w/r18.pth").unwrap();
        assert_eq!(file.path(run_dir).unwrap(), Path::new("/w/r18.pth"));
        for bad in ["run:", "run:x", "run:x/latest", "run:/best", ""] {
            assert!(WeightsSource::parse(bad).is_err(), "{bad}");
        }
    }
}
