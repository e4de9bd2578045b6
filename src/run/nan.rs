//! `nan.json`: a loss that was not finite, remembered across workers.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::dir::{RunDir, write_atomic};

/// A loss that was not finite, kept in `nan.json` until a checkpoint is written past it, so a
/// new worker (after a restart, a stop, or `thaw train` run again) goes back as far as the one
/// that saw it would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NanRecord {
    /// The step whose loss was not finite (the latest such).
    pub step: usize,
    /// The step of the checkpoint last rolled back to since (0: the starting weights).
    pub floor: Option<usize>,
    /// The run has not yet gone back from the weights that gave it.
    pub pending: bool,
}

impl RunDir {
    /// The record of the latest loss that was not finite, if the run has not checkpointed past
    /// it; an unreadable record is an error naming the file.
    pub fn read_nan(&self) -> Result<Option<NanRecord>> {
        let path = self.nan_path();
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_slice(&raw).map(Some).with_context(|| {
            format!(
                "{} is not a record of a loss that was not finite ({{\"step\": N, \"floor\": N or null, \"pending\": true or false}}): remove it to trust the latest checkpoint",
                path.display()
            )
        })
    }

    /// Writes the record, or removes it (`None`: the run has checkpointed past the loss).
    pub fn write_nan(&self, record: Option<&NanRecord>) -> Result<()> {
        let path = self.nan_path();
        match record {
            Some(record) => write_atomic(&path, &serde_json::to_vec_pretty(record)?),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_record_round_trips_goes_away_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.read_nan().unwrap(), None);
        let record = NanRecord {
            step: 9,
            floor: Some(4),
            pending: true,
        };
        run.write_nan(Some(&record)).unwrap();
        assert_eq!(run.read_nan().unwrap(), Some(record));
        run.write_nan(None).unwrap();
        assert_eq!(run.read_nan().unwrap(), None);
        // Removing what is not there is no error.
        run.write_nan(None).unwrap();

        std::fs::write(run.nan_path(), "{\"step\": 9}").unwrap();
        let error = format!("{:#}", run.read_nan().unwrap_err());
        assert!(
            error.contains("nan.json is not a record") && error.contains("remove it"),
            "{error}"
        );
    }
}
