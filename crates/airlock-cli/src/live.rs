//! The live step display of `airlock submit`: one spinner per running step
//! with its elapsed time, replaced by a ✓/✗ line when the step ends. Without
//! a terminal it prints one plain line per change instead.

use airlock_cli::api::{RunView, StepState};
use airlock_cli::render::step_line;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

/// Follows a run's steps on stderr.
pub struct LiveDisplay {
    multi: MultiProgress,
    interactive: bool,
    /// Spinner of the run itself while no step has started (queued).
    waiting: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    seen: HashMap<String, StepState>,
}

impl LiveDisplay {
    /// A display drawing spinners when `interactive`, plain lines otherwise.
    pub fn new(interactive: bool) -> Self {
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        LiveDisplay {
            multi: MultiProgress::with_draw_target(target),
            interactive,
            waiting: None,
            bars: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    fn spinner_style() -> ProgressStyle {
        ProgressStyle::with_template("{spinner:.cyan} {prefix:<10} {elapsed:>4} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn done_style() -> ProgressStyle {
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    /// Shows what changed since the last call.
    pub fn update(&mut self, run: &RunView) {
        if run.steps.is_empty() && !run.state.is_terminal() {
            if self.interactive && self.waiting.is_none() {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(Self::spinner_style());
                bar.set_prefix(run.state.to_string());
                bar.set_message("waiting for a worker");
                bar.enable_steady_tick(Duration::from_millis(100));
                self.waiting = Some(bar);
            } else if !self.interactive && self.seen.is_empty() {
                eprintln!("  {}", run.state);
            }
            return;
        }
        if let Some(bar) = self.waiting.take() {
            bar.finish_and_clear();
        }
        for step in &run.steps {
            if self.seen.get(&step.name) == Some(&step.state) {
                continue;
            }
            self.seen.insert(step.name.clone(), step.state);
            if !self.interactive {
                eprintln!("  {}", step_line(step));
                continue;
            }
            let bar = self.bars.entry(step.name.clone()).or_insert_with(|| {
                let bar = ProgressBar::new_spinner()
                    .with_elapsed(started_ago(step.started_at.as_deref()));
                let bar = self.multi.add(bar);
                bar.set_style(Self::spinner_style());
                bar.set_prefix(step.name.clone());
                bar
            });
            match step.state {
                StepState::Running => {
                    bar.set_message(step.detail.clone().unwrap_or_default());
                    bar.enable_steady_tick(Duration::from_millis(100));
                }
                _ => {
                    bar.set_style(Self::done_style());
                    bar.finish_with_message(step_line(step));
                }
            }
        }
    }

    /// Stops every spinner still turning (the run ended or polling failed).
    pub fn finish(&mut self) {
        if let Some(bar) = self.waiting.take() {
            bar.finish_and_clear();
        }
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

/// How long ago an RFC 3339 time was; zero when it cannot be read.
fn started_ago(started_at: Option<&str>) -> Duration {
    let Some(text) = started_at else {
        return Duration::ZERO;
    };
    let Ok(started) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    else {
        return Duration::ZERO;
    };
    let ago = time::OffsetDateTime::now_utc() - started;
    Duration::try_from(ago).unwrap_or(Duration::ZERO)
}
