//! The class of a function's first instruction.

use std::fmt;
use std::str::FromStr;

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use serde::{Deserialize, Serialize};

use super::SymbolError;

/// The longest x86-64 instruction: enough bytes to decode the first one.
pub(crate) const MAX_INSN_LEN: usize = 15;

/// Class of a function's first instruction, which decides the uprobe's cost:
/// the x86-64 kernel emulates `push reg` and nops (cheap), and single-steps
/// everything else out of line (~10 µs more per hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InsnClass {
    /// `push %rbp`, the classic frame-pointer prologue.
    PushRbp,
    /// `push` of another general-purpose register.
    PushReg,
    /// `endbr64`, the CET landing pad (`-fcf-protection`).
    Endbr64,
    /// `sub $imm, %rsp`: a stack frame without frame pointer.
    SubRsp,
    /// The one-byte `nop` (0x90).
    Nop1,
    /// The five-byte `nop` (0f 1f 44 00 00), as left by `-pg`/`-mfentry` patching.
    Nop5,
    /// Any other `nop` form.
    NopOther,
    /// A `mov` of any operands.
    Mov,
    /// `ret`: an empty function.
    Ret,
    /// Anything else, undecodable bytes included.
    Other,
}

use InsnClass::*;

const ALL: [InsnClass; 10] = [
    PushRbp, PushReg, Endbr64, SubRsp, Nop1, Nop5, NopOther, Mov, Ret, Other,
];

/// The bytes of `endbr64`.
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// Where to place the probes of a function whose code (all of it) starts at
/// `addr`: past a leading `endbr64` when that is safe, so the probe lands on
/// the next instruction (often an emulated `push`) instead of a
/// single-stepped one. Returns the bytes to skip and the class of the
/// instruction there, or `None` to probe the first instruction.
///
/// Safe means: the function starts with `endbr64` and no instruction of the
/// function branches to `addr + 4` (a loop back to the instruction after
/// the landing pad would hit the entry probe again without a new call).
/// Every call and indirect branch to the function lands on `endbr64` and
/// falls through to the probe, so no call is missed. Branches from other
/// functions to `addr + 4` are not checked; compilers do not emit them.
pub fn endbr64_skip(code: &[u8], addr: u64) -> Option<(u8, InsnClass)> {
    if !code.starts_with(&ENDBR64) || code.len() <= ENDBR64.len() {
        return None;
    }
    let after = addr + ENDBR64.len() as u64;
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            return None;
        }
        let branches_to_after = (0..insn.op_count()).any(|i| {
            matches!(
                insn.op_kind(i),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            ) && insn.near_branch_target() == after
        });
        if branches_to_after {
            return None;
        }
    }
    Some((ENDBR64.len() as u8, InsnClass::of(&code[ENDBR64.len()..])))
}

/// Why the x86-64 kernel refuses a uprobe on the first instruction of
/// `code`, if it does (opening such a probe fails with error 524,
/// `ENOTSUPP`, and where the binary is mapped later it never fires).
/// Its `uprobe_init_insn` rejects an instruction with a `lock` prefix or
/// an ES, CS, SS or DS segment prefix (`is_prefix_bad`), and opcodes
/// missing from its table of instructions it can run out of line
/// (`good_insns_64`); of those, the ones code can start with are checked:
/// `int3`, `int N`, `int1`, `iret`, `hlt`, and `0x62` (EVEX, AVX-512).
/// Other instructions are accepted.
pub fn kernel_refusal(code: &[u8]) -> Option<&'static str> {
    let mut rest = code;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            0xf0 => return Some("a lock prefix"),
            0x26 | 0x2e | 0x36 | 0x3e => return Some("an ES, CS, SS or DS segment prefix"),
            // Other legacy prefixes: the opcode comes later.
            0xf2 | 0xf3 | 0x64 | 0x65 | 0x66 | 0x67 => rest = tail,
            // REX: the next byte is the opcode.
            0x40..=0x4f => return tail.first().and_then(|&op| refused_opcode(op)),
            op => return refused_opcode(op),
        }
    }
    None
}

/// The one-byte opcodes [`kernel_refusal`] checks.
fn refused_opcode(op: u8) -> Option<&'static str> {
    match op {
        0xcc => Some("int3"),
        0xcd | 0xce | 0xf1 => Some("a software interrupt"),
        0xcf => Some("iret"),
        0xf4 => Some("hlt"),
        0x62 => Some("an EVEX (AVX-512) encoding"),
        _ => None,
    }
}

impl InsnClass {
    /// Decodes the first instruction of `code` (64-bit mode) and classifies it.
    pub fn of(code: &[u8]) -> InsnClass {
        let mut decoder = Decoder::new(64, code, DecoderOptions::NONE);
        if !decoder.can_decode() {
            return Other;
        }
        let insn = decoder.decode();
        if insn.is_invalid() {
            return Other;
        }
        classify(&insn)
    }

    /// Whether the kernel emulates this instruction instead of single-stepping it.
    pub fn emulated(self) -> bool {
        matches!(self, PushRbp | PushReg | Nop1 | Nop5 | NopOther)
    }

    /// The short name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PushRbp => "push-rbp",
            PushReg => "push-reg",
            Endbr64 => "endbr64",
            SubRsp => "sub-rsp",
            Nop1 => "nop1",
            Nop5 => "nop5",
            NopOther => "nop",
            Mov => "mov",
            Ret => "ret",
            Other => "other",
        }
    }

    /// Every class, in declaration order.
    pub fn all() -> &'static [InsnClass] {
        &ALL
    }
}

fn classify(insn: &Instruction) -> InsnClass {
    match insn.mnemonic() {
        Mnemonic::Push if insn.op0_kind() == OpKind::Register => {
            if insn.op0_register() == Register::RBP {
                PushRbp
            } else {
                PushReg
            }
        }
        Mnemonic::Endbr64 => Endbr64,
        Mnemonic::Sub if insn.op0_register() == Register::RSP && is_immediate(insn.op1_kind()) => {
            SubRsp
        }
        Mnemonic::Nop => match insn.len() {
            1 => Nop1,
            5 => Nop5,
            _ => NopOther,
        },
        Mnemonic::Mov => Mov,
        Mnemonic::Ret => Ret,
        _ => Other,
    }
}

fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32
            | OpKind::Immediate32to64
    )
}

impl fmt::Display for InsnClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InsnClass {
    type Err = SymbolError;

    /// Parses a [`InsnClass::name`]; `nop-other` (the serde name) is accepted too.
    fn from_str(s: &str) -> Result<InsnClass, SymbolError> {
        if s == "nop-other" {
            return Ok(NopOther);
        }
        ALL.iter()
            .copied()
            .find(|class| class.name() == s)
            .ok_or_else(|| SymbolError::UnknownInsnClass { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_refusals_are_named() {
        // lock bts %eax,(%rdi); lock xadd %rax,(%rdx) (REX after lock)
        assert_eq!(
            kernel_refusal(&[0xf0, 0x0f, 0xab, 0x07]),
            Some("a lock prefix")
        );
        assert_eq!(
            kernel_refusal(&[0xf0, 0x48, 0x0f, 0xc1, 0x02]),
            Some("a lock prefix")
        );
        // notrack jmp *%rax; cs nopw 0x0(%rax,%rax,1) (operand size, then cs)
        let segment = Some("an ES, CS, SS or DS segment prefix");
        assert_eq!(kernel_refusal(&[0x3e, 0xff, 0xe0]), segment);
        assert_eq!(
            kernel_refusal(&[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]),
            segment
        );
        assert_eq!(kernel_refusal(&[0xcc]), Some("int3"));
        // vmovdqu64 (%rsi),%zmm16
        assert_eq!(
            kernel_refusal(&[0x62, 0xe1, 0xfe, 0x48, 0x6f, 0x06]),
            Some("an EVEX (AVX-512) encoding")
        );
        // REX then the opcode: rex.W int3 is refused, rex.W mov is not.
        assert_eq!(kernel_refusal(&[0x48, 0xcc]), Some("int3"));
        // push %rbp; mov %rsp,%rbp; endbr64; xchg %ax,%ax; fs mov; rep stos
        for ok in [
            &[0x55][..],
            &[0x48, 0x89, 0xe5],
            &[0xf3, 0x0f, 0x1e, 0xfa],
            &[0x66, 0x90],
            &[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0],
            &[0xf3, 0x48, 0xab],
            &[],
        ] {
            assert_eq!(kernel_refusal(ok), None, "{ok:02x?}");
        }
    }

    #[test]
    fn endbr64_is_skipped_when_nothing_branches_past_it() {
        // endbr64; push %rbp; mov %rsp,%rbp; pop %rbp; ret
        let code = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3];
        assert_eq!(endbr64_skip(&code, 0x1000), Some((4, PushRbp)));
    }

    #[test]
    fn endbr64_is_kept_when_a_loop_returns_past_it() {
        // 0x1000: endbr64; 0x1004: dec %edi; 0x1006: jne 0x1004; 0x1008: ret
        let code = [0xf3, 0x0f, 0x1e, 0xfa, 0xff, 0xcf, 0x75, 0xfc, 0xc3];
        assert_eq!(endbr64_skip(&code, 0x1000), None);
    }

    #[test]
    fn other_first_instructions_are_not_skipped() {
        assert_eq!(endbr64_skip(&[0x55, 0xc3], 0x1000), None);
        assert_eq!(endbr64_skip(&[0xf3, 0x0f, 0x1e, 0xfa], 0x1000), None);
    }

    #[test]
    fn classifies_every_class_from_raw_bytes() {
        let cases: [(&[u8], InsnClass); 16] = [
            (&[0x55, 0x48, 0x89, 0xe5], PushRbp),
            (&[0x41, 0x54], PushReg),
            (&[0x53], PushReg),
            (&[0xf3, 0x0f, 0x1e, 0xfa], Endbr64),
            (&[0x48, 0x83, 0xec, 0x08], SubRsp),
            (&[0x48, 0x81, 0xec, 0x00, 0x01, 0x00, 0x00], SubRsp),
            (&[0x90], Nop1),
            (&[0x0f, 0x1f, 0x44, 0x00, 0x00], Nop5),
            (&[0x66, 0x90], NopOther),
            (&[0x0f, 0x1f, 0x40, 0x00], NopOther),
            (&[0x48, 0x8b, 0x05, 0x10, 0x20, 0x00, 0x00], Mov),
            (&[0x89, 0xf8], Mov),
            (&[0xc3], Ret),
            (&[0x48, 0x29, 0xc4], Other), // sub %rax,%rsp: not an immediate
            (&[0x8d, 0x04, 0x37], Other), // lea
            (&[0x0f, 0x0b], Other),       // ud2
        ];
        for (bytes, class) in cases {
            assert_eq!(InsnClass::of(bytes), class, "bytes {bytes:02x?}");
        }
    }

    #[test]
    fn empty_or_truncated_code_is_other() {
        assert_eq!(InsnClass::of(&[]), Other);
        assert_eq!(InsnClass::of(&[0x48, 0x83]), Other);
    }

    #[test]
    fn only_push_and_nops_are_emulated() {
        let emulated: Vec<InsnClass> = InsnClass::all()
            .iter()
            .copied()
            .filter(|c| c.emulated())
            .collect();
        assert_eq!(emulated, [PushRbp, PushReg, Nop1, Nop5, NopOther]);
    }

    #[test]
    fn names_display_and_parse_back() {
        let names: Vec<&str> = InsnClass::all().iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "push-rbp", "push-reg", "endbr64", "sub-rsp", "nop1", "nop5", "nop", "mov", "ret",
                "other"
            ]
        );
        for &class in InsnClass::all() {
            assert_eq!(class.to_string(), class.name());
            assert_eq!(class.name().parse::<InsnClass>().unwrap(), class);
        }
        assert_eq!("nop-other".parse::<InsnClass>().unwrap(), NopOther);
        let err = "push".parse::<InsnClass>().unwrap_err();
        assert!(matches!(err, SymbolError::UnknownInsnClass { ref name } if name == "push"));
    }

    #[test]
    fn serializes_in_kebab_case() {
        assert_eq!(serde_json::to_string(&PushRbp).unwrap(), "\"push-rbp\"");
        assert_eq!(serde_json::to_string(&NopOther).unwrap(), "\"nop-other\"");
        assert_eq!(
            serde_json::from_str::<InsnClass>("\"sub-rsp\"").unwrap(),
            SubRsp
        );
    }
}
