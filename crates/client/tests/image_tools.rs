//! The client's typed requests for image to image, ControlNet preprocessing and masking,
//! against a real mediagate: the built-in stand-in and Canny model, and a masking model on
//! `runware-upstream` backed by a scripted mock of Runware's API (a test double).

mod support;

use base64::Engine as _;
use mediagate_client::tasks::{ControlNetPreprocess, ImageInference, ImageMasking, MediaData, OutputType};
use mediagate_core::task::TaskType;
use mediagate_providers::upstream::UpstreamKind;
use mediagate_testkit::TestServer;
use mediagate_testkit::mock_upstream::{MockUpstream, Reply, png};
use mediagate_testkit::server::serve_models_from;
use serde_json::json;
use support::client;

fn data_uri(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[tokio::test]
async fn image_to_image_and_a_canny_guide_through_the_client() {
    let s = TestServer::start().await;
    let c = client(&s);
    let seed = data_uri(&png(64, 64, [0, 0, 255]));
    let kept = c
        .run(
            ImageInference::new("the same, at night")
                .size(64, 64)
                .seed_image(&seed)
                .strength(0.0)
                .output_type(OutputType::Base64Data),
        )
        .await
        .unwrap();
    let MediaData::Base64(b64) = &kept[0].image else { panic!("{:?}", kept[0].image) };
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert!(img.pixels().all(|p| p.0 == [0, 0, 255]), "strength 0 keeps the seed image");

    let guide = c
        .run(ControlNetPreprocess::new(kept[0].image_uuid.clone(), "canny").include_cost(true))
        .await
        .unwrap();
    assert!(!guide.image_uuid.is_empty() && guide.cost.unwrap() > 0.0, "{guide:?}");
    let MediaData::Url(url) = &guide.image else { panic!("{:?}", guide.image) };
    assert_eq!(s.http.get(url).send().await.unwrap().status(), 200);

    // A LoRA on the stand-in is refused with the parameter named.
    let e =
        c.run(ImageInference::new("a fox").size(64, 64).lora("civitai:58390@62833", 0.8)).await.unwrap_err();
    assert!(e.to_string().contains("unsupportedParameterForModel") && e.to_string().contains("lora"), "{e}");
}

#[tokio::test]
async fn a_mask_and_its_detections_through_the_client() {
    let mock = MockUpstream::start().await;
    let mask = base64::engine::general_purpose::STANDARD.encode(png(8, 8, [255, 255, 255]));
    mock.on(
        "POST",
        "/v1",
        vec![Reply::json(200, json!({"data": [{"taskType": "imageMasking", "taskUUID": "x", "maskImageUUID": "x",
                                               "maskImageBase64Data": mask,
                                               "detections": [{"x_min": 1, "y_min": 2, "x_max": 5, "y_max": 7}]}]}))],
    );
    let url = mock.base_url.clone();
    let s = TestServer::start_with(move |c| {
        serve_models_from(
            c,
            "runware",
            UpstreamKind::RunwareUpstream,
            &url,
            "0.001",
            &[("acme:face@1", TaskType::ImageMasking)],
        )
    })
    .await;
    let c = client(&s);
    let masked = c
        .run(
            ImageMasking::new(data_uri(&png(64, 64, [9, 9, 9])))
                .model("acme:face@1")
                .confidence(0.4)
                .max_detections(2),
        )
        .await
        .unwrap();
    assert!(!masked.image_uuid.is_empty(), "{masked:?}");
    assert_eq!(masked.extra["detections"], json!([{"x_min": 1, "y_min": 2, "x_max": 5, "y_max": 7}]));
    let sent = &mock.requests("POST", "/v1")[0].json()[0];
    assert_eq!((sent["confidence"].as_f64(), sent["maxDetections"].as_u64()), (Some(0.4), Some(2)));
}
