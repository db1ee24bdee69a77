//! Dynamic PMUs: `pmu/event/` and `pmu/term=value,.../` counters, encoded
//! through the `type`, `events/` and `format/` files a PMU publishes under
//! `/sys/bus/event_source/devices/PMU/` (read by another module and handed
//! in through [`PmuSource`]).

use std::collections::HashMap;

use super::EventError;

/// What dynamic PMUs exist. Production code reads
/// `/sys/bus/event_source/devices`; tests use [`MapPmus`].
pub trait PmuSource {
    /// The contents of `devices/PMU/type`: its `perf_event_attr.type`.
    fn pmu_type(&self, pmu: &str) -> Option<u32>;
    /// The contents of `devices/PMU/events/EVENT`, e.g. `event=0x3c,umask=0x00`.
    fn event_alias(&self, pmu: &str, event: &str) -> Option<String>;
    /// The contents of `devices/PMU/format/TERM`, e.g. `config:0-7`,
    /// `config:0-7,32-35` or `config1:0-63`.
    fn format(&self, pmu: &str, term: &str) -> Option<String>;
}

/// A [`PmuSource`] without any PMU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoPmus;

impl PmuSource for NoPmus {
    fn pmu_type(&self, _pmu: &str) -> Option<u32> {
        None
    }

    fn event_alias(&self, _pmu: &str, _event: &str) -> Option<String> {
        None
    }

    fn format(&self, _pmu: &str, _term: &str) -> Option<String> {
        None
    }
}

/// What [`MapPmus`] knows of one PMU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PmuEntry {
    type_: Option<u32>,
    events: HashMap<String, String>,
    formats: HashMap<String, String>,
}

/// An in-memory [`PmuSource`], built with [`MapPmus::with_pmu`],
/// [`MapPmus::with_event`] and [`MapPmus::with_format`], e.g.
/// `MapPmus::new().with_pmu("msr", 11).with_event("msr", "tsc", "event=0x00")`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapPmus {
    pmus: HashMap<String, PmuEntry>,
}

impl MapPmus {
    /// A source without any PMU.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or retypes) the PMU `pmu` with `perf_event_attr.type` `type_`.
    pub fn with_pmu(mut self, pmu: &str, type_: u32) -> Self {
        self.entry(pmu).type_ = Some(type_);
        self
    }

    /// Adds the event alias `pmu/event/`, whose terms are `terms`
    /// (as in `events/EVENT`, e.g. `event=0x3c,umask=0x00`).
    pub fn with_event(mut self, pmu: &str, event: &str, terms: &str) -> Self {
        self.entry(pmu)
            .events
            .insert(event.to_owned(), terms.to_owned());
        self
    }

    /// Adds the format term `term` of `pmu`, placed at `format`
    /// (as in `format/TERM`, e.g. `config:0-7`).
    pub fn with_format(mut self, pmu: &str, term: &str, format: &str) -> Self {
        self.entry(pmu)
            .formats
            .insert(term.to_owned(), format.to_owned());
        self
    }

    fn entry(&mut self, pmu: &str) -> &mut PmuEntry {
        self.pmus.entry(pmu.to_owned()).or_default()
    }
}

impl PmuSource for MapPmus {
    fn pmu_type(&self, pmu: &str) -> Option<u32> {
        self.pmus.get(pmu)?.type_
    }

    fn event_alias(&self, pmu: &str, event: &str) -> Option<String> {
        self.pmus.get(pmu)?.events.get(event).cloned()
    }

    fn format(&self, pmu: &str, term: &str) -> Option<String> {
        self.pmus.get(pmu)?.formats.get(term).cloned()
    }
}

/// Terms every PMU accepts without a format file: the whole config words.
const BUILTIN_TERMS: [&str; 3] = ["config", "config1", "config2"];

/// Where a term's value goes: one config word and its bit ranges, low
/// bits of the value first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Format {
    /// 0 for `config`, 1 for `config1`, 2 for `config2`.
    word: usize,
    /// Inclusive `(low, high)` bit ranges.
    ranges: Vec<(u32, u32)>,
}

impl Format {
    /// Parses `config:0-7`, `config:0-7,32-35`, `config1:0-63` or `config:21`.
    fn parse(text: &str) -> Option<Self> {
        let (word, ranges) = text.trim().split_once(':')?;
        let word = BUILTIN_TERMS.iter().position(|name| *name == word)?;
        let ranges = ranges
            .split(',')
            .map(parse_range)
            .collect::<Option<Vec<_>>>()?;
        let format = Self { word, ranges };
        (format.width() <= 64).then_some(format)
    }

    fn whole_word(word: usize) -> Self {
        Self {
            word,
            ranges: vec![(0, 63)],
        }
    }

    /// How many bits the value may have.
    fn width(&self) -> u32 {
        self.ranges.iter().map(|(low, high)| high - low + 1).sum()
    }

    /// Writes `value` into `config`, replacing the bits of this format;
    /// `None` when the value has more bits than the format.
    fn place(&self, value: u64, config: &mut [u64; 3]) -> Option<()> {
        if value.checked_shr(self.width()).unwrap_or(0) != 0 {
            return None;
        }
        let mut rest = value;
        for &(low, high) in &self.ranges {
            let bits = high - low + 1;
            let mask = low_mask(bits) << low;
            config[self.word] = (config[self.word] & !mask) | ((rest << low) & mask);
            rest = rest.checked_shr(bits).unwrap_or(0);
        }
        Some(())
    }
}

/// Parses `LOW-HIGH` or a single bit `N` of a 64-bit word.
fn parse_range(text: &str) -> Option<(u32, u32)> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
        None => {
            let bit = text.trim().parse().ok()?;
            (bit, bit)
        }
    };
    (low <= high && high < 64).then_some((low, high))
}

/// The `bits` lowest bits set (1 <= `bits` <= 64).
fn low_mask(bits: u32) -> u64 {
    u64::MAX >> (64 - bits)
}

/// Parses a term value: `0x` hex or decimal.
fn parse_value(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Encodes the terms of one `pmu/.../` counter into its three config words.
struct Encoder<'a> {
    pmus: &'a dyn PmuSource,
    pmu: &'a str,
    counter: &'a str,
    config: [u64; 3],
}

impl Encoder<'_> {
    /// Applies one term of the counter: `name=value`, an event alias, or a
    /// bare format term (value 1).
    fn counter_term(&mut self, term: &str) -> Result<(), EventError> {
        if term.contains('=') {
            return self.alias_term(term);
        }
        match self.pmus.event_alias(self.pmu, term) {
            Some(alias) => alias
                .trim()
                .split(',')
                .try_for_each(|part| self.alias_term(part.trim())),
            None => self.set(term, 1),
        }
    }

    /// Applies `name=value` or a bare format term (value 1); event aliases
    /// are not looked up here, so an alias cannot refer to itself.
    fn alias_term(&mut self, term: &str) -> Result<(), EventError> {
        let Some((name, value)) = term.split_once('=') else {
            return self.set(term, 1);
        };
        let (name, value) = (name.trim(), value.trim());
        let number = parse_value(value).ok_or_else(|| EventError::InvalidTermValue {
            pmu: self.pmu.to_owned(),
            term: name.to_owned(),
            value: value.to_owned(),
            counter: self.counter.to_owned(),
        })?;
        self.set(name, number)
    }

    /// Places `value` at the bits of format term `term`.
    fn set(&mut self, term: &str, value: u64) -> Result<(), EventError> {
        let format = self.format(term)?;
        format
            .place(value, &mut self.config)
            .ok_or_else(|| EventError::ValueTooWide {
                pmu: self.pmu.to_owned(),
                term: term.to_owned(),
                value,
                bits: format.width(),
                counter: self.counter.to_owned(),
            })
    }

    /// The format of `term`: the PMU's `format/TERM`, else a builtin word.
    fn format(&self, term: &str) -> Result<Format, EventError> {
        if let Some(text) = self.pmus.format(self.pmu, term) {
            return Format::parse(&text).ok_or_else(|| EventError::InvalidFormat {
                pmu: self.pmu.to_owned(),
                term: term.to_owned(),
                format: text.trim().to_owned(),
            });
        }
        match BUILTIN_TERMS.iter().position(|name| *name == term) {
            Some(word) => Ok(Format::whole_word(word)),
            None => Err(EventError::UnknownPmuTerm {
                pmu: self.pmu.to_owned(),
                term: term.to_owned(),
                counter: self.counter.to_owned(),
            }),
        }
    }
}

/// A `pmu/.../` counter: the PMU's type and the three config words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PmuCounter {
    pub type_: u32,
    pub config: [u64; 3],
}

/// Encodes `pmu/event/` or `pmu/term=value,.../` (without modifiers).
pub(super) fn parse_pmu_counter(
    text: &str,
    pmus: &dyn PmuSource,
) -> Result<PmuCounter, EventError> {
    let malformed = |reason: &str| EventError::MalformedPmu {
        counter: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (pmu, rest) = text
        .split_once('/')
        .ok_or_else(|| malformed("missing the first '/'"))?;
    let body = rest
        .strip_suffix('/')
        .ok_or_else(|| malformed("missing the closing '/'"))?;
    if pmu.is_empty() {
        return Err(malformed("no pmu name before the first '/'"));
    }
    if body.contains('/') {
        return Err(malformed("more than two '/'"));
    }
    let type_ = pmus.pmu_type(pmu).ok_or_else(|| EventError::UnknownPmu {
        pmu: pmu.to_owned(),
        counter: text.to_owned(),
    })?;
    let mut encoder = Encoder {
        pmus,
        pmu,
        counter: text,
        config: [0; 3],
    };
    for term in body.split(',').map(str::trim) {
        if term.is_empty() {
            return Err(malformed("an empty event or term between '/' and ','"));
        }
        encoder.counter_term(term)?;
    }
    Ok(PmuCounter {
        type_,
        config: encoder.config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Intel-like `cpu` PMU (raw type 4) and the `msr` PMU of FACTS.md.
    fn pmus() -> MapPmus {
        MapPmus::new()
            .with_pmu("cpu", 4)
            .with_format("cpu", "event", "config:0-7")
            .with_format("cpu", "umask", "config:8-15")
            .with_format("cpu", "edge", "config:18")
            .with_format("cpu", "inv", "config:23")
            .with_format("cpu", "cmask", "config:24-31")
            .with_format("cpu", "ldlat", "config1:0-15")
            .with_format("cpu", "frontend", "config2:0-23")
            .with_event("cpu", "cpu-cycles", "event=0x3c")
            .with_event("cpu", "mem-loads", "event=0xcd,umask=0x1,ldlat=3")
            .with_event("cpu", "bad-alias", "event=0x1,umask=?")
            .with_pmu("amd", 8)
            .with_format("amd", "event", "config:0-7,32-35\n")
            .with_format("amd", "umask", "config:8-15")
            .with_format("amd", "broken", "config:9-3")
            .with_pmu("msr", 11)
            .with_format("msr", "event", "config:0-63")
            .with_event("msr", "tsc", "event=0x00")
            .with_event("msr", "aperf", "event=0x01")
    }

    fn encode(text: &str) -> Result<PmuCounter, EventError> {
        parse_pmu_counter(text, &pmus())
    }

    fn config(text: &str) -> [u64; 3] {
        encode(text)
            .unwrap_or_else(|error| panic!("{text}: {error}"))
            .config
    }

    #[test]
    fn terms_land_in_their_bit_ranges() {
        assert_eq!(
            encode("cpu/event=0x3c,umask=0x01,cmask=2/"),
            Ok(PmuCounter {
                type_: 4,
                config: [0x0200_013c, 0, 0]
            })
        );
        assert_eq!(config("cpu/event=60,umask=1/"), [0x13c, 0, 0]);
        assert_eq!(config("cpu/ event=0x3c , umask=0X1 /"), [0x13c, 0, 0]);
    }

    #[test]
    fn bare_terms_mean_one_and_single_bits_work() {
        assert_eq!(
            config("cpu/event=0xc4,edge,inv/"),
            [0xc4 | 1 << 18 | 1 << 23, 0, 0]
        );
        assert_eq!(config("cpu/edge=1/"), [1 << 18, 0, 0]);
    }

    #[test]
    fn split_ranges_take_low_bits_first() {
        assert_eq!(config("amd/event=0x1d6,umask=0x3/"), [0x1_0000_03d6, 0, 0]);
        assert_eq!(config("amd/event=0xfff/"), [0xf_0000_00ff, 0, 0]);
    }

    #[test]
    fn terms_reach_config1_and_config2() {
        assert_eq!(
            config("cpu/event=0xcd,ldlat=30,frontend=0x11/"),
            [0xcd, 30, 0x11]
        );
    }

    #[test]
    fn builtin_config_terms_set_whole_words() {
        assert_eq!(
            config("cpu/config=0x1234,config1=5,config2=0xffffffffffffffff/"),
            [0x1234, 5, u64::MAX]
        );
    }

    #[test]
    fn event_aliases_expand_into_terms() {
        assert_eq!(
            encode("msr/tsc/"),
            Ok(PmuCounter {
                type_: 11,
                config: [0, 0, 0]
            })
        );
        assert_eq!(config("msr/aperf/"), [1, 0, 0]);
        assert_eq!(config("cpu/cpu-cycles/"), [0x3c, 0, 0]);
        assert_eq!(config("cpu/mem-loads/"), [0x1cd, 3, 0]);
    }

    #[test]
    fn later_terms_override_an_alias() {
        assert_eq!(config("cpu/mem-loads,ldlat=30/"), [0x1cd, 30, 0]);
        assert_eq!(config("cpu/cpu-cycles,umask=2/"), [0x23c, 0, 0]);
    }

    #[test]
    fn values_too_wide_for_their_bits_are_rejected() {
        assert_eq!(
            encode("cpu/event=0x100/"),
            Err(EventError::ValueTooWide {
                pmu: "cpu".into(),
                term: "event".into(),
                value: 0x100,
                bits: 8,
                counter: "cpu/event=0x100/".into(),
            })
        );
        assert!(matches!(
            encode("amd/event=0x1000/"),
            Err(EventError::ValueTooWide { bits: 12, .. })
        ));
        assert!(matches!(
            encode("cpu/edge=2/"),
            Err(EventError::ValueTooWide { bits: 1, .. })
        ));
        assert_eq!(config("cpu/event=0xff/"), [0xff, 0, 0]);
    }

    #[test]
    fn unknown_pmu_event_and_term_are_named() {
        assert_eq!(
            encode("foo/bar/"),
            Err(EventError::UnknownPmu {
                pmu: "foo".into(),
                counter: "foo/bar/".into()
            })
        );
        assert_eq!(
            encode("msr/smi2/"),
            Err(EventError::UnknownPmuTerm {
                pmu: "msr".into(),
                term: "smi2".into(),
                counter: "msr/smi2/".into()
            })
        );
        assert!(matches!(encode("cpu/period=3/"),
                Err(EventError::UnknownPmuTerm { term, .. }) if term == "period"));
    }

    #[test]
    fn bad_values_and_formats_are_named() {
        assert!(matches!(encode("cpu/event=0xzz/"),
                Err(EventError::InvalidTermValue { value, .. }) if value == "0xzz"));
        assert!(matches!(
            encode("cpu/event=/"),
            Err(EventError::InvalidTermValue { .. })
        ));
        assert!(matches!(encode("cpu/bad-alias/"),
                Err(EventError::InvalidTermValue { value, .. }) if value == "?"));
        assert_eq!(
            encode("amd/broken=1/"),
            Err(EventError::InvalidFormat {
                pmu: "amd".into(),
                term: "broken".into(),
                format: "config:9-3".into()
            })
        );
    }

    #[test]
    fn malformed_slashes_and_empty_terms() {
        for text in [
            "cpu/event=1",
            "/event=1/",
            "cpu//",
            "cpu/event=1,/",
            "cpu/a/b/",
        ] {
            assert!(
                matches!(encode(text), Err(EventError::MalformedPmu { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn formats_parse_words_ranges_and_bits() {
        assert_eq!(
            Format::parse("config:0-7"),
            Some(Format {
                word: 0,
                ranges: vec![(0, 7)]
            })
        );
        assert_eq!(
            Format::parse("config:0-7,32-35\n"),
            Some(Format {
                word: 0,
                ranges: vec![(0, 7), (32, 35)]
            })
        );
        assert_eq!(
            Format::parse("config1:0-63"),
            Some(Format {
                word: 1,
                ranges: vec![(0, 63)]
            })
        );
        assert_eq!(
            Format::parse("config2:21"),
            Some(Format {
                word: 2,
                ranges: vec![(21, 21)]
            })
        );
        for bad in [
            "config3:0-7",
            "config:0-64",
            "config:7-0",
            "config:",
            "config:0-63,0-1",
            "0-7",
        ] {
            assert_eq!(Format::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_parse_as_hex_or_decimal() {
        assert_eq!(parse_value("0x3c"), Some(0x3c));
        assert_eq!(parse_value("0X3C"), Some(0x3c));
        assert_eq!(parse_value("60"), Some(60));
        assert_eq!(parse_value("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_value("3c"), None);
        assert_eq!(parse_value("-1"), None);
    }

    #[test]
    fn no_pmus_knows_nothing() {
        assert_eq!(NoPmus.pmu_type("cpu"), None);
        assert_eq!(NoPmus.event_alias("msr", "tsc"), None);
        assert_eq!(NoPmus.format("cpu", "event"), None);
        assert!(matches!(
            parse_pmu_counter("msr/tsc/", &NoPmus),
            Err(EventError::UnknownPmu { .. })
        ));
    }

    #[test]
    fn map_pmus_answers_what_it_was_given() {
        let pmus = pmus();
        assert_eq!(pmus.pmu_type("msr"), Some(11));
        assert_eq!(
            pmus.event_alias("msr", "tsc").as_deref(),
            Some("event=0x00")
        );
        assert_eq!(pmus.format("cpu", "umask").as_deref(), Some("config:8-15"));
        assert_eq!(
            MapPmus::new().with_event("x", "e", "event=1").pmu_type("x"),
            None
        );
    }
}
