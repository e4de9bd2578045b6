//! The command line of thaw.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "thaw",
    version,
    about = "Fine-tune neural networks from pretrained weights, from a terminal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a session file's runs in the foreground, no daemon (scripts, batch jobs).
    Train {
        /// The session file (TOML).
        file: PathBuf,
        /// Only this run of the session.
        #[arg(long)]
        run: Option<String>,
        /// How many runs train at once (default: all of them, sharing the cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Built-in data sets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Train one run from its directory (started by thaw itself; not for users).
    #[command(hide = true)]
    Worker {
        /// The run's directory.
        run_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write the demo ImageFolder data sets (shapes, shapes-small) into DIR.
    Demo {
        /// Where to write them.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Worker { run_dir } => Ok(thaw::worker::main(&run_dir)),
        Command::Train { file, run, jobs } => thaw::train::main(thaw::train::TrainArgs {
            file: &file,
            run: run.as_deref(),
            jobs,
        }),
        Command::Data {
            command: DataCommand::Demo { dir },
        } => thaw::engine::data::write_demo(&dir)
            .map(|()| {
                println!(
                    "demo data sets written to {}: {}",
                    dir.display(),
                    thaw::engine::data::DEMO_SETS.join(", ")
                );
                0
            })
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("thaw: {err:#}");
            ExitCode::from(2)
        }
    }
}
