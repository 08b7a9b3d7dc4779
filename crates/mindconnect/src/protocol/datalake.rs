//! The HTTPS payloads of the datalake upload the agent does with its token (the sample's
//! `upload_to_datalake`): the asset lookup `GET {GW_URL}/api/assetmanagement/v3/assets?filter=
//! {"externalId":"<clientId>"}` (answer `_embedded.assets[].assetId`), `POST {SGW_URL}/api/
//! datalake/v3/generateUploadObjectUrls` (`paths[].path` → `objectUrls[].signedUrl`), then a
//! plain `PUT` of the bytes to the signed URL. Both sides use these types. Pure.

use serde::{Deserialize, Serialize};

/// Asset Management path (under `GW_URL`).
pub const ASSETS_PATH: &str = "/api/assetmanagement/v3/assets";
/// Integrated Data Lake path (under `SGW_URL`).
pub const UPLOAD_URLS_PATH: &str = "/api/datalake/v3/generateUploadObjectUrls";

/// The `filter` query value that finds the agent's own asset.
pub fn asset_filter(client_id: &str) -> String {
    serde_json::json!({ "externalId": client_id }).to_string()
}

/// `{"externalId": ...}` as sent in `filter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetFilter {
    /// External id to match.
    pub external_id: String,
}

/// A page of assets (HAL).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetsPage {
    /// Embedded resources.
    #[serde(rename = "_embedded", default)]
    pub embedded: EmbeddedAssets,
}

/// `_embedded`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedAssets {
    /// Assets.
    #[serde(default)]
    pub assets: Vec<AssetRef>,
}

/// The fields of an asset we use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetRef {
    /// Asset id (32 hex digits).
    pub asset_id: String,
    /// External id (the agent's client id for its own asset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `generateUploadObjectUrls` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadUrlsRequest {
    /// Object paths.
    pub paths: Vec<ObjectPath>,
}

/// One path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPath {
    /// `<assetId>/<file name>`.
    pub path: String,
}

/// `generateUploadObjectUrls` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadUrlsResponse {
    /// One per requested path.
    pub object_urls: Vec<ObjectUrl>,
}

/// A signed upload URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectUrl {
    /// Path.
    pub path: String,
    /// URL to PUT the bytes to, without further authentication.
    pub signed_url: String,
}

/// A file name usable in an object path: path separators and odd characters become `_`.
pub fn object_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        "upload.bin".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_shapes_decode() {
        // protocols/mindconnect.md 3.11, from the sample's upload_to_datalake and [D-idl].
        let page: AssetsPage = decode("assets", br#"{"_embedded":{"assets":[{"assetId":"4c0a1d3e","externalId":"t_a","name":"t_a"}]},"page":{"size":10}}"#).unwrap();
        assert_eq!(page.embedded.assets[0].asset_id, "4c0a1d3e");
        let urls: UploadUrlsResponse = decode("upload urls", br#"{"objectUrls":[{"path":"/4c0a/sensor-map.obj","signedUrl":"https://s3/x?X-Amz-Expires=7200"}]}"#).unwrap();
        assert_eq!(
            urls.object_urls[0].signed_url,
            "https://s3/x?X-Amz-Expires=7200"
        );
        assert_eq!(asset_filter("t_a"), r#"{"externalId":"t_a"}"#);
    }

    #[test]
    fn object_names_stay_inside_the_asset_folder() {
        assert_eq!(object_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(object_name(".."), "upload.bin");
        assert_eq!(object_name("sensor-map-1.obj"), "sensor-map-1.obj");
    }

    proptest! {
        #[test]
        fn roundtrip(p in strategies::text(), u in strategies::text(), id in strategies::text()) {
            let r = UploadUrlsRequest { paths: vec![ObjectPath { path: p.clone() }] };
            prop_assert_eq!(decode::<UploadUrlsRequest>("r", &encode(&r)).unwrap(), r);
            let a = UploadUrlsResponse { object_urls: vec![ObjectUrl { path: p, signed_url: u }] };
            prop_assert_eq!(decode::<UploadUrlsResponse>("a", &encode(&a)).unwrap(), a);
            let page = AssetsPage { embedded: EmbeddedAssets { assets: vec![AssetRef { asset_id: id, external_id: None, name: Some("n".into()) }] } };
            prop_assert_eq!(decode::<AssetsPage>("p", &encode(&page)).unwrap(), page);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile(), s in "\\PC{0,40}") {
            let _ = decode::<AssetsPage>("assets", &bytes);
            let _ = decode::<UploadUrlsResponse>("urls", &bytes);
            let _ = object_name(&s);
        }
    }
}
