//! The `xen` step's tests: the kernel as a PVH domU under the real Xen
//! 4.17, observed only through what dom0's real tools see.
//!
//! Every test names its guest uniquely and reads the domain id from `xl`
//! (it changes on every create and reboot); each destroys its guest.

use std::time::Duration;

use super::guest::{Guest, TestResult, check, domid, wait_until};
use crate::bed::Bed;

/// From `xl create` to the guest's first data/ keys: ~6 s on an idle
/// 2-core host, 80-130 s measured with the cores shared by five other
/// QEMUs (load 13). The limits bound a hang, they time nothing.
const UP_LIMIT: Duration = Duration::from_secs(300);
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(300);
const QUICK: Duration = Duration::from_secs(60);

/// The keys the guest's data/ service publishes (xenbus services/data.rs).
const DATA_KEYS: [&str; 8] = [
    "os_name",
    "os_distro",
    "os_majorver",
    "os_minorver",
    "os_uname",
    "meminfo_total",
    "meminfo_free",
    "updated",
];

pub type Case = (&'static str, fn(&mut Bed) -> TestResult);

pub const CASES: &[Case] = &[
    (
        "xen::guest_connects_through_hvm_params_and_publishes_data",
        guest_connects_through_hvm_params_and_publishes_data,
    ),
    (
        "xen::dom0_write_to_vm_data_is_seen_by_the_guest",
        dom0_write_to_vm_data_is_seen_by_the_guest,
    ),
    (
        "xen::xl_shutdown_powers_the_guest_off",
        xl_shutdown_powers_the_guest_off,
    ),
    (
        "xen::xl_reboot_restarts_the_guest",
        xl_reboot_restarts_the_guest,
    ),
    (
        "xen::bed_dom0_fpu_state_survives_a_guest_using_sse",
        super::fpu::dom0_fpu_state_survives_a_guest_using_sse,
    ),
    (
        "xen::backends_vif_and_vbd_connect_to_linux_netback_and_blkback",
        super::backends::vif_and_vbd_connect_to_linux_netback_and_blkback,
    ),
    (
        "xen::backends_removing_the_devices_closes_both_ends",
        super::backends::removing_the_devices_closes_both_ends,
    ),
    (
        "xen::backends_frontends_reconnect_after_save_and_restore",
        super::backends::frontends_reconnect_to_the_backends_after_save_and_restore,
    ),
    super::test_images::ktest!(attaches_to_xenstored_through_the_hvm_params),
    super::test_images::ktest!(writes_reads_lists_and_removes_in_its_own_tree),
    super::test_images::ktest!(transactions_commit_whole_or_not_at_all),
    super::test_images::ktest!(its_own_write_fires_its_watch),
    super::test_images::ktest!(a_dom0_xenstore_write_fires_the_guest_watch),
    super::test_images::ktest!(dom0_lists_data_and_vm_data_with_xenstore_ls),
    super::test_images::ktest!(vchan_server_receives_from_dom0_vchan_socket_proxy),
    super::test_images::ktest!(vchan_server_sends_to_dom0_vchan_socket_proxy),
    super::test_images::ktest!(vchan_client_receives_from_dom0_vchan_socket_proxy_server),
    super::test_images::ktest!(vchan_client_sends_to_dom0_vchan_socket_proxy_server),
    super::test_images::ktest!(vchan_a_dom0_proxy_killed_mid_transfer_is_reported),
    (
        "xen::fcopy_small_files_arrive_byte_exact",
        super::fcopy::small_files_arrive_byte_exact,
    ),
    (
        "xen::fcopy_ten_mib_file_arrives_byte_exact",
        super::fcopy::ten_mib_file_arrives_byte_exact,
    ),
    (
        "xen::fcopy_a_file_over_the_cap_is_refused",
        super::fcopy::a_file_over_the_cap_is_refused,
    ),
    (
        "xen::fcopy_each_refusal_is_typed",
        super::fcopy::each_refusal_is_typed,
    ),
    (
        "xen::fcopy_cancel_halfway_leaves_no_file",
        super::fcopy::cancel_halfway_leaves_no_file,
    ),
    (
        "xen::fcopy_an_idle_transfer_is_cancelled_and_logged",
        super::fcopy::an_idle_transfer_is_cancelled_and_logged,
    ),
    (
        "xen::fcopy_a_sender_killed_halfway_leaves_no_file",
        super::fcopy::a_sender_killed_halfway_leaves_no_file,
    ),
    (
        "xen::fcopy_the_service_comes_back_after_save_and_restore",
        super::fcopy::the_service_comes_back_after_save_and_restore,
    ),
    (
        "xen::fcopy_a_second_sender_is_refused_and_the_first_unharmed",
        super::fcopy::a_second_sender_is_refused_and_the_first_unharmed,
    ),
    (
        "xen::bench_kernel_and_linux_guests_serve_every_workload",
        super::xsbench::kernel_and_linux_guests_serve_every_workload,
    ),
    (
        "xen::ktest::image_powers_off_after_its_last_test",
        super::test_images::image_powers_off_after_its_last_test,
    ),
    (
        "xen::shell_on_the_pv_console_answers_dom0",
        super::shell::shell_on_the_pv_console_answers_dom0,
    ),
    (
        "xen::shell_poweroff_powers_the_domain_off",
        super::shell::shell_poweroff_powers_the_domain_off,
    ),
    (
        "xen::suspend_checkpoint_of_a_busy_guest_loses_nothing",
        super::suspend::checkpoint_of_a_busy_guest_loses_nothing,
    ),
    (
        "xen::suspend_save_and_restore_of_a_busy_guest_carries_on_in_its_new_home",
        super::suspend::save_and_restore_of_a_busy_guest_carries_on_in_its_new_home,
    ),
    (
        "xen::suspend_a_transaction_open_at_suspend_does_not_stop_xl_save",
        super::suspend::a_transaction_open_at_suspend_does_not_stop_xl_save,
    ),
    (
        "xen::hvm_guest_boots_from_the_iso_and_publishes_data",
        super::hvm::hvm_guest_boots_from_the_iso_and_publishes_data,
    ),
    (
        "xen::hvm_guest_shell_answers_read_domid_on_com1",
        super::hvm::hvm_guest_shell_answers_read_domid_on_com1,
    ),
    (
        "xen::hvm_guest_survives_xl_save_and_restore",
        super::hvm::hvm_guest_survives_xl_save_and_restore,
    ),
    (
        "xen::hvm_guest_restarts_on_xl_reboot",
        super::hvm::hvm_guest_restarts_on_xl_reboot,
    ),
    (
        "xen::hvm_guest_powers_off_on_xl_shutdown",
        super::hvm::hvm_guest_powers_off_on_xl_shutdown,
    ),
];

/// Runs `body` on a fresh guest named `name`, then destroys the guest.
fn with_guest(
    bed: &mut Bed,
    name: &str,
    extra: &str,
    body: impl FnOnce(&mut Bed, &mut Guest) -> TestResult,
) -> TestResult {
    let mut guest = Guest::create(bed, name, extra)?;
    let result = body(bed, &mut guest);
    guest.destroy(bed);
    result
}

/// Waits until the guest has published its data/ keys.
fn wait_data(bed: &mut Bed, guest: &Guest) -> TestResult {
    let updated = format!("{}/data/updated", guest.home());
    wait_until(bed, &format!("xenstore-read {updated}"), UP_LIMIT)
        .map_err(|e| format!("{e}\nthe guest's console:\n{}", guest.console(bed)))?;
    bed.progress.say(format!(
        "guest {} up as domain {}: data/ published",
        guest.name, guest.domid
    ));
    Ok(())
}

fn guest_connects_through_hvm_params_and_publishes_data(bed: &mut Bed) -> TestResult {
    with_guest(bed, "rx-connect", "", |bed, guest| {
        wait_data(bed, guest)?;
        // The kernel logs which ring it took: Xen's, from the HVM params.
        guest.wait_console(bed, "via Xen ring at", QUICK)?;
        guest.wait_console(
            bed,
            &format!("domain {} at {}", guest.domid, guest.home()),
            QUICK,
        )?;
        let listing = check(bed, &format!("xenstore-ls {}/data", guest.home()), QUICK)?.stdout;
        for key in DATA_KEYS {
            if !listing
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} = \"")))
            {
                return Err(format!("data/{key} missing from xenstore-ls:\n{listing}"));
            }
        }
        let os = check(
            bed,
            &format!("xenstore-read {}/data/os_name", guest.home()),
            QUICK,
        )?;
        if !os.stdout.starts_with("xenstore-rs kernel") {
            return Err(format!("data/os_name is {:?}", os.stdout.trim()));
        }
        Ok(())
    })
}

fn dom0_write_to_vm_data_is_seen_by_the_guest(bed: &mut Bed) -> TestResult {
    with_guest(bed, "rx-vmdata", "", |bed, guest| {
        wait_data(bed, guest)?;
        // A key name no earlier boot could have logged.
        let key = format!("probe{}", std::process::id());
        check(
            bed,
            &format!("xenstore-write {}/vm-data/{key} blue", guest.home()),
            QUICK,
        )?;
        guest.wait_console(bed, "vm-data: generation", UP_LIMIT)?;
        guest.wait_console(bed, &key, UP_LIMIT)
    })
}

fn xl_shutdown_powers_the_guest_off(bed: &mut Bed) -> TestResult {
    with_guest(bed, "rx-poweroff", "", |bed, guest| {
        wait_data(bed, guest)?;
        let secs = SHUTDOWN_LIMIT.as_secs();
        // -w returns once the domain is gone; timeout bounds a guest that
        // ignores the request.
        check(
            bed,
            &format!("timeout {secs} xl shutdown -w {}", guest.name),
            SHUTDOWN_LIMIT + QUICK,
        )?;
        guest.wait_console(bed, "xenbus: control: poweroff", QUICK)?;
        guest.wait_console(bed, "power: powering off", QUICK)?;
        if let Ok(id) = domid(bed, &guest.name) {
            return Err(format!(
                "domain {} still exists as {id} after xl shutdown -w",
                guest.name
            ));
        }
        Ok(())
    })
}

fn xl_reboot_restarts_the_guest(bed: &mut Bed) -> TestResult {
    with_guest(
        bed,
        "rx-reboot",
        "on_reboot = \"restart\"\n",
        |bed, guest| {
            wait_data(bed, guest)?;
            guest.reboot_into_a_new_domain(bed, SHUTDOWN_LIMIT, wait_data)
        },
    )
}
