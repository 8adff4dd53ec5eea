//! bootimage's command line. `lexopt` splits it (`--opt value`,
//! `--opt=value`, `--`, and says what it could not read); this module says
//! which options each command takes and what they mean.

use std::ffi::OsString;

use lexopt::prelude::*;
use lexopt::{Arg, Parser};

use crate::qemu::Accel;

/// The usage text, printed by `--help` and after a usage error.
pub const USAGE: &str = "\
usage: bootimage <command> [options]

commands:
  build [--release]                 build the kernel, write target/boot/
  run [options] [-- QEMU-ARGS...]   build and boot the kernel in QEMU, serial on this terminal
      --release                     optimised build
      --accel kvm|tcg               default: kvm if /dev/kvm opens and the host is not a VM, else tcg
                                    ($KTEST_ACCEL overrides)
      --iso                         boot the GRUB ISO (multiboot2) instead of -kernel (PVH)
      --xen                         boot under QEMU's Xen emulation (QEMU >= 8.0, KVM with Xen
                                    support); probes the host and says why not if it cannot
      --append CMDLINE              kernel command line (e.g. loglevel=debug)
      --memory SIZE                 guest RAM (default 128M)
      --fixture NAME                start a host fixture first; QEMU-ARGS may use {NAME.key}
  test [options] [IMAGE...]         build and run kernel test images (default: all)
      --release, --accel            as for run
      --jobs N                      images booted at once (default: number of CPUs)
      --filter TEXT                 run only tests whose name contains TEXT
      --verbose                     show serial output of passing images too
      --repeat N                    boot each image N times (stress runs)
  check FILE                        check FILE's Xen PVH note
  demo [options] [-- QEMU-ARGS...]  scripted session: real xenstored, boot, the host writes
                                    control/shutdown=poweroff with xenstore-write; exit 0 when
                                    the guest acknowledges and powers off
      --release, --accel, --append, --memory   as for run
  bench [--debug] [--accel A] [--image NAME]...
                                    boot the benchmark images (release build; only those NAMEd)
                                    against the real daemon; print each figure's median with its
                                    min, max and spread, and accel=
";

/// Guest RAM when `--memory` is not given.
const DEFAULT_MEMORY: &str = "128M";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`, `-h` or `help`, alone or after a command: the usage.
    Help,
    /// `build`.
    Build {
        /// `--release`.
        release: bool,
    },
    /// `run`.
    Run(RunArgs),
    /// `test`.
    Test(TestArgs),
    /// `check FILE`.
    Check(String),
    /// `demo`.
    Demo(BootArgs),
    /// `bench`.
    Bench {
        /// `--debug`: a debug build instead of release.
        debug: bool,
        /// `--accel`.
        accel: Option<Accel>,
        /// `--image NAME`: only these images (all benchmark images if empty).
        images: Vec<String>,
    },
}

/// The options `run` and `demo` share: how to build and boot one kernel.
#[derive(Debug, PartialEq, Eq)]
pub struct BootArgs {
    /// `--release`.
    pub release: bool,
    /// `--accel`; `None` lets `qemu::choose_accel` pick.
    pub accel: Option<Accel>,
    /// `--append`: the kernel command line.
    pub append: String,
    /// `--memory`.
    pub memory: String,
    /// Everything after `--`, passed to QEMU as is.
    pub qemu_args: Vec<String>,
}

/// `run`'s options.
#[derive(Debug, PartialEq, Eq)]
pub struct RunArgs {
    /// What `demo` takes too.
    pub boot: BootArgs,
    /// `--iso`.
    pub iso: bool,
    /// `--xen`.
    pub xen: bool,
    /// `--fixture NAME`, in order.
    pub fixtures: Vec<String>,
}

/// `test`'s options.
#[derive(Debug, PartialEq, Eq)]
pub struct TestArgs {
    /// `--release`.
    pub release: bool,
    /// `--verbose`.
    pub verbose: bool,
    /// `--accel`.
    pub accel: Option<Accel>,
    /// `--filter`.
    pub filter: Option<String>,
    /// `--jobs`; `None` is one per CPU.
    pub jobs: Option<usize>,
    /// `--repeat` (at least 1).
    pub repeat: usize,
    /// The images named, none for all.
    pub images: Vec<String>,
}

/// A usage error: what was wrong, then the usage.
fn usage_error(e: impl std::fmt::Display) -> String {
    format!("{e}\n\n{USAGE}")
}

fn string(value: OsString) -> Result<String, String> {
    value.string().map_err(usage_error)
}

/// The value of option `flag`, parsed; errors name the option.
fn parsed<T>(p: &mut Parser, flag: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = string(p.value().map_err(usage_error)?)?;
    value
        .parse()
        .map_err(|e| usage_error(format!("{flag} {value:?}: {e}")))
}

/// If the next argument is a bare `--`, everything after it (QEMU's
/// arguments); lexopt would hand them back as plain values, which `run`
/// and `demo` must tell apart from stray words.
fn after_dashes(p: &mut Parser) -> Result<Option<Vec<String>>, String> {
    let Some(mut raw) = p.try_raw_args() else {
        return Ok(None);
    };
    if raw.next_if(|a| a == "--").is_none() {
        return Ok(None);
    }
    raw.map(string).collect::<Result<_, _>>().map(Some)
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut p = Parser::from_args(args);
    let command = match p.next().map_err(usage_error)? {
        None => return Err(usage_error("no command given")),
        Some(Short('h') | Long("help")) => return Ok(Command::Help),
        Some(Value(command)) => string(command)?,
        Some(other) => return Err(usage_error(other.unexpected())),
    };
    match command.as_str() {
        "help" => Ok(Command::Help),
        "build" => parse_build(&mut p),
        "run" => parse_run(&mut p),
        "test" => parse_test(&mut p),
        "check" => parse_check(&mut p),
        "demo" => Ok(parse_boot(&mut p)?.map_or(Command::Help, Command::Demo)),
        "bench" => parse_bench(&mut p),
        other => Err(usage_error(format!("unknown command {other:?}"))),
    }
}

fn is_help(arg: &Arg<'_>) -> bool {
    matches!(arg, Short('h') | Long("help"))
}

fn parse_build(p: &mut Parser) -> Result<Command, String> {
    let mut release = false;
    while let Some(arg) = p.next().map_err(usage_error)? {
        match arg {
            arg if is_help(&arg) => return Ok(Command::Help),
            Long("release") => release = true,
            other => return Err(usage_error(other.unexpected())),
        }
    }
    Ok(Command::Build { release })
}

/// An option or value copied out of the parser, so that the parser is free
/// to read the option's value in a callback.
enum OwnedArg {
    Short(char),
    Long(String),
    Value(OsString),
}

impl OwnedArg {
    fn of(arg: Arg<'_>) -> Self {
        match arg {
            Short(c) => OwnedArg::Short(c),
            Long(l) => OwnedArg::Long(l.to_owned()),
            Value(v) => OwnedArg::Value(v),
        }
    }

    fn long(&self) -> Option<&str> {
        match self {
            OwnedArg::Long(l) => Some(l),
            _ => None,
        }
    }

    fn unexpected(self) -> String {
        usage_error(match self {
            OwnedArg::Short(c) => Short(c).unexpected(),
            OwnedArg::Long(l) => Long(&l).unexpected(),
            OwnedArg::Value(v) => Value(v).unexpected(),
        })
    }
}

/// The options of `demo`, and of `run` through `extra`, which takes the
/// long options only `run` has and returns whether it did. `None` is
/// `--help`.
fn parse_boot_with(
    p: &mut Parser,
    mut extra: impl FnMut(&mut Parser, &str) -> Result<bool, String>,
) -> Result<Option<BootArgs>, String> {
    let mut boot = BootArgs {
        release: false,
        accel: None,
        append: String::new(),
        memory: DEFAULT_MEMORY.into(),
        qemu_args: Vec::new(),
    };
    loop {
        if let Some(rest) = after_dashes(p)? {
            boot.qemu_args = rest;
            break;
        }
        let Some(arg) = p.next().map_err(usage_error)? else {
            break;
        };
        if is_help(&arg) {
            return Ok(None);
        }
        let arg = OwnedArg::of(arg);
        match arg.long() {
            Some("release") => boot.release = true,
            Some("accel") => boot.accel = Some(parsed(p, "--accel")?),
            Some("append") => boot.append = string(p.value().map_err(usage_error)?)?,
            Some("memory") => boot.memory = string(p.value().map_err(usage_error)?)?,
            Some(long) if extra(p, long)? => {}
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(boot))
}

fn parse_boot(p: &mut Parser) -> Result<Option<BootArgs>, String> {
    parse_boot_with(p, |_, _| Ok(false))
}

fn parse_run(p: &mut Parser) -> Result<Command, String> {
    let (mut iso, mut xen, mut fixtures) = (false, false, Vec::new());
    let boot = parse_boot_with(p, |p, long| {
        match long {
            "iso" => iso = true,
            "xen" => xen = true,
            "fixture" => fixtures.push(string(p.value().map_err(usage_error)?)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(match boot {
        Some(boot) => Command::Run(RunArgs {
            boot,
            iso,
            xen,
            fixtures,
        }),
        None => Command::Help,
    })
}

fn parse_test(p: &mut Parser) -> Result<Command, String> {
    let mut test = TestArgs {
        release: false,
        verbose: false,
        accel: None,
        filter: None,
        jobs: None,
        repeat: 1,
        images: Vec::new(),
    };
    while let Some(arg) = p.next().map_err(usage_error)? {
        match arg {
            arg if is_help(&arg) => return Ok(Command::Help),
            Long("release") => test.release = true,
            Long("verbose") => test.verbose = true,
            Long("accel") => test.accel = Some(parsed(p, "--accel")?),
            Long("filter") => test.filter = Some(string(p.value().map_err(usage_error)?)?),
            Long("jobs") => test.jobs = Some(parsed::<usize>(p, "--jobs")?.max(1)),
            Long("repeat") => {
                test.repeat = parsed(p, "--repeat")?;
                if test.repeat == 0 {
                    return Err(usage_error("--repeat 0: boot each image at least once"));
                }
            }
            Value(image) => test.images.push(string(image)?),
            other => return Err(usage_error(other.unexpected())),
        }
    }
    Ok(Command::Test(test))
}

fn parse_check(p: &mut Parser) -> Result<Command, String> {
    let mut files = Vec::new();
    while let Some(arg) = p.next().map_err(usage_error)? {
        match arg {
            arg if is_help(&arg) => return Ok(Command::Help),
            Value(file) => files.push(string(file)?),
            other => return Err(usage_error(other.unexpected())),
        }
    }
    match <[String; 1]>::try_from(files) {
        Ok([file]) => Ok(Command::Check(file)),
        Err(_) => Err(usage_error("check takes one file")),
    }
}

fn parse_bench(p: &mut Parser) -> Result<Command, String> {
    let (mut debug, mut accel, mut images) = (false, None, Vec::new());
    while let Some(arg) = p.next().map_err(usage_error)? {
        match arg {
            arg if is_help(&arg) => return Ok(Command::Help),
            Long("debug") => debug = true,
            Long("accel") => accel = Some(parsed(p, "--accel")?),
            Long("image") => images.push(parsed(p, "--image")?),
            other => return Err(usage_error(other.unexpected())),
        }
    }
    Ok(Command::Bench {
        debug,
        accel,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Command, String> {
        parse(args.split_whitespace().map(OsString::from))
    }

    #[test]
    fn help_anywhere_after_a_command_is_the_usage() {
        for args in [
            "--help",
            "-h",
            "help",
            "test --help",
            "run --release -h",
            "check -h",
        ] {
            assert_eq!(parse_str(args), Ok(Command::Help), "{args}");
        }
    }

    #[test]
    fn run_takes_its_options_and_leaves_what_follows_dashes_to_qemu() {
        let Ok(Command::Run(run)) = parse_str(
            "run --release --accel=tcg --memory 256M --fixture xenbus --fixture a -- -s -h --iso",
        ) else {
            panic!("not a run");
        };
        assert!(run.boot.release && !run.iso && !run.xen);
        assert_eq!(run.boot.accel, Some(Accel::Tcg));
        assert_eq!(run.boot.memory, "256M");
        assert_eq!(run.fixtures, ["xenbus", "a"]);
        assert_eq!(run.boot.qemu_args, ["-s", "-h", "--iso"]);
    }

    #[test]
    fn test_takes_images_and_numbers() {
        let Ok(Command::Test(test)) = parse_str("test --jobs 0 --repeat=3 a b --filter x") else {
            panic!("not a test");
        };
        assert_eq!(test.jobs, Some(1));
        assert_eq!(test.repeat, 3);
        assert_eq!(test.images, ["a", "b"]);
        assert_eq!(test.filter.as_deref(), Some("x"));
    }

    #[test]
    fn mistakes_are_named_and_followed_by_the_usage() {
        for (args, says) in [
            ("", "no command"),
            ("frob", "unknown command \"frob\""),
            ("build --iso", "--iso"),
            ("run stray", "stray"),
            ("demo --fixture x", "--fixture"),
            ("test --jobs", "--jobs"),
            ("test --jobs many", "--jobs \"many\""),
            ("test --repeat 0", "--repeat 0"),
            ("run --accel hvf", "unknown accelerator"),
            ("check", "one file"),
            ("check a b", "one file"),
            ("bench --release", "--release"),
        ] {
            let e = parse_str(args).unwrap_err();
            assert!(e.contains(says) && e.ends_with(USAGE), "{args}: {e}");
        }
    }
}
