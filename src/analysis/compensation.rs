//! Taking the probes' cost out of the calls: the costs of every probe in
//! whole counter units, and the noise test of a calibrated median.

use perfunc_calibrate::{Source, Statistic, Summary as Baseline};

use super::{AnalysisError, BaselineNoise, CalibrationInfo};
use crate::calibration::{profile_of, ProbeCosts};
use crate::trace::TraceHeader;

/// What the analysis subtracts, from the profile stored in the trace.
#[derive(Debug)]
pub(super) struct Compensation {
    /// Counters per probe in `own` and `descendant`.
    ncounters: usize,
    /// `[probe * ncounters + counter]`: subtracted from the probe's own
    /// calls, rounded to a whole unit.
    own: Vec<i64>,
    /// `[probe * ncounters + counter]`: subtracted from every call a call
    /// of the probe is nested in, rounded to a whole unit.
    descendant: Vec<i64>,
    /// `[probe][counter]`: the baseline of the probe's instruction class.
    baselines: Vec<Vec<Option<Baseline>>>,
    /// What the report says about it.
    pub info: CalibrationInfo,
}

impl Compensation {
    /// The compensation of `header`'s probes by `statistic`; `None` when
    /// no statistic is asked for or the trace holds no profile.
    ///
    /// # Errors
    ///
    /// [`AnalysisError::Profile`] when the stored profile cannot be read.
    pub(super) fn new(
        header: &TraceHeader,
        statistic: Option<Statistic>,
    ) -> Result<Option<Self>, AnalysisError> {
        let Some(statistic) = statistic else {
            return Ok(None);
        };
        let Some(profile) = profile_of(header) else {
            return Ok(None);
        };
        let profile = profile.map_err(AnalysisError::Profile)?;
        let costs = ProbeCosts::new(header, &profile, statistic);
        Ok(Some(Self {
            ncounters: header.counters.len(),
            own: rounded(&costs.own),
            descendant: rounded(&costs.descendant),
            baselines: costs.baselines,
            info: CalibrationInfo::of(header, profile, statistic),
        }))
    }

    /// Counters per probe.
    pub(super) fn ncounters(&self) -> usize {
        self.ncounters
    }

    /// Per counter, what `probe`'s probes add to its own calls.
    pub(super) fn own(&self, probe: u32) -> &[i64] {
        let start = probe as usize * self.ncounters;
        &self.own[start..start + self.ncounters]
    }

    /// Per counter, what a call of `probe` adds to the calls it is nested
    /// in.
    pub(super) fn descendant(&self, probe: u32) -> &[i64] {
        let start = probe as usize * self.ncounters;
        &self.descendant[start..start + self.ncounters]
    }

    /// Whether the calibrated median `p50` of `probe`'s calls for
    /// `counter`, with confidence interval `ci`, is within the noise of
    /// the baseline of the probe's class; `None` without a baseline.
    pub(super) fn within_noise(
        &self,
        probe: u32,
        counter: usize,
        p50: f64,
        ci: Option<(f64, f64)>,
    ) -> Option<bool> {
        let baseline = self.baselines[probe as usize][counter].as_ref()?;
        Some(perfunc_calibrate::within_noise(p50, baseline, ci))
    }
}

impl CalibrationInfo {
    /// What a report says of `profile`, stored in the trace of `header`.
    fn of(header: &TraceHeader, profile: perfunc_calibrate::Profile, statistic: Statistic) -> Self {
        let recorded = (header.created_unix_ns / 1_000_000_000) as i64;
        let own = |cached: bool| -> Vec<String> {
            profile
                .classes(cached)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let (in_run_classes, cached_classes, age_s) = match profile.source {
            Source::InRun => (own(false), own(true), 0),
            Source::Calibrate => (
                Vec::new(),
                own(false),
                recorded - profile.created_unix as i64,
            ),
        };
        let cached_age_s = match profile.source {
            Source::InRun => profile.cached_created_unix.map(|t| recorded - t as i64),
            Source::Calibrate => Some(age_s),
        };
        let noise = header
            .counters
            .iter()
            .filter_map(|c| {
                let mads = profile
                    .baselines
                    .iter()
                    .filter(|b| b.counter == c.name)
                    .map(|b| b.summary.mad);
                let (min, max) = mads.fold(None, |acc: Option<(f64, f64)>, m| {
                    Some(acc.map_or((m, m), |(lo, hi)| (lo.min(m), hi.max(m))))
                })?;
                Some(BaselineNoise {
                    counter: c.name.clone(),
                    min_mad: min,
                    max_mad: max,
                })
            })
            .collect();
        CalibrationInfo {
            statistic,
            noise,
            source: profile.source,
            age_s,
            loadavg: profile.loadavg,
            in_run_classes,
            cached_classes,
            cached_age_s,
            rounds: profile.rounds,
            calls_per_round: profile.calls_per_round,
            profile: profile.key,
        }
    }
}

/// The costs flattened and rounded to the nearest whole unit (half away
/// from zero): each subtracted term is off by at most half a unit.
fn rounded(costs: &[Vec<f64>]) -> Vec<i64> {
    costs.iter().flatten().map(|c| c.round() as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_to_the_nearest_unit() {
        assert_eq!(
            rounded(&[vec![1.5, 2.49], vec![-0.5, 12_345.5]]),
            [2, 2, -1, 12_346]
        );
    }
}
