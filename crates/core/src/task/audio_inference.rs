//! `audioInference`: audio (music, sound, speech) from a prompt.

use super::{
    Family, OutputOptions, SEED_MAX, TaskParams, in_range, invalid, model_param,
    model_wire, put,
};
use crate::error::ApiError;
use crate::model::{ModelSpec, PROCEDURAL_AUDIO_AIR};
use crate::param::{ParamPath, ParamReader, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The audio formats Runware names; each model writes some of them.
pub const AUDIO_FORMATS: &[&str] = &["WAV", "MP3", "FLAC", "OGG", "OPUS", "AAC", "PCM"];

/// An audio request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInference {
    /// What to hear.
    pub positive_prompt: String,
    /// What to avoid.
    pub negative_prompt: Option<String>,
    /// Length in seconds.
    pub duration_secs: u32,
    /// Seed of the first result; result `i` uses `seed + i`.
    pub seed: Option<u64>,
    /// Sampling steps (models that ignore them still validate them).
    pub steps: Option<u32>,
    /// Guidance scale.
    pub cfg_scale: Option<f64>,
    /// How many results.
    pub number_results: u32,
    /// The file format, upper case (`WAV`, `MP3`, …).
    pub audio_format: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
    /// Bitrate in kbit/s, for compressed formats.
    pub bitrate: Option<u32>,
    /// The AIR id of the model.
    pub model: String,
    /// Output options (`format` is unused: see `audio_format`).
    pub output: OutputOptions,
}

impl TaskParams for AudioInference {
    const NAME: &'static str = "audioInference";
    const FAMILY: Family = Family::Audio;
    const DEFAULT_MODEL: Option<&'static str> = Some(PROCEDURAL_AUDIO_AIR);
    const EXAMPLE: &'static str = r#"{"positivePrompt":"a calm piano","duration":2}"#;
    /// With the `audioSettings` object.
    const EXAMPLES: &'static [&'static str] =
        &[r#"{"positivePrompt":"a calm piano","duration":2,"outputFormat":"mp3","audioSettings":{"sampleRate":22050,"channels":2,"bitrate":128}}"#];

    fn parse(r: &mut ParamReader<'_>) -> Result<Self, ApiError> {
        const NO_INPUTS: Shape<'_> =
            Shape::Refused("Audio from inputs (video to audio, reference audio or voices) is not served by this server.");
        if r.raw_as("inputs", NO_INPUTS).is_some() {
            return Err(r.invalid(
                "inputs",
                "audio from inputs (video to audio, reference audio or voices) is not served by this server; \
                 send a positivePrompt.",
            ));
        }
        let positive_prompt =
            r.string("positivePrompt", 2, 3000, "describe the audio to generate (2 to 3000 characters)")?;
        let negative_prompt = r.opt_string("negativePrompt", 2, 3000)?;
        let duration_secs = r.opt_int_checked_later("duration")?.unwrap_or(10);
        let seed = r.opt_int("seed", 1, SEED_MAX as i64)?.map(|s| s as u64);
        let steps = r.opt_int_checked_later("steps")?;
        let cfg_scale = r.opt_f64("CFGScale", 0.0, 50.0)?;
        let number_results = r.opt_int_checked_later("numberResults")?.unwrap_or(1);
        // Null is absent, as for every other optional parameter.
        let audio_format = match r.raw_as("outputFormat", Shape::Caseless(AUDIO_FORMATS)) {
            Some(Value::String(f)) if AUDIO_FORMATS.contains(&f.to_ascii_uppercase().as_str()) => {
                f.to_ascii_uppercase()
            }
            Some(_) => {
                return Err(r.invalid(
                    "outputFormat",
                    format!("use one of {} (in either case).", AUDIO_FORMATS.join(", ")),
                ));
            }
            None => "WAV".into(),
        };
        let (sample_rate, channels, bitrate) = match r.raw_as("audioSettings", Shape::Object) {
            None => (44_100, 1, None),
            Some(Value::Object(s)) => {
                let mut sr = ParamReader::new(s, ParamPath::key("audioSettings"));
                let rate = sr.opt_int("sampleRate", 8_000, 48_000)?.map_or(44_100, |n| n as u32);
                let channels = sr.opt_int("channels", 1, 2)?.map_or(1, |n| n as u8);
                let bitrate = sr.opt_int("bitrate", 32, 320)?.map(|n| n as u32);
                sr.finish()?;
                (rate, channels, bitrate)
            }
            Some(_) => {
                return Err(r.invalid("audioSettings", "it must be an object such as {\"sampleRate\": 44100}."));
            }
        };
        let model = model_param(r, Self::DEFAULT_MODEL)?;
        let output = super::file_output_options(r)?;
        Ok(AudioInference {
            positive_prompt,
            negative_prompt,
            duration_secs,
            seed,
            steps,
            cfg_scale,
            number_results,
            audio_format,
            sample_rate,
            channels,
            bitrate,
            model,
            output,
        })
    }

    fn to_wire(&self) -> Map<String, Value> {
        let mut w = Map::new();
        w.insert("positivePrompt".into(), self.positive_prompt.clone().into());
        put(&mut w, "negativePrompt", self.negative_prompt.clone());
        w.insert("duration".into(), self.duration_secs.into());
        put(&mut w, "seed", self.seed);
        put(&mut w, "steps", self.steps);
        put(&mut w, "CFGScale", self.cfg_scale);
        w.insert("numberResults".into(), self.number_results.into());
        w.insert("outputFormat".into(), self.audio_format.clone().into());
        let mut s = Map::new();
        s.insert("sampleRate".into(), self.sample_rate.into());
        s.insert("channels".into(), self.channels.into());
        put(&mut s, "bitrate", self.bitrate);
        w.insert("audioSettings".into(), Value::Object(s));
        model_wire(&mut w, &self.model);
        super::output_wire(&mut w, &self.output, false);
        w
    }

    fn validate(&self, model: &ModelSpec) -> Result<(), ApiError> {
        let b = &model.bounds;
        if !(1..=b.duration_max_secs).contains(&self.duration_secs) {
            return Err(invalid("duration", in_range(1, b.duration_max_secs, " seconds", model)));
        }
        super::check_steps(self.steps, model)?;
        super::check_results(self.number_results, self.seed, model)
    }

    model_and_output!();

    fn result_count(&self) -> u32 {
        self.number_results
    }

    fn seed(&self) -> Option<Option<u64>> {
        Some(self.seed)
    }

    fn work(&self) -> Option<u64> {
        Some(u64::from(self.duration_secs) * u64::from(self.sample_rate) * u64::from(self.channels))
    }
}
