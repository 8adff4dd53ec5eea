//! Memory: the heap (mixed sizes freed and reused, a large allocation that
//! grows it), frames, page mapping, virt<->phys translation, MMIO mappings.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use kernel::memory::{
    self, PAGE_SIZE, PageTableFlags, PhysAddr, VirtAddr, alloc_frame, alloc_kernel_pages,
    free_frame, free_frames, heap, map_mmio, map_page, phys_to_virt, unmap_page, virt_to_phys,
};

ktests::config!(timeout_secs = 60);
ktests::main!(
    heap_mixed_sizes_are_freed_and_reused,
    heap_large_allocation_grows_the_heap,
    frames_are_allocated_and_returned,
    page_is_mapped_and_unmapped,
    heap_buffer_translates_to_physical_and_back,
    mmio_maps_any_physical_address_uncached,
    oversized_requests_fail_without_using_up_the_address_space,
);

fn pattern(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8
}

fn heap_mixed_sizes_are_freed_and_reused() {
    let sizes = [1usize, 7, 16, 33, 100, 256, 1000, 4096, 5000, 65536];
    let round = || {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        for i in 0..600 {
            let size = sizes[i % sizes.len()] + i % 13;
            blocks.push((0..size).map(|j| pattern(i, j)).collect());
            if i % 3 == 0 {
                // Free some early so later ones reuse the holes.
                let victim = blocks.swap_remove(i % blocks.len());
                drop(victim);
            }
        }
        for block in &blocks {
            let i = (0..600).find(|&i| {
                sizes[i % sizes.len()] + i % 13 == block.len() && block[0] == pattern(i, 0)
            });
            assert!(i.is_some(), "a block lost its contents");
        }
    };
    round(); // warm up: the heap grows to what this workload needs
    let warm = heap::stats();
    for _ in 0..5 {
        round();
    }
    let after = heap::stats();
    assert_eq!(after.used, warm.used, "memory leaked across rounds");
    assert_eq!(
        after.mapped, warm.mapped,
        "freed memory was not reused (heap grew)"
    );
}

fn heap_large_allocation_grows_the_heap() {
    let before = heap::stats().mapped;
    let len = 16 << 20;
    let mut big = Vec::<u64>::with_capacity(len / 8);
    big.extend((0..len as u64 / 8).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    assert!(
        heap::stats().mapped >= before + len as u64 - 1024 * 1024,
        "heap did not grow"
    );
    for (i, v) in big.iter().enumerate().step_by(4099) {
        assert_eq!(*v, (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
}

fn frames_are_allocated_and_returned() {
    let free = free_frames();
    let frames: Vec<PhysAddr> = (0..64).map(|_| alloc_frame().expect("RAM left")).collect();
    assert_eq!(free_frames(), free - 64);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.as_u64() % PAGE_SIZE, 0);
        assert!(!frames[..i].contains(f), "frame handed out twice");
    }
    for f in frames {
        // SAFETY: allocated above, never used, freed once.
        unsafe { free_frame(f) };
    }
    assert_eq!(free_frames(), free);
}

fn page_is_mapped_and_unmapped() {
    let frame = alloc_frame().expect("a frame");
    let virt = alloc_kernel_pages(1).expect("kernel map space");
    let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    // SAFETY: a page reserved and a frame allocated for this test alone.
    unsafe { map_page(virt, frame, flags) }.expect("map");
    assert_eq!(virt_to_phys(virt), Some(frame));
    assert_eq!(
        // SAFETY: as above (the call is refused anyway).
        unsafe { map_page(virt, frame, flags) },
        Err(memory::MapError::AlreadyMapped {
            virt: virt.as_u64()
        })
    );
    // Written through the new mapping, visible through the identity map.
    let new = virt.as_mut_ptr::<u64>();
    let ident = phys_to_virt(frame)
        .expect("RAM is identity mapped")
        .as_ptr::<u64>();
    // SAFETY: both point at the frame we own, mapped just above.
    unsafe {
        new.write_volatile(0x1234_5678_9abc_def0);
        assert_eq!(ident.read_volatile(), 0x1234_5678_9abc_def0);
    }
    // SAFETY: our mapping; `new` is not used after this.
    assert_eq!(unsafe { unmap_page(virt) }, Ok(frame));
    assert_eq!(virt_to_phys(virt), None);
    assert_eq!(
        // SAFETY: as above (nothing is mapped there any more).
        unsafe { unmap_page(virt) },
        Err(memory::MapError::NotMapped {
            virt: virt.as_u64()
        })
    );
    // SAFETY: our frame, mapped nowhere now but the identity map.
    unsafe { free_frame(frame) };
}

fn heap_buffer_translates_to_physical_and_back() {
    let buffer: Vec<u32> = (0..4096).collect();
    let virt = VirtAddr::from_ptr(&buffer[1000]);
    let phys = virt_to_phys(virt).expect("heap is mapped");
    assert_eq!(phys.as_u64() & 0xfff, virt.as_u64() & 0xfff);
    let back = phys_to_virt(phys).expect("heap frames are RAM");
    // SAFETY: the identity alias of the heap frame holding buffer[1000].
    assert_eq!(unsafe { back.as_ptr::<u32>().read_volatile() }, 1000);
}

fn mmio_maps_any_physical_address_uncached() {
    // The local APIC's registers: the version register reads back sanely.
    // SAFETY: the local APIC's registers; the test only reads them.
    let lapic = unsafe { map_mmio(0xfee0_0000, 0x1000) }.expect("map the local APIC");
    let version = lapic.read32(0x30) & 0xff;
    assert!(
        (0x10..=0x20).contains(&version),
        "odd APIC version {version:#x}"
    );
    // Above 4 GiB (where 64-bit PCI BARs live): mapped uncached at the exact
    // physical address, offset within the page preserved.
    // SAFETY: nothing lives at 64 GiB in this VM, and the test never
    // touches the region.
    let high = unsafe { map_mmio(0x10_0000_0040, 0x20) }.expect("map above 4 GiB");
    let virt = VirtAddr::from_ptr(high.as_ptr());
    assert_eq!(virt_to_phys(virt), Some(PhysAddr::new(0x10_0000_0040)));
    memory::unmap_mmio(high);
    assert_eq!(virt_to_phys(virt), None);
}

fn oversized_requests_fail_without_using_up_the_address_space() {
    // Larger than the whole MMIO window (a BAR size read from a device, say):
    // refused, and the window is as usable afterwards as before.
    let window = memory::layout::MMIO_SIZE as usize;
    assert_eq!(
        // SAFETY: refused before anything is mapped (and nothing is there).
        unsafe { map_mmio(0x10_0000_0000, 2 * window) }.unwrap_err(),
        memory::MapError::OutOfVirtualSpace
    );
    // Lengths and page counts whose byte size overflows: an error, not a panic.
    assert_eq!(
        // SAFETY: refused before anything is mapped.
        unsafe { map_mmio(0xfee0_0000, usize::MAX) }.unwrap_err(),
        memory::MapError::OutOfVirtualSpace
    );
    assert_eq!(
        alloc_kernel_pages(u64::MAX).unwrap_err(),
        memory::MapError::OutOfVirtualSpace
    );
    assert_eq!(
        alloc_kernel_pages(memory::layout::KMAP_SIZE).unwrap_err(),
        memory::MapError::OutOfVirtualSpace
    );
    // SAFETY: the local APIC's registers; the test only reads them.
    let lapic = unsafe { map_mmio(0xfee0_0000, 0x1000) }.expect("the MMIO window still has room");
    assert!((0x10..=0x20).contains(&(lapic.read32(0x30) & 0xff)));
    memory::unmap_mmio(lapic);
    let page = alloc_kernel_pages(1).expect("the kernel map area still has room");
    assert!(page.as_u64() >= memory::layout::KMAP_BASE);
}
