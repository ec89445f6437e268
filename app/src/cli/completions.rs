//! `vm-system completions SHELL`: a completion script for bash, zsh, fish,
//! elvish or PowerShell, generated from the command tree.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes the script for `shell` to stdout.
pub fn run(shell: Shell) {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "vm-system", &mut script);
    super::output::stdout(&String::from_utf8_lossy(&script));
}
