# 32-bit entry for every way this image is booted:
#  - Xen PVH / QEMU -kernel (PVH note): ebx = physical address of hvm_start_info.
#  - GRUB multiboot2:                    eax = 0x36d76289, ebx = multiboot2 info.
# Both enter in flat 32-bit protected mode with paging off. We build an
# identity map of the low 4 GiB with 2 MiB pages, enter long mode and call
# `kernel_boot_entry(eax, ebx)`; Rust decides which protocol it was.

.section .note.Xen, "a", @note
    .balign 4
    .long 4                     # namesz: "Xen\0"
    .long 8                     # descsz: 8 bytes satisfy loaders reading u32 or u64
    .long 18                    # XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4

.section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6            # magic
    .long 0                     # architecture: i386 protected mode
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    .balign 8
    .short 0, 0                 # end tag
    .long 8
mb2_header_end:

.section .text.boot, "ax"
.code32
.global pvh_start32
pvh_start32:
    cli
    cld
    mov %eax, %ebp              # loader magic (multiboot2), kept in ebp
    mov %ebx, %esi              # boot info pointer, kept in esi

    # Zero .bss: not every loader promises it, and the page tables live there.
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    mov $__boot_stack_top, %esp

    # Long mode (CPUID 0x80000001 EDX bit 29) is required; NX (bit 20) is used if present.
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode
    mov %edx, %ebx              # remember the NX bit for EFER below

    # PML4[0] -> PDPT; PDPT[0..4] -> 4 page directories; 2048 x 2 MiB pages.
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $0x3, %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax              # present | writable | 2 MiB page
    mov %eax, boot_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    mov %cr4, %eax
    or $0x20, %eax              # PAE
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3

    mov $0xc0000080, %ecx       # EFER
    rdmsr
    or $0x100, %eax             # LME
    bt $20, %ebx
    jnc 3f
    or $0x800, %eax             # NXE
3:  wrmsr

    mov %cr0, %eax
    or $0x80010001, %eax        # PG | WP | PE
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_entry

no_long_mode:
    # Say why on COM1 (harmless if there is none), then stop.
    mov $no_long_mode_msg, %esi
    mov $0x3f8, %dx
4:  lodsb
    test %al, %al
    jz 5f
    out %al, %dx
    jmp 4b
5:  cli
    hlt
    jmp 5b

.code64
long_mode_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov $__boot_stack_top, %rsp
    mov %ebp, %edi              # arg 0: loader magic (zero-extended)
    mov %esi, %esi              # arg 1: boot info physical address
    xor %ebp, %ebp              # terminate frame-pointer backtraces here
    call kernel_boot_entry
6:  cli
    hlt
    jmp 6b

.section .rodata.boot, "a"
no_long_mode_msg:
    .asciz "kernel: this CPU has no long mode; cannot boot\r\n"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    # 0x08: 64-bit code
    .quad 0x00cf92000000ffff    # 0x10: data
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .bss.boot_page_tables, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
