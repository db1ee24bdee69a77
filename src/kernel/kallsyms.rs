//! `/proc/kallsyms` and tracefs `available_filter_functions`: which kernel
//! functions exist and which of them can be traced.

use std::collections::{HashMap, HashSet};

use super::{closest, compile_glob, KernelError};

/// One line of `/proc/kallsyms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    /// The runtime address; 0 for every symbol when `kptr_restrict` hides
    /// addresses from the reader (see [`addresses_hidden`]).
    pub addr: u64,
    /// The `nm`-style type letter: `t`/`T` for code, `d`/`D`, `b`/`B`,
    /// `r`/`R` for data, `W` for weak symbols.
    pub kind: char,
    /// The symbol's name, e.g. `vfs_read`.
    pub name: String,
    /// The module that holds it, e.g. `ext4`, or `None` for the kernel
    /// image.
    pub module: Option<String>,
}

impl KernelSymbol {
    /// Whether the symbol is the entry of a function that can be probed:
    /// a text symbol (`t`/`T`) that is neither a `__pfx_` padding block nor
    /// a `.cold` part split out of another function.
    fn is_function(&self) -> bool {
        matches!(self.kind, 't' | 'T')
            && !self.name.starts_with("__pfx_")
            && !self.name.ends_with(".cold")
    }
}

/// The symbols of a `/proc/kallsyms` text, in its order.
///
/// Lines read `ADDRESS KIND NAME` with an optional `\t[MODULE]`; lines of
/// any other shape are skipped.
pub fn parse_kallsyms(text: &str) -> Vec<KernelSymbol> {
    text.lines().filter_map(parse_kallsyms_line).collect()
}

/// One `ADDRESS KIND NAME [MODULE]` line, or `None` if it has another shape.
fn parse_kallsyms_line(line: &str) -> Option<KernelSymbol> {
    let mut words = line.split_whitespace();
    let addr = u64::from_str_radix(words.next()?, 16).ok()?;
    let mut kind_chars = words.next()?.chars();
    let kind = kind_chars.next().filter(char::is_ascii_alphabetic)?;
    if kind_chars.next().is_some() {
        return None;
    }
    let name = words.next()?.to_string();
    let module = match words.next() {
        None => None,
        Some(word) => Some(word.strip_prefix('[')?.strip_suffix(']')?.to_string()),
    };
    if words.next().is_some() {
        return None;
    }
    Some(KernelSymbol {
        addr,
        kind,
        name,
        module,
    })
}

/// Whether `kptr_restrict` hides the addresses: there are symbols and all
/// their addresses are 0. Names still match then, but the caller must
/// probe by name (or run as root with `kernel.kptr_restrict=0`).
pub fn addresses_hidden(symbols: &[KernelSymbol]) -> bool {
    !symbols.is_empty() && symbols.iter().all(|symbol| symbol.addr == 0)
}

/// The function names of a tracefs `available_filter_functions` text
/// (`vfs_read`, or `foo_bar [mymod]` for a module's function), without
/// their modules. Also reads `available_filter_functions_addrs`, whose
/// lines start with an address.
pub fn parse_filter_functions(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let first = words.next()?;
            match words.next() {
                Some(second) if is_hex_address(first) && !second.starts_with('[') => Some(second),
                _ => Some(first),
            }
        })
        .map(str::to_string)
        .collect()
}

/// Whether `word` is a bare hexadecimal address such as `ffffffff816b8230`.
fn is_hex_address(word: &str) -> bool {
    word.len() >= 8 && word.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The kernel functions whose names match `pattern` (a name or a glob),
/// one per name (the first in `symbols`, which is the lowest address of
/// the kernel image), sorted by name.
///
/// Only function entries count (text symbols, without `__pfx_` padding
/// and `.cold` parts). With `traceable` (from [`parse_filter_functions`])
/// only the functions listed there are kept; pass `None` when that file
/// cannot be read.
///
/// A name defined more than once (a `static` function of several files)
/// is returned once: kprobes by name refuse such names on recent kernels,
/// and the caller can probe the address of the returned symbol instead.
pub fn match_functions<'a>(
    symbols: &'a [KernelSymbol],
    pattern: &str,
    traceable: Option<&HashSet<String>>,
) -> Result<Vec<&'a KernelSymbol>, KernelError> {
    let matcher = compile_glob(pattern)?.compile_matcher();
    let functions = unique_functions(symbols);
    let is_traceable =
        |symbol: &KernelSymbol| traceable.is_none_or(|set| set.contains(&symbol.name));
    let matched: Vec<&KernelSymbol> = functions
        .iter()
        .copied()
        .filter(|symbol| matcher.is_match(&symbol.name))
        .collect();
    let kept: Vec<&KernelSymbol> = matched
        .iter()
        .copied()
        .filter(|symbol| is_traceable(symbol))
        .collect();
    if !kept.is_empty() {
        return Ok(kept);
    }
    let suggestions = closest(
        pattern,
        functions
            .iter()
            .filter(|symbol| is_traceable(symbol))
            .map(|symbol| symbol.name.as_str()),
    )
    .into_iter()
    .map(str::to_string)
    .collect();
    Err(if matched.is_empty() {
        KernelError::NoMatch {
            pattern: pattern.to_string(),
            suggestions,
        }
    } else {
        KernelError::NotTraceable {
            pattern: pattern.to_string(),
            names: matched
                .iter()
                .take(3)
                .map(|symbol| symbol.name.clone())
                .collect(),
            suggestions,
        }
    })
}

/// The function entries of `symbols`, the first of each name, by name.
fn unique_functions(symbols: &[KernelSymbol]) -> Vec<&KernelSymbol> {
    let mut first: HashMap<&str, &KernelSymbol> = HashMap::new();
    for symbol in symbols.iter().filter(|symbol| symbol.is_function()) {
        first.entry(symbol.name.as_str()).or_insert(symbol);
    }
    let mut functions: Vec<&KernelSymbol> = first.into_values().collect();
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An excerpt of this machine's `/proc/kallsyms` (Linux 6.18, which
    /// has no loadable modules: the only module line is ftrace's).
    const KALLSYMS: &str = include_str!("testdata/kallsyms.txt");

    /// Module lines in the kernel's format (a tab before `[MODULE]`).
    const MODULE_LINES: &str = "ffffffffc0a01000 t ext4_es_init_tree\t[ext4]
ffffffffc0a01040 T ext4_file_read_iter\t[ext4]
ffffffffc0a02000 d ext4_fs_type\t[ext4]
";

    fn symbols() -> Vec<KernelSymbol> {
        parse_kallsyms(&format!("{KALLSYMS}{MODULE_LINES}"))
    }

    fn symbol(addr: u64, kind: char, name: &str, module: Option<&str>) -> KernelSymbol {
        KernelSymbol {
            addr,
            kind,
            name: name.to_string(),
            module: module.map(str::to_string),
        }
    }

    fn names<'a>(symbols: &[&'a KernelSymbol]) -> Vec<&'a str> {
        symbols.iter().map(|symbol| symbol.name.as_str()).collect()
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn parses_real_kallsyms() {
        let symbols = symbols();
        assert_eq!(symbols.len(), 42);
        assert_eq!(symbols[0], symbol(0xffffffff81000000, 'T', "_stext", None));
        let find = |name: &str| symbols.iter().find(|symbol| symbol.name == name).unwrap();
        assert_eq!(
            *find("vfs_read"),
            symbol(0xffffffff816b8230, 'T', "vfs_read", None)
        );
        assert_eq!(
            *find("vfs_readv"),
            symbol(0xffffffff816b6a70, 't', "vfs_readv", None)
        );
        assert_eq!(
            *find("abort"),
            symbol(0xffffffff81207610, 'W', "abort", None)
        );
        assert_eq!(
            *find("__start_BTF"),
            symbol(0xffffffff828c4000, 'R', "__start_BTF", None)
        );
        assert_eq!(
            *find("ftrace_trampoline"),
            symbol(
                0xffffffffc0201000,
                't',
                "ftrace_trampoline",
                Some("__builtin__ftrace")
            )
        );
        assert_eq!(
            *find("ext4_fs_type"),
            symbol(0xffffffffc0a02000, 'd', "ext4_fs_type", Some("ext4"))
        );
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "ffffffff816b8230 T vfs_read\n\
                    \n\
                    xyz T bad_address\n\
                    ffffffff816b8230 TT bad_kind\n\
                    ffffffff816b8230 1 digit_kind\n\
                    ffffffff816b8230 T\n\
                    ffffffff816b8230 T mod_no_brackets ext4\n\
                    ffffffff816b8230 T trailing [ext4] x\n\
                    0000000000000000 t hidden\t[ext4]\n";
        assert_eq!(
            parse_kallsyms(text),
            [
                symbol(0xffffffff816b8230, 'T', "vfs_read", None),
                symbol(0, 't', "hidden", Some("ext4")),
            ]
        );
    }

    #[test]
    fn hidden_addresses() {
        let hidden = parse_kallsyms("0000000000000000 T _stext\n0000000000000000 T vfs_read\n");
        assert!(addresses_hidden(&hidden));
        assert!(!addresses_hidden(&symbols()));
        assert!(!addresses_hidden(&[]));
    }

    #[test]
    fn filter_functions_drop_modules_and_addresses() {
        let text = "vfs_read\nfoo_bar [mymod]\n\n\
                    ffffffff816b8230 vfs_write\n\
                    ffffffffc0a01040 ext4_file_read_iter [ext4]\n";
        assert_eq!(
            parse_filter_functions(text),
            set(&["vfs_read", "foo_bar", "vfs_write", "ext4_file_read_iter"])
        );
    }

    #[test]
    fn matches_a_name() {
        let symbols = symbols();
        let found = match_functions(&symbols, "vfs_read", None).unwrap();
        assert_eq!(found, [&symbol(0xffffffff816b8230, 'T', "vfs_read", None)]);
    }

    #[test]
    fn matches_a_glob_sorted_without_padding_or_cold_parts() {
        let symbols = symbols();
        let found = match_functions(&symbols, "vfs_*", None).unwrap();
        assert_eq!(
            names(&found),
            [
                "vfs_get_tree",
                "vfs_read",
                "vfs_readlink",
                "vfs_readv",
                "vfs_write",
                "vfs_writev"
            ]
        );
        let found = match_functions(&symbols, "*sys_get*pid", None).unwrap();
        assert_eq!(names(&found), ["__x64_sys_getpid", "__x64_sys_getppid"]);
    }

    #[test]
    fn skips_data_and_weak_symbols() {
        let symbols = symbols();
        let found = match_functions(&symbols, "*", None).unwrap();
        assert!(found.iter().all(|symbol| matches!(symbol.kind, 't' | 'T')));
        assert_eq!(found.len(), 19);
    }

    #[test]
    fn dedups_by_name_keeping_the_first() {
        let symbols = symbols();
        let found = match_functions(&symbols, "init_once", None).unwrap();
        assert_eq!(found, [&symbol(0xffffffff816e1e60, 't', "init_once", None)]);
        let found = match_functions(&symbols, "ext4_file_read_iter", None).unwrap();
        assert_eq!(
            found,
            [&symbol(
                0xffffffff817a7020,
                't',
                "ext4_file_read_iter",
                None
            )]
        );
    }

    #[test]
    fn matches_module_functions() {
        let symbols = symbols();
        let found = match_functions(&symbols, "ext4_es_*", None).unwrap();
        assert_eq!(
            found,
            [&symbol(
                0xffffffffc0a01000,
                't',
                "ext4_es_init_tree",
                Some("ext4")
            )]
        );
    }

    #[test]
    fn restricts_to_traceable() {
        let symbols = symbols();
        let traceable = set(&["vfs_read", "vfs_write", "ksys_read"]);
        let found = match_functions(&symbols, "vfs_*", Some(&traceable)).unwrap();
        assert_eq!(names(&found), ["vfs_read", "vfs_write"]);
    }

    #[test]
    fn no_match_suggests_names() {
        let symbols = symbols();
        let err = match_functions(&symbols, "vfs_reed", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no kernel function matches 'vfs_reed'; did you mean vfs_read, vfs_readv, vfs_readlink?"
        );
        assert_eq!(
            match_functions(&symbols, "zzz_*", None)
                .unwrap_err()
                .to_string(),
            "no kernel function matches 'zzz_*'; look the name up in /proc/kallsyms"
        );
    }

    #[test]
    fn data_symbols_do_not_match() {
        let symbols = symbols();
        let err = match_functions(&symbols, "ext4_fs_type", None).unwrap_err();
        assert_eq!(
            err,
            KernelError::NoMatch {
                pattern: "ext4_fs_type".to_string(),
                suggestions: vec!["ext4_file_read_iter".to_string()],
            }
        );
    }

    #[test]
    fn untraceable_match_says_so() {
        let symbols = symbols();
        let traceable = set(&["vfs_read", "vfs_write"]);
        let found = match_functions(&symbols, "vfs_read*", Some(&traceable)).unwrap();
        assert_eq!(names(&found), ["vfs_read"]);
        let err = match_functions(&symbols, "vfs_readv", Some(&traceable)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel functions match 'vfs_readv' (vfs_readv) but none can be traced (inlined, notrace or blacklisted); did you mean vfs_read, vfs_write?"
        );
    }

    #[test]
    fn bad_glob_is_an_error() {
        let symbols = symbols();
        assert_eq!(
            match_functions(&symbols, "vfs_[", None).unwrap_err().to_string(),
            "bad kernel function pattern 'vfs_[': unclosed character class; missing ']'; write a function name or a glob such as 'vfs_*'"
        );
    }
}
