//! realxen's command line. `lexopt` splits it (`--opt value`,
//! `--opt=value`, and names what it could not read); this module says which
//! options each command takes.

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::prelude::*;

use crate::bed::{BedOptions, Daemon};

/// The usage text, printed by `--help` and after a usage error.
pub const USAGE: &str = "\
usage: realxen <command> [options]

commands:
  fetch [--refresh]       fetch the pinned packages (realxen/packages.lock) into .cache/realxen/;
                          --refresh re-resolves names and versions with apt-cache and rewrites the lock
  run [--put HOST:DOM0]... [--preload HOST:DOM0]... SCRIPT
                          boot Xen + dom0, copy each HOST file to DOM0 (a path in dom0), run SCRIPT
                          with sh in dom0, print its output; exit with its status. --put copies
                          through the command channel (~5 KB/s), --preload in the initramfs (any size)
  soak N [--filter TEXT] [--kernel FILE] [--daemon D]
                          boot N times, running the tests in each boot (the determinism check);
                          exit 0 only if every boot passed every test
  test [--filter TEXT] [--kernel FILE] [--daemon D]
                          the `xen` step: build the kernel (or take FILE); for each daemon boot
                          Xen + dom0 once and run each test on PVH guests made with xl;
                          libtest-style output
  shell [--kernel FILE] [--send FILE]...
                          boot Xen + dom0, create the kernel as a PVH guest and attach this terminal
                          to its shell on the PV console (line by line); `poweroff` ends it, status 0
                          (./run-qemu.sh --real-xen); --send copies each host FILE into the guest
                          (dom0 runs xen-fcopy once the shell is up): `cat /NAME` shows it
  demo [--kernel FILE] [--send FILE]...
                          the scripted version: once the shell is up (and each --send FILE copied
                          and its sum checked), dom0 runs `xl shutdown -w`; status 0 when the
                          guest acknowledged and powered off
  bench [xenstore] [fcopy]
                          ./run-bench.sh's real-Xen section, one boot, name=value lines: xenstore, the
                          kernel against a Linux guest (dom0's driver times both); fcopy, the file copy
                          service's throughput against the raw vchan's, the same 64 MiB file; both
                          when none is named

options (run, test, soak, shell, demo, bench):
  --daemon D              dom0's xenstore daemon: xenstored (C) or oxenstored (OCaml); test and
                          soak also take `both`, their default (one boot each)
  --cpu MODEL             QEMU -cpu (default: bed::DEFAULT_CPU; $REALXEN_CPU also sets it)
  --smp N                 QEMU -smp (default 1)
  --xen-append TEXT       appended to Xen's command line
";

/// The machine options every booting command takes.
const BED: &[&str] = &["daemon", "cpu", "smp", "xen-append"];

/// Which parts of `realxen bench` to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchSections {
    /// The xenstore comparison with a Linux guest.
    pub xenstore: bool,
    /// The file copy service against the raw vchan.
    pub fcopy: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `--help`, `-h` or `help`, alone or after a command.
    Help,
    /// `fetch`.
    Fetch {
        /// `--refresh`.
        refresh: bool,
    },
    /// `run SCRIPT`.
    Run {
        /// The machine, `--preload` files included.
        bed: BedOptions,
        /// `--put HOST:DOM0`, in order.
        puts: Vec<(PathBuf, String)>,
        /// The script dom0 runs.
        script: String,
    },
    /// `soak N`.
    Soak {
        /// What `test` takes too.
        suite: SuiteArgs,
        /// Boots.
        count: u32,
    },
    /// `test`.
    Test(SuiteArgs),
    /// `shell`.
    Shell(GuestArgs),
    /// `demo`.
    Demo(GuestArgs),
    /// `bench [xenstore] [fcopy]`.
    Bench {
        bed: BedOptions,
        sections: BenchSections,
    },
}

/// The options of `test` and `soak`.
#[derive(Debug)]
pub struct SuiteArgs {
    /// The machine, with dom0's daemon left at its default.
    pub bed: BedOptions,
    /// `--daemon`, `both` by default.
    pub daemons: Vec<Daemon>,
    /// `--kernel`; `None` builds it.
    pub kernel: Option<PathBuf>,
    /// `--filter`.
    pub filter: Option<String>,
    /// The machine options as given, for a child `realxen test` to take
    /// the same ones.
    pub bed_args: Vec<String>,
}

/// The options of `shell` and `demo`.
#[derive(Debug)]
pub struct GuestArgs {
    /// The machine.
    pub bed: BedOptions,
    /// `--kernel`; `None` builds it.
    pub kernel: Option<PathBuf>,
    /// `--send FILE`, in order: host files to copy into the guest.
    pub send: Vec<PathBuf>,
}

/// A usage error: what was wrong, then the usage.
fn usage_error(e: impl std::fmt::Display) -> String {
    format!("{e}\n\n{USAGE}")
}

/// `HOST:DOM0` of `--put` and `--preload`.
fn host_and_dom0(flag: &str, spec: &str) -> Result<(PathBuf, String), String> {
    let (host, dom0) = spec
        .split_once(':')
        .ok_or_else(|| format!("--{flag} {spec:?}: want HOST:DOM0"))?;
    Ok((host.into(), dom0.to_string()))
}

/// The options and words of one command, before they are checked.
#[derive(Default)]
struct Given {
    options: Vec<(String, Option<String>)>,
    words: Vec<String>,
}

impl Given {
    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    /// The last value of option `name` (a repeated option overrides).
    fn last<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).last()
    }

    /// Every value of option `name`, in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
    }

    /// The machine options, `--daemon` when `single_daemon` (test and
    /// soak read it themselves).
    fn bed(&self, single_daemon: bool) -> Result<BedOptions, String> {
        let mut options = BedOptions::default();
        if let Some(cpu) = self.last("cpu") {
            options.cpu = cpu.to_string();
        }
        if let Some(append) = self.last("xen-append") {
            options.xen_append = append.to_string();
        }
        if let Some(name) = self.last("daemon").filter(|_| single_daemon) {
            options.daemon = Daemon::parse(name)
                .ok_or_else(|| format!("--daemon {name:?}: want xenstored or oxenstored"))?;
        }
        if let Some(smp) = self.last("smp") {
            options.smp = smp
                .parse()
                .map_err(|_| format!("--smp {smp:?}: want a number"))?;
        }
        Ok(options)
    }

    fn suite(&self) -> Result<SuiteArgs, String> {
        let daemons =
            match self.last("daemon") {
                None | Some("both") => Daemon::ALL.to_vec(),
                Some(name) => vec![Daemon::parse(name).ok_or_else(|| {
                    format!("--daemon {name:?}: want xenstored, oxenstored or both")
                })?],
            };
        let bed_args = self
            .options
            .iter()
            .filter(|(name, _)| matches!(name.as_str(), "cpu" | "smp" | "xen-append"))
            .flat_map(|(name, value)| [format!("--{name}"), value.clone().unwrap_or_default()])
            .collect();
        Ok(SuiteArgs {
            bed: self.bed(false)?,
            daemons,
            kernel: self.last("kernel").map(PathBuf::from),
            filter: self.last("filter").map(str::to_string),
            bed_args,
        })
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut p = lexopt::Parser::from_args(args);
    let command = match p.next().map_err(usage_error)? {
        None => return Err(usage_error("no command given")),
        Some(Short('h') | Long("help")) => return Ok(Command::Help),
        Some(Value(command)) => command.string().map_err(usage_error)?,
        Some(other) => return Err(usage_error(other.unexpected())),
    };
    // Each command's options: (name, takes a value).
    let mut takes: Vec<(&str, bool)> = match command.as_str() {
        "help" => return Ok(Command::Help),
        "fetch" => vec![("refresh", false)],
        "run" => vec![("put", true), ("preload", true)],
        "soak" | "test" => vec![("kernel", true), ("filter", true)],
        "shell" | "demo" => vec![("kernel", true), ("send", true)],
        "bench" => vec![],
        other => return Err(usage_error(format!("unknown command {other:?}"))),
    };
    if command != "fetch" {
        takes.extend(BED.iter().map(|&name| (name, true)));
    }
    let mut given = Given::default();
    while let Some(arg) = p.next().map_err(usage_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long(name) => match takes.iter().find(|(n, _)| *n == name) {
                Some(&(name, with_value)) => {
                    let value = match with_value {
                        true => Some(
                            p.value()
                                .map_err(usage_error)?
                                .string()
                                .map_err(usage_error)?,
                        ),
                        false => None,
                    };
                    given.options.push((name.to_string(), value));
                }
                None => return Err(usage_error(Long(name).unexpected())),
            },
            Value(word) => given.words.push(word.string().map_err(usage_error)?),
            other => return Err(usage_error(other.unexpected())),
        }
    }
    let words = std::mem::take(&mut given.words);
    match command.as_str() {
        "fetch" => match words.first() {
            Some(extra) => Err(usage_error(format!("unexpected argument {extra:?}"))),
            None => Ok(Command::Fetch {
                refresh: given.flag("refresh"),
            }),
        },
        "run" => {
            let [script] =
                <[String; 1]>::try_from(words).map_err(|_| usage_error("run takes one SCRIPT"))?;
            let mut bed = given.bed(true)?;
            for spec in given.all("preload") {
                let (host, dom0) = host_and_dom0("preload", spec)?;
                bed.preload.push(crate::preload::Preload { host, dom0 });
            }
            let puts = given
                .all("put")
                .map(|spec| host_and_dom0("put", spec))
                .collect::<Result<_, _>>()?;
            Ok(Command::Run { bed, puts, script })
        }
        "soak" => {
            let [n] =
                <[String; 1]>::try_from(words).map_err(|_| usage_error("soak takes one N"))?;
            let count = n
                .parse()
                .map_err(|_| format!("soak N: {n:?} is not a number"))?;
            Ok(Command::Soak {
                suite: given.suite()?,
                count,
            })
        }
        "bench" => {
            let mut sections = BenchSections {
                xenstore: words.is_empty(),
                fcopy: words.is_empty(),
            };
            for word in &words {
                match word.as_str() {
                    "xenstore" => sections.xenstore = true,
                    "fcopy" => sections.fcopy = true,
                    other => return Err(usage_error(format!("unknown bench section {other:?}"))),
                }
            }
            Ok(Command::Bench {
                bed: given.bed(true)?,
                sections,
            })
        }
        "test" | "shell" | "demo" => {
            if let Some(extra) = words.first() {
                return Err(usage_error(format!("unexpected argument {extra:?}")));
            }
            if command == "test" {
                return Ok(Command::Test(given.suite()?));
            }
            let guest = GuestArgs {
                bed: given.bed(true)?,
                kernel: given.last("kernel").map(PathBuf::from),
                send: given.all("send").map(PathBuf::from).collect(),
            };
            Ok(match command.as_str() {
                "shell" => Command::Shell(guest),
                _ => Command::Demo(guest),
            })
        }
        _ => unreachable!("commands are checked above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Command, String> {
        parse(args.split_whitespace().map(OsString::from))
    }

    #[test]
    fn help_anywhere_after_a_command_is_the_usage() {
        for args in ["-h", "--help", "help", "test --help", "run --put a:b -h"] {
            assert!(matches!(parse_str(args), Ok(Command::Help)), "{args}");
        }
    }

    #[test]
    fn test_keeps_the_machine_options_for_its_children() {
        let Ok(Command::Test(suite)) =
            parse_str("test --smp=2 --daemon both --filter x --cpu max --kernel k")
        else {
            panic!("not a test");
        };
        assert_eq!(suite.bed.smp, 2);
        assert_eq!(suite.daemons, Daemon::ALL.to_vec());
        assert_eq!(suite.filter.as_deref(), Some("x"));
        assert_eq!(suite.kernel, Some(PathBuf::from("k")));
        assert_eq!(suite.bed_args, ["--smp", "2", "--cpu", "max"]);
    }

    #[test]
    fn run_and_soak_take_their_words() {
        let Ok(Command::Run { bed, puts, script }) =
            parse_str("run --put a:/b --preload c:/d --daemon oxenstored true")
        else {
            panic!("not a run");
        };
        assert_eq!(script, "true");
        assert_eq!(puts, [(PathBuf::from("a"), "/b".to_string())]);
        assert_eq!(bed.preload.len(), 1);
        assert_eq!(bed.daemon, Daemon::Oxenstored);
        assert!(matches!(
            parse_str("soak 3 --daemon xenstored"),
            Ok(Command::Soak { count: 3, .. })
        ));
    }

    #[test]
    fn shell_takes_files_to_send() {
        let Ok(Command::Shell(guest)) = parse_str("shell --send a --send=/b/c") else {
            panic!("not a shell");
        };
        assert_eq!(guest.send, [PathBuf::from("a"), PathBuf::from("/b/c")]);
    }

    #[test]
    fn mistakes_are_named() {
        for (args, says) in [
            ("", "no command"),
            ("boot", "unknown command"),
            ("fetch --kernel k", "--kernel"),
            ("fetch extra", "extra"),
            ("run", "one SCRIPT"),
            ("run --put nocolon s", "want HOST:DOM0"),
            ("soak", "one N"),
            ("soak x", "not a number"),
            ("test --smp many", "--smp \"many\""),
            ("test --daemon c", "or both"),
            ("shell --daemon both", "want xenstored or oxenstored"),
            ("shell --filter x", "--filter"),
            ("demo --kernel", "--kernel"),
        ] {
            let Err(e) = parse_str(args) else {
                panic!("{args}: accepted");
            };
            assert!(e.contains(says), "{args}: {e}");
        }
    }
}
