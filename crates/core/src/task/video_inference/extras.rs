//! The optional parameters of `videoInference` that the module does not read itself, as the
//! official Runware SDKs send them (runware 0.5.24, @runware/sdk-js 1.3.2).

use crate::task::extras::{ADAPTER, Extra, Field, Kind, SAFETY};

/// How many images one list parameter may hold (the whole task is bounded again by
/// `assets.max_inputs_per_task`).
const IMAGES: usize = 16;

/// Every optional parameter of `videoInference` read by table, in the order their images are
/// fetched.
pub const EXTRAS: &[Extra] = &[
    // Hints: sampler settings and content checks, which the local stand-in has no use for.
    Extra::hint("negativePrompt", Kind::Str { max: 3000 }),
    Extra::hint("steps", Kind::Int { min: 1, max: 100 }),
    Extra::hint("scheduler", Kind::Str { max: 64 }),
    Extra::hint("CFGScale", Kind::Num { min: 0.0, max: 50.0 }),
    Extra::hint("acceleration", Kind::Str { max: 32 }),
    SAFETY,
    // Features: only a model whose providers act on them takes them.
    Extra::feature("referenceImages", Kind::Images { max: IMAGES, fields: &[] }),
    Extra::feature("lora", Kind::List { max: 16, fields: ADAPTER }),
    Extra::feature(
        "inputs",
        Kind::Object(&[
            Field::opt("image", Kind::Image),
            Field::opt("images", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("mask", Kind::Image),
            Field::opt("referenceImages", Kind::Images { max: IMAGES, fields: &[Field::opt("tag", Kind::Str { max: 64 })] }),
            // Video and audio references, frames and provider ids: sent on as they came.
            Field::opt("references", Kind::Any),
            Field::opt("frames", Kind::Any),
            Field::opt("frameImages", Kind::Any),
            Field::opt("referenceVideos", Kind::Any),
            Field::opt("referenceAudios", Kind::Any),
            Field::opt("referenceVoices", Kind::Any),
            Field::opt("video", Kind::Any),
            Field::opt("audio", Kind::Any),
            Field::opt("audios", Kind::Any),
            Field::opt("speech", Kind::Any),
            Field::opt("frame", Kind::Any),
            Field::opt("draftId", Kind::Any),
            Field::opt("videoId", Kind::Any),
            Field::opt("avatar", Kind::Any),
            Field::opt("background", Kind::Any),
            Field::opt("elements", Kind::Any),
        ]),
    ),
    Extra::feature("referenceVideos", Kind::Any),
    Extra::feature("inputAudios", Kind::Any),
    Extra::feature("speech", Kind::Opaque),
    Extra::feature("resolution", Kind::Str { max: 16 }),
    Extra::feature("providerSettings", Kind::Opaque),
    Extra::feature("advancedFeatures", Kind::Opaque),
    Extra::feature("acceleratorOptions", Kind::Opaque),
    Extra::feature("settings", Kind::Opaque),
];
