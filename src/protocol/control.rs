//! A change to one run, and what it asks of the run's `desired.json`: the one rule for the
//! daemon's `control` request and for the control verbs without a daemon.

use serde::{Deserialize, Serialize};

use crate::run::Desired;

/// A change to one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Freeze {
        groups: Vec<String>,
    },
    Unfreeze {
        groups: Vec<String>,
    },
    Pause,
    /// Continues a paused run; restarts an interrupted, failed or stopped one from its last
    /// checkpoint.
    Resume,
    /// Checkpoint and stop (a run not started yet is just marked stopped).
    Stop,
    Checkpoint,
    /// Multiplies the learning-rate multiplier.
    LrScale(f64),
    /// Sets the learning-rate multiplier.
    LrSet(f64),
}

/// A run as a control sees it: what it may name and what it changes from.
pub struct Controlled<'a> {
    /// `session/run`.
    pub name: &'a str,
    /// Its model, as errors name it.
    pub model: &'a str,
    /// Its layer groups, in model order.
    pub groups: &'a [String],
    /// The groups its worker has frozen now.
    pub frozen: &'a [String],
}

impl Control {
    /// Changes `desired` as this control asks of a run whose worker trains it; what will
    /// happen, as the reply says it, or what was wrong with the control. Stop, for a run whose
    /// worker has yet to start, is the caller's.
    pub fn ask(&self, run: &Controlled, desired: &mut Desired) -> Result<String, String> {
        let full = run.name;
        Ok(match self {
            Control::Freeze { groups } | Control::Unfreeze { groups } if groups.is_empty() => {
                return Err(format!(
                    "name one or more groups of {full}: {}",
                    run.groups.join(", ")
                ));
            }
            Control::Freeze { groups } => {
                desired.frozen = Some(frozen_after(run, desired, groups, true)?);
                format!(
                    "{full}: freezing {} before the next step",
                    groups.join(", ")
                )
            }
            Control::Unfreeze { groups } => {
                desired.frozen = Some(frozen_after(run, desired, groups, false)?);
                format!("{full}: thawing {} before the next step", groups.join(", "))
            }
            Control::Pause => {
                desired.paused = true;
                format!("{full}: pausing before the next step")
            }
            Control::Resume => {
                desired.paused = false;
                desired.resume += 1;
                format!("{full}: resuming")
            }
            Control::Stop => {
                desired.stop = true;
                format!("{full}: checkpointing and stopping")
            }
            Control::Checkpoint => {
                desired.checkpoint += 1;
                format!("{full}: checkpoint requested")
            }
            Control::LrScale(factor) => set_lr(full, desired, desired.lr_multiplier * factor)?,
            Control::LrSet(value) => set_lr(full, desired, *value)?,
        })
    }
}

fn set_lr(full: &str, desired: &mut Desired, value: f64) -> Result<String, String> {
    if !(value.is_finite() && value > 0.0) {
        return Err(format!(
            "the learning-rate multiplier must be a positive number, not {}",
            crate::number::plain(value)
        ));
    }
    desired.lr_multiplier = value;
    Ok(format!(
        "{full}: learning-rate multiplier {}",
        crate::number::plain(value)
    ))
}

/// The frozen groups after freezing (or thawing) `groups`: starting from what the user last
/// asked, else what the worker has frozen now; in model order.
fn frozen_after(
    run: &Controlled,
    desired: &Desired,
    groups: &[String],
    freeze: bool,
) -> Result<Vec<String>, String> {
    if let Some(bad) = groups.iter().find(|g| !run.groups.contains(g)) {
        return Err(format!(
            "no group {bad:?} in {} ({}): its groups are {}",
            run.name,
            run.model,
            run.groups.join(", ")
        ));
    }
    let current = desired.frozen.as_deref().unwrap_or(run.frozen);
    Ok(run
        .groups
        .iter()
        .filter(|g| match groups.contains(g) {
            true => freeze,
            false => current.contains(g),
        })
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(groups: &'a [String], frozen: &'a [String]) -> Controlled<'a> {
        Controlled {
            name: "s/a",
            model: "mlp",
            groups,
            frozen,
        }
    }

    #[test]
    fn freezing_starts_from_what_was_asked_else_what_is_frozen_in_model_order() {
        let groups: Vec<String> = ["stem", "hidden", "head"].map(String::from).into();
        let frozen = vec!["stem".to_string()];
        let mut desired = Desired::default();
        let freeze = |names: &[&str]| Control::Freeze {
            groups: names.iter().map(|g| g.to_string()).collect(),
        };
        let said = freeze(&["head"])
            .ask(&run(&groups, &frozen), &mut desired)
            .unwrap();
        assert_eq!(said, "s/a: freezing head before the next step");
        assert_eq!(desired.frozen, Some(vec!["stem".into(), "head".into()]));
        let thaw = Control::Unfreeze {
            groups: vec!["stem".into()],
        };
        thaw.ask(&run(&groups, &frozen), &mut desired).unwrap();
        assert_eq!(desired.frozen, Some(vec!["head".into()]));
        let bad = freeze(&["layer9"]).ask(&run(&groups, &frozen), &mut desired);
        assert!(
            bad.unwrap_err()
                .contains("its groups are stem, hidden, head")
        );
        let none = freeze(&[]).ask(&run(&groups, &frozen), &mut desired);
        assert!(none.unwrap_err().contains("name one or more groups"));
    }

    #[test]
    fn rates_multiply_and_must_stay_positive() {
        let groups = vec!["head".to_string()];
        let mut desired = Desired::default();
        Control::LrScale(2.0)
            .ask(&run(&groups, &[]), &mut desired)
            .unwrap();
        Control::LrScale(2.0)
            .ask(&run(&groups, &[]), &mut desired)
            .unwrap();
        assert_eq!(desired.lr_multiplier, 4.0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let error = Control::LrSet(bad).ask(&run(&groups, &[]), &mut desired);
            assert!(error.is_err(), "{bad}");
        }
        assert_eq!(desired.lr_multiplier, 4.0, "a refused rate changes nothing");
        Control::Checkpoint
            .ask(&run(&groups, &[]), &mut desired)
            .unwrap();
        assert_eq!(desired.checkpoint, 1);
    }
}
