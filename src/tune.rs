//! `shardlog tune`: the machine's settings for the broker, checked
//! (`--check`, the default) or applied (`--apply`, as root; `--dry-run`
//! prints the writes). The `tuning` crate has the checks.

use std::path::PathBuf;

use tuning::{RealMachine, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
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

pub fn run(args: &Args) -> anyhow::Result<()> {
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
