//! Playing the toolstack: introduce a domain to the daemon and give it a
//! home under `/local/domain/<domid>`, as xl does.
//!
//! Order matters: XS_INTRODUCE first, then the nodes and permissions. A
//! permission naming a domain the daemon does not know yet crashed the 4.17
//! daemon under the fakes (see /work/shared/notes/testbed.md).

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::wire::{SocketClient, nul_join, ty};

/// How long one toolstack request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may do what in the domain's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HomeLayout {
    /// The home and everything in it except `domid`, `name` and `store/*`
    /// belong to the domain: it may create nodes anywhere under its home.
    /// What guest tests usually want.
    #[default]
    OwnedByDomain,
    /// xl's permissions: the home itself is dom0's and read-only for the
    /// domain; only `data`, `drivers`, `feature`, `attr`, `error`,
    /// `control/shutdown`, `control/feature-{poweroff,reboot,suspend}` and
    /// `control/sysrq` are the domain's.
    Xl,
}

/// A domain as the testbed introduces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    /// The domain id (1..=32751).
    pub domid: u32,
    /// Written to `name`; default `guest<domid>`.
    pub name: String,
    /// The guest's event channel port for xenstore (`store/port`); the
    /// daemon binds its own port to it. Default 1.
    pub event_port: u32,
    /// The frame number sent in XS_INTRODUCE and written to
    /// `store/ring-ref`. The fake grant table ignores it (it maps the page
    /// file), so any value works; default 0xfeffc.
    pub mfn: u64,
    /// Permissions of the home directory.
    pub home: HomeLayout,
}

impl DomainConfig {
    /// Defaults for `domid`.
    pub fn new(domid: u32) -> Self {
        DomainConfig {
            domid,
            name: format!("guest{domid}"),
            event_port: 1,
            mfn: 0xfeffc,
            home: HomeLayout::OwnedByDomain,
        }
    }

    /// The domain's home path, `/local/domain/<domid>`.
    pub fn home_path(&self) -> String {
        format!("/local/domain/{}", self.domid)
    }
}

/// Introduces `domain` to the daemon listening on `socket` and creates its
/// home. The page and event endpoint must already exist.
pub(crate) fn introduce(socket: &Path, domain: &DomainConfig) -> Result<()> {
    let mut xs = SocketClient::connect(socket, REQUEST_TIMEOUT)?;
    let id = domain.domid.to_string();
    xs.request(
        ty::INTRODUCE,
        &nul_join(&[&id, &domain.mfn.to_string(), &domain.event_port.to_string()]),
    )?;

    let home = domain.home_path();
    let owned = format!("n{id}");
    let dom0_read_only = [String::from("n0"), format!("r{id}")];
    let read_only: Vec<&str> = dom0_read_only.iter().map(String::as_str).collect();
    let home_perms: Vec<&str> = match domain.home {
        HomeLayout::OwnedByDomain => vec![&owned],
        HomeLayout::Xl => read_only.clone(),
    };
    let writable: &[&str] = &[&owned];

    // (relative path, value, permissions; None = inherit from the parent)
    let port = domain.event_port.to_string();
    let mfn = domain.mfn.to_string();
    let nodes: &[(&str, &str, Option<&[&str]>)] = &[
        ("", "", Some(&home_perms)),
        ("domid", &id, Some(&read_only)),
        ("name", &domain.name, Some(&read_only)),
        ("device", "", None),
        ("control", "", None),
        ("control/shutdown", "", Some(writable)),
        // libxl creates these for every domain, writable by it, so the
        // guest can say which control/shutdown requests it handles.
        ("control/feature-poweroff", "", Some(writable)),
        ("control/feature-reboot", "", Some(writable)),
        ("control/feature-suspend", "", Some(writable)),
        ("control/sysrq", "", Some(writable)),
        (
            "control/platform-feature-multiprocessor-suspend",
            "1",
            Some(&read_only),
        ),
        (
            "control/platform-feature-xs_reset_watches",
            "1",
            Some(&read_only),
        ),
        ("data", "", Some(writable)),
        ("drivers", "", Some(writable)),
        ("feature", "", Some(writable)),
        ("attr", "", Some(writable)),
        ("error", "", Some(writable)),
        ("store", "", Some(&read_only)),
        ("store/port", &port, None),
        ("store/ring-ref", &mfn, None),
    ];
    for (relative, value, perms) in nodes {
        let path = if relative.is_empty() {
            home.clone()
        } else {
            format!("{home}/{relative}")
        };
        let mut payload = nul_join(&[&path]);
        payload.extend_from_slice(value.as_bytes());
        xs.request(ty::WRITE, &payload)?;
        if let Some(perms) = perms {
            let mut args = vec![path.as_str()];
            args.extend_from_slice(perms);
            xs.request(ty::SET_PERMS, &nul_join(&args))?;
        }
    }
    Ok(())
}
