//! `bloxquarium`: parse the command line, build the App for the mode, run it.

use std::process::ExitCode;

use bevy::app::AppExit;
use bloxquarium::app::Finished;
use bloxquarium::cli::{Cli, ParseOutcome};

fn main() -> ExitCode {
    let cli = match Cli::parse_from_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ParseOutcome::Info(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(ParseOutcome::Error(line)) => {
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    match bloxquarium::app::run(&cli) {
        Ok(Finished::App(AppExit::Success)) => ExitCode::SUCCESS,
        Ok(Finished::App(AppExit::Error(code))) => ExitCode::from(code.get()),
        Ok(Finished::Report(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bloxquarium: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
