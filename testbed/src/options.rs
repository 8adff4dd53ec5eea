//! How a testbed starts: [`Options`] and the daemon's limits, [`Quota`].

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A per-domain limit of the daemon. The names and defaults are the 4.17
/// daemon's (`xenstore-control quota` prints them; testbed/README.md lists
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Nodes a domain may own (default 1000).
    Nodes(u32),
    /// Watches per domain (default 128).
    Watches(u32),
    /// Open transactions per domain (default 10).
    Transactions(u32),
    /// Requests a domain may have in flight before the daemon stops
    /// reading its ring (default 20).
    Outstanding(u32),
    /// Nodes one transaction may touch (default 1024).
    TransactionNodes(u32),
    /// Bytes of daemon memory per domain; above it the ring is stalled
    /// (default 2621440).
    Memory(u32),
    /// Largest node (path + value + permissions) in bytes (default 2048).
    NodeSize(u32),
    /// Longest relative node path (default 2048).
    PathMax(u32),
    /// Permissions per node (default 5).
    Permissions(u32),
}

impl Quota {
    /// The daemon's name for it (XS_CONTROL `quota set <name> <value>`).
    pub fn name(self) -> &'static str {
        match self {
            Quota::Nodes(_) => "nodes",
            Quota::Watches(_) => "watches",
            Quota::Transactions(_) => "transactions",
            Quota::Outstanding(_) => "outstanding",
            Quota::TransactionNodes(_) => "transaction-nodes",
            Quota::Memory(_) => "memory",
            Quota::NodeSize(_) => "node-size",
            Quota::PathMax(_) => "path-max",
            Quota::Permissions(_) => "permissions",
        }
    }

    /// The limit.
    pub fn value(self) -> u32 {
        match self {
            Quota::Nodes(v)
            | Quota::Watches(v)
            | Quota::Transactions(v)
            | Quota::Outstanding(v)
            | Quota::TransactionNodes(v)
            | Quota::Memory(v)
            | Quota::NodeSize(v)
            | Quota::PathMax(v)
            | Quota::Permissions(v) => v,
        }
    }

    /// Parses `name=value` with the daemon's names (see [`Quota::name`]).
    pub fn parse(spec: &str) -> Result<Quota> {
        let bad = || Error::Usage(format!("bad quota {spec:?}: want NAME=NUMBER"));
        let (name, value) = spec.split_once('=').ok_or_else(bad)?;
        let v: u32 = value.trim().parse().map_err(|_| bad())?;
        let quota = match name.trim() {
            "nodes" => Quota::Nodes(v),
            "watches" => Quota::Watches(v),
            "transactions" => Quota::Transactions(v),
            "outstanding" => Quota::Outstanding(v),
            "transaction-nodes" => Quota::TransactionNodes(v),
            "memory" => Quota::Memory(v),
            "node-size" => Quota::NodeSize(v),
            "path-max" => Quota::PathMax(v),
            "permissions" => Quota::Permissions(v),
            other => return Err(Error::Usage(format!("unknown quota {other:?}"))),
        };
        Ok(quota)
    }

    /// The daemon's command-line arguments setting it at start.
    pub(crate) fn args(self) -> Vec<String> {
        let v = self.value().to_string();
        let flag = |f: &str| vec![f.to_string(), v.clone()];
        match self {
            Quota::Nodes(_) => flag("-E"),
            Quota::Watches(_) => flag("-W"),
            Quota::Transactions(_) => flag("-t"),
            Quota::NodeSize(_) => flag("-S"),
            Quota::PathMax(_) => flag("-M"),
            Quota::Permissions(_) => flag("-A"),
            Quota::Outstanding(_) | Quota::TransactionNodes(_) | Quota::Memory(_) => {
                vec!["-Q".to_string(), format!("{}={v}", self.name())]
            }
        }
    }
}

/// How to start a testbed. `Options::default()` is: trace on, a fresh
/// private directory, the daemon's default quotas, keep the directory when
/// dropped during a panic.
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) trace: bool,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) quotas: Vec<Quota>,
    pub(crate) daemon_args: Vec<String>,
    pub(crate) keep_on_panic: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trace: true,
            state_dir: None,
            quotas: Vec::new(),
            daemon_args: Vec::new(),
            keep_on_panic: true,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the daemon writes a trace of every request (`-T`) into the
    /// state directory. On by default; costs a write(2) per line, so turn
    /// it off for benchmarks.
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }

    /// Use `dir` (created if missing) instead of a fresh private directory.
    /// Its path must leave room for socket names (at most 85 bytes).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Starts the daemon with this limit.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quotas.push(quota);
        self
    }

    /// Passes an extra argument to xenstored (after the testbed's own).
    pub fn daemon_arg(mut self, arg: impl Into<String>) -> Self {
        self.daemon_args.push(arg.into());
        self
    }

    /// Whether a testbed dropped while its thread panics keeps its
    /// directory (logs, trace, pages) and prints where. Default true.
    pub fn keep_on_panic(mut self, keep: bool) -> Self {
        self.keep_on_panic = keep;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_by_the_daemons_names_and_map_to_its_flags() {
        assert_eq!(Quota::parse("nodes=50").unwrap(), Quota::Nodes(50));
        assert_eq!(
            Quota::parse("transaction-nodes=7").unwrap(),
            Quota::TransactionNodes(7)
        );
        assert!(Quota::parse("nodes").is_err());
        assert!(Quota::parse("nodes=-1").is_err());
        assert!(Quota::parse("bogus=1").is_err());
        assert_eq!(Quota::Nodes(50).args(), ["-E", "50"]);
        assert_eq!(Quota::Outstanding(5).args(), ["-Q", "outstanding=5"]);
        for q in [Quota::Memory(1), Quota::PathMax(2), Quota::Permissions(3)] {
            assert_eq!(
                Quota::parse(&format!("{}={}", q.name(), q.value())).unwrap(),
                q
            );
        }
    }
}
