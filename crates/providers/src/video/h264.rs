//! H.264 encoding with OpenH264, producing MP4-style (length-prefixed) samples.

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile, RateControlMode,
    UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::VideoError;
use super::yuv::I420;

/// One access unit (frame) as MP4 stores it: NAL units each prefixed with a 4-byte length.
pub(crate) struct AvcSample {
    pub data: Vec<u8>,
    /// An IDR frame a player can start decoding from.
    pub sync: bool,
}

/// The encoded stream: parameter sets go into the MP4 sample description, not the samples.
pub(crate) struct AvcStream {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
    pub samples: Vec<AvcSample>,
}

pub(crate) struct H264Encoder {
    encoder: Encoder,
    fps: u32,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    samples: Vec<AvcSample>,
}

fn encode_error(e: openh264::Error) -> VideoError {
    VideoError::Encode(format!("OpenH264: {e}"))
}

impl H264Encoder {
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, VideoError> {
        // Rate control off = constant quantiser (OpenH264's default QP 26): steady quality for
        // this easy synthetic content, no dependence on timestamps, and no frame skipping. The
        // bitrate below is then only a nominal value OpenH264 still validates.
        let bps = (u64::from(width * height) * u64::from(fps) / 8).clamp(200_000, 8_000_000);
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Off)
            .bitrate(BitRate::from_bps(bps as u32))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            // Every input frame must become exactly one sample: the MP4 timing assumes it.
            .skip_frames(false)
            // One thread: output must not depend on scheduling.
            .num_threads(1)
            // A key frame every two seconds so players can seek.
            .intra_frame_period(IntraFramePeriod::from_num_frames(2 * fps))
            // Our YUV conversion is BT.601 limited range; say so in the SPS.
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config).map_err(encode_error)?;
        Ok(H264Encoder { encoder, fps, sps: None, pps: None, samples: Vec::new() })
    }

    /// Encodes frame `index`; its timestamp is derived from the index so rate control sees
    /// the same clock on every run.
    pub fn encode(&mut self, planes: &I420, index: u32) -> Result<(), VideoError> {
        let (w, h) = (planes.width as usize, planes.height as usize);
        let source = YUVSlices::new((&planes.y, &planes.u, &planes.v), (w, h), (w, w / 2, w / 2));
        let millis = u64::from(index) * 1000 / u64::from(self.fps);
        let bitstream =
            self.encoder.encode_at(&source, Timestamp::from_millis(millis)).map_err(encode_error)?;
        if matches!(bitstream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Err(VideoError::Encode(format!(
                "OpenH264 produced no picture for frame {index} ({:?})",
                bitstream.frame_type()
            )));
        }
        let mut sample = AvcSample { data: Vec::new(), sync: false };
        for l in 0..bitstream.num_layers() {
            let Some(layer) = bitstream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n) else {
                    continue;
                };
                let nal = strip_start_code(nal);
                let Some(&header) = nal.first() else {
                    continue;
                };
                match header & 0x1F {
                    7 => {
                        self.sps.get_or_insert_with(|| nal.to_vec());
                    }
                    8 => {
                        self.pps.get_or_insert_with(|| nal.to_vec());
                    }
                    kind => {
                        sample.sync |= kind == 5;
                        sample.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.data.extend_from_slice(nal);
                    }
                }
            }
        }
        if sample.data.is_empty() {
            return Err(VideoError::Encode(format!("OpenH264 returned no slice data for frame {index}")));
        }
        self.samples.push(sample);
        Ok(())
    }

    pub fn finish(self) -> Result<AvcStream, VideoError> {
        let (Some(sps), Some(pps)) = (self.sps, self.pps) else {
            return Err(VideoError::Encode("OpenH264 emitted no SPS/PPS parameter sets".into()));
        };
        if sps.len() < 4 {
            return Err(VideoError::Encode("OpenH264 emitted a truncated SPS".into()));
        }
        if self.samples.first().is_none_or(|s| !s.sync) {
            return Err(VideoError::Encode("OpenH264's first frame is not an IDR frame".into()));
        }
        Ok(AvcStream { sps, pps, samples: self.samples })
    }
}

/// OpenH264 hands out Annex B NAL units (start code first); MP4 wants them bare.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}

#[cfg(test)]
mod tests {
    use super::strip_start_code;

    #[test]
    fn start_codes_of_both_lengths_are_removed() {
        assert_eq!(strip_start_code(&[0, 0, 0, 1, 0x67, 1]), &[0x67, 1]);
        assert_eq!(strip_start_code(&[0, 0, 1, 0x68, 2]), &[0x68, 2]);
        assert_eq!(strip_start_code(&[0x65, 3]), &[0x65, 3]);
    }
}
