//! The arithmetic of KPI progress and change, kept pure so it is tested against hand-computed
//! values. Every definition here is the documented one (docs/API.md, "KPIs").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher_is_better",
            Direction::LowerIsBetter => "lower_is_better",
        }
    }
}

impl TryFrom<String> for Direction {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "higher_is_better" => Ok(Direction::HigherIsBetter),
            "lower_is_better" => Ok(Direction::LowerIsBetter),
            other => Err(format!("unknown direction {other:?}")),
        }
    }
}

/// Progress toward the target in percent, 0 to 100: how much of the way from the baseline
/// (0 when unset) to the target the current value has come. `None` without a target or data.
/// When target equals baseline there is no way to go: 100 if the target is met, else 0.
pub fn progress(
    current: Option<f64>,
    target: Option<f64>,
    baseline: Option<f64>,
    direction: Direction,
) -> Option<f64> {
    let (current, target) = (current?, target?);
    let baseline = baseline.unwrap_or(0.0);
    let met = match direction {
        Direction::HigherIsBetter => current >= target,
        Direction::LowerIsBetter => current <= target,
    };
    if target == baseline {
        return Some(if met { 100.0 } else { 0.0 });
    }
    let share = (current - baseline) / (target - baseline);
    Some((share * 100.0).clamp(0.0, 100.0))
}

/// How a value changed against an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, ToSchema)]
pub struct Change {
    /// Days looked back.
    pub days: u32,
    /// The value then (the latest point at or before that time); absent: no data that old.
    pub previous: Option<f64>,
    /// current − previous.
    pub absolute: Option<f64>,
    /// absolute ÷ |previous| × 100; absent when previous is 0 or missing.
    pub percent: Option<f64>,
    /// Whether the change goes the KPI's better way (absent without a change to judge).
    pub improving: Option<bool>,
}

pub fn change(
    days: u32,
    current: Option<f64>,
    previous: Option<f64>,
    direction: Direction,
) -> Change {
    let absolute = match (current, previous) {
        (Some(c), Some(p)) => Some(c - p),
        _ => None,
    };
    let percent = match (absolute, previous) {
        (Some(a), Some(p)) if p != 0.0 => Some(a / p.abs() * 100.0),
        _ => None,
    };
    let improving = absolute.filter(|a| *a != 0.0).map(|a| match direction {
        Direction::HigherIsBetter => a > 0.0,
        Direction::LowerIsBetter => a < 0.0,
    });
    Change {
        days,
        previous,
        absolute,
        percent,
        improving,
    }
}

/// A goal's progress: the weighted mean of its KPIs' progress (KPIs without progress count as
/// 0), clamped to 0–100. `None` for a goal without KPIs.
pub fn goal_progress(kpis: &[(Option<f64>, f64)]) -> Option<f64> {
    let total: f64 = kpis.iter().map(|(_, w)| w).sum();
    if kpis.is_empty() || total <= 0.0 {
        return None;
    }
    let weighted: f64 = kpis.iter().map(|(p, w)| p.unwrap_or(0.0) * w).sum();
    Some((weighted / total).clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::Direction::{HigherIsBetter as Up, LowerIsBetter as Down};
    use super::*;

    #[test]
    fn progress_from_baseline_to_target() {
        assert_eq!(progress(Some(50.0), Some(100.0), None, Up), Some(50.0));
        assert_eq!(
            progress(Some(150.0), Some(100.0), Some(100.0), Up),
            Some(100.0)
        );
        assert_eq!(
            progress(Some(120.0), Some(200.0), Some(100.0), Up),
            Some(20.0)
        );
        assert_eq!(
            progress(Some(250.0), Some(200.0), Some(100.0), Up),
            Some(100.0),
            "clamped"
        );
        assert_eq!(
            progress(Some(50.0), Some(200.0), Some(100.0), Up),
            Some(0.0),
            "below baseline"
        );
        // Lower is better: churn from 10% down to 4%, now at 7% → half way.
        assert_eq!(progress(Some(7.0), Some(4.0), Some(10.0), Down), Some(50.0));
        assert_eq!(
            progress(Some(3.0), Some(4.0), Some(10.0), Down),
            Some(100.0)
        );
        // Negative values: from −100 to 0, now −25 → 75%.
        assert_eq!(
            progress(Some(-25.0), Some(0.0), Some(-100.0), Up),
            Some(75.0)
        );
    }

    #[test]
    fn progress_edge_cases() {
        assert_eq!(progress(Some(5.0), None, None, Up), None, "no target");
        assert_eq!(progress(None, Some(5.0), None, Up), None, "no data");
        assert_eq!(
            progress(Some(5.0), Some(5.0), Some(5.0), Up),
            Some(100.0),
            "target = baseline, met"
        );
        assert_eq!(
            progress(Some(4.0), Some(5.0), Some(5.0), Up),
            Some(0.0),
            "target = baseline, not met"
        );
        assert_eq!(progress(Some(4.0), Some(5.0), Some(5.0), Down), Some(100.0));
        assert_eq!(progress(Some(0.0), Some(0.0), None, Up), Some(100.0));
    }

    #[test]
    fn changes_respect_direction() {
        let c = change(30, Some(120.0), Some(100.0), Up);
        assert_eq!(
            (c.absolute, c.percent, c.improving),
            (Some(20.0), Some(20.0), Some(true))
        );
        let c = change(30, Some(120.0), Some(100.0), Down);
        assert_eq!(c.improving, Some(false));
        let c = change(7, Some(-50.0), Some(-100.0), Up);
        assert_eq!(
            (c.absolute, c.percent, c.improving),
            (Some(50.0), Some(50.0), Some(true))
        );
        let c = change(7, Some(10.0), Some(0.0), Up);
        assert_eq!(
            (c.absolute, c.percent),
            (Some(10.0), None),
            "no percent from zero"
        );
        let c = change(90, Some(10.0), None, Up);
        assert_eq!(
            (c.absolute, c.percent, c.improving),
            (None, None, None),
            "no data that old"
        );
        assert_eq!(
            change(7, Some(3.0), Some(3.0), Up).improving,
            None,
            "no change"
        );
    }

    #[test]
    fn goal_progress_is_the_weighted_mean() {
        assert_eq!(
            goal_progress(&[(Some(100.0), 1.0), (Some(0.0), 3.0)]),
            Some(25.0)
        );
        assert_eq!(
            goal_progress(&[(Some(50.0), 2.0), (None, 2.0)]),
            Some(25.0),
            "no data counts as 0"
        );
        assert_eq!(goal_progress(&[]), None);
    }
}
