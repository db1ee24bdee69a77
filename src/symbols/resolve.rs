//! `-f` specs to the functions they name.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{find_library, Binary, ElfAddr, Function, FunctionSpec, SymbolError};

/// One function to probe and the binary it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The executable or shared library, shared by all its functions.
    pub binary: Arc<Binary>,
    /// The function.
    pub function: Function,
}

/// Resolves every spec against `exe` (or the library found for it), in spec
/// order then address order. The same function matched twice is kept once;
/// a spec that matches nothing is an error.
///
/// # Errors
/// The first error of [`find_library`], [`Binary::open`] or
/// [`Binary::matching`] (a spec that matches nothing gives
/// [`SymbolError::NoMatch`], or [`SymbolError::Imported`] when the program
/// imports matching functions from its libraries).
pub fn resolve(exe: &Path, specs: &[FunctionSpec]) -> Result<Vec<Resolved>, SymbolError> {
    let mut binaries: HashMap<PathBuf, Arc<Binary>> = HashMap::new();
    let mut seen: HashSet<(PathBuf, ElfAddr)> = HashSet::new();
    let mut resolved = Vec::new();
    for spec in specs {
        let path = match &spec.library {
            Some(lib) => find_library(exe, lib)?,
            None => exe.to_owned(),
        };
        let binary = match binaries.get(&path) {
            Some(binary) => Arc::clone(binary),
            None => {
                let binary = Arc::new(Binary::open(&path)?);
                binaries.insert(path.clone(), Arc::clone(&binary));
                binary
            }
        };
        let functions = match binary.matching(&spec.pattern) {
            Err(e @ SymbolError::NoMatch { .. }) if spec.library.is_none() => {
                return Err(imported(exe, &spec.pattern).unwrap_or(e));
            }
            other => other?,
        };
        for function in functions {
            if seen.insert((path.clone(), function.addr)) {
                resolved.push(Resolved {
                    binary: Arc::clone(&binary),
                    function: function.clone(),
                });
            }
        }
    }
    Ok(resolved)
}

/// A pattern that matches nothing in `exe` but functions it imports:
/// [`SymbolError::Imported`] naming the libraries that define them, or
/// `None` (also when the libraries cannot be read).
fn imported(exe: &Path, pattern: &str) -> Option<SymbolError> {
    let libraries = super::imports::providers(exe, pattern).ok()?;
    (!libraries.is_empty()).then(|| SymbolError::Imported {
        pattern: pattern.to_owned(),
        binary: exe.to_owned(),
        libraries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{self, Fixture};

    fn specs(list: &[&str]) -> Vec<FunctionSpec> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn resolves_in_spec_order_without_duplicates() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let found = resolve(&bin, &specs(&["compute_sum", "compute_*", "main"])).unwrap();
        let names: Vec<&str> = found.iter().map(|r| r.function.name.as_str()).collect();
        assert_eq!(names, ["compute_sum", "compute_product", "main"]);
        assert!(Arc::ptr_eq(&found[0].binary, &found[2].binary));
        assert_eq!(found[0].binary.path, bin);
    }

    #[test]
    fn resolves_functions_in_libc() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let found = resolve(
            &bin,
            &specs(&["libc.so.6:malloc", "libc.so:malloc", "main"]),
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].function.name, "malloc");
        assert_eq!(found[0].binary.path.file_name().unwrap(), "libc.so.6");
        assert!(found[0].binary.pie);
        assert_eq!(found[1].function.name, "main");
    }

    #[test]
    fn a_spec_matching_nothing_fails_with_suggestions() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let err = resolve(&bin, &specs(&["compute_sum", "compte_sum"])).unwrap_err();
        let SymbolError::NoMatch {
            pattern,
            binary,
            suggestions,
            stripped,
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!(pattern, "compte_sum");
        assert_eq!(binary, bin);
        assert_eq!(suggestions.first().map(String::as_str), Some("compute_sum"));
        assert_eq!(stripped, None);
    }

    #[test]
    fn an_imported_function_named_without_its_library_names_the_library() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let err = resolve(&bin, &specs(&["main", "malloc"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no function matches `malloc` in {}: it imports `malloc` from libc.so.6; \
                 probe it there with -f 'libc.so.6:malloc'",
                bin.display()
            )
        );
        // The suggested spec resolves.
        let found = resolve(&bin, &specs(&["libc.so.6:malloc"])).unwrap();
        assert_eq!(found[0].function.name, "malloc");
    }

    #[test]
    fn a_missing_library_fails() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let err = resolve(&bin, &specs(&["libnope.so.1:f"])).unwrap_err();
        assert!(
            matches!(err, SymbolError::LibraryNotFound { ref library, .. } if library == "libnope.so.1")
        );
    }
}
