//! Counter names as perf spells them, turned into `perf_event_attr`
//! descriptions; and explanations for counters the kernel refused to open.
//!
//! Pure: no syscalls, no file reads. Dynamic PMUs (`msr/tsc/`,
//! `cpu/event=0x3c,umask=0x00/`) are resolved through a [`PmuSource`] that
//! the caller fills from `/sys/bus/event_source/devices`.
//!
//! ```text
//! parse_counter_list("LLC-load-misses,task-clock:u,msr/tsc/", &pmus)
//!   -> [ hw-cache type 3 config 0x10002,
//!        software type 1 config 0x1 (user space only, nanoseconds),
//!        pmu type 11 config 0x0 ]
//! ```
//!
//! The syntax and the encoding table are in `docs/counters.md`.

pub mod cpu;
mod defaults;
mod error;
mod explain;
mod groups;
mod names;
mod pmu;

use serde::{Deserialize, Serialize};

pub use defaults::{decide_defaults, CorePmu, CounterDecision, Dropped, Replacement};
pub use error::{EventError, PMU_DEVICES_DIR};
pub use explain::{errno_name, explain_open_error, OpenContext};
pub use groups::{check_group_fits, PmuLimits};
pub use names::{
    known_aliases, known_counters, PERF_TYPE_HARDWARE, PERF_TYPE_HW_CACHE, PERF_TYPE_RAW,
    PERF_TYPE_SOFTWARE,
};
pub use pmu::{MapPmus, NoPmus, PmuSource};

/// Which family of `perf_event_attr.type` a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CounterKind {
    /// Generic hardware events (`PERF_TYPE_HARDWARE`).
    Hardware,
    /// Kernel software events (`PERF_TYPE_SOFTWARE`).
    Software,
    /// Generic hardware-cache events (`PERF_TYPE_HW_CACHE`).
    HwCache,
    /// CPU-specific raw codes (`PERF_TYPE_RAW`).
    Raw,
    /// A dynamic PMU from `/sys/bus/event_source/devices`.
    Pmu,
}

impl Unit {
    /// The kebab-case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Nanoseconds => "nanoseconds",
        }
    }
}

impl CounterKind {
    /// The kebab-case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::Software => "software",
            Self::HwCache => "hw-cache",
            Self::Raw => "raw",
            Self::Pmu => "pmu",
        }
    }
}

/// What a counter's value measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// A number of events.
    Count,
    /// Time, in nanoseconds (`task-clock`, `cpu-clock`).
    Nanoseconds,
}

/// One counter, as `perf_event_attr` needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSpec {
    /// Canonical display name: `LLC-load-misses`, `task-clock`, `r01c2`,
    /// `msr/tsc/`, with a `:u`/`:k` modifier kept as written.
    pub name: String,
    /// The family of `type_`.
    pub kind: CounterKind,
    /// `perf_event_attr.type`: 0 hardware, 1 software, 3 hw-cache, 4 raw,
    /// or a dynamic PMU type.
    pub type_: u32,
    /// `perf_event_attr.config`.
    pub config: u64,
    /// `perf_event_attr.config1`.
    pub config1: u64,
    /// `perf_event_attr.config2`.
    pub config2: u64,
    /// Set by `:k`: count kernel space only.
    pub exclude_user: bool,
    /// Set by `:u`: count user space only. Without a modifier both are false.
    pub exclude_kernel: bool,
    /// Nanoseconds for `task-clock` and `cpu-clock`, a count otherwise.
    pub unit: Unit,
}

impl CounterSpec {
    /// The name without its modifier: `cycles` for `cycles:u`,
    /// `cpu/event=0x3c/` for `cpu/event=0x3c/u`.
    pub fn base_name(&self) -> &str {
        split_modifier(&self.name).0
    }

    /// Whether a modifier restricts the counter to user or kernel space.
    pub fn has_modifier(&self) -> bool {
        self.exclude_user || self.exclude_kernel
    }

    /// Whether the counter needs the CPU's hardware PMU (hardware,
    /// hardware-cache and raw counters).
    pub fn needs_cpu_pmu(&self) -> bool {
        matches!(
            self.kind,
            CounterKind::Hardware | CounterKind::HwCache | CounterKind::Raw
        )
    }

    /// `hw-cache, type 3, config 0x10002`, with `config1`/`config2` when set.
    pub fn encoding(&self) -> String {
        let mut text = format!(
            "{}, type {}, config {:#x}",
            self.kind.as_str(),
            self.type_,
            self.config
        );
        for (word, value) in [("config1", self.config1), ("config2", self.config2)] {
            if value != 0 {
                text.push_str(&format!(", {word} {value:#x}"));
            }
        }
        text
    }

    /// A spec without modifier (counting user and kernel space).
    fn counting_all(
        name: String,
        kind: CounterKind,
        type_: u32,
        [config, config1, config2]: [u64; 3],
        unit: Unit,
    ) -> Self {
        Self {
            name,
            kind,
            type_,
            config,
            config1,
            config2,
            exclude_user: false,
            exclude_kernel: false,
            unit,
        }
    }

    /// Whether both describe the same `perf_event_attr`, whatever their names.
    fn same_counter(&self, other: &Self) -> bool {
        (
            self.type_,
            self.config,
            self.config1,
            self.config2,
            self.exclude_user,
            self.exclude_kernel,
        ) == (
            other.type_,
            other.config,
            other.config1,
            other.config2,
            other.exclude_user,
            other.exclude_kernel,
        )
    }
}

/// The default counters where the CPU has a hardware PMU.
pub const DEFAULT_HARDWARE: [&str; 3] =
    ["LLC-load-misses", "LLC-store-misses", "LLC-prefetch-misses"];

/// The default counters without a hardware PMU (VMs, containers).
pub const DEFAULT_FALLBACK: [&str; 3] = ["task-clock", "page-faults", "context-switches"];

/// [`DEFAULT_HARDWARE`] when the machine has a CPU PMU, else [`DEFAULT_FALLBACK`].
pub fn default_counter_names(has_cpu_pmu: bool) -> [&'static str; 3] {
    if has_cpu_pmu {
        DEFAULT_HARDWARE
    } else {
        DEFAULT_FALLBACK
    }
}

/// The specs of [`default_counter_names`].
pub fn default_counters(has_cpu_pmu: bool) -> Vec<CounterSpec> {
    default_counter_names(has_cpu_pmu)
        .into_iter()
        .filter_map(names::legacy_counter)
        .collect()
}

/// Splits `name:mods` (or `pmu/.../mods`, `pmu/.../:mods`) into the name and
/// the modifier letters, which keep their spelling.
fn split_modifier(text: &str) -> (&str, Option<&str>) {
    let closing_slash = text.rfind('/').filter(|&close| text[..close].contains('/'));
    if let Some(close) = closing_slash {
        let rest = &text[close + 1..];
        let modifier = rest.strip_prefix(':').unwrap_or(rest);
        return (&text[..=close], (!rest.is_empty()).then_some(modifier));
    }
    match text.split_once(':') {
        Some((name, modifier)) => (name, Some(modifier)),
        None => (text, None),
    }
}

/// Applies `u`, `k`, `uk` or `ku` to `spec`.
fn apply_modifier(spec: &mut CounterSpec, modifier: &str, counter: &str) -> Result<(), EventError> {
    let valid = matches!(modifier, "u" | "k" | "uk" | "ku");
    if !valid {
        return Err(EventError::InvalidModifier {
            counter: counter.to_owned(),
            modifier: modifier.to_owned(),
        });
    }
    spec.exclude_user = !modifier.contains('u');
    spec.exclude_kernel = !modifier.contains('k');
    Ok(())
}

/// Maximum number of hex digits of a raw code (64 bits).
const RAW_MAX_DIGITS: usize = 16;

/// `rNNNN`: `None` when `name` does not look like a raw code at all (so
/// `rabbit` is an unknown name), an error when it does but is not hex.
fn raw_counter(name: &str) -> Option<Result<CounterSpec, EventError>> {
    let digits = name.strip_prefix('r')?;
    let starts_with_digit = digits.starts_with(|c: char| c.is_ascii_digit());
    let all_hex = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit());
    if !all_hex && !starts_with_digit {
        return None;
    }
    let config = (all_hex && digits.len() <= RAW_MAX_DIGITS)
        .then(|| u64::from_str_radix(digits, 16).ok())
        .flatten();
    Some(
        config
            .map(|config| raw_spec(name, config))
            .ok_or_else(|| EventError::InvalidRaw {
                name: name.to_owned(),
            }),
    )
}

fn raw_spec(name: &str, config: u64) -> CounterSpec {
    let configs = [config, 0, 0];
    CounterSpec::counting_all(
        name.to_owned(),
        CounterKind::Raw,
        PERF_TYPE_RAW,
        configs,
        Unit::Count,
    )
}

fn pmu_spec(name: &str, pmus: &dyn PmuSource) -> Result<CounterSpec, EventError> {
    let counter = pmu::parse_pmu_counter(name, pmus)?;
    let (kind, configs) = (CounterKind::Pmu, counter.config);
    Ok(CounterSpec::counting_all(
        name.to_owned(),
        kind,
        counter.type_,
        configs,
        Unit::Count,
    ))
}

/// The spec of a name without modifier, under its canonical name; a
/// model's event (`mem_load_retired.l3_miss`) when `model` is the running
/// CPU's and ships it.
fn base_counter(
    name: &str,
    pmus: &dyn PmuSource,
    model: Option<&cpu::ModelEvents>,
) -> Result<CounterSpec, EventError> {
    if name.contains('/') {
        return pmu_spec(name, pmus);
    }
    if let Some(spec) = names::legacy_counter(name) {
        return Ok(spec);
    }
    if let Some(spec) = model_counter(name, pmus, model) {
        return spec;
    }
    raw_counter(name).unwrap_or_else(|| {
        Err(EventError::UnknownCounter {
            name: name.to_owned(),
            suggestions: names::suggestions(name),
        })
    })
}

/// One of the model's events by perf's name, on the PMU it belongs to
/// (its `Unit`, else the core PMU); named in lower case as perf lists it.
fn model_counter(
    name: &str,
    pmus: &dyn PmuSource,
    model: Option<&cpu::ModelEvents>,
) -> Option<Result<CounterSpec, EventError>> {
    let model = model?;
    let event = model.event(name)?;
    let pmu = cpu::ModelEvents::pmu_of(event);
    let type_ = pmus.pmu_type(pmu).unwrap_or(PERF_TYPE_RAW);
    Some(
        model
            .spec(event, type_)
            .map_err(|reason| EventError::InvalidRaw {
                name: format!("{name} ({reason})"),
            }),
    )
}

/// Parses one counter: a hardware, software or cache name as perf spells
/// it (aliases accepted), `rNNNN`, `pmu/event/` or `pmu/term=value,.../`,
/// optionally followed by `:u`, `:k` or `:uk`.
pub fn parse_counter(text: &str, pmus: &dyn PmuSource) -> Result<CounterSpec, EventError> {
    parse_counter_on(text, pmus, None)
}

/// [`parse_counter`], also taking the events of the CPU model `model`
/// (`mem_load_retired.l3_miss`, `ls_dmnd_fills_from_sys.dram_io_far`).
pub fn parse_counter_on(
    text: &str,
    pmus: &dyn PmuSource,
    model: Option<&cpu::ModelEvents>,
) -> Result<CounterSpec, EventError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(EventError::EmptyName);
    }
    let (name, modifier) = split_modifier(text);
    let mut spec = base_counter(name, pmus, model)?;
    if let Some(modifier) = modifier {
        apply_modifier(&mut spec, modifier, text)?;
        spec.name.push_str(&text[name.len()..]);
    }
    Ok(spec)
}

/// Splits a counter list at the commas outside `pmu/.../` term lists.
fn split_list(list: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut slashes = 0;
    for (index, c) in list.char_indices() {
        match c {
            '/' => slashes += 1,
            ',' if slashes % 2 == 0 => {
                items.push(&list[start..index]);
                start = index + 1;
                slashes = 0;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    items
}

/// Parses a comma-separated counter list; commas inside `pmu/.../` do not
/// split. An empty list, an empty item or the same counter twice is an error.
pub fn parse_counter_list(
    list: &str,
    pmus: &dyn PmuSource,
) -> Result<Vec<CounterSpec>, EventError> {
    parse_counter_list_on(list, pmus, None)
}

/// [`parse_counter_list`] with the events of the CPU model `model`.
pub fn parse_counter_list_on(
    list: &str,
    pmus: &dyn PmuSource,
    model: Option<&cpu::ModelEvents>,
) -> Result<Vec<CounterSpec>, EventError> {
    if list.trim().is_empty() {
        return Err(EventError::EmptyList);
    }
    let items = split_list(list);
    if let Some(index) = items.iter().position(|item| item.trim().is_empty()) {
        let position = index + 1;
        return Err(EventError::EmptyItem {
            list: list.to_owned(),
            position,
        });
    }
    let mut specs: Vec<CounterSpec> = Vec::new();
    for item in items {
        let spec = parse_counter_on(item, pmus, model)?;
        if let Some(first) = specs.iter().find(|earlier| earlier.same_counter(&spec)) {
            return Err(EventError::Duplicate {
                name: spec.name,
                first: first.name.clone(),
            });
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pmus() -> MapPmus {
        MapPmus::new()
            .with_pmu("cpu", 4)
            .with_format("cpu", "event", "config:0-7")
            .with_format("cpu", "umask", "config:8-15")
            .with_format("cpu", "cmask", "config:24-31")
            .with_event("cpu", "cpu-cycles", "event=0x3c,umask=0x00")
            .with_pmu("msr", 11)
            .with_format("msr", "event", "config:0-63")
            .with_event("msr", "tsc", "event=0x00")
    }

    fn parse(text: &str) -> Result<CounterSpec, EventError> {
        parse_counter(text, &pmus())
    }

    fn ok(text: &str) -> CounterSpec {
        parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn names(specs: &[CounterSpec]) -> Vec<&str> {
        specs.iter().map(|spec| spec.name.as_str()).collect()
    }

    #[test]
    fn llc_load_misses_is_the_whole_spec() {
        assert_eq!(
            ok("LLC-load-misses"),
            CounterSpec {
                name: "LLC-load-misses".into(),
                kind: CounterKind::HwCache,
                type_: 3,
                config: 0x10002,
                config1: 0,
                config2: 0,
                exclude_user: false,
                exclude_kernel: false,
                unit: Unit::Count,
            }
        );
    }

    #[test]
    fn aliases_get_canonical_names() {
        assert_eq!(
            (ok("cycles").name, ok("cycles").config),
            ("cpu-cycles".to_owned(), 0)
        );
        assert_eq!(ok("cs").name, "context-switches");
        assert_eq!(ok("L2-misses").name, "LLC-load-misses");
        assert_eq!(ok(" task-clock ").unit, Unit::Nanoseconds);
    }

    #[test]
    fn modifiers_set_exclusions_and_stay_in_the_name() {
        let cases = [
            ("cycles:u", "cpu-cycles:u", false, true),
            ("cycles:k", "cpu-cycles:k", true, false),
            ("cycles:uk", "cpu-cycles:uk", false, false),
            ("cycles:ku", "cpu-cycles:ku", false, false),
            ("r01c2:u", "r01c2:u", false, true),
            ("msr/tsc/:u", "msr/tsc/:u", false, true),
            ("cpu/event=0x3c/k", "cpu/event=0x3c/k", true, false),
        ];
        for (text, name, exclude_user, exclude_kernel) in cases {
            let spec = ok(text);
            assert_eq!(
                (spec.name.as_str(), spec.exclude_user, spec.exclude_kernel),
                (name, exclude_user, exclude_kernel)
            );
        }
        assert_eq!(ok("cycles:u").base_name(), "cpu-cycles");
        assert_eq!(ok("cpu/event=0x3c/k").base_name(), "cpu/event=0x3c/");
    }

    #[test]
    fn invalid_modifiers_are_rejected() {
        for text in [
            "cycles:",
            "cycles:p",
            "cycles:uu",
            "cycles:uku",
            "cycles:U",
            "msr/tsc/x",
            "msr/tsc/:",
        ] {
            assert!(
                matches!(parse(text), Err(EventError::InvalidModifier { .. })),
                "{text}"
            );
        }
        assert_eq!(
            parse("cycles:pp"),
            Err(EventError::InvalidModifier {
                counter: "cycles:pp".into(),
                modifier: "pp".into()
            })
        );
    }

    #[test]
    fn raw_codes_are_hex() {
        let spec = ok("r01c2");
        assert_eq!(
            (spec.kind, spec.type_, spec.config, spec.name.as_str()),
            (CounterKind::Raw, 4, 0x1c2, "r01c2")
        );
        assert_eq!(ok("rC0").config, 0xc0);
        assert_eq!(ok("rffffffffffffffff").config, u64::MAX);
        for text in ["r01g2", "r0x1c2", "r12345678901234567", "r1-2"] {
            assert_eq!(
                parse(text),
                Err(EventError::InvalidRaw { name: text.into() }),
                "{text}"
            );
        }
    }

    #[test]
    fn words_starting_with_r_are_names_not_raw_codes() {
        assert_eq!(ok("ref-cycles").config, 9);
        assert!(matches!(
            parse("rabbit"),
            Err(EventError::UnknownCounter { .. })
        ));
        assert!(matches!(parse("r"), Err(EventError::UnknownCounter { .. })));
    }

    #[test]
    fn pmu_counters_through_the_source() {
        let tsc = ok("msr/tsc/");
        assert_eq!(
            (tsc.kind, tsc.type_, tsc.config, tsc.name.as_str()),
            (CounterKind::Pmu, 11, 0, "msr/tsc/")
        );
        let cycles = ok("cpu/cpu-cycles/");
        assert_eq!((cycles.type_, cycles.config), (4, 0x3c));
        assert_eq!(ok("cpu/event=0x3c,umask=0x01,cmask=2/").config, 0x0200_013c);
        assert!(matches!(
            parse_counter("msr/tsc/", &NoPmus),
            Err(EventError::UnknownPmu { .. })
        ));
    }

    #[test]
    fn unclosed_pmu_counters_are_malformed() {
        for text in ["cpu/event=0x3c", "cpu/event=0x3c:u"] {
            assert!(
                matches!(parse(text), Err(EventError::MalformedPmu { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_names_come_with_suggestions() {
        let Err(EventError::UnknownCounter { name, suggestions }) = parse("LLC-load-mises") else {
            panic!("LLC-load-mises should be unknown");
        };
        assert_eq!(name, "LLC-load-mises");
        assert_eq!(suggestions[0], "LLC-load-misses");
        let message = parse("instrucions").unwrap_err().to_string();
        assert!(
            message.starts_with("unknown counter \"instrucions\", did you mean instructions"),
            "{message}"
        );
    }

    #[test]
    fn empty_name_is_an_error() {
        assert_eq!(parse("  "), Err(EventError::EmptyName));
    }

    #[test]
    fn lists_split_at_commas_outside_pmu_terms() {
        let specs = parse_counter_list(
            "LLC-load-misses,cpu/event=0x3c,umask=0x01/u,task-clock, msr/tsc/",
            &pmus(),
        );
        let specs = specs.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            names(&specs),
            [
                "LLC-load-misses",
                "cpu/event=0x3c,umask=0x01/u",
                "task-clock",
                "msr/tsc/"
            ]
        );
        assert_eq!(specs[1].config, 0x13c);
        assert_eq!(split_list("a/b,c/,d,e/f/"), ["a/b,c/", "d", "e/f/"]);
    }

    #[test]
    fn empty_lists_and_items_are_errors() {
        assert_eq!(parse_counter_list(" ", &NoPmus), Err(EventError::EmptyList));
        assert_eq!(
            parse_counter_list("cycles,,cs", &NoPmus),
            Err(EventError::EmptyItem {
                list: "cycles,,cs".into(),
                position: 2
            })
        );
        assert!(matches!(
            parse_counter_list("cycles,", &NoPmus),
            Err(EventError::EmptyItem { position: 2, .. })
        ));
        assert!(matches!(
            parse_counter_list(",cycles", &NoPmus),
            Err(EventError::EmptyItem { position: 1, .. })
        ));
        assert!(matches!(
            parse_counter_list("nope,,cycles", &NoPmus),
            Err(EventError::EmptyItem { position: 2, .. })
        ));
    }

    #[test]
    fn duplicates_are_errors_even_under_other_names() {
        assert_eq!(
            parse_counter_list("cycles,instructions,cpu-cycles", &NoPmus),
            Err(EventError::Duplicate {
                name: "cpu-cycles".into(),
                first: "cpu-cycles".into()
            })
        );
        assert_eq!(
            parse_counter_list("cycles:uk,cycles", &NoPmus),
            Err(EventError::Duplicate {
                name: "cpu-cycles".into(),
                first: "cpu-cycles:uk".into()
            })
        );
        let distinct =
            parse_counter_list("cycles:u,cycles:k,cycles", &NoPmus).map(|specs| specs.len());
        assert_eq!(distinct, Ok(3));
    }

    #[test]
    fn list_errors_name_the_bad_item() {
        assert!(matches!(
            parse_counter_list("cycles,nope", &NoPmus),
            Err(EventError::UnknownCounter { name, .. }) if name == "nope"
        ));
    }

    #[test]
    fn defaults_parse() {
        assert_eq!(names(&default_counters(true)), DEFAULT_HARDWARE);
        assert_eq!(names(&default_counters(false)), DEFAULT_FALLBACK);
        let configs: Vec<(u32, u64)> = default_counters(true)
            .iter()
            .map(|spec| (spec.type_, spec.config))
            .collect();
        assert_eq!(configs, [(3, 0x10002), (3, 0x10102), (3, 0x10202)]);
        let configs: Vec<(u32, u64)> = default_counters(false)
            .iter()
            .map(|spec| (spec.type_, spec.config))
            .collect();
        assert_eq!(configs, [(1, 1), (1, 2), (1, 3)]);
    }

    #[test]
    fn encoding_shows_the_attr_words() {
        assert_eq!(
            ok("LLC-load-misses").encoding(),
            "hw-cache, type 3, config 0x10002"
        );
        let spec = CounterSpec {
            config1: 30,
            ..ok("msr/tsc/")
        };
        assert_eq!(spec.encoding(), "pmu, type 11, config 0x0, config1 0x1e");
    }

    #[test]
    fn specs_serialize_with_kebab_case_kinds() {
        let json = serde_json::to_value(ok("LLC-load-misses:u")).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "LLC-load-misses:u", "kind": "hw-cache", "type_": 3, "config": 0x10002,
                "config1": 0, "config2": 0, "exclude_user": false, "exclude_kernel": true,
                "unit": "count",
            })
        );
        let back: Result<CounterSpec, _> = serde_json::from_value(json);
        assert_eq!(back.ok(), Some(ok("LLC-load-misses:u")));
        assert_eq!(
            serde_json::to_value(Unit::Nanoseconds).ok(),
            Some(serde_json::json!("nanoseconds"))
        );
    }

    #[test]
    fn cpu_pmu_needs() {
        assert!(ok("cycles").needs_cpu_pmu());
        assert!(ok("r01c2").needs_cpu_pmu());
        assert!(!ok("task-clock").needs_cpu_pmu());
        assert!(!ok("msr/tsc/").needs_cpu_pmu());
    }
}
