//! `origami-bench`: the harness's command line.

use clap::{Parser, Subcommand, ValueEnum};
use origami_bench::{eval, gradcheck, run::Variant};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "origami-bench",
    version,
    about = "Check and measure the origami kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Cpu,
    Gpu,
    All,
}

#[derive(Subcommand)]
enum Command {
    /// Run golden case files (origami-cases/1) on every variant that can serve each case.
    /// Exit status: 0 all passed, 1 a comparison failed, 2 a file or case is unreadable.
    Eval {
        /// Only these variants (repeatable): direct, unrolled, fold, prefix_sum.
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// Which backend runs the cases.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        /// Case files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Central finite differences in f64 for every op, variant and dimension.
    /// Exit status 1 on any failure.
    Gradcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = match cli.command {
        Command::Eval {
            variants,
            backend,
            files,
        } => {
            let known = Variant::all_names();
            if let Some(bad) = variants.iter().find(|v| !known.contains(&v.as_str())) {
                eprintln!(
                    "error: unknown variant {bad:?}; known: {}",
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
            if backend == Backend::Gpu {
                eprintln!("error: this build has no GPU backend");
                return ExitCode::from(2);
            }
            match eval::eval_files(&files, &variants, &mut out) {
                Ok(summary) => summary.exit_code(),
                Err(e) => {
                    eprintln!("error: {e}");
                    2
                }
            }
        }
        Command::Gradcheck => match gradcheck::gradcheck(&mut out) {
            Ok(t) if t.failed == 0 => 0,
            Ok(_) => 1,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
    };
    let _ = out.flush();
    ExitCode::from(code as u8)
}
