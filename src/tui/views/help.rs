//! Popups: the help, built from the key map, and the questions that need a yes.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{Ctx, centered, popup};
use crate::tui::app::{Confirm, Popup};
use crate::tui::keys;
use crate::tui::theme::Role;

pub fn draw_popup(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    match &ctx.app.popup {
        None => {}
        Some(Popup::Help) => {
            let lines: Vec<Line> = keys::help_lines()
                .into_iter()
                .map(|(keys, help)| {
                    Line::from(vec![
                        Span::styled(format!(" {keys:<20}"), ctx.style(Role::Title)),
                        Span::styled(help, ctx.style(Role::Text)),
                    ])
                })
                .collect();
            let height = lines.len() as u16 + 2;
            let block = ctx.block(" keys (any key closes) ");
            popup(frame, centered(area, 90, height), block, lines);
        }
        Some(Popup::Confirm(what)) => {
            let question = match what {
                Confirm::StopRun(run) => {
                    format!("Stop {run}? It writes a checkpoint first; r resumes it later.")
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
