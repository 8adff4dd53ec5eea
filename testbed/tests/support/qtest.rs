//! A tiny driver for QEMU's qtest protocol (`-qtest stdio`): the test plays
//! the guest CPU, poking I/O ports and memory by text commands
//! ("outl 0xcf8 0x80000000" -> "OK", "inl 0xcfc" -> "OK 0x...").
//!
//! Debian's QEMU 7.2 lacks the qtest accelerator, so QEMU runs with TCG but
//! frozen (`-S`): no firmware runs and touches the PCI devices; devices and
//! QEMU's main loop (where ivshmem's eventfd handlers live) do run.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// How long one qtest command may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Qtest {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Qtest {
    /// Starts QEMU with an ivshmem-doorbell device whose server is at
    /// `ivshmem_socket`. Panics (test helper) if QEMU cannot start.
    pub fn start(ivshmem_socket: &Path) -> Qtest {
        let mut child = Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "pc",
                "-S",
                "-qtest",
                "stdio",
                "-qtest-log",
                "/dev/null",
            ])
            .args(["-display", "none", "-nodefaults", "-monitor", "none"])
            .args(["-serial", "none", "-m", "64"])
            .arg("-chardev")
            .arg(format!("socket,path={},id=ivsh", ivshmem_socket.display()))
            .args(["-device", "ivshmem-doorbell,chardev=ivsh,vectors=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start qemu-system-x86_64 (install qemu-system-x86)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Qtest {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command; returns the text after "OK" (trimmed). Panics on
    /// FAIL, on QEMU exiting, or on timeout.
    pub fn cmd(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("qemu's stdin closed");
        loop {
            let line = self
                .lines
                .recv_timeout(REPLY_TIMEOUT)
                .unwrap_or_else(|e| panic!("no qtest reply to {command:?}: {e}"));
            if line.starts_with("IRQ") {
                continue; // asynchronous interrupt notes; we do not intercept
            }
            if let Some(rest) = line.strip_prefix("OK") {
                return rest.trim().to_string();
            }
            panic!("qtest {command:?} answered {line:?}");
        }
    }

    pub fn outl(&mut self, port: u16, value: u32) {
        self.cmd(&format!("outl {port:#x} {value:#x}"));
    }

    pub fn inl(&mut self, port: u16) -> u32 {
        parse(&self.cmd(&format!("inl {port:#x}"))) as u32
    }

    pub fn readl(&mut self, addr: u64) -> u32 {
        parse(&self.cmd(&format!("readl {addr:#x}"))) as u32
    }

    pub fn writel(&mut self, addr: u64, value: u32) {
        self.cmd(&format!("writel {addr:#x} {value:#x}"));
    }

    /// Reads `len` bytes of guest-physical memory (RAM or MMIO).
    pub fn read(&mut self, addr: u64, len: usize) -> Vec<u8> {
        let hex = self.cmd(&format!("read {addr:#x} {len:#x}"));
        let hex = hex.trim_start_matches("0x");
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// Writes bytes to guest-physical memory.
    pub fn write(&mut self, addr: u64, data: &[u8]) {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        self.cmd(&format!("write {addr:#x} {:#x} 0x{hex}", data.len()));
    }

    /// PCI config space read (mechanism #1) of bus 0.
    pub fn pci_read(&mut self, dev: u8, reg: u8) -> u32 {
        self.outl(0xcf8, config_address(dev, reg));
        self.inl(0xcfc)
    }

    pub fn pci_write(&mut self, dev: u8, reg: u8, value: u32) {
        self.outl(0xcf8, config_address(dev, reg));
        self.outl(0xcfc, value);
    }
}

impl Drop for Qtest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_address(dev: u8, reg: u8) -> u32 {
    0x8000_0000 | (u32::from(dev) << 11) | u32::from(reg & 0xfc)
}

fn parse(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("not a hex number: {text:?}"))
}
