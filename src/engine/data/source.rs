//! Where a dataset comes from: a built-in demo set or a folder on disk.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::demo::DEMO_SETS;
use super::error::DataError;

/// The prefix that marks a built-in demo set, as in `demo:shapes`.
const DEMO_PREFIX: &str = "demo:";

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A generated demo set, written as `demo:NAME`.
    Demo(String),
    /// An ImageFolder on disk.
    Folder(PathBuf),
}

impl DataSource {
    /// Parses `demo:NAME` or a folder path.
    pub fn parse(text: &str) -> Result<Self, DataError> {
        if text.trim().is_empty() {
            return Err(DataError::EmptySource {
                valid: valid_demo_sources(),
            });
        }
        match text.strip_prefix(DEMO_PREFIX) {
            Some(name) if DEMO_SETS.contains(&name) => Ok(DataSource::Demo(name.to_string())),
            Some(name) => Err(unknown_demo(name)),
            None => Ok(DataSource::Folder(PathBuf::from(text))),
        }
    }
}

impl FromStr for DataSource {
    type Err = DataError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DataSource::parse(text)
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Demo(name) => write!(f, "{DEMO_PREFIX}{name}"),
            DataSource::Folder(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The error for a demo name that is not one of [`DEMO_SETS`].
pub(super) fn unknown_demo(name: &str) -> DataError {
    DataError::UnknownDemo {
        name: name.to_string(),
        valid: valid_demo_sources(),
    }
}

/// The accepted demo sources, as a user would type them.
fn valid_demo_sources() -> String {
    DEMO_SETS
        .iter()
        .map(|name| format!("{DEMO_PREFIX}{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}
