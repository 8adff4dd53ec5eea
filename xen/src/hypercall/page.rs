//! The hypercall page: installing it through Xen's MSR and calling into it.

use core::fmt;
use core::ptr::NonNull;

use super::{HypercallOp, Hypervisor};
use crate::cpuid::XenInfo;
use crate::types::PAGE_SIZE;

/// Bytes per hypercall stub in the page.
pub const STUB_SIZE: usize = 32;

/// Writes model-specific registers. The kernel's implementation is [`NativeMsr`].
pub trait MsrWriter {
    /// Writes `value` to MSR `msr`.
    ///
    /// # Safety
    /// Writing an MSR can change how the CPU or hypervisor behaves; the caller must know that
    /// `msr` and `value` are what it means to write.
    unsafe fn write_msr(&mut self, msr: u32, value: u64);
}

/// The `wrmsr` instruction.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeMsr;

#[cfg(target_arch = "x86_64")]
impl MsrWriter for NativeMsr {
    unsafe fn write_msr(&mut self, msr: u32, value: u64) {
        // SAFETY: the caller vouches for `msr`/`value` (trait contract). `wrmsr` touches no
        // memory Rust knows about and no stack; it does not change RFLAGS.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") msr,
                in("eax") value as u32,
                in("edx") (value >> 32) as u32,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Why the hypercall page could not be installed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InstallError {
    /// The page's virtual or guest-physical address is not 4 KiB aligned.
    Misaligned {
        /// The page's virtual address.
        virt: usize,
        /// Its guest-physical address.
        phys: u64,
    },
    /// After the MSR write the memory_op stub neither changed nor looks like a Xen stub
    /// (`mov $12, %eax` ...): the MSR write did not reach Xen, or `phys` is not `virt`'s
    /// frame. The bytes found are kept for the log.
    PageNotFilled {
        /// The first bytes of the memory_op stub.
        stub: [u8; 8],
    },
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned { virt, phys } => {
                write!(
                    f,
                    "hypercall page not 4 KiB aligned (virt {virt:#x}, phys {phys:#x})"
                )
            }
            Self::PageNotFilled { stub } => {
                write!(
                    f,
                    "Xen did not fill the hypercall page (memory_op stub {stub:02x?})"
                )
            }
        }
    }
}

impl core::error::Error for InstallError {}

/// An installed hypercall page: the real [`Hypervisor`].
///
/// Holds only the page's virtual address; the page itself must stay mapped executable for as
/// long as this value (or a copy) is used.
#[derive(Clone, Copy, Debug)]
pub struct HypercallPage {
    base: NonNull<u8>,
}

// SAFETY: the page is immutable code once Xen has written it; calling into it from several
// CPUs at once is what it is for.
unsafe impl Send for HypercallPage {}
// SAFETY: as above; `&HypercallPage` only allows calls.
unsafe impl Sync for HypercallPage {}

fn read_stub(page: NonNull<u8>, op: HypercallOp) -> [u8; 8] {
    let mut stub = [0u8; 8];
    for (i, byte) in stub.iter_mut().enumerate() {
        // SAFETY: `page` is a mapped, readable 4 KiB page (contract of `install`); the stub
        // lies inside it. Volatile because Xen writes the page behind the compiler's back.
        *byte = unsafe {
            page.add(op.number() as usize * STUB_SIZE + i)
                .read_volatile()
        };
    }
    stub
}

/// `mov $nr, %eax` is how every known Xen (and KVM's Xen emulation) starts an HVM stub.
fn looks_like_stub(stub: &[u8; 8], op: HypercallOp) -> bool {
    stub[0] == 0xb8 && stub[1..5] == op.number().to_le_bytes()
}

impl HypercallPage {
    /// Asks Xen to fill the page at `virt` (guest-physical `phys`) with hypercall stubs, and
    /// checks that it did.
    ///
    /// Contract: writes `phys | 0` (page index 0) to the MSR CPUID named in `info`. Xen writes
    /// the stubs through the guest-physical address, so the page may be mapped read-only and
    /// must be mapped executable. Calling it again for the same page is harmless (it is how the
    /// page is restored after a resume).
    ///
    /// # Safety
    /// `virt` must be a 4 KiB page mapped readable and executable for the rest of the kernel's
    /// life, backed by guest-physical frame `phys`, holding nothing else: Xen overwrites it.
    /// `info` must come from [`crate::cpuid::detect`] on this machine.
    pub unsafe fn install(
        info: &XenInfo,
        msr: &mut impl MsrWriter,
        virt: NonNull<u8>,
        phys: u64,
    ) -> Result<HypercallPage, InstallError> {
        let mask = PAGE_SIZE as u64 - 1;
        if (virt.as_ptr() as u64) & mask != 0 || phys & mask != 0 {
            return Err(InstallError::Misaligned {
                virt: virt.as_ptr() as usize,
                phys,
            });
        }
        let probe = HypercallOp::MemoryOp;
        let before = read_stub(virt, probe);
        // SAFETY: the MSR is the one Xen advertised for this purpose; the value is the frame
        // of a page the caller dedicated to it (function contract).
        unsafe { msr.write_msr(info.hypercall_msr, phys) };
        let after = read_stub(virt, probe);
        if after == before && !looks_like_stub(&after, probe) {
            return Err(InstallError::PageNotFilled { stub: after });
        }
        Ok(HypercallPage { base: virt })
    }

    /// The page's virtual address.
    pub fn address(&self) -> NonNull<u8> {
        self.base
    }
}

impl Hypervisor for HypercallPage {
    #[cfg(target_arch = "x86_64")]
    unsafe fn hypercall(&self, op: HypercallOp, args: [u64; 5]) -> i64 {
        // SAFETY: `op` indexes a stub inside the installed 4 KiB page (at most 34 * 32 bytes).
        let entry = unsafe { self.base.as_ptr().add(op.number() as usize * STUB_SIZE) };
        let rax: i64;
        // SAFETY: the stub was written by Xen (checked in `install`) and only traps to Xen and
        // returns. The caller guarantees that pointer arguments are valid for what Xen does
        // with them (trait contract). No `nostack`: `call` pushes a return address, so the
        // compiler keeps the red zone free and the stack aligned; no `nomem`: Xen may read and
        // write guest memory. All argument registers are clobbered (debug Xen scrubs them).
        unsafe {
            core::arch::asm!(
                "call {entry}",
                entry = in(reg) entry,
                inlateout("rdi") args[0] => _,
                inlateout("rsi") args[1] => _,
                inlateout("rdx") args[2] => _,
                inlateout("r10") args[3] => _,
                inlateout("r8") args[4] => _,
                lateout("rax") rax,
                out("rcx") _,
                out("r11") _,
            );
        }
        rax
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn hypercall(&self, _op: HypercallOp, _args: [u64; 5]) -> i64 {
        // Only x86_64 HVM/PVH guests are supported; report ENOSYS rather than pretend.
        -i64::from(crate::error::Errno::ENOSYS.0)
    }
}

// A page-aligned, page-sized hole in `.text` for Xen to write the stubs into, so the kernel
// needs no executable data page: Xen writes through the guest-physical address, not through
// our (read-only) mapping. Filled with `int3` so a call before installation traps loudly.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
core::arch::global_asm!(
    ".pushsection .text.xen_hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl __xen_crate_hypercall_page",
    "__xen_crate_hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
);

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
unsafe extern "C" {
    static __xen_crate_hypercall_page: [u8; PAGE_SIZE];
}

/// The virtual address of the hypercall page this crate reserves in the kernel's `.text`
/// (section `.text.xen_hypercall_page`, 4 KiB aligned). Pass it, with its guest-physical
/// address, to [`HypercallPage::install`].
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub fn builtin_page_address() -> NonNull<u8> {
    let addr = &raw const __xen_crate_hypercall_page;
    // A linker-placed symbol is never at address 0.
    NonNull::new(addr as *mut u8).unwrap_or(NonNull::dangling())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpuid::XenVersion;

    #[repr(C, align(4096))]
    struct TestPage([u8; PAGE_SIZE]);

    fn info() -> XenInfo {
        XenInfo {
            base: 0x4000_0000,
            max_leaf: 0x4000_0005,
            version: XenVersion {
                major: 4,
                minor: 17,
            },
            hypercall_pages: 1,
            hypercall_msr: 0x4000_0000,
            hvm: None,
        }
    }

    /// Stands in for Xen: on the MSR write, fills the page the way Xen's VMX code does.
    struct FakeXenMsr {
        page: *mut u8,
        writes: Vec<(u32, u64)>,
        fill: bool,
    }

    impl MsrWriter for FakeXenMsr {
        unsafe fn write_msr(&mut self, msr: u32, value: u64) {
            self.writes.push((msr, value));
            if self.fill {
                for nr in 0..(PAGE_SIZE / STUB_SIZE) as u32 {
                    let mut stub = [0xccu8; STUB_SIZE];
                    stub[0] = 0xb8;
                    stub[1..5].copy_from_slice(&nr.to_le_bytes());
                    stub[5..9].copy_from_slice(&[0x0f, 0x01, 0xc1, 0xc3]);
                    // SAFETY: `page` is the test's own 4 KiB buffer.
                    unsafe {
                        self.page
                            .add(nr as usize * STUB_SIZE)
                            .copy_from(stub.as_ptr(), STUB_SIZE)
                    };
                }
            }
        }
    }

    #[test]
    fn install_writes_the_pages_frame_to_the_advertised_msr() {
        let mut page = Box::new(TestPage([0xcc; PAGE_SIZE]));
        let virt = NonNull::new(page.0.as_mut_ptr()).unwrap();
        let mut msr = FakeXenMsr {
            page: virt.as_ptr(),
            writes: vec![],
            fill: true,
        };
        // SAFETY: the test page is dedicated, aligned and outlives the HypercallPage.
        let hc = unsafe { HypercallPage::install(&info(), &mut msr, virt, 0x1234_5000) };
        assert!(hc.is_ok());
        assert_eq!(msr.writes, vec![(0x4000_0000, 0x1234_5000)]);
        // Re-installing over an already-filled page (resume) is accepted.
        // SAFETY: as above.
        assert!(unsafe { HypercallPage::install(&info(), &mut msr, virt, 0x1234_5000) }.is_ok());
    }

    #[test]
    fn install_reports_a_page_xen_never_filled() {
        let mut page = Box::new(TestPage([0xcc; PAGE_SIZE]));
        let virt = NonNull::new(page.0.as_mut_ptr()).unwrap();
        let mut msr = FakeXenMsr {
            page: virt.as_ptr(),
            writes: vec![],
            fill: false,
        };
        // SAFETY: the test page is dedicated and aligned.
        let err = unsafe { HypercallPage::install(&info(), &mut msr, virt, 0x1234_5000) };
        assert_eq!(
            err.unwrap_err(),
            InstallError::PageNotFilled { stub: [0xcc; 8] }
        );
    }

    #[test]
    fn install_rejects_misaligned_addresses_without_touching_the_msr() {
        let mut page = Box::new(TestPage([0xcc; PAGE_SIZE]));
        let virt = NonNull::new(page.0.as_mut_ptr()).unwrap();
        let mut msr = FakeXenMsr {
            page: virt.as_ptr(),
            writes: vec![],
            fill: true,
        };
        // SAFETY: rejected before any access.
        let err = unsafe { HypercallPage::install(&info(), &mut msr, virt, 0x1234_5008) };
        assert!(matches!(
            err,
            Err(InstallError::Misaligned {
                phys: 0x1234_5008,
                ..
            })
        ));
        assert!(msr.writes.is_empty());
    }
}
