//! What `kaito tune` shows and leaves behind: a progress bar, a loss-curve PNG, a summary.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kaito_backends::pipeline::TuningOutcome;
use kaito_core::traits::TrainingProgress;
use plotters::prelude::*;

/// A progress bar (or one log line per step when quiet or not on a terminal).
pub struct ProgressView {
    bar: Option<ProgressBar>,
}

impl ProgressView {
    /// A view; `quiet` prints plain lines instead of a bar.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && console_is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Self { bar }
    }

    /// Shows one progress report.
    pub fn update(&self, p: &TrainingProgress) {
        let eval = p
            .eval_loss
            .map(|l| format!(" eval {l:.4}"))
            .unwrap_or_default();
        let eta = p
            .eta
            .map(|d| format!(" ETA {}s", d.as_secs()))
            .unwrap_or_default();
        let msg = format!(
            "epoch {:.2} loss {:.4}{eval} lr {:.2e} {:.0} tok/s{eta}",
            p.epoch, p.loss, p.learning_rate, p.tokens_per_second
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(p.total_steps);
                bar.set_position(p.step);
                bar.set_message(msg);
            }
            None => eprintln!("step {}/{} {msg}", p.step, p.total_steps),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

fn console_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Draws training (and eval) loss per step into a PNG.
pub fn write_loss_curve(history: &[TrainingProgress], path: &Path) -> anyhow::Result<()> {
    if history.is_empty() {
        anyhow::bail!("no progress was reported");
    }
    let max_step = history.iter().map(|p| p.step).max().unwrap_or(1).max(1) as f64;
    let losses = history
        .iter()
        .map(|p| p.loss)
        .chain(history.iter().filter_map(|p| p.eval_loss));
    let max_loss = losses.fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_step, 0.0..max_loss)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // No text: plotters is built without a font backend (fonts would pull in system font
    // discovery), so the mesh carries no labels; the numbers are in the summary.
    chart
        .configure_mesh()
        .x_labels(0)
        .y_labels(0)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(
            history.iter().map(|p| (p.step as f64, p.loss)),
            &BLUE,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let eval: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|p| p.eval_loss.map(|l| (p.step as f64, l)))
        .collect();
    if !eval.is_empty() {
        chart
            .draw_series(LineSeries::new(eval, &RED))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Writes (and returns) the run's summary as JSON.
pub fn write_summary(
    path: &Path,
    workspace: &str,
    outcome: &TuningOutcome,
    plot: &Path,
) -> anyhow::Result<String> {
    let a = &outcome.adapter;
    let summary = serde_json::json!({
        "workspace": workspace,
        "adapter_dir": a.dir,
        "image": outcome.image.as_ref().map(|i| &i.reference),
        "digest": outcome.image.as_ref().map(|i| &i.digest),
        "steps": a.steps,
        "tokens": a.tokens,
        "final_loss": a.final_loss,
        "final_eval_loss": a.final_eval_loss,
        "loss_curve": plot,
    });
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_curve_is_a_png() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("loss.png");
        let history: Vec<TrainingProgress> = (1..=5)
            .map(|s| TrainingProgress {
                step: s,
                total_steps: 5,
                loss: 3.0 / s as f64,
                eval_loss: (s == 5).then_some(1.0),
                ..Default::default()
            })
            .collect();
        write_loss_curve(&history, &path).expect("draws");
        let bytes = std::fs::read(&path).expect("written");
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(write_loss_curve(&[], &path).is_err());
    }
}
