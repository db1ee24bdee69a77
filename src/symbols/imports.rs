//! What a program imports from its shared libraries: a function named
//! without its library (`-f sqlite3_step`) is not in the program but in a
//! library it loads, and the error says which `LIB:PATTERN` to give.

use std::path::Path;

use object::{Object, ObjectSymbol, SymbolKind};

use super::demangle::demangle;
use super::elf::with_lazy_elf;
use super::library::needed_libraries;
use super::pattern::Matcher;
use super::SymbolError;

/// The functions of `.dynsym` in the ELF file at `path`: the undefined ones
/// (what it imports) or the defined ones (what it exports).
fn dynamic_functions(path: &Path, imported: bool) -> Result<Vec<String>, SymbolError> {
    with_lazy_elf(path, |elf| {
        Ok(elf
            .dynamic_symbols()
            .filter(|sym| sym.is_undefined() == imported)
            .filter(|sym| match sym.kind() {
                SymbolKind::Text => true,
                // Imports are often untyped.
                SymbolKind::Unknown => imported,
                _ => false,
            })
            .filter_map(|sym| sym.name().ok().filter(|n| !n.is_empty()).map(str::to_owned))
            .collect())
    })
}

/// Whether `matcher` matches the symbol `raw` (raw or demangled).
fn matches_name(matcher: &Matcher, raw: &str) -> bool {
    match matcher {
        Matcher::Exact(name) => raw == name || demangle(raw) == *name,
        Matcher::Glob(glob) => glob.is_match(raw) || glob.is_match(demangle(raw)),
    }
}

/// The `DT_NEEDED` names (sonames, as `LIB:PATTERN` takes them) of the
/// libraries that define the functions `exe` imports matching `pattern`,
/// each once, in the loader's search order of the first import each
/// provides. Empty when `exe` imports no such function.
///
/// # Errors
/// Those of reading `exe` and [`SymbolError::BadPattern`].
pub(crate) fn providers(exe: &Path, pattern: &str) -> Result<Vec<String>, SymbolError> {
    let matcher = Matcher::new(pattern)?;
    let imports: Vec<String> = dynamic_functions(exe, true)?
        .into_iter()
        .filter(|name| matches_name(&matcher, name))
        .collect();
    if imports.is_empty() {
        return Ok(Vec::new());
    }
    // The loader binds each import to the first library in load order
    // (breadth first over DT_NEEDED) that defines it.
    let exports: Vec<(String, Vec<String>)> = needed_libraries(exe)?
        .into_iter()
        .filter_map(|(name, path)| Some((name, dynamic_functions(&path, false).ok()?)))
        .collect();
    let mut libraries: Vec<String> = Vec::new();
    for import in &imports {
        let provider = exports
            .iter()
            .find(|(_, defined)| defined.iter().any(|d| d == import));
        if let Some((name, _)) = provider {
            if !libraries.contains(name) {
                libraries.push(name.clone());
            }
        }
    }
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{self, Fixture};

    #[test]
    fn an_imported_libc_function_is_found_in_libc() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        assert_eq!(providers(&bin, "malloc").unwrap(), ["libc.so.6"]);
        assert_eq!(providers(&bin, "mall*").unwrap(), ["libc.so.6"]);
        // Defined in the program itself, not imported.
        assert!(providers(&bin, "compute_sum").unwrap().is_empty());
        assert!(providers(&bin, "no_such_function").unwrap().is_empty());
    }
}
