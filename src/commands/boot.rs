//! `kiln boot`.

use std::time::Duration;

use anyhow::Context;
use kiln_builder::boot::{self, BootOptions, Control, Ended};

use crate::cli::BootArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: BootArgs) -> anyhow::Result<Exit> {
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let firmware = args.firmware.map(|pair| (pair[0].clone(), pair[1].clone()));
    let options = BootOptions {
        layout: args.out.clone(),
        image: args.image,
        initrd: args.initrd,
        cmdline: args.cmdline,
        entry: args.entry,
        memory_mib: args.memory,
        cpus: args.cpus,
        numa_nodes: args.numa_nodes,
        igb: args.igb,
        kvm: args.kvm,
        timeout: Duration::from_secs(args.timeout),
        qemu: args.qemu,
        firmware,
        scratch: scratch.path().to_owned(),
    };
    let until = args.until;
    let mut on_line = |line: &str| {
        let _ = output::text(&format!("{line}\n"));
        match &until {
            Some(text) if line.contains(text.as_str()) => Control::Stop,
            _ => Control::Continue,
        }
    };
    let booted = boot::boot(&options, &mut on_line)
        .with_context(|| format!("cannot boot from {}", args.out.display()))?;
    let how = match booted.ended {
        Ended::PoweredOff => "the guest powered off",
        Ended::Stopped => "the awaited line appeared",
        Ended::TimedOut => "timed out",
    };
    output::messages(&[format!(
        "kiln: booted {} ({}) for {:.1} s: {how}",
        booted.image, booted.mode, booted.seconds
    )]);
    Ok(if booted.ended == Ended::TimedOut { Exit::Different } else { Exit::Success })
}
