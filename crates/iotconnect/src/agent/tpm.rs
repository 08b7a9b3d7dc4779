//! [`Attestor`] on a TPM 2.0 through `tss-esapi` (the `tpm` feature): the TPM is opened on
//! first use, so a device that never provisions needs no TCTI.

use std::sync::{Mutex, PoisonError};

use tpm::Tpm;
pub use tpm::TpmOptions;

use super::dps::Attestor;

/// A TPM reached through `opts`' TCTI (or the environment's).
#[derive(Debug)]
pub struct TpmAttestor {
    opts: TpmOptions,
    open: Mutex<Option<Tpm>>,
}

impl TpmAttestor {
    /// An attestor that opens the TPM when first asked.
    pub fn new(opts: TpmOptions) -> Self {
        TpmAttestor {
            opts,
            open: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tpm) -> Result<T, tpm::TpmError>) -> Result<T, String> {
        let mut guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(Tpm::open(&self.opts).map_err(|e| e.to_string())?);
        }
        let t = guard
            .as_mut()
            .ok_or_else(|| "the TPM is not open".to_owned())?;
        f(t).map_err(|e| e.to_string())
    }
}

impl Attestor for TpmAttestor {
    fn public_keys(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        self.with(|t| t.identity().map(|i| (i.ek_public, i.srk_public)))
    }

    fn activate(&self, authentication_key: &[u8]) -> Result<(), String> {
        self.with(|t| t.activate_identity_key(authentication_key).map(|_| ()))
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        self.with(|t| {
            let key = t.identity_key()?.ok_or_else(|| {
                tpm::TpmError::Input(format!(
                    "no DPS identity key at handle {:#x}: the device has not been provisioned through DPS yet",
                    tpm::ID_KEY_HANDLE
                ))
            })?;
            t.hmac_sha256(key, data)
        })
    }
}

/// The EK (base64) and the registration id Azure's SDKs derive from it, for enrolment.
pub fn endorsement(opts: &TpmOptions) -> Result<(String, String), tpm::TpmError> {
    let id = Tpm::open(opts)?.identity()?;
    Ok((id.ek_base64(), id.registration_id()))
}
