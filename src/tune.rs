//! `shardlog tune`: the machine's settings for the broker, checked
//! (`--check`, the default) or applied (`--apply`, as root; `--dry-run`
//! prints the writes). The `tuning` crate has the checks.

use std::path::PathBuf;

use tuning::{RealMachine, Status};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<TuneCommand>,
    /// Print each setting that matters with OK, WARN or FAIL and the fix
    /// (the default). Exits 1 when a setting FAILs.
    #[arg(long, conflicts_with = "apply")]
    check: bool,
    /// Make the changes `--check` lists as applicable (kernel settings in
    /// /proc and /sys; needs root), then check again.
    #[arg(long)]
    apply: bool,
    /// With --apply: print the writes instead of making them.
    #[arg(long, requires = "apply")]
    dry_run: bool,
    /// The data directory `serve` will use (its filesystem and disk are
    /// checked).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// The shards `serve` will run [default: available cores].
    #[arg(long)]
    shards: Option<usize>,
}

#[derive(Debug, clap::Subcommand)]
enum TuneCommand {
    /// Measure the disk under DIR (O_DIRECT: bandwidth at queue depths 1 to
    /// 32, 4 KiB IOPS, fdatasync latency) and write the io-properties file
    /// `serve` reads (config key io-properties-file).
    Iotune(IotuneArgs),
}

#[derive(Debug, clap::Args)]
struct IotuneArgs {
    /// A directory on the data disk (a test file is written there, then
    /// removed).
    #[arg(long)]
    dir: PathBuf,
    /// Where to write the io-properties file [default: DIR/io-properties.toml].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The test file's size in MiB (larger than the disk's cache).
    #[arg(long, default_value_t = 1024)]
    file_mib: u64,
    /// Each measurement's duration in milliseconds.
    #[arg(long, default_value_t = 2000)]
    step_ms: u64,
}

fn iotune(args: &IotuneArgs) -> anyhow::Result<()> {
    use tuning::iotune;
    let budget = iotune::Budget {
        file_bytes: args.file_mib << 20,
        step: std::time::Duration::from_millis(args.step_ms),
    };
    let properties = iotune::measure(&args.dir, budget)
        .map_err(|e| anyhow::anyhow!("measuring {}: {e}", args.dir.display()))?;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    for ((depth, write), (_, read)) in properties
        .write_bandwidth
        .iter()
        .zip(&properties.read_bandwidth)
    {
        println!(
            "depth {depth:>2}: write {:>8.1} MiB/s, read {:>8.1} MiB/s",
            mib(*write),
            mib(*read)
        );
    }
    println!(
        "4 KiB random: {} read IOPS, {} write IOPS (depth 32)",
        properties.read_iops, properties.write_iops
    );
    for (depth, p50, p99) in &properties.fdatasync_us {
        println!("4 KiB write + fdatasync at depth {depth:>2}: p50 {p50} us, p99 {p99} us");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| iotune::default_path(&args.dir));
    std::fs::write(&out, iotune::to_toml(&properties))?;
    println!(
        "writes in flight per partition: {}; wrote {} (serve: io-properties-file)",
        properties.writes_in_flight,
        out.display()
    );
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(TuneCommand::Iotune(iotune_args)) = &args.command {
        return iotune(iotune_args);
    }
    let shards = args
        .shards
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let machine = RealMachine;
    let findings = tuning::check(&machine, &args.data_dir, shards);
    if args.apply {
        if !args.dry_run && !tuning::Machine::is_root(&machine) {
            anyhow::bail!(
                "tune --apply writes to /proc and /sys: run it as root (or add --dry-run)"
            );
        }
        let (writes, failed) = tuning::apply(&findings, args.dry_run);
        let verb = if args.dry_run { "would write" } else { "wrote" };
        for w in &writes {
            println!("{verb} {:?} to {}", w.value, w.path);
        }
        for (path, e) in &failed {
            println!("FAILED to write {path}: {e}");
        }
        if writes.is_empty() && failed.is_empty() {
            println!("nothing to apply");
        }
        if args.dry_run {
            return Ok(());
        }
        println!();
    }
    let findings = if args.apply && !args.dry_run {
        tuning::check(&machine, &args.data_dir, shards)
    } else {
        findings
    };
    for f in &findings {
        let fix = if f.fix.is_empty() {
            String::new()
        } else {
            format!("\n      fix: {}", f.fix)
        };
        let applicable = if f.apply.is_empty() || f.status == Status::Ok {
            ""
        } else {
            " (tune --apply)"
        };
        println!(
            "{:<4}  {}: {}{fix}{applicable}",
            f.status.label(),
            f.name,
            f.found
        );
    }
    if findings.iter().any(|f| f.status == Status::Fail) {
        std::process::exit(1);
    }
    Ok(())
}
