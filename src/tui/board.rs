//! What the dashboard knows of the runs: built from a subscription's snapshot and kept up to
//! date by its updates. Nothing here draws or does I/O.

use std::collections::VecDeque;

use crate::gpu::GpuStats;
use crate::protocol::{MetricPoint, Response, RunInfo, RunSnapshot, Update};
use crate::run::{Event, EventKind};
use crate::series::Point;

/// Events kept per run.
const EVENTS: usize = 200;
/// Points kept per series; older ones are merged pairwise beyond it.
const POINTS: usize = 4000;

/// One run as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub info: RunInfo,
    pub train_loss: Vec<Point>,
    pub val_loss: Vec<Point>,
    pub val_accuracy: Vec<Point>,
    /// Empty for runs without `grad_clip_norm`.
    pub grad_norm: Vec<Point>,
    /// Oldest first.
    pub events: VecDeque<Event>,
}

impl RunView {
    fn from_snapshot(snapshot: RunSnapshot) -> Self {
        Self {
            info: snapshot.info,
            train_loss: snapshot.history.train_loss,
            val_loss: snapshot.history.val_loss,
            val_accuracy: snapshot.history.val_accuracy,
            grad_norm: snapshot.history.grad_norm,
            events: snapshot.events.into_iter().collect(),
        }
    }

    /// `session/run`.
    pub fn full_name(&self) -> String {
        self.info.full_name()
    }

    /// The latest validation accuracy.
    pub fn last_val_accuracy(&self) -> Option<f64> {
        self.val_accuracy.last().map(|p| p.mean)
    }

    fn add(&mut self, row: &MetricPoint) {
        let point = Point::single(row.step, row.loss);
        if !row.loss.is_finite() {
            return;
        }
        if row.split == "val" {
            push_bounded(&mut self.val_loss, point);
            push_bounded(
                &mut self.val_accuracy,
                Point::single(row.step, row.accuracy),
            );
        } else {
            push_bounded(&mut self.train_loss, point);
        }
        if let Some(norm) = row.grad_norm.filter(|n| n.is_finite()) {
            push_bounded(&mut self.grad_norm, Point::single(row.step, norm));
        }
    }

    fn add_event(&mut self, event: Event) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// Appends, halving the resolution of the whole series when it grows past [`POINTS`].
fn push_bounded(series: &mut Vec<Point>, point: Point) {
    series.push(point);
    if series.len() > POINTS {
        *series = series
            .chunks(2)
            .map(|pair| pair[1..].iter().fold(pair[0], |a, b| a.merge(*b)))
            .collect();
    }
}

/// Every run of the subscription, in the daemon's order (session by session, as launched).
#[derive(Debug, Default)]
pub struct Board {
    pub runs: Vec<RunView>,
    /// The first snapshot since connecting has arrived completely.
    pub ready: bool,
    /// The daemon's GPUs and their figures (empty without GPUs).
    pub gpus: Vec<GpuStats>,
    /// Runs of a snapshot being received, replacing `runs` once complete.
    incoming: Option<Vec<RunView>>,
}

/// What an event from the daemon changed, for the app to react to.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Nothing,
    /// Something visible changed.
    Redraw,
    /// A run's worker reported an event (a request it carried out, say).
    Event {
        run: String,
        event: Event,
    },
}

impl Board {
    /// The run called `session/run`.
    pub fn run(&self, full_name: &str) -> Option<&RunView> {
        self.runs.iter().find(|r| r.full_name() == full_name)
    }

    fn run_mut(&mut self, session: &str, name: &str) -> Option<&mut RunView> {
        self.runs
            .iter_mut()
            .find(|r| r.info.session == session && r.info.name == name)
    }

    /// Takes in one message of the subscription.
    pub fn apply(&mut self, response: Response) -> Change {
        match response {
            Response::Snapshot { run } => {
                self.incoming
                    .get_or_insert_with(Vec::new)
                    .push(RunView::from_snapshot(*run));
                Change::Nothing
            }
            Response::SnapshotDone { .. } => {
                self.runs = self.incoming.take().unwrap_or_default();
                self.ready = true;
                Change::Redraw
            }
            Response::Update { update } => self.update(*update),
            _ => Change::Nothing,
        }
    }

    fn update(&mut self, update: Update) -> Change {
        match update {
            Update::Run { info } => {
                match self.run_mut(&info.session, &info.name) {
                    Some(run) if run.info == *info => return Change::Nothing,
                    Some(run) => run.info = *info,
                    None => self.runs.push(RunView::from_snapshot(RunSnapshot {
                        info: *info,
                        history: Default::default(),
                        events: Vec::new(),
                    })),
                }
                Change::Redraw
            }
            Update::Metrics { session, run, rows } => match self.run_mut(&session, &run) {
                Some(view) => {
                    rows.iter().for_each(|row| view.add(row));
                    Change::Redraw
                }
                None => Change::Nothing,
            },
            Update::Event {
                session,
                run,
                event,
            } => match self.run_mut(&session, &run) {
                Some(view) => {
                    // The worker's freeze is done when it says so: the groups show it from
                    // then, not only from its next state.json.
                    let frozen = match event.kind {
                        EventKind::Freeze => Some(true),
                        EventKind::Unfreeze => Some(false),
                        _ => None,
                    };
                    if let Some(frozen) = frozen {
                        for group in view.info.groups.iter_mut() {
                            if event.groups.contains(&group.name) {
                                group.frozen = frozen;
                            }
                        }
                    }
                    view.add_event(event.clone());
                    Change::Event {
                        run: view.full_name(),
                        event,
                    }
                }
                None => Change::Nothing,
            },
            Update::History { run } => {
                let fresh = RunView::from_snapshot(*run);
                match self.run_mut(&fresh.info.session, &fresh.info.name) {
                    Some(view) => *view = fresh,
                    None => self.runs.push(fresh),
                }
                Change::Redraw
            }
            Update::Removed { session, run } => {
                self.runs.retain(|r| {
                    r.info.session != session || run.as_ref().is_some_and(|n| r.info.name != *n)
                });
                Change::Redraw
            }
            Update::Gpus { gpus } => {
                self.gpus = gpus;
                Change::Redraw
            }
        }
    }

    /// The connection was lost: what is shown stays until a new snapshot replaces it.
    pub fn disconnected(&mut self) {
        self.incoming = None;
    }
}
