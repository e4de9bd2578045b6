//! Popups: the help, built from the key map, and the questions that need a yes.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{Ctx, centered, fit, popup};
use crate::tui::app::{Confirm, Popup};
use crate::tui::keys;
use crate::tui::theme::Role;

pub fn draw_popup(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    match &ctx.app.popup {
        None => {}
        Some(Popup::Help) => {
            let entries = keys::help_lines();
            // Two columns when one does not fit the height.
            let columns = if entries.len() as u16 + 2 > area.height {
                2
            } else {
                1
            };
            let width = area.width.min(if columns == 2 { 160 } else { 90 });
            let column = (width.saturating_sub(2) / columns) as usize;
            let rows = entries.len().div_ceil(columns as usize);
            let keys_width = entries
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0);
            let lines: Vec<Line> = (0..rows)
                .map(|row| {
                    let spans = (0..columns as usize)
                        .filter_map(|c| entries.get(c * rows + row))
                        .flat_map(|(keys, help)| {
                            let label = match columns {
                                1 => format!(" {keys:<keys_width$} "),
                                // Narrow: the keys alone; the help says where they apply.
                                _ => format!(" {:<8}", keys.split(" (").next().unwrap_or(keys)),
                            };
                            let help = fit(help, column.saturating_sub(label.chars().count() + 1));
                            let pad =
                                column.saturating_sub(label.chars().count() + help.chars().count());
                            [
                                Span::styled(label, ctx.style(Role::Title)),
                                Span::styled(help, ctx.style(Role::Text)),
                                Span::raw(" ".repeat(pad)),
                            ]
                        })
                        .collect::<Vec<_>>();
                    Line::from(spans)
                })
                .collect();
            let height = lines.len() as u16 + 2;
            let block = ctx.block(" keys (any key closes) ");
            popup(frame, centered(area, width, height), block, lines);
        }
        Some(Popup::Messages(messages)) => {
            let lines: Vec<Line> = messages
                .iter()
                .map(|m| Line::from(Span::styled(format!("• {m}"), ctx.style(Role::Warning))))
                .collect();
            // Wrapped: a message is as long as the path it names.
            let width = area.width.min(100);
            let inner = width.saturating_sub(2).max(1) as usize;
            let rows: usize = messages
                .iter()
                .map(|m| (m.chars().count() + 2).div_ceil(inner))
                .sum();
            let block = ctx.block(" at start-up (any key closes) ");
            popup(frame, centered(area, width, rows as u16 + 2), block, lines);
        }
        Some(Popup::Confirm(what)) => {
            let question = match what {
                Confirm::StopRun(run) => {
                    format!("Stop {run}? It writes a checkpoint first; r resumes it later.")
                }
                Confirm::RemoveRun(run) => {
                    format!("Remove {run}? Its directory goes: checkpoints, metrics, best weights.")
                }
                Confirm::StopDaemon => {
                    "Stop the daemon? Every run writes a checkpoint and stops; `thaw resume --all` brings them back.".to_string()
                }
            };
            let lines = vec![
                Line::from(Span::styled(question, ctx.style(Role::Text))),
                Line::default(),
                Line::from(Span::styled(
                    " y  yes      any other key: no",
                    ctx.style(Role::Title),
                )),
            ];
            popup(
                frame,
                centered(area, 60, 7),
                ctx.block(" are you sure? "),
                lines,
            );
        }
    }
}
