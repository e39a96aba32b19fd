//! The report: one row per figure, printed as a table and written as JSON.

use std::path::Path;

use serde::Serialize;

/// One measured figure and what it is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// The measurement.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The ceiling measured in the same run, if the figure has one.
    pub ceiling: Option<f64>,
    /// What the ceiling is.
    pub ceiling_is: String,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met (`None`: no target).
    pub met: Option<bool>,
}

impl Row {
    /// A figure with no ceiling and no target.
    pub fn plain(figure: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            figure: figure.into(),
            value,
            unit,
            ceiling: None,
            ceiling_is: String::new(),
            target: String::new(),
            met: None,
        }
    }

    /// A figure beside its ceiling.
    pub fn against(
        figure: impl Into<String>,
        value: f64,
        unit: &'static str,
        ceiling: f64,
        ceiling_is: impl Into<String>,
    ) -> Self {
        Self {
            ceiling: Some(ceiling),
            ceiling_is: ceiling_is.into(),
            ..Self::plain(figure, value, unit)
        }
    }

    /// Sets the target and whether it is met.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

/// Every row of a run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The machine, as far as the run can tell.
    pub machine: String,
    /// The rows, in the order measured.
    pub rows: Vec<Row>,
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Report {
    /// Adds a row and prints it at once, so a long run shows progress.
    pub fn add(&mut self, row: Row) {
        eprintln!("  {}: {} {}", row.figure, fmt_value(row.value), row.unit);
        self.rows.push(row);
    }

    /// The table, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| figure | value | ceiling (same run) | ratio | target | met |\n|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let (ceiling, ratio) = match r.ceiling {
                Some(c) => (
                    format!("{} {} ({})", fmt_value(c), r.unit, r.ceiling_is),
                    format!("{:.2}", r.value / c),
                ),
                None => ("—".into(), "—".into()),
            };
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let target = if r.target.is_empty() {
                "—"
            } else {
                &r.target
            };
            out.push_str(&format!(
                "| {} | {} {} | {ceiling} | {ratio} | {target} | {met} |\n",
                r.figure,
                fmt_value(r.value),
                r.unit
            ));
        }
        out
    }

    /// Writes the report as JSON.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(
            path,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )
    }
}

/// The `q` quantile (0..=1) of unsorted samples.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i]
}
