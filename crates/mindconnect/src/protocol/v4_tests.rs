use super::super::envelope::{decode, encode, strategies};
use super::super::model::{JobReply, JobStep, step};
use super::*;
use proptest::prelude::*;

const LOCAL: &str = include_str!("../../tests/vectors/v4_local_model.json");

fn local() -> V4Model {
    decode("local model", LOCAL.as_bytes()).unwrap()
}

fn counter() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("new{n}")
    }
}

/// What the cloud would hold after applying `p` (assets get ids).
fn cloud_after(p: &SyncPlan) -> V4Model {
    let mut m = p.resolved.clone();
    for (i, a) in m.instance_model.assets.iter_mut().enumerate() {
        a.asset_id.get_or_insert_with(|| format!("asset{i}"));
    }
    m
}

#[test]
fn documented_vectors_decode() {
    let r: DownloadRequest = decode(
        "download request",
        include_bytes!("../../tests/vectors/v4_download_request.json"),
    )
    .unwrap();
    assert_eq!(r.id, "download-request-1");
    let p: JobReply = decode(
        "progress",
        include_bytes!("../../tests/vectors/v4_progress_doc.json"),
    )
    .unwrap();
    assert_eq!(
        step(&p, "myrequest1"),
        JobStep::Progress(Some("20% completed.".into()))
    );
    let m = local();
    assert_eq!(
        m.type_model.asset_types[0].extra.get("instantiable"),
        Some(&Value::Bool(true)),
        "fields we do not model are kept"
    );
    assert!(encode(&m).windows(14).any(|w| w == b"\"instantiable\""));
}

#[test]
fn download_answer_takes_a_url_or_the_model() {
    let r: DownloadReply = decode(
        "download answer",
        br#"{"id":"a","requestId":"r","data":{"content":"https://x/model.json"}}"#,
    )
    .unwrap();
    assert_eq!(r.data.content, Content::Url("https://x/model.json".into()));
    let r: DownloadReply = decode(
        "download answer",
        br#"{"id":"a","data":{"content":{"id":"m","typeModel":{}}}}"#,
    )
    .unwrap();
    assert!(matches!(r.data.content, Content::Inline(_)));
    let e =
        decode::<DownloadReply>("model download answer", br#"{"id":"a","data":{}}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `content`"), "{e}");
}

#[test]
fn first_sync_sends_everything_with_new_reference_ids() {
    let p = plan_sync(&local(), &V4Model::default(), &mut counter());
    let sent = p.payload.clone().unwrap();
    assert_eq!(element_count(&sent), element_count(&local()));
    assert_eq!(p.reused, 0);
    assert_eq!(p.created, element_count(&local()));
    assert!(check_v4(&sent, true, &V4Model::default()).is_empty());
    // The local label stays the asset's referenceId; mappings point at it.
    assert_eq!(
        sent.instance_model.assets[0].reference_id.as_deref(),
        Some("ParentJetPump")
    );
    assert_eq!(
        sent.mapping_model.mappings[0].asset_reference_id.as_deref(),
        Some("ParentJetPump")
    );
}

#[test]
fn an_unchanged_model_sends_nothing() {
    let first = plan_sync(&local(), &V4Model::default(), &mut counter());
    let cloud = cloud_after(&first);
    let again = plan_sync(&local(), &cloud, &mut || "never".into());
    assert_eq!(again.payload, None);
    assert_eq!(again.created, 0);
    assert_eq!(reference_ids(&again.resolved), reference_ids(&cloud));
}

#[test]
fn a_changed_model_sends_only_the_missing_part_with_cloud_ids() {
    let first = plan_sync(&local(), &V4Model::default(), &mut counter());
    let mut cloud = cloud_after(&first);
    // The cloud gave the asset its own referenceId; mappings there name it by assetId.
    cloud.instance_model.assets[0].reference_id = Some("cloudasset".into());
    for m in &mut cloud.mapping_model.mappings {
        m.asset_reference_id = None;
        m.asset_id = Some("asset0".into());
    }
    let mut changed = local();
    changed.type_model.aspect_types[0]
        .variables
        .push(V4Variable {
            reference_id: None,
            name: "pressure".into(),
            data_type: "DOUBLE".into(),
            unit: Some("bar".into()),
            extra: Map::new(),
        });
    changed.mapping_model.mappings.push(V4Mapping {
        reference_id: None,
        data_point_id: "pressure".into(),
        asset_reference_id: Some("ParentJetPump".into()),
        asset_id: None,
        aspect_name: "dht11Aspect".into(),
        variable_name: "pressure".into(),
        extra: Map::new(),
    });
    let p = plan_sync(&changed, &cloud, &mut counter());
    let sent = p.payload.unwrap();
    assert_eq!(
        sent.type_model.aspect_types.len(),
        1,
        "the grown aspect type"
    );
    assert!(sent.type_model.asset_types.is_empty());
    assert!(sent.instance_model.assets.is_empty());
    assert_eq!(sent.mapping_model.mappings.len(), 1);
    let at = &sent.type_model.aspect_types[0];
    assert_eq!(
        at.reference_id, cloud.type_model.aspect_types[0].reference_id,
        "reused"
    );
    assert_eq!(
        at.variables[0].reference_id,
        cloud.type_model.aspect_types[0].variables[0].reference_id
    );
    assert_eq!(at.variables[2].reference_id.as_deref(), Some("new1"));
    let m = &sent.mapping_model.mappings[0];
    assert_eq!(m.asset_reference_id.as_deref(), Some("cloudasset"));
    assert_eq!(p.created, 2);
    assert!(
        check_v4(&sent, true, &cloud).is_empty(),
        "refers to the cloud's asset"
    );
}

#[test]
fn check_names_the_field() {
    let mut m = local();
    m.mapping_model.mappings[1].variable_name = "nope".into();
    m.mapping_model.mappings[0].asset_reference_id = Some("Ghost".into());
    let issues: Vec<String> = check_v4(&m, true, &V4Model::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        issues
            .iter()
            .any(|i| i == "typeModel.aspectTypes[0].referenceId: is missing; every element of an o/amo_v4/mi request carries a referenceId"),
        "{issues:?}"
    );
    assert!(
        issues.iter().any(|i| i
            == "mappingModel.mappings[0].assetReferenceId: `Ghost` is not an asset of this model or of the cloud's"),
        "{issues:?}"
    );
    assert!(
        issues.iter().any(|i| i
            == "mappingModel.mappings[1].variableName: aspect type `tenantid.dht11Aspect` has no variable `nope`"),
        "{issues:?}"
    );
}

#[test]
fn sha_is_the_hex_sha256() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

proptest! {
    #[test]
    fn hostile_input_never_panics(bytes in strategies::hostile()) {
        let _ = decode::<DownloadReply>("download answer", &bytes);
        let _ = decode::<SyncRequest>("model instantiation", &bytes);
        if let Ok(m) = decode::<V4Model>("model", &bytes) {
            let _ = check_v4(&m, true, &m);
            let _ = plan_sync(&m, &m, &mut || "x".into());
        }
    }

    #[test]
    fn planning_twice_sends_nothing(extra_vars in proptest::collection::vec("[a-z]{1,8}", 0..4)) {
        let mut l = local();
        for v in &extra_vars {
            l.type_model.aspect_types[0].variables.push(V4Variable {
                reference_id: None, name: format!("x{v}"), data_type: "INT".into(), unit: None, extra: Map::new(),
            });
        }
        let first = plan_sync(&l, &V4Model::default(), &mut counter());
        let again = plan_sync(&l, &cloud_after(&first), &mut || "never".into());
        prop_assert_eq!(again.payload, None);
    }
}
