//! The `onus` binary: `check`, `matrix`, `crd` (and `run` once the webhook lands).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use onus::check::{self, CheckOptions, Format};
use onus::model::{Matrix, Provider, ServiceModel};

#[derive(Parser)]
#[command(
    name = "onus",
    version,
    about = "Enforce the customer's side of the cloud shared-responsibility model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate manifests offline. Exit 0: nothing at Deny; 1: a Deny verdict; 2: input error.
    Check {
        /// A file holding baselines (repeatable); baselines may also sit among PATHs.
        #[arg(long = "baseline", value_name = "FILE")]
        baselines: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Namespace of objects that do not name one.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Files or directories of YAML/JSON manifests.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print the responsibility matrix for a provider and service model.
    Matrix {
        #[arg(long, value_parser = parse_enum::<Provider>)]
        provider: Provider,
        #[arg(long, value_parser = parse_enum::<ServiceModel>)]
        model: ServiceModel,
        #[arg(long, value_enum, default_value_t = MatrixFormat::Text)]
        output: MatrixFormat,
    },
    /// Print every CRD onus owns, as YAML.
    Crd,
}

#[derive(Clone, Copy, ValueEnum)]
enum MatrixFormat {
    Text,
    Json,
    Markdown,
}

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap exits 0 for --help/--version and 2 for usage errors, as the contract wants.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onus: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check {
            baselines,
            output,
            namespace,
            paths,
        } => {
            let opts = CheckOptions {
                baselines,
                paths,
                namespace,
                now: chrono::Utc::now(),
            };
            let report = check::run(&opts);
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", check::render(&report, output, colour));
            for e in &report.errors {
                eprintln!("onus: error: {e}");
            }
            Ok(ExitCode::from(report.exit_code() as u8))
        }
        Command::Matrix {
            provider,
            model,
            output,
        } => {
            print!(
                "{}",
                render_matrix(&Matrix::resolve(provider, model, &[]), output)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            print!("{}", onus::api::crds_yaml().context("rendering CRDs")?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render_matrix(m: &Matrix, format: MatrixFormat) -> anyhow::Result<String> {
    let cells = m.cells();
    let controls = |c: &onus::model::MatrixCell| {
        c.controls
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(match format {
        MatrixFormat::Json => {
            serde_json::to_string_pretty(&serde_json::json!({
                "provider": m.provider, "serviceModel": m.model, "domains": cells,
            }))? + "\n"
        }
        MatrixFormat::Markdown => {
            let mut s = "| domain | owner | controls | source |\n|---|---|---|---|\n".to_string();
            for c in &cells {
                s += &format!(
                    "| {} | {} | {} | {} |\n",
                    c.domain,
                    c.owner,
                    controls(c),
                    c.source
                );
            }
            s
        }
        MatrixFormat::Text => {
            let mut s = format!(
                "{} {}\n{:<16} {:<9} {:<72} {}\n",
                m.provider, m.model, "DOMAIN", "OWNER", "CONTROLS", "SOURCE"
            );
            for c in &cells {
                s += &format!(
                    "{:<16} {:<9} {:<72} {}\n",
                    c.domain.as_str(),
                    c.owner.as_str(),
                    controls(c),
                    c.source
                );
            }
            s
        }
    })
}
