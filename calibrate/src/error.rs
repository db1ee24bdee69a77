//! The crate's error type.

/// What can go wrong in calibration's pure code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// A statistic name that is not `median`, `trimmed` or `mean`.
    #[error("unknown statistic `{name}`; use one of median, trimmed, mean")]
    UnknownStatistic {
        /// The name given.
        name: String,
    },
    /// No calibration target has this instruction class.
    #[error("no calibration target of class `{name}`; known classes: {known}")]
    UnknownClass {
        /// The class asked for.
        name: String,
        /// The classes there are targets for, comma-separated (empty on
        /// architectures without targets).
        known: String,
    },
    /// A profile written by a perfunc with another profile format.
    #[error(
        "calibration profile version {found} is not supported (this perfunc reads version \
         {expected}); run `perfunc calibrate` again"
    )]
    UnsupportedVersion {
        /// The `version` found in the file, as JSON.
        found: String,
        /// The version this crate reads and writes.
        expected: u32,
    },
    /// A profile without a `version` field.
    #[error("calibration profile has no version field")]
    MissingVersion,
    /// A profile that is not valid JSON or lacks fields.
    #[error("failed to parse calibration profile")]
    Json(#[from] serde_json::Error),
}
