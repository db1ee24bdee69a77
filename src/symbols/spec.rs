//! `-f` arguments: `PATTERN` or `LIB:PATTERN`.

use std::fmt;
use std::str::FromStr;

use super::SymbolError;

/// One `-f` argument: `PATTERN` (in the executable) or `LIB:PATTERN` (in a
/// shared library it loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The library: a soname (`libc.so.6`), a prefix of one, or a path.
    pub library: Option<String>,
    /// The function pattern (see [`crate::symbols::Binary::matching`]).
    pub pattern: String,
}

impl FromStr for FunctionSpec {
    type Err = SymbolError;

    /// Splits at the first `:` that is not part of a `::`, but only when the
    /// part before it looks like a library (holds `.so` or `/`): `::` in
    /// `ns::Foo::bar` is a path separator.
    fn from_str(s: &str) -> Result<FunctionSpec, SymbolError> {
        let bad = |reason: &str| SymbolError::BadSpec {
            spec: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (library, pattern) = match single_colon(s) {
            Some(at) if looks_like_library(&s[..at]) => (Some(&s[..at]), &s[at + 1..]),
            _ => (None, s),
        };
        if pattern.is_empty() {
            return Err(bad("the function pattern is empty"));
        }
        Ok(FunctionSpec {
            library: library.map(str::to_owned),
            pattern: pattern.to_owned(),
        })
    }
}

impl fmt::Display for FunctionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.library {
            Some(library) => write!(f, "{library}:{}", self.pattern),
            None => f.write_str(&self.pattern),
        }
    }
}

/// The index of the first `:` that is not half of a `::`.
fn single_colon(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            if bytes.get(i + 1) == Some(&b':') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

fn looks_like_library(prefix: &str) -> bool {
    prefix.contains(".so") || prefix.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Option<String>, String) {
        let spec: FunctionSpec = s.parse().unwrap();
        (spec.library, spec.pattern)
    }

    fn lib(library: &str, pattern: &str) -> (Option<String>, String) {
        (Some(library.to_owned()), pattern.to_owned())
    }

    fn exe(pattern: &str) -> (Option<String>, String) {
        (None, pattern.to_owned())
    }

    #[test]
    fn library_prefixes_are_split_off() {
        assert_eq!(parse("libc.so.6:malloc"), lib("libc.so.6", "malloc"));
        assert_eq!(
            parse("/usr/lib/x/libfoo.so:foo*"),
            lib("/usr/lib/x/libfoo.so", "foo*")
        );
        assert_eq!(parse("./build/app:main"), lib("./build/app", "main"));
        assert_eq!(
            parse("libstdc++.so.6:std::vector*"),
            lib("libstdc++.so.6", "std::vector*")
        );
    }

    #[test]
    fn double_colons_are_paths_not_libraries() {
        assert_eq!(parse("mycrate::parse*"), exe("mycrate::parse*"));
        assert_eq!(parse("ns::Foo::bar"), exe("ns::Foo::bar"));
        assert_eq!(parse("compute_sum"), exe("compute_sum"));
        assert_eq!(parse("libc:malloc"), exe("libc:malloc"));
    }

    #[test]
    fn single_colon_skips_pairs() {
        assert_eq!(single_colon("a::b:c"), Some(4));
        assert_eq!(single_colon(":::x"), Some(2));
        assert_eq!(single_colon("a::b"), None);
    }

    #[test]
    fn empty_patterns_are_rejected() {
        for s in ["", "libc.so.6:"] {
            let err = s.parse::<FunctionSpec>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid function spec `{s}`: the function pattern is empty; write PATTERN or \
                     LIB:PATTERN, e.g. `compute_*` or `libc.so.6:malloc`"
                )
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "libc.so.6:malloc",
            "ns::Foo::bar",
            "/lib/libz.so.1:inflate*",
        ] {
            assert_eq!(s.parse::<FunctionSpec>().unwrap().to_string(), s);
        }
    }
}
