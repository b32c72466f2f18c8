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

/// The family name the embedded font is registered under.
const FONT: &str = "sans-serif";

/// Registers DejaVu Sans with plotters once: built without system font discovery (which would
/// need fontconfig on every machine), plotters draws text only with registered fonts.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    anyhow::ensure!(ok, "the embedded DejaVu Sans font did not load");
    Ok(())
}

/// Draws training (and eval) loss per step, with labelled axes, into a PNG.
pub fn write_loss_curve(history: &[TrainingProgress], path: &Path) -> anyhow::Result<()> {
    if history.is_empty() {
        anyhow::bail!("no progress was reported");
    }
    let max_step = history.iter().map(|p| p.step).max().unwrap_or(1).max(1);
    let losses = history
        .iter()
        .map(|p| p.loss)
        .chain(history.iter().filter_map(|p| p.eval_loss));
    let max_loss = losses.fold(0.0f64, f64::max).max(1e-3) * 1.05;
    register_font()?;
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let caption = if history.iter().any(|p| p.eval_loss.is_some()) {
        "loss per step (blue: training, red: eval)"
    } else {
        "training loss per step"
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0..max_step, 0.0..max_loss)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .label_style((FONT, 14))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(
            history.iter().map(|p| (p.step, p.loss)),
            &BLUE,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let eval: Vec<(u64, f64)> = history
        .iter()
        .filter_map(|p| p.eval_loss.map(|l| (p.step, l)))
        .collect();
    // Eval runs are few (often one, at the end): a dot each, joined when there are several.
    chart
        .draw_series(LineSeries::new(eval.iter().copied(), &RED))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(eval.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
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
        let png = image::open(&path).expect("a PNG").to_luma8();
        assert_eq!(png.dimensions(), (800, 480));
        // Text left of the y axis (tick labels and "loss"): dark pixels where a plot without
        // a font would leave the margin blank.
        let dark = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (x0..x1)
                .flat_map(|x| (y0..y1).map(move |y| (x, y)))
                .filter(|&(x, y)| png.get_pixel(x, y).0[0] < 128)
                .count()
        };
        if let Some(keep) = std::env::var_os("KAITO_KEEP_PLOT") {
            std::fs::copy(&path, keep).expect("keep");
        }
        assert!(dark(0, 70, 60, 420) > 100, "no y-axis labels");
        assert!(dark(100, 780, 418, 470) > 100, "no x-axis labels");
        assert!(dark(200, 600, 0, 40) > 100, "no caption");
        if let Some(keep) = std::env::var_os("KAITO_KEEP_PLOT") {
            std::fs::copy(&path, keep).expect("keep");
        }
        assert!(write_loss_curve(&[], &path).is_err());
    }
}
