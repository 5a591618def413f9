//! Every task type against a real mediagate server: typed requests in, typed results out.

mod support;

use base64::Engine as _;
use mediagate_client::tasks::{
    CustomTask, GetResponse, ImageInference, MediaData, OutputFormat, OutputType, Status, Upscale,
};
use mediagate_client::{Batch, Client, ErrorCode};
use mediagate_testkit::TestServer;
use support::{IMAGE_PRICE_MICROS, client};

#[tokio::test]
async fn authentication_and_ping() {
    let s = TestServer::start().await;
    let c = client(&s);
    let session = c.authenticate().await.expect("the bootstrap key authenticates");
    assert_eq!(session.connection_session_uuid, None, "REST has no session");
    assert!(c.ping().await.unwrap().pong);
}

#[tokio::test]
async fn image_inference_by_url_with_cost_and_seed() {
    let s = TestServer::start().await;
    let c = client(&s);
    let before = s.balance("default").await;
    let task = ImageInference::new("a lighthouse at dusk")
        .model("mediagate:procedural@1")
        .size(128, 64)
        .seed(42)
        .output_format(OutputFormat::Webp)
        .include_cost(true);
    let uuid = task_uuid_of(&task);
    let images = c.run(task).await.expect("image");
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.task_type, "imageInference");
    assert_eq!(img.task_uuid, uuid);
    assert_eq!(img.seed, Some(42));
    assert_eq!(img.cost, Some(0.0006));
    let url = img.image.url().expect("URL output by default");
    assert_eq!(url, format!("{}/v1/outputs/{}.webp", s.base_url, img.image_uuid));
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS);
}

fn task_uuid_of(t: &impl mediagate_client::tasks::Task) -> String {
    t.task_uuid().to_string()
}

#[tokio::test]
async fn image_inference_inline_outputs_and_several_results() {
    let s = TestServer::start().await;
    let c = client(&s);
    let b64 = c
        .run(ImageInference::new("a red square").size(64, 64).output_type(OutputType::Base64Data))
        .await
        .unwrap();
    let MediaData::Base64(data) = &b64[0].image else { panic!("base64 expected: {:?}", b64[0].image) };
    let png = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(b64[0].seed.unwrap() >= 1, "the server picks and returns a seed");
    assert_eq!(b64[0].cost, None, "no cost unless asked");

    let uri = c
        .run(
            ImageInference::new("a red square")
                .size(64, 64)
                .output_type(OutputType::DataUri)
                .output_format(OutputFormat::Jpg),
        )
        .await
        .unwrap();
    let MediaData::DataUri(d) = &uri[0].image else { panic!("data URI expected") };
    assert!(d.starts_with("data:image/jpeg;base64,"), "{}", &d[..40]);

    let many =
        c.run(ImageInference::new("three of them").size(64, 64).seed(7).number_results(3)).await.unwrap();
    assert_eq!(many.len(), 3);
    let seeds: Vec<u64> = many.iter().map(|i| i.seed.unwrap()).collect();
    assert_eq!(seeds, vec![7, 8, 9], "each result its own seed");
    let mut uuids: Vec<&str> = many.iter().map(|i| i.image_uuid.as_str()).collect();
    uuids.dedup();
    assert_eq!(uuids.len(), 3);
}

#[tokio::test]
async fn upscale_an_earlier_output_by_uuid_under_both_names() {
    let s = TestServer::start().await;
    let c = client(&s);
    let src = c.run(ImageInference::new("something to enlarge").size(128, 192)).await.unwrap();
    let up = c
        .run(
            Upscale::new(&src[0].image_uuid).factor(2).output_type(OutputType::Base64Data).include_cost(true),
        )
        .await
        .unwrap();
    assert_eq!(up.task_type, "upscale");
    assert_eq!(up.cost, Some(0.0002));
    let bytes = base64::engine::general_purpose::STANDARD.decode(up.image.base64().unwrap()).unwrap();
    let (w, h) = png_size(&bytes);
    assert_eq!((w, h), (256, 384));

    let legacy = c.run(Upscale::new(&src[0].image_uuid).factor(3).legacy_task_type()).await.unwrap();
    assert_eq!(legacy.task_type, "imageUpscale", "the task type is echoed as sent");
    assert!(legacy.image.url().unwrap().ends_with(".png"));
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[1..4], b"PNG");
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

#[tokio::test]
async fn get_response_returns_the_stored_result() {
    let s = TestServer::start().await;
    let c = client(&s);
    let task = ImageInference::new("remember me").size(64, 64).seed(99);
    let uuid = task.task_uuid();
    let done = c.run(task).await.unwrap();
    let items = c.get_response(uuid).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].status, Status::Success);
    let img = items[0].image().expect("an image item");
    assert_eq!(img.image_uuid, done[0].image_uuid);
    assert_eq!(img.seed, Some(99));
    assert_eq!(img.status.as_deref(), Some("success"));
    // The typed task works in a batch too.
    let mut b = Batch::new();
    let h = b.push(GetResponse::new(uuid));
    let r = c.run_batch(b).await.unwrap();
    assert_eq!(r.get(&h).unwrap()[0].status, Status::Success);
}

#[tokio::test]
async fn a_batch_keeps_each_task_result_and_error_apart() {
    let s = TestServer::start().await;
    let c = client(&s);
    let mut b = Batch::new();
    let ok = b.push(ImageInference::new("fine").size(64, 64));
    let bad = b.push(ImageInference::new("odd width").size(100, 64));
    let ping = b.push(mediagate_client::tasks::Ping::new());
    let unknown =
        b.push(CustomTask::new("imageInference").param("positivePrompt", "x y").param("colour", "red"));
    let before = s.balance("default").await;
    let r = c.run_batch(b).await.expect("the request as a whole succeeded");
    assert_eq!(r.http_status(), Some(200));
    assert_eq!(r.attempts(), 1);
    assert_eq!(r.get(&ok).unwrap().len(), 1);
    assert!(r.get(&ping).unwrap().pong);
    let e = r.get(&bad).unwrap_err();
    let api = e.api_error().expect("an API error");
    assert_eq!(api.code, ErrorCode::InvalidParameterValue);
    assert_eq!(api.parameter.as_ref().unwrap().names(), vec!["width"]);
    assert_eq!(api.task_uuid.as_deref(), Some(bad.task_uuid().to_string().as_str()));
    let e = r.get(&unknown).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownParameter));
    assert!(e.api_error().unwrap().parameter.as_ref().unwrap().contains("colour"));
    assert_eq!(s.balance("default").await, before - IMAGE_PRICE_MICROS, "only the valid image is charged");
}

#[tokio::test]
async fn client_from_builder_accepts_a_base_url_with_v1() {
    let s = TestServer::start().await;
    let c = Client::new(format!("{}/v1/", s.base_url), s.api_key.clone()).unwrap();
    assert!(c.ping().await.unwrap().pong);
}
