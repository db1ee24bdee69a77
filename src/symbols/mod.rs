//! ELF functions to probe: names, addresses, file offsets, sizes and the
//! class of each function's first instruction.
//!
//! The parsing side works on byte slices ([`Binary::parse`], the ld.so cache
//! and config parsers); the functions that read files ([`Binary::open`],
//! [`read_build_id`], [`find_library`], [`resolve`]) are thin layers on top.
//!
//! - [`Binary`]: the functions of one ELF file, from `.symtab` and `.dynsym`,
//!   or from a separate debug file when the binary is stripped.
//! - [`InsnClass`]: what the first instruction of a function is, which decides
//!   how much a uprobe on it costs.
//! - [`FunctionSpec`] and [`resolve`]: `-f` arguments to probe sites, in the
//!   executable or in a shared library found the way the dynamic loader does
//!   ([`find_library`]).
//!
//! ```no_run
//! use perfunc::symbols::{resolve, FunctionSpec};
//! # fn main() -> Result<(), perfunc::symbols::SymbolError> {
//! let specs: Vec<FunctionSpec> = vec!["compute_*".parse()?, "libc.so.6:malloc".parse()?];
//! for site in resolve("./app".as_ref(), &specs)? {
//!     println!("{} at {:#x} ({})", site.function.name, site.function.offset.0, site.function.class);
//! }
//! # Ok(())
//! # }
//! ```

mod debug;
pub(crate) mod demangle;
mod elf;
mod error;
pub(crate) mod file;
mod imports;
mod insn;
mod library;
mod pattern;
mod resolve;
mod spec;
#[cfg(test)]
mod testutil;

pub use elf::{read_build_id, Binary, ElfAddr, FileOffset, Function};
pub use error::SymbolError;
pub use file::FileKind;
pub use insn::{endbr64_skip, kernel_refusal, InsnClass};
pub use library::find_library;
pub use resolve::{resolve, Resolved};
pub use spec::FunctionSpec;
