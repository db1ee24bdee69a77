//! Fixture binaries built at test time with gcc, g++ and rustc.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A C program with global, static and `main` functions.
pub(crate) const C_SOURCE: &str = r#"
#include <stdio.h>
#include <stdlib.h>
static __attribute__((noinline)) int static_helper(int x) { return x * 3; }
int compute_sum(int n) { int s = 0; for (int i = 0; i < n; i++) s += static_helper(i); return s; }
long compute_product(int n) { long p = 1; for (int i = 1; i <= n; i++) p *= i; return p; }
int main(int argc, char **argv) {
    (void)argv;
    void *m = malloc(16);
    printf("%d %ld %p\n", compute_sum(argc), compute_product(argc), m);
    free(m);
    return 0;
}
"#;

/// Functions whose first instruction at -O2 is `ret`, `mov`, `sub $N,%rsp`,
/// `push %rbx` and `lea`.
pub(crate) const CLASS_SOURCE: &str = r#"
int counter;
__attribute__((noinline)) void empty(void) {}
__attribute__((noinline)) int read_counter(void) { return counter; }
__attribute__((noinline)) void sink(char *p) { __asm__ volatile("" : : "r"(p) : "memory"); }
__attribute__((noinline)) void with_buffer(void) { char b[64]; sink(b); }
int rand(void);
__attribute__((noinline)) int saves_rbx(int x) { int y = rand(); return y + x; }
__attribute__((noinline)) int add(int a, int b) { return a + b; }
int main(int argc, char **argv) {
    (void)argv;
    empty();
    with_buffer();
    return read_counter() + saves_rbx(argc) + add(argc, 2);
}
"#;

/// A C++ program with a namespace function and a const method.
pub(crate) const CPP_SOURCE: &str = r#"
#include <cstdio>
namespace ns {
__attribute__((noinline)) int foo(int x) { return x * 2; }
struct Widget {
    int v;
    __attribute__((noinline)) int bar() const { return v + 1; }
};
}
int main(int argc, char **) {
    ns::Widget w{argc};
    std::printf("%d %d\n", ns::foo(argc), w.bar());
    return 0;
}
"#;

/// A Rust program with a `#[inline(never)]` function in a module.
pub(crate) const RUST_SOURCE: &str = r#"
pub mod module {
    #[inline(never)]
    pub fn func(x: u64) -> u64 {
        x.wrapping_mul(31) ^ 7
    }
}
fn main() {
    println!("{}", module::func(std::hint::black_box(3)));
}
"#;

/// A temporary directory to build fixtures in.
pub(crate) struct Fixture {
    dir: TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `program` with `args`; panics with its stderr when it fails.
    pub(crate) fn run(&self, program: &str, args: &[&str]) -> String {
        let output = Command::new(program)
            .args(args)
            .current_dir(self.dir())
            .output()
            .unwrap_or_else(|e| panic!("failed to run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Compiles C `source` into `dir/name` (no CET, no stack protector
    /// unless `args` says otherwise).
    pub(crate) fn gcc_in(&self, dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
        self.compile("gcc", "c", dir, name, source, args)
    }

    /// Compiles C `source` into the fixture directory.
    pub(crate) fn gcc(&self, name: &str, source: &str, args: &[&str]) -> PathBuf {
        self.compile("gcc", "c", self.dir(), name, source, args)
    }

    /// Compiles C++ `source` into the fixture directory.
    pub(crate) fn gxx(&self, name: &str, source: &str, args: &[&str]) -> PathBuf {
        self.compile("g++", "cpp", self.dir(), name, source, args)
    }

    fn compile(
        &self,
        compiler: &str,
        ext: &str,
        dir: &Path,
        name: &str,
        source: &str,
        args: &[&str],
    ) -> PathBuf {
        let src = dir.join(format!("{name}.{ext}"));
        std::fs::write(&src, source).expect("write the fixture source");
        let out = dir.join(name);
        let mut all = vec!["-fcf-protection=none", "-fno-stack-protector", "-o"];
        all.extend([out.to_str().unwrap(), src.to_str().unwrap()]);
        all.extend(args);
        self.run(compiler, &all);
        out
    }

    /// Compiles Rust `source` as crate `name` with `rustc -O`.
    pub(crate) fn rustc(&self, name: &str, source: &str, args: &[&str]) -> PathBuf {
        let src = self.dir().join(format!("{name}.rs"));
        std::fs::write(&src, source).expect("write the fixture source");
        let out = self.dir().join(name);
        let mut all = vec!["-O", "--crate-type", "bin", "--crate-name", name, "-o"];
        all.extend([out.to_str().unwrap(), src.to_str().unwrap()]);
        all.extend(args);
        self.run("rustc", &all);
        out
    }

    /// Copies `from` to `name` in the fixture directory.
    pub(crate) fn copy(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.dir().join(name);
        std::fs::copy(from, &to).expect("copy the fixture");
        to
    }

    /// Moves the symbols of `bin` into `bin.debug`, strips `bin` and links
    /// it to the debug file; returns the debug file's canonical path.
    pub(crate) fn split_debug(&self, bin: &Path) -> PathBuf {
        let bin_str = bin.to_str().unwrap();
        let debug = PathBuf::from(format!("{bin_str}.debug"));
        let debug_str = debug.to_str().unwrap();
        self.run("objcopy", &["--only-keep-debug", bin_str, debug_str]);
        self.run("strip", &["--strip-all", bin_str]);
        let link = format!("--add-gnu-debuglink={debug_str}");
        self.run("objcopy", &[&link, bin_str]);
        std::fs::canonicalize(debug).unwrap()
    }

    /// Address and bytes of the first instruction of `function`, as objdump shows them.
    pub(crate) fn objdump_first_insn(&self, bin: &Path, function: &str) -> (u64, Vec<u8>) {
        let select = format!("--disassemble={function}");
        let text = self.run("objdump", &["-d", &select, bin.to_str().unwrap()]);
        let header = format!("<{function}>:");
        let line = text
            .lines()
            .skip_while(|l| !l.ends_with(&header))
            .nth(1)
            .unwrap_or_else(|| panic!("objdump shows no {function}:\n{text}"));
        let mut fields = line.split('\t');
        let addr = fields.next().unwrap().trim().trim_end_matches(':');
        let bytes = fields.next().unwrap().split_whitespace();
        let bytes = bytes.map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
        (u64::from_str_radix(addr, 16).unwrap(), bytes)
    }
}
