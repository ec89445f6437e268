//! `vm-system help [TOPIC | COMMAND…]`: the built-in guides (plain text from
//! `app/help/`, embedded in the binary), or clap's help for a command.

use clap::CommandFactory;

use super::output::{stdout, Failure, Outcome};
use super::Cli;

/// One built-in guide.
pub struct Topic {
    pub name: &'static str,
    pub summary: &'static str,
    pub text: &'static str,
}

pub const TOPICS: &[Topic] = &[
    Topic {
        name: "getting-started",
        summary: "From nothing to a running REPL session, command by command",
        text: include_str!("../../help/getting-started.txt"),
    },
    Topic {
        name: "architecture",
        summary: "How the daemon, the domain, the adapters and the CLI fit together",
        text: include_str!("../../help/architecture.txt"),
    },
    Topic {
        name: "api-reference",
        summary: "Every REST endpoint, its body, its answer, and the error codes",
        text: include_str!("../../help/api-reference.txt"),
    },
    Topic {
        name: "cli-command-reference",
        summary: "Every command, the global flags, output formats and exit codes",
        text: include_str!("../../help/cli-command-reference.txt"),
    },
    Topic {
        name: "templates-and-sessions",
        summary: "Settings, limits, startup files, modules, libraries; session life",
        text: include_str!("../../help/templates-and-sessions.txt"),
    },
    Topic {
        name: "javascript",
        summary: "Top-level await, the event loop, web globals, ES modules, fetch; what Node has more",
        text: include_str!("../../help/javascript.txt"),
    },
    Topic {
        name: "examples",
        summary: "Recipes: scripting with -q and -o json, stdin, files, limits",
        text: include_str!("../../help/examples.txt"),
    },
    Topic {
        name: "security",
        summary: "The session sandbox: threat model, guarantee, mechanisms, --sandbox=off",
        text: include_str!("../../help/security.txt"),
    },
    Topic {
        name: "operations",
        summary: "Probes (/health, /ready), log format and fields, graceful drain on shutdown",
        text: include_str!("../../help/operations.txt"),
    },
    Topic {
        name: "contributing",
        summary: "Where code goes, how it is tested, what reviewers look for",
        text: include_str!("../../help/contributing.txt"),
    },
];

#[derive(Debug, clap::Args)]
pub struct HelpArgs {
    /// A topic, or a command such as `exec repl`.
    #[arg(value_name = "TOPIC|COMMAND")]
    words: Vec<String>,
}

pub fn run(args: HelpArgs) -> Outcome {
    let words = args.words;
    if words.is_empty() {
        stdout(&index());
        return Ok(());
    }
    if let [word] = words.as_slice() {
        if let Some(topic) = TOPICS.iter().find(|t| t.name == word) {
            stdout(topic.text);
            return Ok(());
        }
    }
    let mut root = Cli::command();
    root.build();
    let mut command = &mut root;
    for word in &words {
        command = match command.find_subcommand_mut(word) {
            Some(sub) if !sub.is_hide_set() => sub,
            _ => {
                return Err(Failure::Usage(format!(
                    "no help topic or command named '{}'; `vm-system help` lists them",
                    words.join(" ")
                )))
            }
        };
    }
    stdout(&command.render_long_help().to_string());
    Ok(())
}

/// `vm-system help` with no argument: the topics, then the commands.
fn index() -> String {
    let mut out = String::from(
        "vm-system: long-lived, sandboxed JavaScript runtimes over HTTP.\n\n\
         Usage:\n  vm-system help TOPIC        read a guide\n  \
         vm-system help COMMAND      a command's options (same as COMMAND --help)\n\n\
         Topics:\n",
    );
    let width = TOPICS.iter().map(|t| t.name.len()).max().unwrap_or(0) + 2;
    for topic in TOPICS {
        out.push_str(&format!("  {:<width$}{}\n", topic.name, topic.summary));
    }
    out.push_str("\nCommands:\n");
    let root = Cli::command();
    let commands: Vec<_> = root.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let width = commands.iter().map(|c| c.get_name().len()).max().unwrap_or(0) + 2;
    for command in commands {
        let about = command.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.push_str(format!("  {:<width$}{about}", command.get_name()).trim_end());
        out.push('\n');
    }
    out.push_str("\nStart with: vm-system help getting-started\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_is_plain_text_that_names_itself_and_ends_with_a_newline() {
        for topic in TOPICS {
            assert!(topic.text.ends_with('\n'), "{}", topic.name);
            assert!(!topic.text.contains("```"), "{} has markdown fences", topic.name);
            let first = topic.text.lines().next().unwrap_or_default().to_lowercase();
            assert!(first.contains(&topic.name.replace('-', " ")), "{} opens with {first:?}", topic.name);
            assert!(topic.text.lines().all(|l| l.chars().count() <= 100), "{} has a line over 100 chars", topic.name);
        }
    }
}
