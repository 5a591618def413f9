//! `imageInference`'s optional parameters over the Runware REST dialect: image to image,
//! inpainting and outpainting on the built-in stand-in (pixel by pixel), every optional parameter
//! of the official SDKs validated with its path, refused at admission by a model whose provider
//! does not act on it (nothing charged), and sent on whole, images inlined, by `runware-upstream`.

use base64::Engine as _;
use image::RgbImage;
use mediagate_core::model::{Bounds, ModelSpec, RetryPolicy};
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::mock_upstream::{MockUpstream, Reply, png};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

fn data_uri(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> String {
    data_uri(&png(w, h, rgb))
}

/// An image task with `extra` merged in, results as base64 PNG.
fn task(extra: Value) -> Value {
    let mut t = json!({
        "taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a lighthouse at dusk",
        "width": 128, "height": 128, "seed": 7, "outputType": "base64Data", "outputFormat": "PNG",
    });
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

/// Runs one task and decodes its one image.
async fn image(s: &TestServer, t: Value) -> RgbImage {
    let (st, b) = s.post(&json!([t])).await;
    assert_eq!(st, 200, "{b}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["imageBase64Data"].as_str().unwrap())
        .unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

#[tokio::test]
async fn the_stand_in_blends_a_seed_image_by_strength_and_mask() {
    let s = TestServer::start().await;
    let drawn = image(&s, task(json!({}))).await;
    let blue = solid(64, 64, [0, 0, 255]);
    // strength 0 keeps the seed image (resized to the output), 1 is the text-to-image picture.
    let kept = image(&s, task(json!({"seedImage": blue, "strength": 0.0}))).await;
    assert!(kept.pixels().all(|p| p.0 == [0, 0, 255]));
    let replaced = image(&s, task(json!({"seedImage": blue, "strength": 1.0}))).await;
    assert_eq!(replaced, drawn);
    // Halfway: each channel halfway between the two (±1 for rounding).
    let half = image(&s, task(json!({"seedImage": blue, "strength": 0.5}))).await;
    for (h, d) in half.pixels().zip(drawn.pixels()) {
        for c in 0..3 {
            let want = (f32::from(d.0[c]) + f32::from([0u8, 0, 255][c])) / 2.0;
            assert!((f32::from(h.0[c]) - want).abs() <= 1.0, "{h:?} vs {d:?}");
        }
    }
    // A mask keeps its black half of the seed image and repaints its white half.
    let mut mask = image::GrayImage::new(128, 128);
    for (x, _, p) in mask.enumerate_pixels_mut() {
        p.0 = [if x >= 64 { 255 } else { 0 }];
    }
    let mut mask_png = std::io::Cursor::new(Vec::new());
    mask.write_to(&mut mask_png, image::ImageFormat::Png).unwrap();
    let masked = image(
        &s,
        task(json!({"seedImage": blue, "maskImage": data_uri(mask_png.get_ref()), "strength": 1.0})),
    )
    .await;
    assert_eq!(masked.get_pixel(10, 64).0, [0, 0, 255]);
    assert_eq!(masked.get_pixel(120, 64), drawn.get_pixel(120, 64));
}

#[tokio::test]
async fn an_uploaded_image_serves_as_the_seed_image_and_outpainting_adds_its_borders() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": solid(64, 64, [0, 255, 0])}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let uuid = b["data"][0]["imageUUID"].as_str().unwrap().to_string();
    let grown = image(
        &s,
        task(
            json!({"seedImage": uuid, "outpaint": {"left": 64}, "width": 128, "height": 64, "strength": 0.0}),
        ),
    )
    .await;
    assert_eq!(grown.dimensions(), (128, 64));
    assert_ne!(grown.get_pixel(10, 10).0, [0, 255, 0], "the border is new picture");
    assert_eq!(grown.get_pixel(100, 10).0, [0, 255, 0], "the seed image is kept inside it");

    // The output must be the seed image plus its borders; anything else says what to send,
    // and nothing is charged.
    let before = s.balance("default").await;
    let (st, b) = s
        .post(&json!([task(
            json!({"seedImage": uuid, "outpaint": {"left": 64}, "width": 192, "height": 64})
        )]))
        .await;
    assert_eq!(st, 400, "{b}");
    let e = &b["errors"][0];
    assert_eq!(e["code"], "invalidParameterValue", "{b}");
    assert!(e["message"].as_str().unwrap().contains("send width 128 and height 64"), "{b}");
    assert_eq!(s.balance("default").await, before);
}

#[tokio::test]
async fn optional_parameters_are_validated_with_their_paths() {
    let s = TestServer::start().await;
    let png = solid(64, 64, [9, 9, 9]);
    let refused: &[(Value, &str, &str)] = &[
        (json!({"strength": 0.5}), "missingParameter", "seedImage"),
        (json!({"maskImage": png}), "missingParameter", "seedImage"),
        (json!({"outpaint": {"top": 64}}), "missingParameter", "seedImage"),
        (json!({"seedImage": png, "strength": 1.5}), "invalidParameterValue", "strength"),
        (json!({"seedImage": png, "outpaint": {"top": 30}}), "invalidParameterValue", "outpaint.top"),
        (json!({"seedImage": png, "outpaint": {}}), "invalidParameterValue", "outpaint"),
        (
            json!({"seedImage": png, "outpaint": {"top": 64, "blur": 40}}),
            "invalidParameterValue",
            "outpaint.blur",
        ),
        (json!({"seedImage": png, "outpaint": {"up": 64}}), "unknownParameter", "outpaint.up"),
        (json!({"seedImage": png, "maskMargin": 64}), "missingParameter", "maskImage"),
        (json!({"seedImage": 5}), "invalidParameterType", "seedImage"),
        (
            json!({"controlNet": [{"guideImage": png, "weight": 2}]}),
            "invalidParameterValue",
            "controlNet[0].weight",
        ),
        (json!({"controlNet": [{"weight": 0.5}]}), "missingParameter", "controlNet[0].guideImage"),
        (
            json!({"controlNet": [{"guideImage": png, "wieght": 1}]}),
            "unknownParameter",
            "controlNet[0].wieght",
        ),
        (json!({"lora": [{"model": "civitai:1@1", "weight": 9}]}), "invalidParameterValue", "lora[0].weight"),
        (json!({"lora": {"model": "civitai:1@1"}}), "invalidParameterType", "lora"),
        (json!({"clipSkip": 3}), "invalidParameterValue", "clipSkip"),
        (json!({"promptWeighting": "loud"}), "invalidParameterValue", "promptWeighting"),
        (json!({"providerSettings": "bfl"}), "invalidParameterType", "providerSettings"),
        (
            json!({"inputs": {"referenceImages": [{"role": "style"}]}}),
            "missingParameter",
            "inputs.referenceImages[0].image",
        ),
        // Well-formed, but the built-in stand-in does not act on it: refused at admission.
        (json!({"lora": [{"model": "civitai:1@1", "weight": 0.8}]}), "unsupportedParameterForModel", "lora"),
        (json!({"referenceImages": [png]}), "unsupportedParameterForModel", "referenceImages"),
        (json!({"inputs": {"seedImage": png}}), "unsupportedParameterForModel", "inputs"),
    ];
    let before = s.balance("default").await;
    s.assert_refused(refused, task).await;
    assert_eq!(s.balance("default").await, before, "refused tasks are not charged");

    let (_, b) = s.post(&json!([task(json!({"lora": [{"model": "civitai:1@1"}]}))])).await;
    let m = b["errors"][0]["message"].as_str().unwrap();
    assert!(m.contains("mediagate:procedural@1") && m.contains("seedImage, maskImage, outpaint"), "{m}");
    assert!(m.contains("runware-upstream"), "{m}");
    // Hints are taken by every model: the stand-in leaves its missing sampler's settings aside.
    let (st, b) = s
        .post(&json!([task(json!({"scheduler": "DPM++ 2M Karras", "clipSkip": 1, "checkNSFW": true,
                                 "safety": {"checkContent": true}, "promptWeighting": "compel"}))]))
        .await;
    assert_eq!(st, 200, "{b}");
}

/// A server with `acme:sdxl@1` served by `runware-upstream` on a scripted mock of Runware's API.
async fn forwarding_server(
    mock: &MockUpstream,
    adjust: impl FnOnce(&mut mediagate_engine::config::Config),
) -> TestServer {
    let url = mock.base_url.clone();
    TestServer::start_with(move |c| {
        let models = [("acme:sdxl@1", mediagate_core::task::TaskType::ImageInference)];
        mediagate_testkit::server::serve_models_from(
            c,
            "runware",
            UpstreamKind::RunwareUpstream,
            &url,
            "0.002",
            &models,
        );
        adjust(c);
    })
    .await
}

#[tokio::test]
async fn runware_upstream_receives_every_optional_parameter_with_its_images_inlined() {
    let mock = MockUpstream::start().await;
    let reply = base64::engine::general_purpose::STANDARD.encode(png(8, 8, [1, 2, 3]));
    mock.on(
        "POST",
        "/v1",
        vec![Reply::json(200, json!({"data": [{"taskType": "imageInference", "taskUUID": "x", "imageUUID": "x", "imageBase64Data": reply}]}))],
    );
    let s = forwarding_server(&mock, |_| {}).await;
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": solid(64, 64, [0, 255, 0])}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let guide = b["data"][0]["imageUUID"].as_str().unwrap().to_string();
    let seed = solid(64, 64, [0, 0, 255]);
    let sent = task(json!({
        "model": "acme:sdxl@1", "seedImage": seed, "strength": 0.6,
        "lora": [{"model": "civitai:58390@62833", "weight": 0.8}],
        "controlNet": [{"model": "civitai:38784@44716", "guideImage": guide, "weight": 0.5,
                        "startStepPercentage": 0, "endStepPercentage": 80, "controlMode": "balanced",
                        "preprocessor": "canny", "lowThresholdCanny": null}],
        "refiner": {"model": "civitai:101055@128080", "startStep": 30},
        "scheduler": "Euler", "clipSkip": 1,
        "providerSettings": {"bfl": {"promptUpsampling": true}},
    }));
    let (st, b) = s.post(&json!([sent])).await;
    assert_eq!(st, 200, "{b}");
    let forwarded = &mock.requests("POST", "/v1")[0].json()[0];
    // Every parameter as sent, but the images: each is now the bytes this server fetched.
    for key in ["lora", "refiner", "scheduler", "clipSkip", "providerSettings", "strength"] {
        assert_eq!(forwarded[key], sent[key], "{key}: {forwarded}");
    }
    assert_eq!(forwarded["seedImage"], seed, "a data URI is sent on as the same bytes");
    let guide_sent = forwarded["controlNet"][0]["guideImage"].as_str().unwrap();
    assert_eq!(guide_sent, solid(64, 64, [0, 255, 0]), "the upload's UUID is replaced by its bytes");
    assert_eq!(forwarded["controlNet"][0]["endStepPercentage"], 80);
    assert_eq!(forwarded["model"], "acme:sdxl@1");

    // The inputs of one task are bounded: 16 reference images and a seed image are 17.
    let many: Vec<String> = (0..16).map(|i| solid(8, 8, [i as u8, 0, 0])).collect();
    let (st, b) = s
        .post(&json!([task(json!({"model": "acme:sdxl@1", "seedImage": seed, "referenceImages": many}))]))
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("assets.max_inputs_per_task"), "{b}");
    assert_eq!(mock.calls("POST", "/v1"), 1, "a refused task is not sent on");
}

#[tokio::test]
async fn a_model_with_a_fallback_takes_only_what_every_provider_of_its_chain_acts_on() {
    let mock = MockUpstream::start().await;
    let s =
        forwarding_server(&mock, |c| c.models.last_mut().unwrap().fallback = vec!["procedural".into()]).await;
    let (st, b) =
        s.post(&json!([task(json!({"model": "acme:sdxl@1", "lora": [{"model": "civitai:1@1"}]}))])).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["errors"][0]["code"], "unsupportedParameterForModel", "{b}");
    // The stand-in's own features are acted on by both.
    let (st, b) = s
        .post(&json!([task(
            json!({"model": "acme:sdxl@1", "seedImage": solid(64, 64, [0, 0, 255]), "strength": 0.0})
        )]))
        .await;
    assert_eq!((st, b["errors"][0]["code"].clone()), (200, Value::Null), "{b}");
}

#[tokio::test]
async fn a_canny_guide_is_made_from_an_input_image_and_named_as_runware_names_it() {
    let s = TestServer::start().await;
    // A white square on black: its guide has edges on the outline only.
    let mut square = image::GrayImage::new(64, 64);
    for (x, y, p) in square.enumerate_pixels_mut() {
        p.0 = [if (16..48).contains(&x) && (16..48).contains(&y) { 255 } else { 0 }];
    }
    let mut png_bytes = std::io::Cursor::new(Vec::new());
    square.write_to(&mut png_bytes, image::ImageFormat::Png).unwrap();
    let input = data_uri(png_bytes.get_ref());
    let task = |extra: Value| {
        let mut t = json!({"taskType": "imageControlNetPreProcess", "taskUUID": task_uuid(), "inputImage": input,
                           "preProcessorType": "canny", "outputType": "base64Data", "includeCost": true});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let (st, b) = s.post(&json!([task(json!({}))])).await;
    assert_eq!(st, 200, "{b}");
    let item = &b["data"][0];
    assert!(item["guideImageUUID"].is_string() && item["imageUUID"].is_null(), "{item}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(item["guideImageBase64Data"].as_str().unwrap())
        .unwrap();
    let guide = image::load_from_memory(&bytes).unwrap().to_luma8();
    assert_eq!(guide.dimensions(), (64, 64));
    assert_eq!(guide.get_pixel(32, 32).0, [0], "no edge inside the square");
    assert!((14..18).any(|x| guide.get_pixel(x, 32).0 == [255]), "an edge on its outline");
    assert!(item["cost"].as_f64().unwrap() > 0.0, "{item}");

    let refused: &[(Value, &str, &str)] = &[
        (json!({"preProcessorType": "depth"}), "unsupportedParameterForModel", "preProcessorType"),
        (json!({"preProcessorType": "edges"}), "invalidParameterValue", "preProcessorType"),
        (json!({"lowThresholdCanny": 300}), "invalidParameterValue", "lowThresholdCanny"),
        (
            json!({"lowThresholdCanny": 200, "highThresholdCanny": 100}),
            "invalidParameterValue",
            "lowThresholdCanny",
        ),
        (json!({"inputImage": ""}), "invalidParameterValue", "inputImage"),
    ];
    s.assert_refused(refused, task).await;
    let (_, b) = s.post(&json!([task(json!({"preProcessorType": "depth"}))])).await;
    let m = b["errors"][0]["message"].as_str().unwrap();
    assert!(m.contains("'preProcessorType' depth") && m.contains("which takes canny"), "{m}");
}

/// A server with two ComfyUI workflows on the testkit's ComfyUI mock (a test double): text to
/// image (`acme:txt@1`) and inpainting (`acme:inpaint@1`, with `{{seed_image}}`, `{{mask_image}}`
/// and `{{denoise}}`).
async fn comfy_server(mock: &mediagate_testkit::comfy_mock::ComfyMock, dir: &std::path::Path) -> TestServer {
    let txt = json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "mediagate", "images": ["8", 0]}}
    });
    let mut inpaint = txt.clone();
    inpaint["10"] = json!({"class_type": "LoadImage", "inputs": {"image": "{{seed_image}}"}});
    inpaint["11"] =
        json!({"class_type": "LoadImageMask", "inputs": {"image": "{{mask_image}}", "channel": "red"}});
    inpaint["3"]["inputs"]["denoise"] = json!("{{denoise}}");
    let (txt_path, inpaint_path) = (dir.join("txt.json"), dir.join("inpaint.json"));
    std::fs::write(&txt_path, txt.to_string()).unwrap();
    std::fs::write(&inpaint_path, inpaint.to_string()).unwrap();
    let base = mock.base_url.clone();
    TestServer::start_with(move |c| {
        let mut up = UpstreamConfig {
            name: "comfy".into(),
            kind: UpstreamKind::Comfyui,
            base_url: base,
            poll_interval_ms: 20,
            ..UpstreamConfig::default()
        };
        up.workflows.insert("acme:txt@1".into(), txt_path);
        up.workflows.insert("acme:inpaint@1".into(), inpaint_path);
        c.providers.upstreams.push(up);
        for air in ["acme:txt@1", "acme:inpaint@1"] {
            c.models.push(ModelSpec {
                air: air.into(),
                task_type: mediagate_core::task::TaskType::ImageInference,
                provider: "comfy".into(),
                price_usd: "0.003".into(),
                description: "a ComfyUI workflow on the testkit's mock".into(),
                bounds: Bounds::default(),
                retry: RetryPolicy { attempts: 1, ..RetryPolicy::default() },
                fallback: vec![],
                concurrency: 0,
            });
        }
    })
    .await
}

#[tokio::test]
async fn a_comfyui_inpainting_workflow_gets_the_seed_image_and_mask_uploaded_and_its_strength() {
    let mock = mediagate_testkit::comfy_mock::ComfyMock::start().await;
    mock.set_wait_for_socket(false);
    let dir = tempfile::tempdir().unwrap();
    let s = comfy_server(&mock, dir.path()).await;
    let (seed, mask) = (png(64, 64, [0, 0, 255]), png(64, 64, [255, 255, 255]));
    let (st, b) = s
        .post(&json!([task(json!({"model": "acme:inpaint@1", "seedImage": data_uri(&seed),
                                 "maskImage": data_uri(&mask), "strength": 0.55}))]))
        .await;
    assert_eq!(st, 200, "{b}");
    assert!(b["data"][0]["imageBase64Data"].is_string(), "{b}");
    let uploads = mock.uploads();
    assert_eq!(uploads.len(), 2, "the seed image and the mask");
    assert_eq!((uploads[0].1.as_str(), &uploads[0].2), ("image/png", &seed));
    assert_eq!(uploads[1].2, mask);
    let (_, _, graph) = mock.prompts().pop().unwrap();
    assert_eq!(graph["10"]["inputs"]["image"], json!(uploads[0].0), "{graph}");
    assert_eq!(graph["11"]["inputs"]["image"], json!(uploads[1].0), "{graph}");
    assert_eq!(graph["3"]["inputs"]["denoise"], json!(0.55), "{graph}");

    // The inpainting workflow needs its seed image; the text-to-image one has no place for one.
    let (st, b) = s.post(&json!([task(json!({"model": "acme:inpaint@1"}))])).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("missingParameter")), "{b}");
    assert_eq!(b["errors"][0]["parameter"], "seedImage", "{b}");
    let (st, b) = s.post(&json!([task(json!({"model": "acme:txt@1", "seedImage": data_uri(&seed)}))])).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("unsupportedParameterForModel")), "{b}");
    assert_eq!(mock.uploads().len(), 2, "nothing uploaded for refused tasks");
}

#[tokio::test]
async fn image_masking_is_validated_as_runware_documents_it() {
    let s = TestServer::start().await;
    let input = solid(64, 64, [1, 2, 3]);
    let task = |extra: Value| {
        let mut t = json!({"taskType": "imageMasking", "taskUUID": task_uuid(), "inputImage": input});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let refused: &[(Value, &str, &str)] = &[
        (json!({"inputImage": null}), "missingParameter", "inputImage"),
        (json!({"confidence": 1.5}), "invalidParameterValue", "confidence"),
        (json!({"maxDetections": 0}), "invalidParameterValue", "maxDetections"),
        (json!({"maskPadding": -1}), "invalidParameterValue", "maskPadding"),
        (json!({"detector": "face"}), "unknownParameter", "detector"),
        // Well-formed, but no detection model is configured here: the error says what to add.
        (json!({"confidence": 0.3}), "unknownModel", "model"),
    ];
    s.assert_refused(refused, task).await;
}
