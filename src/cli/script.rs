//! `perfunc script`: a trace as text, one line per record.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use anyhow::Context;

use super::ScriptArgs;
use crate::trace::{Chunk, Damage, Event, SampleRef, TraceEnd, TraceHeader, TraceReader};

/// Runs `perfunc script`.
pub fn run(args: &ScriptArgs) -> anyhow::Result<()> {
    let file = File::open(&args.input)
        .with_context(|| format!("failed to open {}", args.input.display()))?;
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let input = BufReader::with_capacity(1 << 20, file);
    let (end, damage) = write_script(input, &mut out, args.salvage)
        .with_context(|| format!("failed to read {}", args.input.display()))?;
    out.flush()?;
    for damage in &damage {
        eprintln!(
            "perfunc: warning: {} is damaged, skipped {damage}",
            args.input.display()
        );
    }
    if let TraceEnd::Truncated {
        last_whole_chunk_end,
        bytes_lost,
    } = end
    {
        eprintln!(
            "perfunc: warning: {} is incomplete (the recording did not finish): read up to byte \
             {last_whole_chunk_end}, {bytes_lost} bytes after it were lost",
            args.input.display()
        );
    }
    Ok(())
}

/// Writes every record of the trace in `input` to `out`; returns how the
/// trace ended. With `salvage`, damaged chunks are skipped (see
/// [`TraceReader::salvage`]) and the damaged ranges returned too.
pub fn write_script<R: Read, W: Write>(
    input: R,
    out: &mut W,
    salvage: bool,
) -> anyhow::Result<(TraceEnd, Vec<Damage>)> {
    let mut reader = TraceReader::new(input)?.salvage(salvage);
    let header = reader.header().clone();
    while let Some(chunk) = reader.next_chunk()? {
        match chunk {
            Chunk::Samples(block) => {
                for s in block.iter() {
                    write_sample(&header, &s, out)?;
                }
            }
            Chunk::Events(events) => {
                for e in &events {
                    write_event(e, out)?;
                }
            }
            Chunk::Footer(_) => {}
        }
    }
    let end = reader
        .end()
        .cloned()
        .context("the trace reader stopped without saying how the trace ended")?;
    Ok((end, reader.damage().to_vec()))
}

fn time(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn write_sample<W: Write>(header: &TraceHeader, s: &SampleRef<'_>, out: &mut W) -> io::Result<()> {
    let function = header
        .probes
        .get(s.probe() as usize)
        .map_or("?", |p| p.function.as_str());
    write!(
        out,
        "{} {}/{} [{:03}] {} {}",
        time(s.time()),
        s.pid(),
        s.tid(),
        s.cpu(),
        function,
        s.kind()
    )?;
    if let Some(key) = header
        .probes
        .get(s.probe() as usize)
        .and_then(|p| p.key.as_deref())
    {
        // Stored sign-extended: shown as a signed number.
        write!(out, " {key}={}", s.key() as i64)?;
    }
    for (counter, value) in header.counters.iter().zip(s.values()) {
        write!(out, " {}={value}", counter.name)?;
    }
    if s.time_running() < s.time_enabled() {
        write!(
            out,
            " enabled={} running={}",
            s.time_enabled(),
            s.time_running()
        )?;
    }
    writeln!(out)
}

fn write_event<W: Write>(e: &Event, out: &mut W) -> io::Result<()> {
    match e {
        Event::Lost {
            time: t,
            cpu,
            count,
        } => {
            writeln!(out, "{} -/- [{cpu:03}] LOST {count} records", time(*t))
        }
        Event::Fork {
            time: t,
            pid,
            ppid,
            tid,
            ptid,
        } => writeln!(out, "{} {pid}/{tid} FORK from {ppid}/{ptid}", time(*t)),
        Event::Exit {
            time: t, pid, tid, ..
        } => writeln!(out, "{} {pid}/{tid} EXIT", time(*t)),
        Event::Comm {
            time: t,
            pid,
            tid,
            name,
        } => writeln!(out, "{} {pid}/{tid} COMM {name}", time(*t)),
        Event::Mmap {
            time: t,
            pid,
            tid,
            start,
            len,
            pgoff,
            path,
        } => writeln!(
            out,
            "{} {pid}/{tid} MMAP {start:#x}-{:#x} @{pgoff:#x} {path}",
            time(*t),
            start.saturating_add(*len)
        ),
        Event::Callchain {
            time: t,
            pid,
            tid,
            ips,
        } => {
            write!(out, "{} {pid}/{tid} CALLCHAIN", time(*t))?;
            for ip in ips {
                write!(out, " {ip:#x}")?;
            }
            writeln!(out)
        }
        Event::Run {
            time: t,
            index,
            pid,
        } => writeln!(out, "{} {pid}/{pid} RUN {index}", time(*t)),
        Event::UserStack {
            time: t,
            pid,
            tid,
            ip,
            sp,
            bp,
            stack,
        } => writeln!(
            out,
            "{} {pid}/{tid} STACK ip={ip:#x} sp={sp:#x} bp={bp:#x} {} bytes",
            time(*t),
            stack.len()
        ),
    }
}
