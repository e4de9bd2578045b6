//! The command line of thaw.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thaw::engine::model::ModelKind;

#[derive(Parser)]
#[command(
    name = "thaw",
    version,
    about = "Fine-tune neural networks from pretrained weights, from a terminal"
)]
struct Cli {
    /// Without a command: attach the dashboard, starting the daemon if none runs.
    #[command(subcommand)]
    command: Option<Command>,
    /// The dashboard's theme: dark, light, high-contrast, mono or one in the config's themes/.
    #[arg(long, global = true, value_name = "NAME")]
    theme: Option<String>,
    /// Draw the dashboard with ASCII only (no braille, blocks or box drawing).
    #[arg(long, global = true)]
    ascii: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The dashboard: every run of the daemon (or of SESSION), live; q detaches.
    Attach {
        /// Only this session's runs.
        session: Option<String>,
    },
    /// Make the demo data, launch sessions/demo.toml (pretrained vs from scratch) and attach.
    Demo {
        /// Discard the demo session's runs and start them again.
        #[arg(long)]
        restart: bool,
    },
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
    /// Weights files: list their tensors, or see what loading one into a model would do.
    Weights {
        #[command(subcommand)]
        command: WeightsCommand,
    },
    /// Class probabilities of images, preprocessed as validation does.
    Predict {
        /// The model the weights are for.
        #[arg(long)]
        model: ModelKind,
        /// A .bpk, .safetensors, .pt or .pth file (a run's best.bpk, say).
        #[arg(long)]
        weights: PathBuf,
        /// Classes of the model (default: the run's classes.json, else the file's head).
        #[arg(long, value_parser = classes)]
        classes: Option<usize>,
        #[arg(long, default_value_t = 32, value_parser = image_size)]
        image_size: usize,
        #[arg(long, default_value_t = 3, value_parser = in_channels)]
        in_channels: usize,
        /// How many of the most likely classes to print.
        #[arg(long, default_value_t = 5, value_parser = top)]
        top: usize,
        /// JSON: [{"image", "top": [[class, p], ...], "probabilities": [...]}].
        #[arg(long)]
        json: bool,
        /// PNG or JPEG files.
        images: Vec<PathBuf>,
    },
    /// Write a run's best (or latest) weights with PyTorch's names, as .bpk or .safetensors.
    Export {
        /// SESSION/RUN, or RUN when only one session has it.
        run: String,
        /// The file to write (.bpk or .safetensors).
        #[arg(long)]
        to: PathBuf,
        /// The latest checkpoint instead of the best validation weights.
        #[arg(long)]
        latest: bool,
        /// Whose parameter names to write: torchvision or timm (for the families timm has).
        #[arg(long, default_value = "torchvision", value_name = "torchvision|timm")]
        names: thaw::engine::model::Layout,
    },
    /// Compare a session's runs: best validation accuracy and loss, steps and time to a target
    /// accuracy, trainable parameters, step time. Did pretrained weights help?
    Compare {
        /// The session's name (as in its file's `name`).
        session: String,
        /// A JSON array, one object per run (see the README).
        #[arg(long)]
        json: bool,
        /// The validation accuracy to reach, a fraction (default: 90% of the best run's best).
        #[arg(long, value_name = "FRACTION")]
        target_acc: Option<f64>,
        /// Also draw validation loss and accuracy per run into this .svg or .png file.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// Built-in data sets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    #[command(flatten)]
    Daemon(thaw::cli::daemon::DaemonCommand),
    /// Train one run from its directory (started by thaw itself; not for users).
    #[command(hide = true)]
    Worker {
        /// The run's directory.
        run_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Every tensor of a weights file with its shape and type, and totals.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// What `weights = FILE` would load into a model, without training (a dry run).
    Transfer {
        file: PathBuf,
        #[arg(long)]
        model: ModelKind,
        /// Classes of the model (default: the file's head).
        #[arg(long, value_parser = classes)]
        classes: Option<usize>,
        #[arg(long, default_value_t = 3, value_parser = in_channels)]
        in_channels: usize,
        #[arg(long, default_value_t = 224, value_parser = image_size)]
        image_size: usize,
        /// The report as JSON (the format of a run's transfer.json).
        #[arg(long)]
        json: bool,
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

/// A whole number in `range`, or what would be accepted.
fn whole(text: &str, range: std::ops::RangeInclusive<usize>, what: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{what}: a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

fn classes(text: &str) -> Result<usize, String> {
    whole(text, 1..=MAX_CLASSES, "classes of the model's head")
}

fn image_size(text: &str) -> Result<usize, String> {
    whole(
        text,
        1..=thaw::engine::data::MAX_IMAGE_SIZE,
        "pixels a side",
    )
}

fn in_channels(text: &str) -> Result<usize, String> {
    match text {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err("1 (grayscale) or 3 (RGB)".into()),
    }
}

fn top(text: &str) -> Result<usize, String> {
    whole(text, 1..=MAX_CLASSES, "classes to print")
}

/// More classes than any head thaw is asked for (ImageNet-21k has 21,841).
const MAX_CLASSES: usize = 100_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    thaw::log::init();
    let dashboard = |session: Option<String>| thaw::tui::AttachOptions {
        session,
        theme: cli.theme.clone(),
        ascii: cli.ascii,
    };
    let Some(command) = cli.command else {
        return exit(thaw::cli::dashboard::bare(dashboard(None)));
    };
    if prints_for_pipes(&command) {
        // `thaw weights inspect F | head`: a reader that goes away ends thaw quietly, as it
        // ends cat, instead of println! panicking on the broken pipe.
        // SAFETY: restoring the default action before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match command {
        Command::Attach { session } => thaw::cli::dashboard::attach(dashboard(session)),
        Command::Demo { restart } => thaw::cli::dashboard::demo(dashboard(None), restart),
        Command::Worker { run_dir } => Ok(thaw::worker::main(&run_dir)),
        Command::Daemon(command) => thaw::cli::daemon::main(command),
        Command::Train { file, run, jobs } => thaw::train::main(thaw::train::TrainArgs {
            file: &file,
            run: run.as_deref(),
            jobs,
        }),
        Command::Weights { command } => weights(command),
        Command::Predict {
            model,
            weights,
            classes,
            image_size,
            in_channels,
            top,
            json,
            images,
        } => thaw::cli::predict::main(thaw::cli::predict::PredictArgs {
            model,
            weights: &weights,
            classes,
            image_size,
            in_channels,
            top,
            json,
            images: &images,
        })
        .map(|()| 0),
        Command::Export {
            run,
            to,
            latest,
            names,
        } => thaw::paths::Paths::from_env()
            .and_then(|paths| thaw::cli::export::main(&paths, &run, &to, latest, names))
            .map(|()| 0),
        Command::Compare {
            session,
            json,
            target_acc,
            plot,
        } => thaw::paths::Paths::from_env()
            .and_then(|paths| {
                thaw::compare::main(
                    &paths,
                    &thaw::compare::CompareArgs {
                        session: &session,
                        json,
                        target_accuracy: target_acc,
                        plot: plot.as_deref(),
                    },
                )
            })
            .map(|()| 0),
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
    exit(result)
}

/// Commands whose output is often piped into another program. Not the dashboard, the
/// daemon or workers, which handle a closed socket or pipe themselves, nor `train`.
fn prints_for_pipes(command: &Command) -> bool {
    use thaw::cli::daemon::DaemonCommand;
    match command {
        Command::Weights { .. }
        | Command::Predict { .. }
        | Command::Export { .. }
        | Command::Compare { .. }
        | Command::Data { .. } => true,
        Command::Daemon(command) => matches!(
            command,
            DaemonCommand::Status { .. } | DaemonCommand::Logs { .. }
        ),
        _ => false,
    }
}

fn exit(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("thaw: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn weights(command: WeightsCommand) -> anyhow::Result<i32> {
    match command {
        WeightsCommand::Inspect { file, json } => thaw::cli::weights::inspect(&file, json)?,
        WeightsCommand::Transfer {
            file,
            model,
            classes,
            in_channels,
            image_size,
            json,
        } => thaw::cli::weights::dry_run(thaw::cli::weights::DryRun {
            file: &file,
            model,
            classes,
            in_channels,
            image_size,
            json,
        })?,
    }
    Ok(0)
}
