//! Any bytes given to the trace reader and the analysis give a trace, an
//! error, or a truncated trace: never a panic, a hang or an allocation
//! larger than the input warrants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfunc::analysis::{analyze, AnalysisOptions};
use perfunc::trace::TraceReader;

fuzz_target!(|data: &[u8]| {
    // The reader alone, chunk by chunk.
    if let Ok(mut reader) = TraceReader::new(data) {
        while let Ok(Some(_)) = reader.next_chunk() {}
    }
    // The whole analysis, as `perfunc report` runs it, with salvage.
    if let Ok(reader) = TraceReader::new(data) {
        let mut opts = AnalysisOptions::default();
        opts.threads = Some(1);
        opts.salvage = true;
        let _ = analyze(reader, &opts);
    }
});
