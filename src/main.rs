//! Arguments → run → exit code, nothing else.
#![expect(
    clippy::print_stderr,
    reason = "main prints the error, its causes and the hint"
)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rebuild::cli::Cli::parse();
    rebuild::logging::init(cli.global.verbose);
    // Several TLS stacks are linked in (AWS, Kubernetes, GitHub clients); pick one crypto
    // provider for all of them. An error only means one was installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(rebuild::commands::dispatch(cli));
    // Not waiting for blocking work still under way: a question left unanswered when a
    // stop signal ended the run must not keep the process alive until a line is typed.
    runtime.shutdown_background();
    rebuild::logging::finish();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            // The whole chain, each cause once: messages that already quote their cause
            // are not repeated.
            let mut shown = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                    shown.push_str(&text);
                }
                source = cause.source();
            }
            if let Some(hint) = error.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
