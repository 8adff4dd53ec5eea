//! Boot: the Rust side of the 32-bit entry. Brings every subsystem up in
//! dependency order, installing the hooks through which lower layers reach
//! higher ones, and calls the image's main function on the `main` thread.
//! It sequences and nothing else: what the loader handed over is read by
//! [`crate::bootinfo`].

use crate::BootInfo;

/// Entered from `boot.s` in long mode on the boot stack, with the low
/// 4 GiB identity-mapped and interrupts disabled.
#[unsafe(no_mangle)]
extern "C" fn kernel_boot_entry(loader_magic: u32, info_phys: u32) -> ! {
    crate::serial::init();
    crate::logger::init();
    crate::arch::gdt::init();
    crate::arch::idt::init();
    crate::fault::init();

    // SAFETY: eax and ebx as the loader passed them, under its identity map.
    let info = unsafe { crate::bootinfo::read_from_loader(loader_magic, info_phys) };
    crate::logger::apply_cmdline(info.cmdline());
    log::info!(
        "booted via {:?}; command line {:?}",
        info.protocol,
        info.cmdline()
    );
    log::info!("memory map ({} regions):", info.memory_map().len());
    for region in info.memory_map() {
        log::info!("  {region}");
    }

    // SAFETY: before `memory::init`, under the loader's identity map.
    unsafe { crate::acpi::init(info.rsdp) };
    crate::memory::init(info);
    crate::time::init();
    crate::interrupts::init();
    crate::hypervisor::init();
    crate::thread::init();
    start_ticks();
    crate::serial::enable_input();
    log::info!(
        "kernel ready: {} MiB usable RAM, {} MiB free frames, tsc {} MHz, timer {} Hz",
        info.usable_bytes() >> 20,
        (crate::memory::free_frames() * 4096) >> 20,
        crate::time::tsc_hz() / 1_000_000,
        crate::time::TICK_HZ
    );

    unsafe extern "Rust" {
        fn __kernel_main(boot: &'static BootInfo) -> !;
    }
    // SAFETY: `entry_point!` defines this symbol with exactly this signature.
    unsafe { __kernel_main(info) }
}

/// Starts the clock's tick on the local APIC timer and enables interrupts
/// (end of boot).
fn start_ticks() {
    let hz = crate::time::TICK_HZ;
    crate::interrupts::apic::start_timer(hz, crate::time::on_tick);
    x86_64::instructions::interrupts::enable();
    log::info!("timer: local APIC tick (one-shot, re-armed) at {hz} Hz");
}
