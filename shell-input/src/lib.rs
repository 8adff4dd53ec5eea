//! The kernel shell's input, as pure code: the line editor that turns the
//! bytes a serial terminal sends into a line ([`mod@line`]), and the parser that
//! turns a line into a command ([`parse`]). The kernel's `shell` module runs
//! the commands and does the I/O; nothing here touches hardware, so the host
//! tests it.

#![no_std]

extern crate alloc;

pub mod line;
pub mod parse;
