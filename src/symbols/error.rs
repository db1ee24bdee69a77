//! The one error type of the symbols module.

use std::path::PathBuf;

/// Everything that can go wrong while finding functions to probe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    /// A file could not be read.
    #[error("failed to read {}: {cause}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// A path names something other than a regular file: reading a device
    /// such as `/dev/zero` would never end.
    #[error("{} is {kind}, not a regular file; give the path of an ELF executable or shared library", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: super::FileKind,
    },
    /// A binary is not a valid ELF file.
    #[error("failed to parse {} as an ELF file: {cause}; give the path of an ELF executable or shared library", path.display())]
    Elf {
        /// The binary.
        path: PathBuf,
        /// What the parser said.
        cause: object::Error,
    },
    /// The separate debug file given for a binary is not a valid ELF file.
    #[error("failed to parse the debug file of {}: {cause}; remove or rebuild that debug file", path.display())]
    DebugElf {
        /// The binary the debug file belongs to.
        path: PathBuf,
        /// What the parser said.
        cause: object::Error,
    },
    /// The binary is ELF but not x86-64 code.
    #[error("{} holds {arch} code; perfunc probes 64-bit x86-64 binaries only", path.display())]
    UnsupportedArch {
        /// The binary.
        path: PathBuf,
        /// The architecture found, as the `object` crate names it.
        arch: String,
    },
    /// A pattern is not a valid glob.
    #[error("invalid function pattern `{pattern}`: {cause}; escape `[`, `]`, `{{` and `}}` with `\\` to match them literally")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What the glob compiler said.
        cause: globset::Error,
    },
    /// A pattern matched no function of a binary.
    #[error("no function matches `{pattern}` in {}{}{}", binary.display(), stripped_text(binary, stripped.as_deref()), suggestion_text(suggestions, stripped.is_some()))]
    NoMatch {
        /// The pattern.
        pattern: String,
        /// The binary searched.
        binary: PathBuf,
        /// Up to five function names close to the pattern, closest first.
        suggestions: Vec<String>,
        /// When the binary is stripped and no debug file was found: where
        /// one was looked for ([`crate::symbols::Binary::stripped`]).
        stripped: Option<Vec<PathBuf>>,
    },
    /// A pattern matched no function of a program, which imports matching
    /// functions from shared libraries: they are probed with `LIB:PATTERN`.
    #[error("no function matches `{pattern}` in {}: it imports {} from {}; probe {} there with {}", binary.display(), imports_text(pattern), libraries.join(", "), if super::pattern::is_glob(pattern) { "them" } else { "it" }, library_specs(libraries, pattern))]
    Imported {
        /// The pattern.
        pattern: String,
        /// The program searched.
        binary: PathBuf,
        /// The sonames of the libraries that define the matching imports.
        libraries: Vec<String>,
    },
    /// A `-f` argument cannot be understood.
    #[error("invalid function spec `{spec}`: {reason}; write PATTERN or LIB:PATTERN, e.g. `compute_*` or `libc.so.6:malloc`")]
    BadSpec {
        /// The argument.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name of an instruction class is unknown.
    #[error("unknown instruction class `{name}`; use one of push-rbp, push-reg, endbr64, sub-rsp, nop1, nop5, nop, mov, ret, other")]
    UnknownInsnClass {
        /// The name given.
        name: String,
    },
    /// A shared library was not found where the dynamic loader would look.
    #[error("shared library `{library}` not found for {}; searched {}; give its path instead (e.g. /usr/lib/x86_64-linux-gnu/{library}:PATTERN)", exe.display(), searched_text(searched))]
    LibraryNotFound {
        /// The library asked for.
        library: String,
        /// The executable whose dependencies were searched.
        exe: PathBuf,
        /// The directories and files searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The dynamic loader's cache could not be parsed.
    #[error(
        "failed to parse the ld.so cache: {reason}; run `ldconfig` to rebuild /etc/ld.so.cache"
    )]
    LdCache {
        /// What is wrong with it.
        reason: String,
    },
}

fn stripped_text(binary: &std::path::Path, looked: Option<&[PathBuf]>) -> String {
    let Some(looked) = looked else {
        return String::new();
    };
    let places = if looked.is_empty() {
        "it has neither a build id nor a .gnu_debuglink to find one by".to_owned()
    } else {
        let list: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
        format!("looked for {}", list.join(", "))
    };
    format!(
        "; {} is stripped (no .symtab: only its dynamic symbols were searched) and no \
         separate debug file was found ({places}); install its debug symbols (Debian: \
         the -dbgsym package) or probe an unstripped build",
        binary.display()
    )
}

fn suggestion_text(suggestions: &[String], stripped: bool) -> String {
    if suggestions.is_empty() && stripped {
        String::new()
    } else if suggestions.is_empty() {
        "; check the name, or use a glob such as `*name*`".to_owned()
    } else {
        format!("; closest names: {}", suggestions.join(", "))
    }
}

fn imports_text(pattern: &str) -> String {
    if super::pattern::is_glob(pattern) {
        format!("functions matching `{pattern}`")
    } else {
        format!("`{pattern}`")
    }
}

fn library_specs(libraries: &[String], pattern: &str) -> String {
    let specs: Vec<String> = libraries
        .iter()
        .map(|lib| format!("-f '{lib}:{pattern}'"))
        .collect();
    specs.join(" ")
}

fn searched_text(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        return "nothing".to_owned();
    }
    let names: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

impl SymbolError {
    /// An [`SymbolError::Io`] for `path`, or [`SymbolError::NotRegular`]
    /// when the file was refused as not regular.
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> SymbolError {
        if let Some(kind) = super::file::not_regular(&cause) {
            return SymbolError::NotRegular {
                path: path.into(),
                kind,
            };
        }
        SymbolError::Io {
            path: path.into(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_match_lists_suggestions_or_a_hint() {
        let with = SymbolError::NoMatch {
            pattern: "compte".into(),
            binary: "/bin/app".into(),
            suggestions: vec!["compute".into(), "compete".into()],
            stripped: None,
        };
        assert_eq!(
            with.to_string(),
            "no function matches `compte` in /bin/app; closest names: compute, compete"
        );
        let without = SymbolError::NoMatch {
            pattern: "x".into(),
            binary: "/bin/app".into(),
            suggestions: vec![],
            stripped: None,
        };
        assert_eq!(
            without.to_string(),
            "no function matches `x` in /bin/app; check the name, or use a glob such as `*name*`"
        );
        let stripped = SymbolError::NoMatch {
            pattern: "x".into(),
            binary: "/bin/app".into(),
            suggestions: vec!["main".into()],
            stripped: Some(vec!["/usr/lib/debug/.build-id/ab/cd.debug".into()]),
        };
        assert_eq!(
            stripped.to_string(),
            "no function matches `x` in /bin/app; /bin/app is stripped (no .symtab: only its \
             dynamic symbols were searched) and no separate debug file was found (looked for \
             /usr/lib/debug/.build-id/ab/cd.debug); install its debug symbols (Debian: the \
             -dbgsym package) or probe an unstripped build; closest names: main"
        );
    }

    #[test]
    fn an_imported_function_names_its_library_spec() {
        let one = SymbolError::Imported {
            pattern: "sqlite3_step".into(),
            binary: "/usr/bin/sqlite3".into(),
            libraries: vec!["libsqlite3.so.0".into()],
        };
        assert_eq!(
            one.to_string(),
            "no function matches `sqlite3_step` in /usr/bin/sqlite3: it imports `sqlite3_step` \
             from libsqlite3.so.0; probe it there with -f 'libsqlite3.so.0:sqlite3_step'"
        );
        let two = SymbolError::Imported {
            pattern: "*sin*".into(),
            binary: "/bin/app".into(),
            libraries: vec!["libc.so.6".into(), "libm.so.6".into()],
        };
        assert_eq!(
            two.to_string(),
            "no function matches `*sin*` in /bin/app: it imports functions matching `*sin*` \
             from libc.so.6, libm.so.6; probe them there with -f 'libc.so.6:*sin*' \
             -f 'libm.so.6:*sin*'"
        );
    }

    #[test]
    fn library_not_found_lists_searched_dirs() {
        let err = SymbolError::LibraryNotFound {
            library: "libnope.so.1".into(),
            exe: "/bin/app".into(),
            searched: vec!["/etc/ld.so.cache".into(), "/usr/lib".into()],
        };
        assert_eq!(
            err.to_string(),
            "shared library `libnope.so.1` not found for /bin/app; searched /etc/ld.so.cache, \
             /usr/lib; give its path instead (e.g. /usr/lib/x86_64-linux-gnu/libnope.so.1:PATTERN)"
        );
    }
}
