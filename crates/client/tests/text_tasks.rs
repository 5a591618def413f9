//! The client's typed requests for vectorize, the text task types and modelSearch, against a
//! real mediagate whose text models run on `openai-chat` and the testkit's chat mock (a test
//! double of an OpenAI-compatible server).

mod support;

use mediagate_client::tasks::{
    Caption, ImageInference, Message, ModelSearch, OutputType, PromptEnhance, TextInference, Vectorize,
};
use mediagate_core::model::{Bounds, ModelSpec, RetryPolicy};
use mediagate_core::task::TaskType;
use mediagate_providers::upstream::{UpstreamConfig, UpstreamKind};
use mediagate_testkit::TestServer;
use mediagate_testkit::chat_mock::ChatMock;
use support::client;

async fn server(chat: &ChatMock) -> TestServer {
    let base_url = chat.base_url.clone();
    TestServer::start_with(move |c| {
        c.providers.upstreams.push(UpstreamConfig {
            name: "chat".into(),
            kind: UpstreamKind::OpenaiChat,
            base_url,
            ..UpstreamConfig::default()
        });
        for (air, t) in [
            ("test:enhancer@1", TaskType::PromptEnhance),
            ("test:vision@1", TaskType::Caption),
            ("test:llm@1", TaskType::TextInference),
        ] {
            c.models.push(ModelSpec {
                air: air.into(),
                task_type: t,
                provider: "chat".into(),
                price_usd: "0.0001".into(),
                description: "a test model".into(),
                bounds: Bounds::default(),
                retry: RetryPolicy::default(),
                fallback: vec![],
                concurrency: 0,
            });
        }
    })
    .await
}

#[tokio::test]
async fn vectorize_returns_an_svg() {
    let s = TestServer::start().await;
    let c = client(&s);
    let image = c.run(ImageInference::new("a source").size(64, 64)).await.unwrap().remove(0);
    let svg = c.run(Vectorize::new(image.image_uuid).include_cost(true)).await.unwrap();
    assert_eq!(svg.task_type, "vectorize");
    assert!(svg.image.url().unwrap().ends_with(".svg"), "{svg:?}");
    assert_eq!(svg.cost, Some(0.0005));
    let inline = c
        .run(
            Vectorize::new(mediagate_testkit::images::png_data_uri(32, 32))
                .output_type(OutputType::Base64Data),
        )
        .await
        .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(inline.image.base64().unwrap()).unwrap();
    assert!(String::from_utf8(bytes).unwrap().contains("<svg"));
}

#[tokio::test]
async fn text_tasks_return_typed_text_results() {
    let chat = ChatMock::start().await;
    let s = server(&chat).await;
    let c = client(&s);
    let enhanced = c.run(PromptEnhance::new("a fox", 64).versions(2).include_cost(true)).await.unwrap();
    assert_eq!(enhanced.len(), 2);
    assert_eq!(enhanced[0].text, "a fox, in rich detail (reply 1)");
    assert_eq!(enhanced[1].cost, Some(0.0001));

    let caption = c
        .run(Caption::new(mediagate_testkit::images::png_data_uri(64, 64)).prompt("what is it"))
        .await
        .unwrap();
    assert_eq!(
        (caption.task_type.as_str(), caption.text.as_str()),
        ("caption", "what is it, in rich detail (reply 3)")
    );

    let replies = c
        .run(
            TextInference::new(vec![
                Message::user("hi"),
                Message::assistant("hello"),
                Message::user("a color?"),
            ])
            .system_prompt("one word")
            .max_tokens(8)
            .seed(5)
            .number_results(2)
            .include_usage(true),
        )
        .await
        .unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1].seed, Some(6));
    assert_eq!(replies[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(replies[0].usage.map(|u| u.total_tokens), Some(20));
    let sent = &chat.requests()[3];
    assert_eq!(sent["messages"][0]["content"], "one word");
    assert_eq!(sent["max_tokens"], 8);
}

#[tokio::test]
async fn model_search_pages_the_catalog() {
    let s = TestServer::start().await;
    let c = client(&s);
    let page = c.run(ModelSearch::new().task_type_filter("vectorize")).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!((page.models[0].air.as_str(), page.models[0].version.as_str()), ("mediagate:vtracer@1", "1"));
    let all = c.run(ModelSearch::new().page(3, 0)).await.unwrap();
    assert_eq!(all.models.len(), 3);
    assert!(all.total > 3);
}
