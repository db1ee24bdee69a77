//! The calibration targets: empty functions, one per class of first
//! instruction, written in assembly so that their first instruction is
//! exactly the one of their class.
//!
//! This is the crate's only module with `unsafe`: the `global_asm!` that
//! defines the targets, the declarations that make them callable, and one
//! read of a target's own code bytes.

#![allow(unsafe_code)]

use std::hint::black_box;

use crate::CalibrationError;

/// One calibration target: an empty function whose first instruction is of `class`.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Instruction class of the first instruction, as perfunc names it
    /// (`"push-rbp"`, `"endbr64"`, ...).
    pub class: &'static str,
    /// Symbol of the function in perfunc's own binary (global,
    /// `.type @function`, with a `.size`).
    pub symbol: &'static str,
    /// The function; calling it does nothing.
    pub func: extern "C" fn(),
    /// The encoding of the first instruction, as assembled.
    pub first_insn: &'static [u8],
}

impl Target {
    /// The bytes at the start of the function, as they are in memory, as
    /// many as [`Target::first_insn`] has. `None` for a `Target` that is
    /// not one of [`targets()`] (its fields are public, so one can be made
    /// by hand; only the crate's own functions are known to be long enough).
    pub fn first_bytes(&self) -> Option<&'static [u8]> {
        let addr = self.func as usize;
        let own = targets().iter().find(|t| t.func as usize == addr)?;
        let start = own.func as usize as *const u8;
        // SAFETY: `own.func` is one of the functions defined in the
        // `global_asm!` below, and `own.first_insn` is the encoding of its
        // first instruction, so the function's code is at least that many
        // bytes long (the tests check these bytes). The code lies in the
        // executable's text, which stays mapped readable and is never
        // written while the process lives, so the slice is valid and
        // unchanging for `'static`.
        Some(unsafe { std::slice::from_raw_parts(start, own.first_insn.len()) })
    }
}

/// The calibration targets of this architecture, in a fixed order
/// (perfunc's class order). Empty on anything but x86-64 Linux.
pub fn targets() -> &'static [Target] {
    &imp::TARGETS
}

/// The target of instruction class `class`.
pub fn target(class: &str) -> Result<&'static Target, CalibrationError> {
    targets()
        .iter()
        .find(|t| t.class == class)
        .ok_or_else(|| CalibrationError::UnknownClass {
            name: class.to_owned(),
            known: targets()
                .iter()
                .map(|t| t.class)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Calls every target (or only the one of class `class`) `calls` times,
/// through a [`black_box`]ed function pointer so that every call is a real
/// call. Returns how many targets were called: 0 if `class` names none.
pub fn run(class: Option<&str>, calls: u64) -> usize {
    let mut ran = 0;
    for target in targets()
        .iter()
        .filter(|t| class.is_none_or(|c| c == t.class))
    {
        for _ in 0..calls {
            (black_box(target.func))();
        }
        ran += 1;
    }
    ran
}

/// The nesting target: a `push-rbp` class function that calls the function
/// it is given, once. Probing it together with a target measures what a
/// target's probes cost its caller (see [`run_nested`]).
pub fn nest_target() -> Option<NestTarget> {
    imp::NEST
}

/// The nesting target (see [`nest_target`]).
#[derive(Debug, Clone, Copy)]
pub struct NestTarget {
    /// Class of its first instruction: always [`NEST_CLASS`].
    pub class: &'static str,
    /// Its symbol, `perfunc_cal_nest`.
    pub symbol: &'static str,
    /// The function; it calls its argument.
    pub func: extern "C" fn(extern "C" fn()),
}

/// Class of the first instruction of the nesting target.
pub const NEST_CLASS: &str = "push-rbp";

/// Calls the nesting target `calls` times for every target (or only the one
/// of class `class`), each time with that target as its argument: with both
/// probed, the nesting target's delta minus its own baseline is the full
/// cost of the inner target's probes as seen by a caller. Returns how many
/// targets were nested: 0 if `class` names none or there is no nesting
/// target.
pub fn run_nested(class: Option<&str>, calls: u64) -> usize {
    let Some(nest) = nest_target() else {
        return 0;
    };
    let mut ran = 0;
    for target in targets()
        .iter()
        .filter(|t| class.is_none_or(|c| c == t.class))
    {
        for _ in 0..calls {
            (black_box(nest.func))(black_box(target.func));
        }
        ran += 1;
    }
    ran
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::{NestTarget, Target, NEST_CLASS};

    /// One global function in its own 64-byte line of `.text.perfunc_cal`,
    /// typed and sized for ELF readers. AT&T syntax.
    macro_rules! cal_fn {
        ($name:literal, $body:literal) => {
            concat!(
                ".p2align 6\n",
                ".globl ",
                $name,
                "\n",
                ".type ",
                $name,
                ",@function\n",
                $name,
                ":\n",
                $body,
                "\n",
                ".size ",
                $name,
                ", . - ",
                $name,
                "\n",
            )
        };
    }

    std::arch::global_asm!(
        ".pushsection .text.perfunc_cal,\"ax\",@progbits",
        cal_fn!("perfunc_cal_push_rbp", "push %rbp\npop %rbp\nret"),
        cal_fn!("perfunc_cal_push_reg", "push %rbx\npop %rbx\nret"),
        cal_fn!("perfunc_cal_endbr64", "endbr64\nret"),
        cal_fn!("perfunc_cal_sub_rsp", "sub $8, %rsp\nadd $8, %rsp\nret"),
        cal_fn!("perfunc_cal_nop1", "nop\nret"),
        // nopl 0x0(%rax,%rax,1) with its zero disp8 kept: the assembler would
        // drop the displacement and emit the 4-byte form.
        cal_fn!(
            "perfunc_cal_nop5",
            ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\nret"
        ),
        cal_fn!("perfunc_cal_nop", "xchg %ax, %ax\nret"),
        cal_fn!("perfunc_cal_mov", "mov %rdi, %rax\nret"),
        cal_fn!("perfunc_cal_ret", "ret"),
        cal_fn!("perfunc_cal_other", "xor %eax, %eax\nret"),
        // At entry %rsp is 8 mod 16; after the push it is 16-aligned, as the
        // call needs.
        cal_fn!(
            "perfunc_cal_nest",
            "push %rbp\nmov %rsp, %rbp\ncall *%rdi\npop %rbp\nret"
        ),
        ".popsection",
        options(att_syntax)
    );

    // SAFETY: each function declared here is defined in the `global_asm!`
    // above with the C ABI signature given: it takes no arguments (the nest
    // target takes one function pointer in %rdi and calls it), returns
    // nothing, leaves every callee-saved register and the stack as it found
    // them, and touches no memory but its own stack slot. Calling them
    // cannot cause undefined behaviour, hence `safe`.
    unsafe extern "C" {
        safe fn perfunc_cal_push_rbp();
        safe fn perfunc_cal_push_reg();
        safe fn perfunc_cal_endbr64();
        safe fn perfunc_cal_sub_rsp();
        safe fn perfunc_cal_nop1();
        safe fn perfunc_cal_nop5();
        safe fn perfunc_cal_nop();
        safe fn perfunc_cal_mov();
        safe fn perfunc_cal_ret();
        safe fn perfunc_cal_other();
        safe fn perfunc_cal_nest(inner: extern "C" fn());
    }

    pub(super) static TARGETS: [Target; 10] = [
        Target {
            class: "push-rbp",
            symbol: "perfunc_cal_push_rbp",
            func: perfunc_cal_push_rbp,
            first_insn: &[0x55],
        },
        Target {
            class: "push-reg",
            symbol: "perfunc_cal_push_reg",
            func: perfunc_cal_push_reg,
            first_insn: &[0x53],
        },
        Target {
            class: "endbr64",
            symbol: "perfunc_cal_endbr64",
            func: perfunc_cal_endbr64,
            first_insn: &[0xf3, 0x0f, 0x1e, 0xfa],
        },
        Target {
            class: "sub-rsp",
            symbol: "perfunc_cal_sub_rsp",
            func: perfunc_cal_sub_rsp,
            first_insn: &[0x48, 0x83, 0xec, 0x08],
        },
        Target {
            class: "nop1",
            symbol: "perfunc_cal_nop1",
            func: perfunc_cal_nop1,
            first_insn: &[0x90],
        },
        Target {
            class: "nop5",
            symbol: "perfunc_cal_nop5",
            func: perfunc_cal_nop5,
            first_insn: &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        },
        Target {
            class: "nop",
            symbol: "perfunc_cal_nop",
            func: perfunc_cal_nop,
            first_insn: &[0x66, 0x90],
        },
        Target {
            class: "mov",
            symbol: "perfunc_cal_mov",
            func: perfunc_cal_mov,
            first_insn: &[0x48, 0x89, 0xf8],
        },
        Target {
            class: "ret",
            symbol: "perfunc_cal_ret",
            func: perfunc_cal_ret,
            first_insn: &[0xc3],
        },
        Target {
            class: "other",
            symbol: "perfunc_cal_other",
            func: perfunc_cal_other,
            first_insn: &[0x31, 0xc0],
        },
    ];

    pub(super) const NEST: Option<NestTarget> = Some(NestTarget {
        class: NEST_CLASS,
        symbol: "perfunc_cal_nest",
        func: perfunc_cal_nest,
    });
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::{NestTarget, Target};

    pub(super) static TARGETS: [Target; 0] = [];
    pub(super) const NEST: Option<NestTarget> = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected encoding of each class's first instruction, written out
    /// independently of the table in `imp`.
    const EXPECTED: [(&str, &[u8]); 10] = [
        ("push-rbp", &[0x55]),
        ("push-reg", &[0x53]),
        ("endbr64", &[0xf3, 0x0f, 0x1e, 0xfa]),
        ("sub-rsp", &[0x48, 0x83, 0xec, 0x08]),
        ("nop1", &[0x90]),
        ("nop5", &[0x0f, 0x1f, 0x44, 0x00, 0x00]),
        ("nop", &[0x66, 0x90]),
        ("mov", &[0x48, 0x89, 0xf8]),
        ("ret", &[0xc3]),
        ("other", &[0x31, 0xc0]),
    ];

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn every_class_has_a_target_in_order() {
        let classes: Vec<&str> = targets().iter().map(|t| t.class).collect();
        let expected: Vec<&str> = EXPECTED.iter().map(|(c, _)| *c).collect();
        assert_eq!(classes, expected);
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn first_bytes_in_memory_are_the_class_encoding() {
        for (class, bytes) in EXPECTED {
            let t = target(class).unwrap();
            assert_eq!(t.first_insn, bytes, "{class}: table");
            assert_eq!(t.first_bytes(), Some(bytes), "{class}: code in memory");
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn ret_target_is_a_lone_ret() {
        // The byte after the `ret` is alignment padding, never reached.
        assert_eq!(target("ret").unwrap().first_bytes(), Some(&[0xc3][..]));
    }

    #[test]
    fn first_bytes_of_a_foreign_function_are_not_read() {
        extern "C" fn mine() {}
        let t = Target {
            class: "ret",
            symbol: "mine",
            func: mine,
            first_insn: &[0xc3; 64],
        };
        assert_eq!(t.first_bytes(), None);
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn symbols_follow_the_class_names() {
        for t in targets() {
            assert_eq!(
                t.symbol,
                format!("perfunc_cal_{}", t.class.replace('-', "_")),
                "{}",
                t.class
            );
        }
        let nest = nest_target().unwrap();
        assert_eq!(nest.symbol, "perfunc_cal_nest");
        assert_eq!(nest.class, "push-rbp");
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn run_calls_the_targets() {
        assert_eq!(run(None, 1000), targets().len());
        assert_eq!(run(Some("endbr64"), 1000), 1);
        assert_eq!(run(Some("no-such-class"), 1000), 0);
        assert_eq!(run(None, 0), targets().len());
        assert_eq!(run_nested(None, 1000), targets().len());
        assert_eq!(run_nested(Some("ret"), 10), 1);
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    #[test]
    fn no_targets_elsewhere() {
        assert!(targets().is_empty());
        assert_eq!(run(None, 10), 0);
    }

    #[test]
    fn unknown_class_lists_the_known_ones() {
        let err = target("push-rbx").unwrap_err().to_string();
        assert!(err.contains("push-rbx"), "{err}");
        if !targets().is_empty() {
            assert!(err.contains("push-rbp, push-reg"), "{err}");
        }
    }
}
