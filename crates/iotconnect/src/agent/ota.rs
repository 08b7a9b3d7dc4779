//! OTA (0x02): which device each URL is for (a child named by `uniqueId`, the devices of a
//! `tag`, or the gateway itself), the download over HTTPS into
//! `<ota dir>/<ackId>/<uniqueId>/<file>` (written to `.part`, size checked against
//! `Content-Length`, SHA-256 computed, renamed when complete), and the per-device outcome the
//! agent acknowledges (`st` 7, or 4 with the reason; `childId` for children).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use transport::http::Http;

use crate::protocol::v1::c2d::OtaUrl;
pub use crate::protocol::v1::c2d::{OtaTarget, ota_targets as targets};

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where.
    pub path: PathBuf,
    /// Size.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A safe file or folder name from untrusted text.
pub fn safe_name(s: &str, fallback: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        fallback.to_owned()
    } else {
        cleaned
    }
}

fn file_name(u: &OtaUrl, i: usize) -> String {
    let fallback = format!("firmware-{i}.bin");
    if let Some(f) = &u.file_name {
        return safe_name(f, &fallback);
    }
    let last = url::Url::parse(&u.url)
        .ok()
        .and_then(|url| {
            url.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .unwrap_or_default();
    safe_name(&last, &fallback)
}

/// Downloads every URL of `target` into `dir`; the first failure is returned as a sentence.
pub async fn download(
    http: &Http,
    dir: &Path,
    target: &OtaTarget,
    max_bytes: u64,
) -> Result<Vec<Downloaded>, String> {
    let dir = dir.join(safe_name(&target.unique_id, "device"));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let mut out = Vec::new();
    for (i, u) in target.urls.iter().enumerate() {
        // The URL came from the network: checked before anything is created for it.
        http.check(&u.url, "IoTConnect OTA URL")
            .map_err(|e| format!("refusing to download: {e}"))?;
        let path = dir.join(file_name(u, i));
        out.push(fetch(http, &u.url, &path, max_bytes).await?);
    }
    Ok(out)
}

async fn fetch(http: &Http, url: &str, path: &Path, max_bytes: u64) -> Result<Downloaded, String> {
    let shown = url.split('?').next().unwrap_or(url);
    // The transport's download: https only off loopback, `.part` then rename, mode 0600,
    // resumed with Range when the connection breaks, size capped.
    let got = http
        .download(
            "IoTConnect OTA download",
            url,
            reqwest::header::HeaderMap::new(),
            path,
            max_bytes,
            2,
        )
        .await
        .map_err(|e| format!("download of {shown} failed: {e}"))?;
    if got.bytes == 0 {
        let _ = tokio::fs::remove_file(path).await;
        return Err(format!("{shown} is empty"));
    }
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&data));
    Ok(Downloaded {
        path: path.to_owned(),
        bytes: got.bytes,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str, tag: Option<&str>, id: Option<&str>) -> OtaUrl {
        OtaUrl {
            url: u.into(),
            tag: tag.map(Into::into),
            unique_id: id.map(Into::into),
            file_name: None,
        }
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(safe_name("../../etc/passwd", "f"), ".._.._etc_passwd");
        assert_eq!(safe_name("..", "f"), "f");
        assert_eq!(
            file_name(&url("https://h/fw/v2.bin?sig=1", None, None), 0),
            "v2.bin"
        );
        assert_eq!(
            file_name(&url("https://h/", None, None), 3),
            "firmware-3.bin"
        );
    }
}
