//! `audioInference` over the Runware REST dialect on the built-in procedural audio stand-in:
//! real WAV files of the asked length, rate and channels, seeded, validated as Runware documents.

use base64::Engine as _;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

fn audio(extra: Value) -> Value {
    let mut t = json!({"taskType": "audioInference", "taskUUID": task_uuid(), "positivePrompt": "a calm piano",
                       "duration": 2});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            t.as_object_mut().unwrap().remove(k);
        } else {
            t[k] = v.clone();
        }
    }
    t
}

/// (channels, sample rate, data bytes) of a canonical 16-bit PCM WAV file.
fn wav_header(b: &[u8]) -> (u16, u32, u32) {
    assert_eq!((&b[0..4], &b[8..16]), (&b"RIFF"[..], &b"WAVEfmt "[..]), "a WAV file");
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    assert_eq!(u16_at(34), 16, "16 bits per sample");
    assert_eq!(&b[36..40], b"data");
    (u16_at(22), u32_at(24), u32_at(40))
}

#[tokio::test]
async fn audio_is_a_real_wav_of_the_asked_shape_and_follows_its_seed() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(&json!([audio(json!({"seed": 7, "numberResults": 2, "includeCost": true,
                                    "audioSettings": {"sampleRate": 16000, "channels": 2}}))]))
        .await;
    assert_eq!(st, 200, "{b}");
    let items = b["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let mut files = Vec::new();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["seed"], json!(7 + i));
        assert_eq!(item["cost"], json!(0.002));
        let url = item["audioURL"].as_str().unwrap();
        assert!(url.ends_with(".wav") && item["audioUUID"].is_string(), "{item}");
        let r = s.http.get(url).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "audio/wav");
        let bytes = r.bytes().await.unwrap().to_vec();
        assert_eq!(wav_header(&bytes), (2, 16000, 2 * 16000 * 2 * 2), "2 s, stereo, 16 kHz, 16-bit");
        files.push(bytes);
    }
    assert_ne!(files[0], files[1], "another seed, another melody");
    // The same seed again: the same file, inline as base64.
    let (_, b) = s
        .post(&json!([audio(json!({"seed": 7, "outputType": "base64Data",
                                    "audioSettings": {"sampleRate": 16000, "channels": 2}}))]))
        .await;
    let again = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["audioBase64Data"].as_str().unwrap())
        .unwrap();
    assert_eq!(again, files[0]);
}

#[tokio::test]
async fn audio_is_validated_as_runware_documents_it() {
    let s = TestServer::start().await;
    let refused: &[(Value, &str, &str)] = &[
        (json!({"positivePrompt": null}), "missingParameter", "positivePrompt"),
        (json!({"duration": 61}), "invalidParameterValue", "duration"),
        (json!({"duration": 0}), "invalidParameterValue", "duration"),
        (json!({"numberResults": 5}), "invalidParameterValue", "numberResults"),
        (json!({"outputFormat": "MIDI"}), "invalidParameterValue", "outputFormat"),
        (json!({"audioSettings": {"sampleRate": 7999}}), "invalidParameterValue", "audioSettings.sampleRate"),
        (json!({"audioSettings": {"channels": 3}}), "invalidParameterValue", "audioSettings.channels"),
        (json!({"audioSettings": {"gain": 3}}), "unknownParameter", "audioSettings.gain"),
        (json!({"inputs": {"video": "https://example.com/v.mp4"}}), "invalidParameterValue", "inputs"),
        (json!({"model": "mediagate:procedural@1"}), "unsupportedModelForTask", "model"),
    ];
    s.assert_refused(refused, audio).await;
    // A format the stand-in does not write: refused naming it, and not charged.
    let before = s.balance("default").await;
    let (st, b) = s.post(&json!([audio(json!({"outputFormat": "mp3"}))])).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("invalidParameterValue")), "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("writes WAV only"), "{b}");
    assert_eq!(s.balance("default").await, before);
}
