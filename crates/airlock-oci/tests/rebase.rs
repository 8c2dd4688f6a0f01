//! Rebase without rebuild: the result is checked by skopeo and run by the Docker Engine after a pull.

mod common;

use std::process::Command;

use airlock_oci::{
    Compression, Error, History, ImageConfig, LayerBuilder, OciLayout, read_image, rebase_image,
    write_image,
};
use common::{skopeo, start_registry};

/// A base: busybox-static plus /etc/base holding `version`.
fn base_layer(version: &str) -> airlock_oci::Layer {
    let mut b = airlock_testkit::image::busybox_layer_builder();
    b.add_file(
        "/etc/base",
        0o644,
        0,
        0,
        format!("{version}\n").into_bytes(),
    )
    .unwrap();
    b.finish(Compression::Gzip).unwrap()
}

fn history(by: &str) -> History {
    History {
        created_by: Some(by.to_string()),
        ..Default::default()
    }
}

async fn write_base(layout: &OciLayout, version: &str) {
    let layer = base_layer(version);
    let mut config = ImageConfig::new("amd64", "linux");
    config.rootfs.diff_ids = vec![layer.diff_id.clone()];
    config.history = vec![history(&format!("base {version}"))];
    write_image(
        layout,
        &config,
        &[(layer.descriptor.clone(), Some(&layer.data))],
        Some(version),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn rebased_image_runs_on_the_new_base_with_the_same_app_layer() {
    let Some(registry) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bases = OciLayout::create(&dir.path().join("bases")).unwrap();
    write_base(&bases, "v1").await;
    write_base(&bases, "v2").await;
    let v1 = read_image(&bases, "v1").await.unwrap();
    let v2 = read_image(&bases, "v2").await.unwrap();

    // The app: base v1 + one app layer.
    let apps = OciLayout::create(&dir.path().join("apps")).unwrap();
    let mut b = LayerBuilder::new(1_700_000_000);
    b.add_file("/app/msg", 0o644, 0, 0, b"hello from the app\n".to_vec())
        .unwrap();
    let app_layer = b.finish(Compression::Gzip).unwrap();
    airlock_oci::copy_image(&bases, &apps, "v1", None)
        .await
        .unwrap();
    let mut config = v1.config.clone();
    config.config.cmd = Some(vec![
        "/bin/busybox".into(),
        "cat".into(),
        "/etc/base".into(),
        "/app/msg".into(),
    ]);
    config.config.user = Some("65532".into());
    // As builds label it: the base digest moves with the rebase, the lineage name stays.
    config.config.labels = Some(
        [
            (
                airlock_oci::BASE_DIGEST_LABEL.to_string(),
                v1.digest.to_string(),
            ),
            (
                airlock_oci::BASE_NAME_LABEL.to_string(),
                "busybox".to_string(),
            ),
        ]
        .into(),
    );
    config.rootfs.diff_ids.push(app_layer.diff_id.clone());
    config.history.push(history("COPY app"));
    write_image(
        &apps,
        &config,
        &[
            (v1.manifest.layers[0].clone(), None),
            (app_layer.descriptor.clone(), Some(&app_layer.data)),
        ],
        Some("app"),
    )
    .await
    .unwrap();

    let dst = registry.store("team/app");
    let report = rebase_image(
        (&apps, "app"),
        (&bases, "v1"),
        (&bases, "v2"),
        &dst,
        Some("rebased"),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.old_base_layers,
            report.new_base_layers,
            report.app_layers
        ),
        (1, 1, 1)
    );

    let rebased = read_image(&dst, "rebased").await.unwrap();
    assert_eq!(rebased.digest, report.digest);
    assert_eq!(
        rebased.manifest.layers,
        vec![v2.manifest.layers[0].clone(), app_layer.descriptor.clone()]
    );
    assert_eq!(
        rebased.config.rootfs.diff_ids,
        vec![
            v2.config.rootfs.diff_ids[0].clone(),
            app_layer.diff_id.clone()
        ]
    );
    let histories: Vec<_> = rebased
        .config
        .history
        .iter()
        .map(|h| h.created_by.clone().unwrap())
        .collect();
    assert_eq!(histories, ["base v2", "COPY app"]);
    assert_eq!(rebased.config.config.cmd, config.config.cmd);
    let labels = rebased.config.config.labels.clone().unwrap();
    assert_eq!(labels[airlock_oci::BASE_DIGEST_LABEL], v2.digest.as_str());
    assert_eq!(labels[airlock_oci::BASE_NAME_LABEL], "busybox");

    // skopeo agrees on digest and layers.
    let reference = format!("docker://{}/team/app:rebased", registry.host);
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &reference])).unwrap();
    assert_eq!(inspect["Digest"], report.digest.as_str());
    assert_eq!(inspect["Layers"][0], v2.manifest.layers[0].digest.as_str());
    assert_eq!(inspect["Layers"][1], app_layer.descriptor.digest.as_str());

    // The Engine pulls and runs it: the new base's file, the app's file.
    if Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let image = format!("{}/team/app:rebased", registry.host);
        let pull = Command::new("docker")
            .args(["pull", "-q", &image])
            .output()
            .unwrap();
        assert!(
            pull.status.success(),
            "{}",
            String::from_utf8_lossy(&pull.stderr)
        );
        let run = Command::new("docker")
            .args(["run", "--rm", &image])
            .output()
            .unwrap();
        let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            "v2\nhello from the app\n"
        );
    } else {
        eprintln!("SKIPPED the docker run part: no Docker Engine answers");
    }

    // An image not built on the named old base is refused, naming it.
    let err = rebase_image((&bases, "v2"), (&apps, "app"), (&bases, "v2"), &dst, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidImage { reason, .. } if reason.contains("not built on app")),
        "{err}"
    );
}
