//! The device side, through tss-esapi (feature `device`).

use std::str::FromStr;

use base64::Engine as _;
use tss_esapi::abstraction::ek;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, SessionHandle};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Data, EncryptedSecret, IdObject, Nonce, Private, SymmetricDefinition};
use tss_esapi::structures::{
    KeyedHashScheme, MaxBuffer, Public, PublicBuilder, PublicKeyRsa, PublicKeyedHashParameters,
    PublicRsaParametersBuilder, RsaExponent, SensitiveData, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall as _, UnMarshall as _};
use tss_esapi::{Context, abstraction::AsymmetricAlgorithmSelection};

/// Where DPS-attesting devices keep the endorsement key (TCG's EK credential profile, and the
/// handle Azure's SDKs read).
pub const EK_HANDLE: u32 = 0x8101_0001;
/// Where Azure's SDKs keep the storage root key the DPS challenge key is imported under.
pub const SRK_HANDLE: u32 = 0x8100_0001;

/// Where the HMAC key DPS issued is kept (azure-iot-sdk-node's `_idKeyPersistentHandle`).
pub const ID_KEY_HANDLE: u32 = 0x8100_0100;

/// The environment variables a TCTI is read from when no option names one, in tpm2-tools' order.
pub const TCTI_ENV: [&str; 2] = ["TPM2TOOLS_TCTI", "TCTI"];

/// Errors of TPM access; each says which step and, for configuration, which value.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// No TCTI option and none of [`TCTI_ENV`] set.
    #[error(
        "no TPM named: pass --tpm (e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`) or set TPM2TOOLS_TCTI or TCTI"
    )]
    NoTcti,
    /// The TCTI string did not parse.
    #[error(
        "TPM TCTI {tcti:?} is not valid (expected `device:/dev/tpmrm0`, `swtpm:host=H,port=P` or `mssim:...`): {source}"
    )]
    BadTcti {
        /// The string as given.
        tcti: String,
        /// What tss-esapi said.
        source: tss_esapi::Error,
    },
    /// The TPM could not be opened through the TCTI.
    #[error(
        "cannot open the TPM through {tcti:?}: {source} (for /dev/tpmrm0 the user needs the tss group)"
    )]
    Open {
        /// The TCTI string.
        tcti: String,
        /// What tss-esapi said.
        source: tss_esapi::Error,
    },
    /// A TPM command failed.
    #[error("TPM: {step} failed: {source}")]
    Command {
        /// What was being done.
        step: &'static str,
        /// What the TPM or tss-esapi said.
        source: tss_esapi::Error,
    },
    /// Input that cannot be given to the TPM (too long, wrong size).
    #[error("TPM: {0}")]
    Input(String),
}

type Result<T> = std::result::Result<T, TpmError>;

fn cmd(step: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
    move |source| TpmError::Command { step, source }
}

/// How to reach the TPM.
#[derive(Clone, Debug, Default)]
pub struct TpmOptions {
    /// A TCTI string (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`); `None` reads
    /// [`TCTI_ENV`].
    pub tcti: Option<String>,
}

impl TpmOptions {
    /// The TCTI string this resolves to: the option, else the first of [`TCTI_ENV`] set.
    pub fn resolve_tcti(&self) -> Result<String> {
        if let Some(t) = self.tcti.as_deref().filter(|t| !t.trim().is_empty()) {
            return Ok(t.trim().to_owned());
        }
        TCTI_ENV
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
            .map(|v| v.trim().to_owned())
            .ok_or(TpmError::NoTcti)
    }
}

/// The two public keys DPS asks for, as it takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The EK's marshalled `TPM2B_PUBLIC`.
    pub ek_public: Vec<u8>,
    /// The SRK's marshalled `TPM2B_PUBLIC`.
    pub srk_public: Vec<u8>,
}

impl Identity {
    /// The EK as DPS's `tpm.endorsementKey` field carries it.
    pub fn ek_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ek_public)
    }
    /// The SRK as DPS's `tpm.storageRootKey` field carries it.
    pub fn srk_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.srk_public)
    }
    /// The registration id Azure's SDKs derive when none is configured.
    pub fn registration_id(&self) -> String {
        registration_id(&self.ek_public)
    }
}

/// SHA-256 of the EK's `TPM2B_PUBLIC`, base32 (RFC 4648), lowercase, `=` padding removed, as
/// azure-iot-sdk-node's `TpmSecurityClient.getRegistrationId` and the C SDK's `hsm_client_tpm`
/// derive it.
pub fn registration_id(ek_tpm2b_public: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ek_tpm2b_public);
    data_encoding::BASE32_NOPAD
        .encode(digest.as_ref())
        .to_ascii_lowercase()
}

/// `TPMT_PUBLIC` marshalled with its 16-bit size in front: a `TPM2B_PUBLIC`.
pub fn tpm2b_public(public: &Public) -> Result<Vec<u8>> {
    let inner = public
        .marshall()
        .map_err(cmd("marshalling a public area"))?;
    let len = u16::try_from(inner.len())
        .map_err(|_| TpmError::Input("public area longer than 65535 bytes".into()))?;
    let mut out = Vec::with_capacity(inner.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&inner);
    Ok(out)
}

/// The SRK template Azure's SDKs use: RSA 2048, restricted decryption, AES-128-CFB, noDA,
/// userWithAuth (the empty password), no policy.
pub fn srk_template() -> Result<Public> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(cmd("building the SRK attributes"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_rsa_parameters(
            PublicRsaParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                RsaKeyBits::Rsa2048,
                RsaExponent::default(),
            )
            .build()
            .map_err(cmd("building the SRK parameters"))?,
        )
        .with_rsa_unique_identifier(PublicKeyRsa::default())
        .build()
        .map_err(cmd("building the SRK template"))
}

/// An open TPM.
pub struct Tpm {
    ctx: Context,
    tcti: String,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("tcti", &self.tcti)
            .finish_non_exhaustive()
    }
}

impl Tpm {
    /// Opens the TPM the options name.
    pub fn open(opts: &TpmOptions) -> Result<Self> {
        let tcti = opts.resolve_tcti()?;
        let conf = TctiNameConf::from_str(&tcti).map_err(|source| TpmError::BadTcti {
            tcti: tcti.clone(),
            source,
        })?;
        let ctx = Context::new(conf).map_err(|source| TpmError::Open {
            tcti: tcti.clone(),
            source,
        })?;
        Ok(Self { ctx, tcti })
    }

    /// The TCTI string in use.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// The key at a persistent handle, if there is one.
    fn persistent(&mut self, handle: u32) -> Result<Option<KeyHandle>> {
        let tpm_handle = TpmHandle::Persistent(
            PersistentTpmHandle::new(handle).map_err(cmd("naming a persistent handle"))?,
        );
        // Asked first, because TR_FromTPMPublic on an absent handle (the normal first run)
        // makes the TSS library print an ERROR line to stderr.
        let (data, _) = self
            .ctx
            .get_capability(tss_esapi::constants::CapabilityType::Handles, handle, 1)
            .map_err(cmd("listing persistent handles (GetCapability)"))?;
        let present = match data {
            tss_esapi::structures::CapabilityData::Handles(list) => list.contains(&tpm_handle),
            _ => false,
        };
        if !present {
            return Ok(None);
        }
        self.ctx
            .tr_from_tpm_public(tpm_handle)
            .map(|h| Some(h.into()))
            .map_err(cmd("opening a persistent handle (TR_FromTPMPublic)"))
    }

    /// The key at `handle`, or a primary created in `hierarchy` from `template` and persisted
    /// there (as Azure's SDKs do, so the SRK the challenge was made for is there next boot).
    fn persistent_primary(
        &mut self,
        handle: u32,
        hierarchy: Hierarchy,
        template: Public,
        what: &'static str,
    ) -> Result<KeyHandle> {
        if let Some(h) = self.persistent(handle)? {
            return Ok(h);
        }
        let created = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(hierarchy, template, None, None, None, None)
            })
            .map_err(cmd(what))?;
        let persistent = Persistent::Persistent(
            PersistentTpmHandle::new(handle).map_err(cmd("naming a persistent handle"))?,
        );
        let evicted = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.evict_control(
                    Provision::Owner,
                    ObjectHandle::from(created.key_handle),
                    persistent,
                )
            })
            .map_err(cmd("persisting a primary key (EvictControl)"))?;
        self.ctx
            .flush_context(created.key_handle.into())
            .map_err(cmd("flushing a transient primary key"))?;
        Ok(evicted.into())
    }

    /// The EK handle (0x81010001), created from TCG's default RSA 2048 template when absent.
    pub fn ek(&mut self) -> Result<KeyHandle> {
        let template = ek::create_ek_public_from_default_template_2(
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            None,
        )
        .map_err(cmd("building the EK template"))?;
        self.persistent_primary(
            EK_HANDLE,
            Hierarchy::Endorsement,
            template,
            "creating the EK",
        )
    }

    /// The SRK handle (0x81000001), created from [`srk_template`] when absent.
    pub fn srk(&mut self) -> Result<KeyHandle> {
        let template = srk_template()?;
        self.persistent_primary(SRK_HANDLE, Hierarchy::Owner, template, "creating the SRK")
    }

    fn public_of(&mut self, key: KeyHandle, what: &'static str) -> Result<Vec<u8>> {
        let (public, _, _) = self.ctx.read_public(key).map_err(cmd(what))?;
        tpm2b_public(&public)
    }

    /// The EK and SRK public areas DPS takes (creating and persisting either when absent).
    pub fn identity(&mut self) -> Result<Identity> {
        let ek = self.ek()?;
        let ek_public = self.public_of(ek, "reading the EK public area")?;
        let srk = self.srk()?;
        let srk_public = self.public_of(srk, "reading the SRK public area")?;
        Ok(Identity {
            ek_public,
            srk_public,
        })
    }

    /// HMAC-SHA256 of `data` with a loaded keyed-hash key; the key stays in the TPM.
    pub fn hmac_sha256(&mut self, key: KeyHandle, data: &[u8]) -> Result<Vec<u8>> {
        // TPM2_HMAC takes at most MAX_DIGEST_BUFFER (1024) bytes; SAS token strings are far
        // shorter, so longer input is refused rather than sequenced.
        let buffer = MaxBuffer::try_from(data.to_vec()).map_err(|_| {
            TpmError::Input(format!(
                "{} bytes to sign; TPM2_HMAC takes at most 1024",
                data.len()
            ))
        })?;
        let digest = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.hmac(key.into(), buffer, HashingAlgorithm::Sha256)
            })
            .map_err(cmd("HMAC-SHA256 (TPM2_HMAC)"))?;
        Ok(digest.to_vec())
    }

    /// Unpacks DPS's `authenticationKey`, activates its credential with the EK (under the
    /// endorsement hierarchy's policy the EK template requires), imports the HMAC key it wraps
    /// under the SRK and persists it at [`ID_KEY_HANDLE`], replacing an earlier one. The key's
    /// secret never leaves the TPM; the returned handle signs SAS tokens.
    pub fn activate_identity_key(&mut self, authentication_key: &[u8]) -> Result<KeyHandle> {
        let bad = |what: &str| {
            TpmError::Input(format!(
                "DPS authenticationKey: {what} (expected TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET, TPM2B_PRIVATE, TPM2B_ENCRYPTED_SECRET, TPM2B_PUBLIC)"
            ))
        };
        let mut rest = authentication_key;
        let mut next = |what: &'static str| -> Result<Vec<u8>> {
            if rest.len() < 2 {
                return Err(bad(&format!("ends before {what}")));
            }
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if rest.len() < 2 + n {
                return Err(bad(&format!("{what} is truncated")));
            }
            let v = rest[2..2 + n].to_vec();
            rest = &rest[2 + n..];
            Ok(v)
        };
        let id_object = IdObject::try_from(next("the credential blob")?)
            .map_err(|_| bad("credential blob too long"))?;
        let secret = EncryptedSecret::try_from(next("the encrypted secret")?)
            .map_err(|_| bad("encrypted secret too long"))?;
        let duplicate =
            Private::try_from(next("the duplicate")?).map_err(|_| bad("duplicate too long"))?;
        let wrap_seed = EncryptedSecret::try_from(next("the wrapping seed")?)
            .map_err(|_| bad("wrapping seed too long"))?;
        let public = Public::unmarshall(&next("the key's public area")?)
            .map_err(|_| bad("the key's public area does not unmarshal"))?;
        if !rest.is_empty() {
            return Err(bad("bytes after the public area"));
        }

        let ek = self.ek()?;
        let srk = self.srk()?;
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(cmd("starting a policy session"))?
            .ok_or_else(|| TpmError::Input("the TPM returned no policy session".into()))?;
        let policy = PolicySession::try_from(session)
            .map_err(cmd("using the session as a policy session"))?;
        let activated = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.policy_secret(
                    policy,
                    AuthHandle::Endorsement,
                    Nonce::default(),
                    tss_esapi::structures::Digest::default(),
                    Nonce::default(),
                    None,
                )
            })
            .map_err(cmd("PolicySecret(endorsement) for the EK"))
            .and_then(|_| {
                self.ctx
                    .execute_with_sessions(
                        (Some(AuthSession::Password), Some(session), None),
                        |ctx| ctx.activate_credential(srk, ek, id_object, secret),
                    )
                    .map_err(cmd("ActivateCredential (is this the enrolled TPM?)"))
            });
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        let inner_key = activated?;
        let private = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.import(
                    srk.into(),
                    Some(Data::try_from(inner_key.to_vec())?),
                    public.clone(),
                    duplicate,
                    wrap_seed,
                    SymmetricDefinitionObject::AES_128_CFB,
                )
            })
            .map_err(cmd("Import of the DPS identity key"))?;
        let loaded = self
            .ctx
            .execute_with_nullauth_session(|ctx| ctx.load(srk, private, public))
            .map_err(cmd("Load of the DPS identity key"))?;
        let persistent = Persistent::Persistent(
            PersistentTpmHandle::new(ID_KEY_HANDLE).map_err(cmd("naming a persistent handle"))?,
        );
        if let Some(old) = self.persistent(ID_KEY_HANDLE)? {
            self.ctx
                .execute_with_nullauth_session(|ctx| {
                    ctx.evict_control(Provision::Owner, old.into(), persistent)
                })
                .map_err(cmd("removing the previous identity key (EvictControl)"))?;
        }
        let kept = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.evict_control(Provision::Owner, loaded.into(), persistent)
            })
            .map_err(cmd("persisting the identity key (EvictControl)"))?;
        self.ctx
            .flush_context(loaded.into())
            .map_err(cmd("flushing the transient identity key"))?;
        Ok(kept.into())
    }

    /// The identity key an earlier [`Tpm::activate_identity_key`] persisted, if any: a
    /// restarted device signs with it without provisioning again.
    pub fn identity_key(&mut self) -> Result<Option<KeyHandle>> {
        self.persistent(ID_KEY_HANDLE)
    }

    /// Creates and loads an HMAC-SHA256 key under the SRK holding `secret`: for tests of
    /// [`Tpm::hmac_sha256`] against a known key, and for devices that seal a key of their own.
    pub fn load_hmac_key(&mut self, secret: &[u8]) -> Result<KeyHandle> {
        let srk = self.srk()?;
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_user_with_auth(true)
            .with_sign_encrypt(true)
            .build()
            .map_err(cmd("building the HMAC key attributes"))?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(
                KeyedHashScheme::HMAC_SHA_256,
            ))
            .with_keyed_hash_unique_identifier(tss_esapi::structures::Digest::default())
            .build()
            .map_err(cmd("building the HMAC key template"))?;
        let sensitive = SensitiveData::try_from(secret.to_vec()).map_err(|_| {
            TpmError::Input(format!("an HMAC key of {} bytes is too long", secret.len()))
        })?;
        let created = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create(srk, public, None, Some(sensitive), None, None)
            })
            .map_err(cmd("creating the HMAC key (TPM2_Create)"))?;
        self.ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.load(srk, created.out_private, created.out_public)
            })
            .map_err(cmd("loading the HMAC key (TPM2_Load)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_id_is_lowercase_unpadded_base32_of_sha256() {
        let id = registration_id(b"abc");
        // SHA-256("abc") = ba7816bf..., base32 of 32 bytes is 52 characters plus 4 `=`.
        assert_eq!(id.len(), 52);
        assert_eq!(id, "xj4bnp4pahh6uqkbidpf3lrceoyagyndsylxvhfucd7wd4qacwwq");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        );
    }

    #[test]
    fn tcti_option_wins_and_blank_is_no_option() {
        let o = TpmOptions {
            tcti: Some(" device:/dev/tpmrm0 ".into()),
        };
        assert_eq!(o.resolve_tcti().ok().as_deref(), Some("device:/dev/tpmrm0"));
    }
}
