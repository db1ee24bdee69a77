//! Function patterns: exact names and globs, and closest-name suggestions.

use globset::{Glob, GlobMatcher};

use super::demangle::cpp_base_name;
use super::{Function, SymbolError};

/// The characters that make a pattern a glob.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}'];

/// How many names a [`SymbolError::NoMatch`] suggests at most.
const MAX_SUGGESTIONS: usize = 5;

/// Below this Jaro-Winkler similarity a name is not worth suggesting.
const MIN_SIMILARITY: f64 = 0.7;

/// Whether `pattern` is a glob rather than an exact name.
pub(crate) fn is_glob(pattern: &str) -> bool {
    pattern.contains(GLOB_CHARS)
}

/// A compiled pattern. It is tried against the demangled name, the raw
/// name and, for C++, the demangled name without parameters and return type.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Exact(String),
    Glob(GlobMatcher),
}

impl Matcher {
    pub(crate) fn new(pattern: &str) -> Result<Matcher, SymbolError> {
        if !is_glob(pattern) {
            return Ok(Matcher::Exact(pattern.to_owned()));
        }
        let glob = Glob::new(pattern).map_err(|source| SymbolError::BadPattern {
            pattern: pattern.to_owned(),
            cause: source,
        })?;
        Ok(Matcher::Glob(glob.compile_matcher()))
    }

    pub(crate) fn matches(&self, function: &Function) -> bool {
        match self {
            Matcher::Exact(name) => {
                function.name == *name
                    || function.raw_name == *name
                    || (function.name.contains(name.as_str())
                        && cpp_base_name(&function.raw_name).is_some_and(|base| base == *name))
            }
            Matcher::Glob(glob) => {
                glob.is_match(&function.name)
                    || glob.is_match(&function.raw_name)
                    || cpp_base_name(&function.raw_name).is_some_and(|base| glob.is_match(base))
            }
        }
    }
}

/// Up to five names of `functions` closest to `pattern`, closest first.
pub(crate) fn closest(pattern: &str, functions: &[Function]) -> Vec<String> {
    let wanted: String = pattern
        .chars()
        .filter(|c| !GLOB_CHARS.contains(c))
        .collect();
    let mut scored: Vec<(f64, &str)> = functions
        .iter()
        .map(|f| (similarity(&wanted, f), f.name.as_str()))
        .filter(|(score, _)| *score >= MIN_SIMILARITY)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut names: Vec<String> = Vec::with_capacity(MAX_SUGGESTIONS);
    for (_, name) in scored {
        if names.len() == MAX_SUGGESTIONS {
            break;
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// How close `wanted` is to the function's full name or its last path
/// segment (`parse` is close to `mycrate::parser::parse`).
fn similarity(wanted: &str, function: &Function) -> f64 {
    let base = cpp_base_name(&function.raw_name).unwrap_or_else(|| function.name.clone());
    let last = base.rsplit("::").next().unwrap_or(&base);
    strsim::jaro_winkler(wanted, &function.name).max(strsim::jaro_winkler(wanted, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::{ElfAddr, FileOffset, InsnClass};

    fn function(raw: &str) -> Function {
        Function {
            name: crate::symbols::demangle::demangle(raw),
            raw_name: raw.to_owned(),
            addr: ElfAddr(0),
            size: 1,
            offset: FileOffset(0),
            class: InsnClass::Other,
            probe_skip: 0,
            probe_class: InsnClass::Other,
            refusal: None,
            probe_refusal: None,
        }
    }

    fn matches(pattern: &str, raw: &str) -> bool {
        Matcher::new(pattern).unwrap().matches(&function(raw))
    }

    #[test]
    fn exact_patterns_match_whole_names_only() {
        assert!(matches("compute_sum", "compute_sum"));
        assert!(!matches("compute", "compute_sum"));
        assert!(matches("ns::foo", "_ZN2ns3fooEi"));
        assert!(matches("ns::foo(int)", "_ZN2ns3fooEi"));
        assert!(matches("_ZN2ns3fooEi", "_ZN2ns3fooEi"));
        assert!(!matches("ns::fo", "_ZN2ns3fooEi"));
        assert!(matches(
            "mycrate::module::func",
            "_ZN7mycrate6module4func17h0123456789abcdefE"
        ));
    }

    #[test]
    fn globs_cross_path_separators() {
        assert!(matches("compute_*", "compute_sum"));
        assert!(matches("comp?te_sum", "compute_sum"));
        assert!(matches("compute_[ps]um", "compute_sum"));
        assert!(!matches("compute_[p]um", "compute_sum"));
        assert!(matches(
            "mycrate::*",
            "_ZN7mycrate6module4func17h0123456789abcdefE"
        ));
        assert!(matches(
            "*::func",
            "_ZN7mycrate6module4func17h0123456789abcdefE"
        ));
        assert!(matches("ns::*", "_ZN2ns3fooEi"));
        assert!(matches("*foo", "_ZN2ns3fooEi"));
        assert!(matches("_ZN2ns*", "_ZN2ns3fooEi"));
        assert!(!matches("other::*", "_ZN2ns3fooEi"));
    }

    #[test]
    fn invalid_globs_are_errors() {
        let err = Matcher::new("foo[").unwrap_err();
        assert!(matches!(err, SymbolError::BadPattern { ref pattern, .. } if pattern == "foo["));
    }

    #[test]
    fn closest_names_rank_by_similarity() {
        let functions: Vec<Function> = [
            "compute_sum",
            "compute_product",
            "main",
            "xyz",
            "_ZN2ns3fooEi",
        ]
        .into_iter()
        .map(function)
        .collect();
        assert_eq!(closest("compte_sum", &functions), ["compute_sum"]);
        assert_eq!(
            closest("compute_prod", &functions),
            ["compute_product", "compute_sum"]
        );
        assert_eq!(closest("fo*", &functions), ["ns::foo(int)"]);
        assert!(closest("qqqqqqqq", &functions).is_empty());
    }

    #[test]
    fn closest_names_are_at_most_five_and_distinct() {
        let functions: Vec<Function> = ["f1", "f2", "f3", "f4", "f5", "f6", "f1"]
            .into_iter()
            .map(function)
            .collect();
        assert_eq!(closest("f", &functions), ["f1", "f2", "f3", "f4", "f5"]);
    }
}
