//! `shardlog`: the binary. Subcommands only wire the crates together.

mod acls;
mod cli;
mod config;
mod crash_child;
mod groups;
mod listeners;
mod serve;
mod tune;
mod users;
mod wire;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shardlog",
    version,
    about = "A Kafka-wire-compatible event streaming broker, thread-per-core on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker's shards on a data directory.
    Serve(serve::Args),
    /// Consumer groups of a Kafka-compatible broker, and their lag.
    #[command(subcommand)]
    Groups(groups::Command),
    /// Load a Kafka-compatible broker and measure it.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Topics of a Kafka-compatible broker: list, create, describe,
    /// alter-config, add-partitions, delete.
    #[command(subcommand)]
    Topic(cli::TopicCommand),
    /// ACLs (with an authorizer): add, list, remove.
    #[command(subcommand)]
    Acl(acls::AclCommand),
    /// Users' SCRAM credentials (SASL): list, set, delete.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Messages from stdin (lines, `KEY<sep>VALUE` or JSON lines) to a topic.
    Produce(cli::ProduceArgs),
    /// A topic's messages as JSON lines, from an offset, a time or a group.
    Consume(cli::ConsumeArgs),
    /// Check this machine's settings for the broker (`--check`), or apply
    /// the kernel ones (`--apply`, as root).
    Tune(tune::Args),
    /// Test helper: append random batches to one partition log and print
    /// every durable acknowledgement (the crash-recovery test kills it).
    #[command(hide = true)]
    CrashChild(crash_child::Args),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Run a workload against one broker and print throughput and latency.
    Run(bench::RunArgs),
    /// Run the same workload against several brokers in turn, side by side.
    Compare(bench::CompareArgs),
    /// Consumer-group costs: members splitting a topic, a rebalance, commits.
    Groups(bench::groups::GroupsArgs),
    /// This machine's floor for a durable produce: loopback TCP, an
    /// O_DIRECT write and fdatasync, both, at a rate; CPU per operation.
    Floor(bench::floor::FloorArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file gets plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(BenchCommand::Run(args)) => bench::run(&args),
        Command::Bench(BenchCommand::Compare(args)) => bench::compare(&args),
        Command::Bench(BenchCommand::Groups(args)) => bench::groups::run(&args),
        Command::Bench(BenchCommand::Floor(args)) => bench::floor::run(&args),
        Command::Groups(command) => groups::run(command),
        Command::Tune(args) => tune::run(&args),
        Command::User(command) => users::run(command),
        Command::Acl(command) => acls::run(command),
        Command::Topic(command) => cli::topic(command),
        Command::Produce(args) => cli::produce(&args),
        Command::Consume(args) => cli::consume(&args),
        Command::CrashChild(args) => crash_child::run(args),
    }
}
