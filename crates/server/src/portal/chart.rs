//! Spend per day and model as an inline SVG bar chart, rendered on the server: no script, no
//! inline style (colours are classes of the portal's stylesheet), every label escaped by maud.

use chrono::NaiveDate;
use maud::{Markup, html};
use mediagate_core::money::format_usd;
use mediagate_store::DailyUsage;
use std::collections::BTreeMap;

const HEIGHT: f64 = 180.0;
const TOP: f64 = 16.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 24.0;
/// Colour classes `m0`…`m7` in portal.css; models past eight reuse them.
const COLOURS: usize = 8;

/// The chart of `rows` over the days `[start, before)`, stacked by model, with a legend.
pub fn spend(start: NaiveDate, before: NaiveDate, rows: &[DailyUsage]) -> Markup {
    let days: Vec<NaiveDate> = start.iter_days().take_while(|d| *d < before).collect();
    let mut models: Vec<&str> = Vec::new();
    let mut by_day: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    // Days where refunds matched or exceeded charges draw no bar.
    for r in rows.iter().filter(|r| r.spent_micros > 0) {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
        by_day.entry(&r.day).or_default().push((&r.model, r.spent_micros));
    }
    let max = by_day.values().map(|v| v.iter().map(|(_, m)| m).sum::<i64>()).max().unwrap_or(0).max(1);
    let slot = (720.0 / days.len().max(1) as f64).clamp(6.0, 40.0);
    let width = LEFT + slot * days.len() as f64 + 8.0;
    let total = HEIGHT + TOP + BOTTOM;
    let label_every = (days.len() / 8).max(1);
    let colour = |model: &str| models.iter().position(|m| *m == model).unwrap_or(0) % COLOURS;
    struct Bar<'r> {
        x: f64,
        y: f64,
        h: f64,
        day: String,
        model: &'r str,
        micros: i64,
    }
    let mut bars = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let key = day.to_string();
        let x = LEFT + slot * i as f64 + 1.0;
        let mut y = TOP + HEIGHT;
        for (model, micros) in by_day.get(key.as_str()).into_iter().flatten() {
            let h = HEIGHT * *micros as f64 / max as f64;
            y -= h;
            bars.push(Bar { x, y, h, day: key.clone(), model, micros: *micros });
        }
    }
    html! {
        figure.chart {
            svg #spend-chart xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(total)
                viewBox=(format!("0 0 {width} {total}")) aria-label="Spend per day and model" {
                line.axis x1=(LEFT) y1=(TOP + HEIGHT) x2=(width) y2=(TOP + HEIGHT) {}
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + HEIGHT) {}
                text.label x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { "$" (format_usd(max)) }
                text.label x=(LEFT - 6.0) y=(TOP + HEIGHT) text-anchor="end" { "$0" }
                @for b in &bars {
                    rect class=(format!("bar m{}", colour(b.model))) x=(b.x) y=(b.y) width=(slot - 2.0) height=(b.h)
                        data-day=(b.day) data-model=(b.model) data-usd=(format_usd(b.micros)) {
                        title { (b.day) " " (b.model) ": $" (format_usd(b.micros)) }
                    }
                }
                @for (i, day) in days.iter().enumerate() {
                    @if i % label_every == 0 {
                        text.label x=(LEFT + slot * i as f64 + 1.0) y=(TOP + HEIGHT + 16.0) { (day.format("%m-%d").to_string()) }
                    }
                }
            }
            @if !models.is_empty() {
                figcaption {
                    ul.legend {
                        @for m in &models {
                            li { svg width="12" height="12" { rect class=(format!("m{}", colour(m))) width="12" height="12" {} } " " code { (m) } }
                        }
                    }
                }
            }
        }
    }
}
