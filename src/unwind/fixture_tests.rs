//! Unwinds of real samples: C programs (tests/fixtures/unwind/) built with
//! gcc at test time, in which `c`'s first instruction (`call __fentry__`,
//! gcc -pg -mfentry) records the registers and 8 KiB of stack exactly as a
//! uprobe on `c` would see them, with the process's `/proc/self/maps`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use object::{Object, ObjectSymbol};

use super::*;

const SOURCES: [(&str, &str); 5] = [
    (
        "main_a.c",
        include_str!("../../tests/fixtures/unwind/main_a.c"),
    ),
    ("b.c", include_str!("../../tests/fixtures/unwind/b.c")),
    ("c.c", include_str!("../../tests/fixtures/unwind/c.c")),
    (
        "capture.S",
        include_str!("../../tests/fixtures/unwind/capture.S"),
    ),
    (
        "record.c",
        include_str!("../../tests/fixtures/unwind/record.c"),
    ),
];

/// How the fixture is built.
#[derive(Debug, Clone, Copy)]
struct Variant {
    frame_pointers: bool,
    pie: bool,
    /// b and c (with the capture code) in libchain.so.
    shared: bool,
    /// Link with an `.eh_frame_hdr` (`--no-eh-frame-hdr` otherwise).
    eh_frame_hdr: bool,
    /// Compile main, a, b and c with unwind tables (`.eh_frame`); without,
    /// with `-g`, so that their CFI is in `.debug_frame` only.
    unwind_tables: bool,
}

/// A recorded sample and the directory holding the binaries.
struct Sample {
    regs: Regs,
    stack: Vec<u8>,
    space: AddressSpace,
    dir: tempfile::TempDir,
}

fn gcc(dir: &Path, args: &[&str]) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("gcc runs");
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `source` into `object` with the variant's flags.
fn compile(dir: &Path, variant: Variant, source: &str, pic: bool) -> String {
    let object = format!("{source}.{}.o", if pic { "pic" } else { "exe" });
    let mut args = vec!["-O2", "-fcf-protection=none", "-c", source, "-o", &object];
    args.push(if pic {
        "-fPIC"
    } else if variant.pie {
        "-fPIE"
    } else {
        "-fno-pie"
    });
    if source == "c.c" {
        args.extend(["-pg", "-mfentry"]);
    }
    if !variant.unwind_tables && source != "record.c" {
        args.extend([
            "-g",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
        ]);
    }
    // gcc refuses -pg with an explicit -fomit-frame-pointer, but -O2 omits
    // frame pointers anyway.
    if variant.frame_pointers && source != "record.c" {
        args.push("-fno-omit-frame-pointer");
    } else if source == "main_a.c" || source == "b.c" {
        args.push("-fomit-frame-pointer");
    }
    gcc(dir, &args);
    object
}

fn build_and_run(variant: Variant) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in SOURCES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let lib_sources = ["b.c", "c.c", "capture.S", "record.c"];
    let mut link = vec![compile(dir.path(), variant, "main_a.c", false)];
    if variant.shared {
        let mut lib = vec!["-shared".to_string(), "-o".into(), "libchain.so".into()];
        lib.extend(lib_sources.map(|s| compile(dir.path(), variant, s, true)));
        gcc(
            dir.path(),
            &lib.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let rpath = format!("-Wl,-rpath,{}", dir.path().display());
        link.extend(["-L.".into(), "-lchain".into(), rpath]);
    } else {
        link.extend(lib_sources.map(|s| compile(dir.path(), variant, s, false)));
    }
    link.extend([
        "-o".into(),
        "chain".into(),
        if variant.pie { "-pie" } else { "-no-pie" }.into(),
    ]);
    if !variant.eh_frame_hdr {
        link.push("-Wl,--no-eh-frame-hdr".into());
    }
    gcc(
        dir.path(),
        &link.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let status = Command::new(dir.path().join("chain"))
        .env("UNWIND_OUT", dir.path())
        .output()
        .unwrap();
    assert!(status.status.success(), "chain failed: {status:?}");
    let sample = std::fs::read(dir.path().join("sample.bin")).unwrap();
    let word = |i: usize| u64::from_le_bytes(sample[i * 8..i * 8 + 8].try_into().unwrap());
    let maps = std::fs::read_to_string(dir.path().join("maps.txt")).unwrap();
    Sample {
        regs: Regs {
            ip: word(0),
            sp: word(1),
            bp: word(2),
        },
        stack: sample[24..].to_vec(),
        space: parse_proc_maps(&maps).into_iter().collect(),
        dir,
    }
}

/// A frame as `file:symbol` (`file:?` when no symbol covers it), looked up
/// at `addr - 1` for return addresses.
fn symbolize(unwinder: &mut Unwinder, space: &AddressSpace, addr: u64, is_return: bool) -> String {
    let lookup = if is_return { addr - 1 } else { addr };
    let Some((map, vaddr)) = unwinder.elf_address(space, lookup) else {
        return format!("?{addr:#x}");
    };
    let file_name = map.path.file_name().unwrap().to_string_lossy().into_owned();
    let data = std::fs::read(&map.path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let symbol = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.is_definition() && s.address() <= vaddr && vaddr < s.address() + s.size())
        .find_map(|s| {
            s.name()
                .ok()
                .map(|n| n.split('@').next().unwrap().to_string())
        });
    format!("{file_name}:{}", symbol.as_deref().unwrap_or("?"))
}

fn symbolize_all(unwinder: &mut Unwinder, space: &AddressSpace, frames: &[u64]) -> Vec<String> {
    frames
        .iter()
        .enumerate()
        .map(|(i, &f)| symbolize(unwinder, space, f, i > 0))
        .collect()
}

/// The prefix of frames in the C library.
const LIBC: &str = "libc.so.6:";

/// Unwinds `sample` by CFI and checks the exact chain c, b, a, main, two
/// libc frames, _start, then Complete.
fn assert_exact_chain(sample: &Sample, lib: &str) -> Unwound {
    let mut unwinder = Unwinder::new();
    let unwound = unwinder.unwind(&sample.space, &sample.regs, &sample.stack, 64);
    let names = symbolize_all(&mut unwinder, &sample.space, &unwound.frames);
    assert_eq!(names.len(), 7, "{names:?} {:?}", unwound.end);
    assert_eq!(
        names[..4],
        [
            format!("{lib}:c"),
            format!("{lib}:b"),
            "chain:a".into(),
            "chain:main".into()
        ],
        "{names:?}"
    );
    assert!(names[4..6].iter().all(|n| n.starts_with(LIBC)), "{names:?}");
    assert_eq!(names[6], "chain:_start");
    assert_eq!(unwound.end, UnwindEnd::Complete);
    // The first frame is c's very first instruction.
    let (_, c_vaddr) = unwinder.elf_address(&sample.space, sample.regs.ip).unwrap();
    let lib_path = sample.dir.path().join(if lib == "chain" {
        "chain"
    } else {
        "libchain.so"
    });
    assert_eq!(Some(c_vaddr), symbol_address(&lib_path, "c"));
    unwound
}

fn symbol_address(path: &Path, name: &str) -> Option<u64> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
}

const NO_FP_PIE: Variant = Variant {
    frame_pointers: false,
    pie: true,
    shared: false,
    eh_frame_hdr: true,
    unwind_tables: true,
};

/// Whether the ELF file at `path` has a section `name`.
fn has_section(path: &Path, name: &str) -> bool {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.section_by_name(name).is_some()
}

#[test]
fn cfi_unwinds_a_pie_without_frame_pointers_exactly_where_fp_fails() {
    let sample = build_and_run(NO_FP_PIE);
    let cfi = assert_exact_chain(&sample, "chain");
    let fp = frame_pointer_chain(&sample.regs, &sample.stack, 64);
    let mut unwinder = Unwinder::new();
    let fp_names = symbolize_all(&mut unwinder, &sample.space, &fp.frames);
    // The walk gets c's caller from [sp], then rbp holds no frame address.
    assert_eq!(fp.frames[..2], cfi.frames[..2]);
    assert!(fp.frames.len() < cfi.frames.len(), "{fp_names:?}");
    assert_ne!(
        fp_names.get(2).map(String::as_str),
        Some("chain:a"),
        "{fp_names:?}"
    );
}

#[test]
fn cfi_unwinds_a_non_pie_executable() {
    let sample = build_and_run(Variant {
        pie: false,
        ..NO_FP_PIE
    });
    let exe = sample.space.find(sample.regs.ip).unwrap();
    assert_eq!(
        exe.start, 0x40_1000,
        "a non-PIE text is mapped at its link address"
    );
    assert_exact_chain(&sample, "chain");
}

#[test]
fn cfi_given_as_bytes_is_used_for_the_mapped_path() {
    let sample = build_and_run(NO_FP_PIE);
    let exe = sample.dir.path().join("chain");
    let from_disk = Unwinder::new().unwind(&sample.space, &sample.regs, &sample.stack, 4);
    let mut unwinder = Unwinder::new();
    unwinder
        .insert(exe.clone(), &std::fs::read(&exe).unwrap())
        .unwrap();
    std::fs::remove_file(&exe).unwrap();
    let unwound = unwinder.unwind(&sample.space, &sample.regs, &sample.stack, 4);
    assert_eq!(unwound, from_disk);
    assert_eq!(
        (unwound.frames.len(), unwound.end),
        (4, UnwindEnd::MaxFrames)
    );
}

#[test]
fn cfi_unwinds_with_a_sorted_fde_table_without_eh_frame_hdr() {
    let sample = build_and_run(Variant {
        eh_frame_hdr: false,
        ..NO_FP_PIE
    });
    assert!(!has_section(
        &sample.dir.path().join("chain"),
        ".eh_frame_hdr"
    ));
    assert_exact_chain(&sample, "chain");
}

#[test]
fn cfi_falls_back_to_debug_frame_for_code_without_unwind_tables() {
    let sample = build_and_run(Variant {
        unwind_tables: false,
        ..NO_FP_PIE
    });
    let exe = sample.dir.path().join("chain");
    assert!(has_section(&exe, ".debug_frame"));
    // The executable's .eh_frame only covers the C runtime (_start).
    let data = std::fs::read(&exe).unwrap();
    let cfi = elf::ElfCfi::parse(&exe, &data).unwrap();
    let mut ctx = gimli::UnwindContext::new();
    let c = symbol_address(&exe, "c").unwrap();
    let start = symbol_address(&exe, "_start").unwrap();
    assert_eq!(cfi.rules(&mut ctx, c).map(|r| r.table), Ok(1));
    assert_eq!(cfi.rules(&mut ctx, start).map(|r| r.table), Ok(0));
    assert_exact_chain(&sample, "chain");
}

#[test]
fn cfi_unwinds_through_a_shared_library() {
    let sample = build_and_run(Variant {
        shared: true,
        ..NO_FP_PIE
    });
    assert_exact_chain(&sample, "libchain.so");
}

#[test]
fn fp_and_cfi_agree_where_there_are_frame_pointers() {
    let sample = build_and_run(Variant {
        frame_pointers: true,
        ..NO_FP_PIE
    });
    let cfi = assert_exact_chain(&sample, "chain");
    let fp = frame_pointer_chain(&sample.regs, &sample.stack, 64);
    // c, b, a, main and main's return into libc; libc has no frame
    // pointers, so what follows is whatever its rbp held.
    assert_eq!(fp.frames[..5], cfi.frames[..5], "{fp:?}");
}

#[test]
fn the_plt_cfa_expression_is_evaluated() {
    // At the entry of b's PLT stub for c, the stack is what it is at c's
    // entry: the stub's CFI is the PLT's DWARF expression.
    let sample = build_and_run(Variant {
        shared: true,
        ..NO_FP_PIE
    });
    let ret_into_b = u64::from_le_bytes(sample.stack[..8].try_into().unwrap());
    let lib = sample.space.find(ret_into_b).unwrap();
    let data = std::fs::read(&lib.path).unwrap();
    let mut unwinder = Unwinder::new();
    let (_, ret_vaddr) = unwinder.elf_address(&sample.space, ret_into_b).unwrap();
    // b's `call rel32` ends at the return address.
    let file = object::File::parse(&*data).unwrap();
    let rel = read_i32_at_vaddr(&file, ret_vaddr - 4);
    let stub = ret_into_b.wrapping_add_signed(rel.into());
    let stub_section = section_of(&file, ret_vaddr.wrapping_add_signed(rel.into()));
    assert!(
        stub_section.starts_with(".plt"),
        "b calls c through {stub_section}"
    );
    let regs = Regs {
        ip: stub,
        ..sample.regs
    };
    let through_plt = unwinder.unwind(&sample.space, &regs, &sample.stack, 64);
    let direct = unwinder.unwind(&sample.space, &sample.regs, &sample.stack, 64);
    assert_eq!(through_plt.frames[0], stub);
    assert_eq!(through_plt.frames[1..], direct.frames[1..]);
    assert_eq!(through_plt.end, UnwindEnd::Complete);
}

fn read_i32_at_vaddr(file: &object::File, vaddr: u64) -> i32 {
    use object::ObjectSection;
    let section = file
        .sections()
        .find(|s| s.address() <= vaddr && vaddr < s.address() + s.size())
        .unwrap();
    let data = section.data().unwrap();
    let at = (vaddr - section.address()) as usize;
    i32::from_le_bytes(data[at..at + 4].try_into().unwrap())
}

fn section_of(file: &object::File, vaddr: u64) -> String {
    use object::ObjectSection;
    file.sections()
        .find(|s| s.address() <= vaddr && vaddr < s.address() + s.size())
        .map(|s| s.name().unwrap().to_string())
        .unwrap_or_default()
}

/// Timing: `cargo test --release -- --ignored --nocapture unwind_timing`.
#[test]
#[ignore]
fn unwind_timing() {
    let sample = build_and_run(NO_FP_PIE);
    let mut unwinder = Unwinder::new();
    let start = Instant::now();
    let first = unwinder.unwind(&sample.space, &sample.regs, &sample.stack, 5);
    let cold = start.elapsed();
    assert_eq!((first.frames.len(), first.end), (5, UnwindEnd::MaxFrames));
    let runs = 200_000u32;
    let start = Instant::now();
    for _ in 0..runs {
        let unwound = unwinder.unwind(
            &sample.space,
            &sample.regs,
            std::hint::black_box(&sample.stack),
            5,
        );
        assert_eq!(unwound.frames.len(), 5);
    }
    let warm = start.elapsed() / runs;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(frame_pointer_chain(
            &sample.regs,
            std::hint::black_box(&sample.stack),
            5,
        ));
    }
    let fp = start.elapsed() / runs;
    println!("5-frame CFI unwind: first (loads exe + libc) {cold:?}, cached {warm:?} per unwind; fp walk {fp:?}");
}
