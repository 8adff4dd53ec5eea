//! The shell's command language: one line in, one [`Command`] (or a typed
//! [`ParseError`] saying what is wrong and how the command is used) out.
//!
//! Pure code (only `alloc`): the host runs its tests.
//!
//! Words are separated by blanks. `"..."` quotes a word (with `\"` and
//! `\\` inside), `'...'` quotes it literally, and `\` outside quotes takes
//! the next character as is: `write data/motd "hello world"`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help [COMMAND]`.
    Help(Option<String>),
    /// `ls [PATH]`: the children of PATH (default: our home) and their values.
    Ls(Option<String>),
    /// `read PATH`.
    Read(String),
    /// `write PATH VALUE`.
    Write {
        /// Where.
        path: String,
        /// What.
        value: String,
    },
    /// `rm PATH` (the whole subtree).
    Rm(String),
    /// `mkdir PATH`.
    Mkdir(String),
    /// `watch PATH`, or `watch` alone to list the shell's watches.
    Watch(Option<String>),
    /// `unwatch ID|PATH`.
    Unwatch(WatchTarget),
    /// `perms PATH` shows them; `perms PATH PERM...` sets them (first
    /// entry: owner and everyone else's access; then per-domain grants).
    Perms {
        /// The node.
        path: String,
        /// New permissions, as `n0`, `r1`, ... (validated).
        set: Option<Vec<String>>,
    },
    /// `devices`: the bus's devices and their states.
    Devices,
    /// `services`: each guest service's state machine.
    Services,
    /// `vm-data [KEY]`: the host's `vm-data/` pool, or one key.
    VmData(Option<String>),
    /// `files`: the files copied in from dom0, with their sizes.
    Files,
    /// `cat FILE`: a copied file's bytes.
    Cat(String),
    /// `sum FILE`: a copied file's CRC-32 (as busybox's `crc32` prints it)
    /// and size.
    Sum(String),
    /// `rmfile FILE`: remove a copied file (`rm` is xenstore's).
    RmFile(String),
    /// `poweroff`.
    Poweroff,
}

/// What `unwatch` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchTarget {
    /// The number `watch` printed.
    Id(u32),
    /// The watched path, as typed to `watch`.
    Path(String),
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A `"` or `'` was not closed.
    UnterminatedQuote,
    /// The line ends in a lone `\`.
    TrailingBackslash,
    /// No such command.
    UnknownCommand(String),
    /// The command takes a different number of arguments.
    Arity {
        /// The command.
        command: &'static str,
        /// How it is used.
        usage: &'static str,
    },
    /// A permission entry that is not `n|r|w|b` followed by a domain id.
    BadPermission(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedQuote => f.write_str("unterminated quote"),
            Self::TrailingBackslash => f.write_str("the line ends with a lone '\\'"),
            Self::UnknownCommand(name) => {
                write!(f, "unknown command {name:?} (type 'help' for the list)")
            }
            Self::Arity { command, usage } => {
                write!(f, "wrong number of arguments to {command}; usage: {usage}")
            }
            Self::BadPermission(p) => write!(
                f,
                "bad permission {p:?}: want n, r, w or b followed by a domain id, e.g. n0 r1"
            ),
        }
    }
}

/// One command's name, usage line and summary, for `help` and errors.
#[derive(Clone, Copy, Debug)]
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// How it is used.
    pub usage: &'static str,
    /// What it does.
    pub summary: &'static str,
    min_args: usize,
    max_args: usize,
}

const fn help(
    name: &'static str,
    usage: &'static str,
    args: (usize, usize),
    summary: &'static str,
) -> CommandHelp {
    CommandHelp {
        name,
        usage,
        summary,
        min_args: args.0,
        max_args: args.1,
    }
}

/// Every command, in the order `help` lists them.
#[rustfmt::skip] // A table: one command per line.
pub const COMMANDS: &[CommandHelp] = &[
    help("help", "help [COMMAND]", (0, 1), "list the commands, or explain one"),
    help("ls", "ls [PATH]", (0, 1), "list PATH's children and their values (default: our home)"),
    help("read", "read PATH", (1, 1), "print a node's value"),
    help("write", "write PATH VALUE", (2, 2), "set a node's value (quote values with blanks)"),
    help("rm", "rm PATH", (1, 1), "remove a node and everything below it"),
    help("mkdir", "mkdir PATH", (1, 1), "create an empty node"),
    help("watch", "watch [PATH]", (0, 1), "watch PATH, printing its events as they come; alone: list watches"),
    help("unwatch", "unwatch ID|PATH", (1, 1), "remove a watch"),
    help("perms", "perms PATH [PERM...]", (1, usize::MAX), "show a node's permissions, or set them (e.g. perms data/x n1 r0)"),
    help("devices", "devices", (0, 0), "the XenBus devices, our state and the backend's"),
    help("services", "services", (0, 0), "the guest services (control/shutdown, data/, vm-data/)"),
    help("vm-data", "vm-data [KEY]", (0, 1), "the host's vm-data/ pool, or one key"),
    help("files", "files", (0, 0), "the files copied in from dom0 (xen-fcopy), their sizes and the store's use"),
    help("cat", "cat FILE", (1, 1), "print a copied file (the first 64 KiB)"),
    help("sum", "sum FILE", (1, 1), "a copied file's CRC-32 (as busybox's crc32 prints it) and size"),
    help("rmfile", "rmfile FILE", (1, 1), "remove a copied file"),
    help("poweroff", "poweroff", (0, 0), "power the guest off"),
];

/// The help entry of `name`, if it is a command.
pub fn command_help(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Parses one line. `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let words = split_words(line)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let spec = command_help(name).ok_or_else(|| ParseError::UnknownCommand(name.clone()))?;
    if args.len() < spec.min_args || args.len() > spec.max_args {
        return Err(ParseError::Arity {
            command: spec.name,
            usage: spec.usage,
        });
    }
    let mut args = args.iter().cloned();
    let mut next = || args.next().unwrap_or_default();
    let command = match spec.name {
        "help" => Command::Help(words.get(1).cloned()),
        "ls" => Command::Ls(words.get(1).cloned()),
        "read" => Command::Read(next()),
        "write" => Command::Write {
            path: next(),
            value: next(),
        },
        "rm" => Command::Rm(next()),
        "mkdir" => Command::Mkdir(next()),
        "watch" => Command::Watch(words.get(1).cloned()),
        "unwatch" => {
            let target = next();
            match target.parse::<u32>() {
                Ok(id) => Command::Unwatch(WatchTarget::Id(id)),
                Err(_) => Command::Unwatch(WatchTarget::Path(target)),
            }
        }
        "perms" => {
            let path = next();
            let set: Vec<String> = words[2..].to_vec();
            if let Some(bad) = set.iter().find(|p| !is_permission(p)) {
                return Err(ParseError::BadPermission(bad.clone()));
            }
            Command::Perms {
                path,
                set: (!set.is_empty()).then_some(set),
            }
        }
        "devices" => Command::Devices,
        "services" => Command::Services,
        "vm-data" => Command::VmData(words.get(1).cloned()),
        "files" => Command::Files,
        "cat" => Command::Cat(next()),
        "sum" => Command::Sum(next()),
        "rmfile" => Command::RmFile(next()),
        "poweroff" => Command::Poweroff,
        // A table entry without a case here: refuse rather than guess.
        other => return Err(ParseError::UnknownCommand(String::from(other))),
    };
    Ok(Some(command))
}

/// Whether `p` is a permission entry: `n`, `r`, `w` or `b`, then a domain
/// id (decimal, fits 16 bits).
pub fn is_permission(p: &str) -> bool {
    let mut chars = p.chars();
    matches!(chars.next(), Some('n' | 'r' | 'w' | 'b'))
        && !chars.as_str().is_empty()
        && chars.as_str().bytes().all(|b| b.is_ascii_digit())
        && chars.as_str().parse::<u16>().is_ok()
}

/// Splits a line into words (see the module doc for quoting).
pub fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    loop {
        // Skip blanks between words.
        let mut rest = chars.clone();
        match rest.next() {
            None => return Ok(words),
            Some(c) if c.is_whitespace() => {
                chars = rest;
                continue;
            }
            Some(_) => {}
        }
        let mut word = String::new();
        loop {
            let mut peek = chars.clone();
            match peek.next() {
                None => break,
                Some(c) if c.is_whitespace() => break,
                Some('"') => {
                    chars = peek;
                    double_quoted(&mut chars, &mut word)?;
                }
                Some('\'') => {
                    chars = peek;
                    let end = chars
                        .as_str()
                        .find('\'')
                        .ok_or(ParseError::UnterminatedQuote)?;
                    word.push_str(&chars.as_str()[..end]);
                    chars = chars.as_str()[end + 1..].chars();
                }
                Some('\\') => {
                    chars = peek;
                    word.push(chars.next().ok_or(ParseError::TrailingBackslash)?);
                }
                Some(c) => {
                    chars = peek;
                    word.push(c);
                }
            }
        }
        words.push(word);
    }
}

/// Reads a `"..."` word's inside (the opening quote already taken).
fn double_quoted(chars: &mut core::str::Chars<'_>, word: &mut String) -> Result<(), ParseError> {
    loop {
        match chars.next() {
            None => return Err(ParseError::UnterminatedQuote),
            Some('"') => return Ok(()),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => word.push(c),
                Some(c) => {
                    word.push('\\');
                    word.push(c);
                }
                None => return Err(ParseError::UnterminatedQuote),
            },
            Some(c) => word.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn ok(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    #[test]
    fn every_command_parses_with_its_arguments() {
        assert_eq!(ok("help"), Command::Help(None));
        assert_eq!(ok("help write"), Command::Help(Some("write".into())));
        assert_eq!(ok("ls"), Command::Ls(None));
        assert_eq!(
            ok("ls /local/domain/1"),
            Command::Ls(Some("/local/domain/1".into()))
        );
        assert_eq!(ok("read name"), Command::Read("name".into()));
        assert_eq!(
            ok("write data/x 42"),
            Command::Write {
                path: "data/x".into(),
                value: "42".into()
            }
        );
        assert_eq!(ok("rm data/x"), Command::Rm("data/x".into()));
        assert_eq!(ok("mkdir data/d"), Command::Mkdir("data/d".into()));
        assert_eq!(ok("watch"), Command::Watch(None));
        assert_eq!(ok("watch data"), Command::Watch(Some("data".into())));
        assert_eq!(ok("unwatch 3"), Command::Unwatch(WatchTarget::Id(3)));
        assert_eq!(
            ok("unwatch data"),
            Command::Unwatch(WatchTarget::Path("data".into()))
        );
        assert_eq!(
            ok("perms data"),
            Command::Perms {
                path: "data".into(),
                set: None
            }
        );
        assert_eq!(
            ok("perms data n1 r0"),
            Command::Perms {
                path: "data".into(),
                set: Some(vec!["n1".into(), "r0".into()])
            }
        );
        assert_eq!(ok("devices"), Command::Devices);
        assert_eq!(ok("services"), Command::Services);
        assert_eq!(ok("vm-data"), Command::VmData(None));
        assert_eq!(ok("vm-data k"), Command::VmData(Some("k".into())));
        assert_eq!(ok("files"), Command::Files);
        assert_eq!(ok("cat /f"), Command::Cat("/f".into()));
        assert_eq!(ok("sum /f"), Command::Sum("/f".into()));
        assert_eq!(ok("rmfile /f"), Command::RmFile("/f".into()));
        assert_eq!(ok("poweroff"), Command::Poweroff);
        // Every command in the table is reachable.
        for c in COMMANDS {
            assert!(
                !matches!(parse(c.name), Err(ParseError::UnknownCommand(_))),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn blank_lines_are_no_command() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   \t "), Ok(None));
    }

    #[test]
    fn quoting_keeps_blanks_and_escapes() {
        assert_eq!(
            split_words(r#"write data/motd "hello world""#).unwrap(),
            ["write", "data/motd", "hello world"]
        );
        assert_eq!(split_words(r#"a"b c"d"#).unwrap(), ["ab cd"]);
        assert_eq!(
            split_words(r#""say \"hi\" \\ \n""#).unwrap(),
            [r#"say "hi" \ \n"#]
        );
        assert_eq!(split_words(r"'a \ b' c\ d").unwrap(), [r"a \ b", "c d"]);
        assert_eq!(split_words(r#"x """#).unwrap(), ["x", ""]);
        assert_eq!(split_words("  lead  trail  ").unwrap(), ["lead", "trail"]);
    }

    #[test]
    fn bad_input_is_a_typed_error_with_the_usage() {
        assert_eq!(
            parse("frobnicate x"),
            Err(ParseError::UnknownCommand("frobnicate".into()))
        );
        assert_eq!(
            parse("write onlyapath"),
            Err(ParseError::Arity {
                command: "write",
                usage: "write PATH VALUE"
            })
        );
        assert_eq!(
            parse("read a b").unwrap_err().to_string(),
            "wrong number of arguments to read; usage: read PATH"
        );
        assert!(
            parse("devices now")
                .unwrap_err()
                .to_string()
                .ends_with("usage: devices")
        );
        assert_eq!(
            parse(r#"write x "open"#),
            Err(ParseError::UnterminatedQuote)
        );
        assert_eq!(parse("write x 'open"), Err(ParseError::UnterminatedQuote));
        assert_eq!(parse(r"write x y\"), Err(ParseError::TrailingBackslash));
        for bad in ["x1", "r", "r-1", "r70000", "rw1", "R1"] {
            assert_eq!(
                parse(&alloc::format!("perms data {bad}")),
                Err(ParseError::BadPermission(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn permissions_are_a_letter_and_a_domain_id() {
        for good in ["n0", "r1", "w65535", "b7"] {
            assert!(is_permission(good), "{good}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for line in [
            "\"",
            "'",
            "\\",
            "\u{0}",
            "é \"é",
            "write \"\\",
            "perms",
            "unwatch 99999999999",
        ] {
            let _ = parse(line);
        }
    }
}
