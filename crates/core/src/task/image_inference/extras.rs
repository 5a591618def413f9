//! The optional parameters of `imageInference` that the module does not read itself, as the
//! official Runware SDKs send them (runware 0.5.24, @runware/sdk-js 1.3.2), with Runware's
//! documented ranges where it documents them.

use crate::task::extras::{ADAPTER, Extra, Field, Kind, SAFETY};

/// How many images one list parameter may hold (the whole task is bounded again by
/// `assets.max_inputs_per_task`).
const IMAGES: usize = 16;


/// A ControlNet entry (the SDKs send every field of their dataclasses, unset ones as null).
const CONTROL_NET: &[Field] = &[
    Field::opt("model", Kind::ModelId),
    Field::req("guideImage", Kind::Image),
    Field::opt("weight", Kind::Num { min: 0.0, max: 1.0 }),
    Field::opt("startStep", Kind::Int { min: 0, max: 100 }),
    Field::opt("endStep", Kind::Int { min: 0, max: 100 }),
    Field::opt("startStepPercentage", Kind::Int { min: 0, max: 99 }),
    Field::opt("endStepPercentage", Kind::Int { min: 1, max: 100 }),
    Field::opt("controlMode", Kind::Enum(&["balanced", "prompt", "controlnet"])),
    Field::opt("preprocessor", Kind::Str { max: 64 }),
    Field::opt("lowThresholdCanny", Kind::Int { min: 0, max: 255 }),
    Field::opt("highThresholdCanny", Kind::Int { min: 0, max: 255 }),
    Field::opt("includeHandsAndFaceOpenPose", Kind::Bool),
];

/// An IP-Adapter entry.
const IP_ADAPTER: &[Field] = &[
    Field::req("model", Kind::ModelId),
    Field::opt("guideImage", Kind::Image),
    Field::opt("guideImages", Kind::Images { max: IMAGES, fields: &[] }),
    Field::opt("weight", Kind::Num { min: 0.0, max: 1.0 }),
    Field::opt("combineMethod", Kind::Str { max: 64 }),
    Field::opt("weightType", Kind::Str { max: 64 }),
    Field::opt("embedScaling", Kind::Str { max: 64 }),
    Field::opt("weightComposition", Kind::Num { min: 0.0, max: 1.0 }),
];

/// A reference image given as an object in `inputs.referenceImages`.
const REFERENCE: &[Field] = &[
    Field::opt("role", Kind::Str { max: 64 }),
    Field::opt("tag", Kind::Str { max: 64 }),
    Field::opt("type", Kind::Str { max: 64 }),
    Field::opt("strength", Kind::Num { min: 0.0, max: 1.0 }),
];

/// Every optional parameter of `imageInference` read by table, in the order their images are
/// fetched.
pub const EXTRAS: &[Extra] = &[
    // Hints: sampler settings and content checks. Providers that have them apply them; the
    // local stand-in has no sampler and draws no people, so it leaves them aside.
    Extra::hint("scheduler", Kind::Str { max: 64 }),
    Extra::hint("clipSkip", Kind::Int { min: 0, max: 2 }),
    Extra::hint("promptWeighting", Kind::Enum(&["compel", "sdEmbeds"])),
    // The JS SDK still sends the older switch when it is set.
    Extra::hint("usePromptWeighting", Kind::Bool),
    Extra::hint("acceleration", Kind::Str { max: 32 }),
    Extra::hint("useCache", Kind::Bool),
    Extra::hint("checkNSFW", Kind::Bool),
    SAFETY,
    // Features: each changes what is made, so only a model whose providers act on it takes it.
    Extra::feature("maskMargin", Kind::Int { min: 32, max: 128 }),
    Extra::feature("referenceImages", Kind::Images { max: IMAGES, fields: &[] }),
    Extra::feature("lora", Kind::List { max: 16, fields: ADAPTER }),
    Extra::feature("lycoris", Kind::List { max: 16, fields: ADAPTER }),
    Extra::feature("embeddings", Kind::List { max: 16, fields: ADAPTER }),
    Extra::feature("vae", Kind::Str { max: 256 }),
    Extra::feature(
        "refiner",
        Kind::Object(&[
            Field::req("model", Kind::ModelId),
            Field::opt("startStep", Kind::Int { min: 0, max: 100 }),
            Field::opt("startStepPercentage", Kind::Int { min: 0, max: 99 }),
        ]),
    ),
    Extra::feature("controlNet", Kind::List { max: 8, fields: CONTROL_NET }),
    Extra::feature("ipAdapters", Kind::List { max: 8, fields: IP_ADAPTER }),
    Extra::feature(
        "instantID",
        Kind::Object(&[
            Field::opt("inputImage", Kind::Image),
            Field::opt("inputImages", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("poseImage", Kind::Image),
            Field::opt("identityNetStrength", Kind::Num { min: 0.0, max: 1.0 }),
            Field::opt("adapterStrength", Kind::Num { min: 0.0, max: 1.0 }),
            Field::opt("controlNetCannyWeight", Kind::Num { min: 0.0, max: 1.0 }),
            Field::opt("controlNetDepthWeight", Kind::Num { min: 0.0, max: 1.0 }),
            Field::opt("enhanceNonFaceRegion", Kind::Bool),
        ]),
    ),
    Extra::feature(
        "acePlusPlus",
        Kind::Object(&[
            Field::opt("type", Kind::Enum(&["portrait", "subject", "local_editing"])),
            Field::opt("repaintingScale", Kind::Num { min: 0.0, max: 1.0 }),
            Field::opt("inputImages", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("inputMasks", Kind::Images { max: IMAGES, fields: &[] }),
        ]),
    ),
    Extra::feature(
        "puLID",
        Kind::Object(&[
            Field::opt("inputImages", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("idWeight", Kind::Int { min: 0, max: 3 }),
            Field::opt("trueCFGScale", Kind::Num { min: 0.0, max: 10.0 }),
            Field::opt("CFGStartStep", Kind::Int { min: 0, max: 10 }),
            Field::opt("CFGStartStepPercentage", Kind::Int { min: 0, max: 100 }),
        ]),
    ),
    Extra::feature(
        "photoMaker",
        Kind::Object(&[
            Field::opt("images", Kind::Images { max: 4, fields: &[] }),
            Field::opt("style", Kind::Str { max: 64 }),
            Field::opt("strength", Kind::Num { min: 0.0, max: 100.0 }),
        ]),
    ),
    Extra::feature(
        "inputs",
        Kind::Object(&[
            Field::opt("image", Kind::Image),
            Field::opt("seedImage", Kind::Image),
            Field::opt("mask", Kind::Image),
            Field::opt("images", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("referenceImages", Kind::Images { max: IMAGES, fields: REFERENCE }),
            Field::opt("references", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("superResolutionReferences", Kind::Images { max: IMAGES, fields: &[] }),
            Field::opt("fonts", Kind::OpaqueList),
        ]),
    ),
    Extra::feature("upscaleFactor", Kind::Num { min: 1.0, max: 4.0 }),
    Extra::feature("resolution", Kind::Str { max: 16 }),
    // Provider-specific settings, sent on as they came for the provider to check.
    Extra::feature("acceleratorOptions", Kind::Opaque),
    Extra::feature("advancedFeatures", Kind::Opaque),
    Extra::feature("providerSettings", Kind::Opaque),
    Extra::feature("settings", Kind::Opaque),
    Extra::feature("ultralytics", Kind::Opaque),
];
