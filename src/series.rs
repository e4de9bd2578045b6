//! A bounded series of logged values: the most recent points at full resolution, older ones
//! merged into buckets that keep their min, max and mean, so that a run of any length keeps
//! its overall shape in a fixed amount of memory (and on the wire).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Points kept at full resolution.
pub const RECENT_POINTS: usize = 1000;
/// Buckets that summarise everything older.
pub const OLDER_BUCKETS: usize = 1000;

/// One logged value, or several neighbouring ones merged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The first step the point covers.
    pub step: u64,
    /// The last step the point covers (`step` for a single value).
    pub last_step: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// How many logged values the point stands for.
    pub count: u32,
}

impl Point {
    /// A single logged value.
    pub fn single(step: u64, value: f64) -> Self {
        Self {
            step,
            last_step: step,
            mean: value,
            min: value,
            max: value,
            count: 1,
        }
    }

    /// This point and the next one as one bucket.
    pub fn merge(self, next: Point) -> Point {
        let count = self.count + next.count;
        Point {
            step: self.step,
            last_step: next.last_step,
            mean: (self.mean * f64::from(self.count) + next.mean * f64::from(next.count))
                / f64::from(count),
            min: self.min.min(next.min),
            max: self.max.max(next.max),
            count,
        }
    }
}

/// A series that never holds more than `recent + older` points, however many are pushed.
#[derive(Debug, Clone)]
pub struct Series {
    older: Vec<Point>,
    recent: VecDeque<Point>,
    /// The most values one older bucket stands for; doubles each time the buckets are halved.
    width: u32,
    recent_cap: usize,
    older_cap: usize,
}

impl Default for Series {
    fn default() -> Self {
        Self::with_limits(RECENT_POINTS, OLDER_BUCKETS)
    }
}

impl Series {
    /// A series keeping `recent` points at full resolution and at most `older` buckets.
    pub fn with_limits(recent: usize, older: usize) -> Self {
        Self {
            older: Vec::new(),
            recent: VecDeque::new(),
            width: 1,
            recent_cap: recent.max(1),
            older_cap: older.max(2),
        }
    }

    /// Appends a value; values that are not finite (a NaN loss) are not plotted and are
    /// dropped.
    pub fn push(&mut self, step: u64, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.recent.push_back(Point::single(step, value));
        if self.recent.len() > self.recent_cap
            && let Some(oldest) = self.recent.pop_front()
        {
            self.push_older(oldest);
        }
    }

    fn push_older(&mut self, point: Point) {
        match self.older.last_mut() {
            Some(last) if last.count + point.count <= self.width => *last = last.merge(point),
            _ => self.older.push(point),
        }
        if self.older.len() > self.older_cap {
            // Halve the buckets by merging neighbours: the shape stays, the memory does not grow.
            self.older = self
                .older
                .chunks(2)
                .map(|pair| pair[1..].iter().fold(pair[0], |a, b| a.merge(*b)))
                .collect();
            self.width = self.width.saturating_mul(2);
        }
    }

    /// Every point, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.older
            .iter()
            .chain(self.recent.iter())
            .copied()
            .collect()
    }

    /// The number of points held (not values pushed).
    pub fn len(&self) -> usize {
        self.older.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest point.
    pub fn last(&self) -> Option<Point> {
        self.recent.back().or(self.older.last()).copied()
    }

    /// Forgets everything (the file it came from was rewritten).
    pub fn clear(&mut self) {
        *self = Self::with_limits(self.recent_cap, self.older_cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_kept_at_full_resolution() {
        let mut s = Series::default();
        for i in 0..500 {
            s.push(i, i as f64);
        }
        let points = s.points();
        assert_eq!(points.len(), 500);
        assert!(points.iter().all(|p| p.count == 1 && p.step == p.last_step));
    }

    #[test]
    fn long_series_stay_bounded_and_keep_their_shape() {
        let mut s = Series::with_limits(100, 50);
        let n = 200_000u64;
        for i in 0..n {
            // A decreasing loss with a spike in the middle.
            let v = if i == 100_000 {
                50.0
            } else {
                10.0 / (1.0 + i as f64)
            };
            s.push(i, v);
        }
        let points = s.points();
        assert!(points.len() <= 150, "{} points", points.len());
        assert_eq!(points.iter().map(|p| u64::from(p.count)).sum::<u64>(), n);
        assert_eq!(points[0].step, 0);
        assert_eq!(points.last().map(|p| p.last_step), Some(n - 1));
        // Buckets are contiguous and ordered.
        for w in points.windows(2) {
            assert_eq!(w[0].last_step + 1, w[1].step);
        }
        // The spike survives as a max; the recent points are single values.
        assert!(points.iter().any(|p| p.max == 50.0));
        assert!(points[points.len() - 100..].iter().all(|p| p.count == 1));
        assert_eq!(points[0].max, 10.0);
    }

    #[test]
    fn values_that_are_not_finite_are_dropped() {
        let mut s = Series::default();
        s.push(1, f64::NAN);
        s.push(2, f64::INFINITY);
        s.push(3, 1.0);
        assert_eq!(s.points(), vec![Point::single(3, 1.0)]);
    }
}
