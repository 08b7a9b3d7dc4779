//! The device side of TPM 2.0 attestation for the Azure Device Provisioning Service (DPS), which
//! IoTConnect's auth type 4 uses: the TPM is reached through a TCTI (a software TPM's socket or
//! the kernel's resource manager `/dev/tpmrm0`), DPS identifies the device by its endorsement key
//! (EK), and the key that later signs SAS tokens is imported under the storage root key (SRK) and
//! never leaves the TPM.
//!
//! What DPS expects, from Azure's SDKs (azure-iot-sdk-node `azure-iot-security-tpm`,
//! azure-iot-sdk-c `hsm_client_tpm`): the EK at persistent handle 0x81010001 and the SRK at
//! 0x81000001, each created from its template and persisted when absent; both sent as a
//! marshalled `TPM2B_PUBLIC`, base64; the registration id, when none is given, is the SHA-256
//! of the EK's `TPM2B_PUBLIC`, base32 (RFC 4648), lowercase, without `=` padding.

#[cfg(feature = "cloud")]
pub mod cloud;
#[cfg(feature = "device")]
mod device;
#[cfg(feature = "device")]
pub use device::*;
