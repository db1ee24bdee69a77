//! The perfunc command: parse, run, map errors to exit statuses
//! (0 ok, 1 failure, 2 usage; a recorded command's own status otherwise).

use std::io;

fn main() {
    let code = match perfunc::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(err) => {
            // `perfunc script | head` is not an error.
            let broken_pipe = err.chain().any(|e| {
                let io = match e.downcast_ref::<perfunc::report::ReportError>() {
                    Some(perfunc::report::ReportError::Io(io)) => Some(io),
                    _ => e.downcast_ref::<io::Error>(),
                };
                io.is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                0
            } else {
                eprintln!("perfunc: error: {err:#}");
                1
            }
        }
    };
    std::process::exit(code);
}
