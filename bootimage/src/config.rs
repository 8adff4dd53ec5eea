//! Per-image runner settings, read from a test image's `.ktest_config`
//! section (written by `ktests::config!` as NUL-separated key/value pairs).

use std::time::Duration;

/// How an image is expected to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every test passes and the kernel exits with success (the default).
    Success,
    /// Runner self-test: the image must fail with a reported panic.
    Panic,
    /// Runner self-test: the image must hang and be killed at its timeout.
    Timeout,
    /// The image's last test ends the machine by powering it off on the
    /// host's request: the kernel prints `@power poweroff` and QEMU exits
    /// with the success status (33). The tests before it must pass.
    Poweroff,
    /// As `Poweroff`, but a reset: the kernel prints `@power reboot` and
    /// resets the machine, which QEMU's `-no-reboot` turns into an exit
    /// with status 0.
    Reboot,
}

/// What an image is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A test image, run by `bootimage test` (the default).
    Test,
    /// A benchmark image, run only by `bootimage bench`: it prints
    /// `bench: key=value` lines and is not part of the test suite.
    Bench,
    /// A test image for real Xen, run only by `realxen test` as a PVH domU
    /// (its results come back over the PV console; QEMU cannot boot it
    /// usefully: it needs the hypervisor).
    Xen,
}

/// Everything the runner needs to know to boot one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Kill the image after this long.
    pub timeout: Duration,
    /// Guest RAM (QEMU `-m`).
    pub memory: String,
    /// Extra QEMU arguments (with `{fixture.key}` placeholders).
    pub qemu_args: Vec<String>,
    /// Host fixtures to start first, by name.
    pub needs: Vec<String>,
    /// Bytes fed to the serial port once the kernel is up.
    pub stdin: Option<String>,
    /// Extra kernel command-line words.
    pub cmdline: Vec<String>,
    /// Expected ending.
    pub expect: Expect,
    /// Test or benchmark.
    pub role: Role,
}

/// Default per-image time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            memory: "128M".into(),
            qemu_args: Vec::new(),
            needs: Vec::new(),
            stdin: None,
            cmdline: Vec::new(),
            expect: Expect::Success,
            role: Role::Test,
        }
    }
}

impl ImageConfig {
    /// Parses the section contents; unknown keys and bad values are errors
    /// (a typo must not silently change how a test runs).
    pub fn parse(section: &[u8]) -> Result<Self, String> {
        let mut config = Self::default();
        let text = std::str::from_utf8(section).map_err(|e| format!("config is not UTF-8: {e}"))?;
        let mut fields = text.split('\0');
        while let Some(key) = fields.next() {
            if key.is_empty() {
                continue;
            }
            let value = fields
                .next()
                .ok_or_else(|| format!("config key {key:?} has no value"))?;
            match key {
                "timeout_secs" => {
                    let secs: u64 = value
                        .parse()
                        .map_err(|_| format!("timeout_secs = {value:?} is not a number"))?;
                    config.timeout = Duration::from_secs(secs);
                }
                "memory" => config.memory = value.into(),
                "qemu_arg" => config.qemu_args.push(value.into()),
                "needs" => config.needs.push(value.into()),
                "stdin" => config.stdin = Some(value.into()),
                "cmdline" => config.cmdline.push(value.into()),
                "expect" => {
                    config.expect = match value {
                        "success" => Expect::Success,
                        "panic" => Expect::Panic,
                        "timeout" => Expect::Timeout,
                        "poweroff" => Expect::Poweroff,
                        "reboot" => Expect::Reboot,
                        other => {
                            return Err(format!(
                                "expect = {other:?}: want success|panic|timeout|poweroff|reboot"
                            ));
                        }
                    }
                }
                "role" => {
                    config.role = match value {
                        "test" => Role::Test,
                        "bench" => Role::Bench,
                        "xen" => Role::Xen,
                        other => return Err(format!("role = {other:?}: want test|bench|xen")),
                    }
                }
                other => return Err(format!("unknown config key {other:?}")),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_repeats() {
        let raw = b"timeout_secs\x0012\x00memory\x00256M\x00qemu_arg\x00-device\x00qemu_arg\x00x,y={f.path}\x00needs\x00f\x00stdin\x00a\nb\x00cmdline\x00loglevel=debug\x00expect\x00panic\x00";
        let c = ImageConfig::parse(raw).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(12));
        assert_eq!(c.memory, "256M");
        assert_eq!(c.qemu_args, ["-device", "x,y={f.path}"]);
        assert_eq!(c.needs, ["f"]);
        assert_eq!(c.stdin.as_deref(), Some("a\nb"));
        assert_eq!(c.cmdline, ["loglevel=debug"]);
        assert_eq!(c.expect, Expect::Panic);
        assert_eq!(c.role, Role::Test, "default role");
        let bench = ImageConfig::parse(b"role\x00bench\x00").unwrap();
        assert_eq!(
            ImageConfig::parse(b"expect\x00reboot\x00").unwrap().expect,
            Expect::Reboot
        );
        assert_eq!(
            ImageConfig::parse(b"expect\x00poweroff\x00")
                .unwrap()
                .expect,
            Expect::Poweroff
        );
        assert_eq!(bench.role, Role::Bench);
        let xen = ImageConfig::parse(b"role\x00xen\x00").unwrap();
        assert_eq!(xen.role, Role::Xen);
    }

    #[test]
    fn empty_section_gives_defaults() {
        assert_eq!(ImageConfig::parse(b"").unwrap(), ImageConfig::default());
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        assert!(ImageConfig::parse(b"timeout\x0012\x00").is_err());
        assert!(ImageConfig::parse(b"timeout_secs\x00soon\x00").is_err());
        assert!(ImageConfig::parse(b"expect\x00maybe\x00").is_err());
        assert!(ImageConfig::parse(b"memory").is_err());
        assert!(ImageConfig::parse(b"role\x00benchmark\x00").is_err());
    }
}
