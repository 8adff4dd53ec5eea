//! `testbed`: the shell entry point of the testbed crate.
//!
//! ```text
//! testbed fetch
//! testbed up [--domid N]... [--state-dir DIR] [--ivshmem SOCKET]
//!            [--no-trace] [--quota NAME=N]... [--xl-perms] [--daemon-arg ARG]...
//! ```
//!
//! `up` starts the real xenstored, introduces the domains, prints
//! `key=value` lines ending with `ready=1`, and runs until SIGTERM, SIGINT
//! or SIGHUP, until stdin reaches EOF (only when stdin is a pipe or socket,
//! so `testbed up ... &` with stdin on /dev/null keeps running), or until
//! the daemon dies (exit status 1). Lines read from a piped stdin are
//! commands: `restart` (answers `pid=` and `restarted=1`), `quit`,
//! `peek DOMID OFFSET` (`peek=VALUE`), `poke DOMID OFFSET VALUE`
//! (`poked=1`), `notify-guest DOMID` and `notify-daemon DOMID`
//! (`notified=1`). See testbed/README.md.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::{SFlag, fstat};

use testbed::ivshmem::IvshmemServer;
use testbed::{DomainConfig, HomeLayout, Options, Quota, SharedPage, Testbed};

const USAGE: &str = "usage:
  testbed fetch
      Locate or download xenstored; print daemon= and daemon_version=.
  testbed up [--domid N]... [--state-dir DIR] [--ivshmem SOCKET]
             [--no-trace] [--quota NAME=N]... [--xl-perms] [--daemon-arg ARG]...
      Start xenstored, introduce the domains (default: 1), serve the first
      domain's ring to QEMU on SOCKET if --ivshmem is given; print key=value
      lines ending with ready=1; run until SIGTERM/SIGINT, stdin EOF (pipe),
      `quit` on stdin, or the daemon's death. Other stdin commands:
      restart | peek DOMID OFFSET | poke DOMID OFFSET VALUE |
      notify-guest DOMID | notify-daemon DOMID";

fn main() -> ExitCode {
    let result = match parse(std::env::args_os().skip(1)) {
        Ok(Command::Fetch) => fetch(),
        Ok(Command::Up(args)) => up(args),
        Ok(Command::Help) => {
            println!("{USAGE}");
            Ok(())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

fn fetch() -> CliResult<()> {
    let daemon = testbed::xenstored()?;
    println!("daemon={}", daemon.path.display());
    println!("daemon_version={}", daemon.version);
    Ok(())
}

#[derive(Debug)]
enum Command {
    Fetch,
    Up(UpArgs),
    Help,
}

#[derive(Debug)]
struct UpArgs {
    domids: Vec<u32>,
    state_dir: Option<PathBuf>,
    ivshmem: Option<PathBuf>,
    trace: bool,
    quotas: Vec<Quota>,
    layout: HomeLayout,
    daemon_args: Vec<String>,
}

/// A usage error: what was wrong, then the usage.
fn usage_error(e: impl std::fmt::Display) -> Box<dyn std::error::Error> {
    format!("{e}\n{USAGE}").into()
}

/// The value of the option just read.
fn value(p: &mut lexopt::Parser) -> CliResult<String> {
    use lexopt::prelude::*;
    let value = p.value().map_err(usage_error)?;
    value.string().map_err(usage_error)
}

/// The command line, split by lexopt (`--opt value`, `--opt=value`).
fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> CliResult<Command> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let command = match p.next().map_err(usage_error)? {
        Some(Value(command)) => command.string().map_err(usage_error)?,
        Some(Short('h') | Long("help")) => return Ok(Command::Help),
        Some(other) => return Err(usage_error(other.unexpected())),
        None => return Err(usage_error("no command given")),
    };
    let mut up = UpArgs {
        domids: Vec::new(),
        state_dir: None,
        ivshmem: None,
        trace: true,
        quotas: Vec::new(),
        layout: HomeLayout::OwnedByDomain,
        daemon_args: Vec::new(),
    };
    match command.as_str() {
        "help" => return Ok(Command::Help),
        "fetch" | "up" => {}
        other => return Err(usage_error(format!("unknown command {other:?}"))),
    }
    while let Some(arg) = p.next().map_err(usage_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("domid") if command == "up" => {
                let domid = value(&mut p)?;
                let domid = domid
                    .parse()
                    .map_err(|e| usage_error(format!("--domid {domid:?}: {e}")))?;
                up.domids.push(domid);
            }
            Long("state-dir") if command == "up" => up.state_dir = Some(value(&mut p)?.into()),
            Long("ivshmem") if command == "up" => up.ivshmem = Some(value(&mut p)?.into()),
            Long("no-trace") if command == "up" => up.trace = false,
            Long("quota") if command == "up" => up.quotas.push(Quota::parse(&value(&mut p)?)?),
            Long("xl-perms") if command == "up" => up.layout = HomeLayout::Xl,
            Long("daemon-arg") if command == "up" => up.daemon_args.push(value(&mut p)?),
            other => return Err(usage_error(other.unexpected())),
        }
    }
    if command == "fetch" {
        return Ok(Command::Fetch);
    }
    if up.domids.is_empty() {
        up.domids.push(1);
    }
    Ok(Command::Up(up))
}

fn up(args: UpArgs) -> CliResult<()> {
    // Block the stop signals before any thread exists (threads inherit the
    // mask), so they all arrive through the signalfd below.
    let signals = stop_signals()?;

    let mut options = Options::new().trace(args.trace).keep_on_panic(false);
    if let Some(dir) = &args.state_dir {
        options = options.state_dir(dir);
    }
    for quota in &args.quotas {
        options = options.quota(*quota);
    }
    for arg in &args.daemon_args {
        options = options.daemon_arg(arg);
    }
    let tb = Testbed::with_options(options)?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "daemon={}", tb.xenstored().path.display())?;
    writeln!(out, "daemon_version={}", tb.xenstored().version)?;
    writeln!(out, "state_dir={}", tb.state_dir().display())?;
    writeln!(out, "socket={}", tb.socket_path().display())?;
    if let Some(trace) = tb.trace_path() {
        writeln!(out, "trace={}", trace.display())?;
    }
    writeln!(out, "syslog={}", tb.syslog_path().display())?;
    if let Some(pid) = tb.daemon_pid() {
        writeln!(out, "pid={pid}")?;
    }
    let mut domains = Vec::new();
    for &domid in &args.domids {
        let mut config = DomainConfig::new(domid);
        config.home = args.layout;
        let domain = tb.introduce_domain_with(config)?;
        writeln!(out, "dom{domid}_path={}", domain.home_path())?;
        writeln!(out, "dom{domid}_page={}", domain.page_path().display())?;
        writeln!(out, "dom{domid}_event_port={}", domain.config().event_port)?;
        domains.push(domain);
    }
    // The first domain goes to QEMU; the others stay introduced, idle.
    let mut ivshmem = None;
    if let Some(socket) = &args.ivshmem {
        let domain = domains.remove(0);
        let domid = domain.domid();
        ivshmem = Some(IvshmemServer::start(socket, domain)?);
        writeln!(out, "ivshmem={}", socket.display())?;
        writeln!(out, "ivshmem_domid={domid}")?;
    }
    writeln!(out, "ready=1")?;
    out.flush()?;
    drop(out);

    serve(&tb, &signals, ivshmem.as_mut())
}

/// Runs until a stop condition; checks the daemon and the ivshmem thread
/// every 250 ms.
fn serve(
    tb: &Testbed,
    signals: &SignalFd,
    mut ivshmem: Option<&mut IvshmemServer>,
) -> CliResult<()> {
    let watch_stdin = stdin_is_pipe_or_socket();
    let mut pending = Vec::new();
    loop {
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if watch_stdin {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::from(250u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        // Anything but "nothing happened" (`Some(false)`) counts.
        let ready: Vec<bool> = fds.iter().map(|f| f.any() != Some(false)).collect();
        drop(fds);
        if ready[0] {
            let signal = signals.read_signal()?.map_or(0, |info| info.ssi_signo);
            eprintln!("testbed: signal {signal}: stopping");
            return Ok(());
        }
        if ready.get(1) == Some(&true) {
            let mut buf = [0u8; 512];
            let got = match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => return Ok(()), // EOF (or error): whoever started us is gone
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..got]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if !command(tb, String::from_utf8_lossy(&line).trim())? {
                    return Ok(());
                }
            }
        }
        tb.check_daemon()?;
        if let Some(server) = ivshmem.as_deref_mut() {
            server.check()?;
        }
    }
}

/// Runs one stdin command; false means stop. Answers go to stdout as
/// `key=value` lines. A bad command, or one that fails, is reported on
/// stderr and otherwise ignored (the testbed keeps running).
fn command(tb: &Testbed, line: &str) -> CliResult<bool> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.as_slice() == ["quit"] {
        return Ok(false);
    }
    match answer(tb, &words) {
        Ok(lines) => {
            let mut out = std::io::stdout().lock();
            for l in lines {
                writeln!(out, "{l}")?;
            }
            out.flush()?;
        }
        Err(e) => eprintln!("testbed: {line:?}: {e}"),
    }
    Ok(true)
}

/// The answer lines of one command.
fn answer(tb: &Testbed, words: &[&str]) -> CliResult<Vec<String>> {
    let domid = |w: &str| -> CliResult<u32> { Ok(u32::try_from(parse_num(w)?)?) };
    Ok(match words {
        [] => vec![],
        ["restart"] => {
            tb.restart_daemon()?;
            let pid = tb.daemon_pid().map(|p| format!("pid={p}"));
            pid.into_iter().chain(["restarted=1".into()]).collect()
        }
        ["peek", d, offset] => {
            let page = SharedPage::open(&tb.page_path(domid(d)?))?;
            vec![format!("peek={}", page.read_u32(parse_num(offset)?)?)]
        }
        ["poke", d, offset, value] => {
            let page = SharedPage::open(&tb.page_path(domid(d)?))?;
            page.write_u32(parse_num(offset)?, u32::try_from(parse_num(value)?)?)?;
            vec!["poked=1".into()]
        }
        ["notify-guest", d] => {
            tb.notify_guest(domid(d)?)?;
            vec!["notified=1".into()]
        }
        ["notify-daemon", d] => {
            tb.notify_daemon(domid(d)?)?;
            vec!["notified=1".into()]
        }
        _ => {
            return Err(
                "unknown command (restart, quit, peek D OFF, poke D OFF VAL, \
                         notify-guest D, notify-daemon D)"
                    .into(),
            );
        }
    })
}

/// Parses a decimal or 0x-prefixed hexadecimal number.
fn parse_num(text: &str) -> CliResult<usize> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Ok(parsed.map_err(|_| format!("not a number: {text:?}"))?)
}

fn stdin_is_pipe_or_socket() -> bool {
    fstat(std::io::stdin().as_fd()).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

/// The stop signals, blocked (in this thread, before any other exists, so
/// in every thread) and delivered through a signalfd instead.
fn stop_signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(signal);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> CliResult<Command> {
        parse(args.split_whitespace().map(std::ffi::OsString::from))
    }

    #[test]
    fn up_takes_repeated_and_attached_values() {
        let Ok(Command::Up(up)) =
            parse_str("up --domid 1 --domid=2 --quota nodes=5 --daemon-arg -N --no-trace")
        else {
            panic!("not up");
        };
        assert_eq!(up.domids, [1, 2]);
        assert_eq!(up.quotas, [Quota::Nodes(5)]);
        assert_eq!(up.daemon_args, ["-N"]);
        assert!(!up.trace);
    }

    #[test]
    fn help_and_mistakes() {
        assert!(matches!(parse_str("up --help"), Ok(Command::Help)));
        assert!(matches!(parse_str("fetch"), Ok(Command::Fetch)));
        for (args, says) in [
            ("", "no command"),
            ("down", "unknown command"),
            ("fetch --domid 1", "--domid"),
            ("up --domid", "--domid"),
            ("up --domid x", "--domid \"x\""),
            ("up stray", "stray"),
        ] {
            let e = parse_str(args).unwrap_err().to_string();
            assert!(e.contains(says) && e.ends_with(USAGE), "{args}: {e}");
        }
    }
}
