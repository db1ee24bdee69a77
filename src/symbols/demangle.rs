//! Symbol names for display and matching: Rust, C++ and plain C.

use cpp_demangle::{DemangleOptions, Symbol};

/// The name to show for the raw symbol `raw`: Rust paths without their hash,
/// C++ names with their parameter list, anything else unchanged.
pub(crate) fn demangle(raw: &str) -> String {
    if let Ok(rust) = rustc_demangle::try_demangle(raw) {
        return format!("{rust:#}");
    }
    cpp(raw, &DemangleOptions::new()).unwrap_or_else(|| raw.to_owned())
}

/// For a C++ symbol, its demangled name without parameter list and return
/// type (`ns::foo` for `ns::foo(int)`); `None` for anything else.
pub(crate) fn cpp_base_name(raw: &str) -> Option<String> {
    if rustc_demangle::try_demangle(raw).is_ok() {
        return None;
    }
    cpp(raw, &DemangleOptions::new().no_params().no_return_type())
}

fn cpp(raw: &str, options: &DemangleOptions) -> Option<String> {
    if !raw.starts_with("_Z") {
        return None;
    }
    let symbol = Symbol::new(raw.as_bytes()).ok()?;
    symbol.demangle_with_options(options).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_legacy_loses_its_hash() {
        assert_eq!(
            demangle("_ZN7mycrate6module4func17h0123456789abcdefE"),
            "mycrate::module::func"
        );
        assert_eq!(
            cpp_base_name("_ZN7mycrate6module4func17h0123456789abcdefE"),
            None
        );
    }

    #[test]
    fn rust_v0_loses_its_disambiguator() {
        assert_eq!(
            demangle("_RNvNtCs1234_7mycrate6module4func"),
            "mycrate::module::func"
        );
    }

    #[test]
    fn cpp_keeps_parameters_and_base_name_drops_them() {
        assert_eq!(demangle("_ZN2ns3fooEi"), "ns::foo(int)");
        assert_eq!(cpp_base_name("_ZN2ns3fooEi").as_deref(), Some("ns::foo"));
        assert_eq!(demangle("_ZN2ns3fooIiEEvT_"), "void ns::foo<int>(int)");
        assert_eq!(
            cpp_base_name("_ZN2ns3fooIiEEvT_").as_deref(),
            Some("ns::foo<int>")
        );
    }

    #[test]
    fn c_names_and_garbage_stay_raw() {
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("_Z"), "_Z");
        assert_eq!(cpp_base_name("main"), None);
    }
}
