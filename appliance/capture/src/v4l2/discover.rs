//! Discovery: the V4L2 capture devices present, what they offer (formats,
//! frame sizes, frame rates), each named by its stable path.
//!
//! Every `/dev/videoN` goes through the sandbox's device check first (a
//! character device with the V4L2 major number), exactly as a camera source
//! does; only then is it opened and asked, with the enumeration ioctls one
//! index at a time, so every list is bounded ([`DiscoverLimits`]) and the whole
//! walk stops at its time budget: a driver that never says "no more" makes a
//! truncated answer, not an endless loop. Opening a node and enumerating does
//! not disturb a camera streaming from it (no format is set, no buffer is taken).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::mmap::{self, BufType, Caps, FormatDesc};
use super::negotiate::{IntervalRange, SizeRange, fourcc_text};
use crate::frame::PixelFormat;
use crate::sandbox::{self, SandboxError};

/// `V4L2_CAP_VIDEO_CAPTURE`.
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
/// `V4L2_CAP_VIDEO_CAPTURE_MPLANE`.
const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
/// `V4L2_CAP_META_CAPTURE`.
const CAP_META_CAPTURE: u32 = 0x0080_0000;
/// `V4L2_CAP_DEVICE_CAPS`: `device_caps` is valid.
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

/// Where the stable links live, most telling first.
const STABLE_DIRS: [&str; 2] = ["v4l/by-id", "v4l/by-path"];

/// The bounds of one discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoverLimits {
    /// The whole walk; what is not asked by then is left out (`truncated`).
    pub budget: Duration,
    /// `/dev/video*` nodes looked at.
    pub max_nodes: usize,
    /// Formats per device (vivid offers about 60).
    pub max_formats: usize,
    /// Frame sizes per format.
    pub max_sizes: usize,
    /// Frame intervals per size.
    pub max_intervals: usize,
}

impl Default for DiscoverLimits {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(3),
            max_nodes: 64,
            max_formats: 128,
            max_sizes: 64,
            max_intervals: 32,
        }
    }
}

/// What discovery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The video capture devices, in node order.
    pub devices: Vec<DiscoveredDevice>,
    /// Nodes that are not (usable) capture devices, with the reason.
    pub skipped: Vec<SkippedNode>,
    /// Nodes were left out (more than `max_nodes`, or the budget ran out).
    pub truncated: bool,
}

/// A video capture device.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredDevice {
    /// The path to configure: its `/dev/v4l/by-id/` link if it has one, else
    /// its `/dev/v4l/by-path/` link, else the node.
    pub path: PathBuf,
    /// The node (`/dev/video0`).
    pub node: PathBuf,
    /// Driver (`uvcvideo`, `vivid`).
    pub driver: String,
    /// Card (the camera's name).
    pub card: String,
    /// Bus (`usb-0000:00:14.0-1`).
    pub bus_info: String,
    /// The formats offered.
    pub formats: Vec<DiscoveredFormat>,
    /// Some list was cut at its limit or at the time budget.
    pub truncated: bool,
}

/// A pixel format a device offers.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredFormat {
    /// The V4L2 FourCC.
    pub fourcc: [u8; 4],
    /// The format, when this appliance can capture it.
    pub format: Option<PixelFormat>,
    /// The driver's description (`Motion-JPEG`).
    pub description: String,
    /// Frame sizes, each with its frame rates.
    pub sizes: Vec<DiscoveredSize>,
}

impl DiscoveredFormat {
    /// The FourCC as letters (`MJPG`).
    pub fn fourcc_text(&self) -> String {
        fourcc_text(self.fourcc)
    }
}

/// A frame size (or range) with the frame intervals offered at it (for a
/// range: at its largest size).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredSize {
    /// The size or range.
    pub size: SizeRange,
    /// The frame intervals.
    pub intervals: Vec<IntervalRange>,
}

/// A `/dev/video*` node that is no usable capture device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedNode {
    /// The node.
    pub node: PathBuf,
    /// Why, in words.
    pub reason: String,
}

/// Why a node could not be described (or `/dev` not listed).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The device folder cannot be listed.
    #[error("{dir:?} cannot be listed")]
    ListDev {
        /// The folder.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The sandbox refuses the node (not a V4L2 character device).
    #[error("the capture sandbox refuses it")]
    Refused(#[source] SandboxError),
    /// The node cannot be opened.
    #[error("it cannot be opened")]
    Open(#[source] io::Error),
    /// `VIDIOC_QUERYCAP` failed.
    #[error("it does not answer VIDIOC_QUERYCAP")]
    QueryCaps(#[source] io::Error),
    /// The node is not a video capture node.
    #[error("{card} ({driver}) is {what}")]
    NotCapture {
        /// Driver.
        driver: String,
        /// Card.
        card: String,
        /// What it is instead.
        what: &'static str,
    },
    /// The first format cannot be listed.
    #[error("its formats cannot be listed")]
    EnumFormats(#[source] io::Error),
}

/// The enumeration ioctls, one index per call; `Ok(None)` past the last.
pub(crate) trait Enumerate {
    /// `VIDIOC_ENUM_FMT`.
    fn format(&mut self, index: u32) -> io::Result<Option<FormatDesc>>;
    /// `VIDIOC_ENUM_FRAMESIZES`.
    fn size(&mut self, fourcc: [u8; 4], index: u32) -> io::Result<Option<SizeRange>>;
    /// `VIDIOC_ENUM_FRAMEINTERVALS`.
    fn interval(
        &mut self,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
        index: u32,
    ) -> io::Result<Option<IntervalRange>>;
}

/// An open device node and the buffer API it speaks.
struct Node<'a>(&'a v4l::Device, BufType);

impl Enumerate for Node<'_> {
    fn format(&mut self, index: u32) -> io::Result<Option<FormatDesc>> {
        mmap::enum_format(self.0.handle().fd(), self.1, index)
    }

    fn size(&mut self, fourcc: [u8; 4], index: u32) -> io::Result<Option<SizeRange>> {
        mmap::enum_size(self.0.handle().fd(), fourcc, index)
    }

    fn interval(
        &mut self,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
        index: u32,
    ) -> io::Result<Option<IntervalRange>> {
        mmap::enum_interval(self.0.handle().fd(), fourcc, width, height, index)
    }
}

/// The V4L2 capture devices of this system (`/dev`). Blocking: run it on a
/// thread that may block; it returns within about `limits.budget`.
pub fn discover(limits: &DiscoverLimits) -> Result<Discovery, DiscoverError> {
    discover_in(Path::new("/dev"), limits)
}

/// [`discover`] over the device folder `dev`.
pub(crate) fn discover_in(dev: &Path, limits: &DiscoverLimits) -> Result<Discovery, DiscoverError> {
    let deadline = Instant::now() + limits.budget;
    let (nodes, more) = video_nodes(dev, limits.max_nodes)?;
    let links = stable_links(dev);
    let mut out = Discovery {
        devices: Vec::new(),
        skipped: Vec::new(),
        truncated: more,
    };
    for node in nodes {
        if Instant::now() >= deadline {
            out.truncated = true;
            break;
        }
        match describe_node(&node, limits, deadline) {
            Ok(mut device) => {
                device.path = stable_path(&device.node, &links);
                out.devices.push(device);
            }
            Err(e) => {
                let reason = safe_yolo_domain::error_chain(&e);
                tracing::debug!(node = %node.display(), %reason, "not a capture device");
                out.skipped.push(SkippedNode { node, reason });
            }
        }
    }
    Ok(out)
}

/// Checks, opens and describes one node.
fn describe_node(
    node: &Path,
    limits: &DiscoverLimits,
    deadline: Instant,
) -> Result<DiscoveredDevice, DiscoverError> {
    let resolved = sandbox::check_device(node).map_err(DiscoverError::Refused)?;
    let device = v4l::Device::with_path(&resolved).map_err(DiscoverError::Open)?;
    let caps = mmap::query_caps(device.handle().fd()).map_err(DiscoverError::QueryCaps)?;
    let buf_type = capture_type(&caps).map_err(|what| DiscoverError::NotCapture {
        driver: caps.driver.clone(),
        card: caps.card.clone(),
        what,
    })?;
    let (formats, truncated) = enumerate(&mut Node(&device, buf_type), limits, deadline)?;
    Ok(DiscoveredDevice {
        path: resolved.clone(),
        node: resolved,
        driver: caps.driver,
        card: caps.card,
        bus_info: caps.bus_info,
        formats,
        truncated,
    })
}

/// The capabilities of this node (not of the whole physical device).
fn node_caps(caps: &Caps) -> u32 {
    if caps.capabilities & CAP_DEVICE_CAPS != 0 {
        caps.device_caps
    } else {
        caps.capabilities
    }
}

/// The buffer API of a node that itself captures video: single-planar
/// first when it has both, multi-planar (Rockchip ISP, HDMI-in) otherwise;
/// for any other node (a UVC camera's second node, its metadata; an output),
/// what it is instead.
pub(crate) fn capture_type(caps: &Caps) -> Result<BufType, &'static str> {
    let node = node_caps(caps);
    if node & CAP_VIDEO_CAPTURE != 0 {
        Ok(BufType::Capture)
    } else if node & CAP_VIDEO_CAPTURE_MPLANE != 0 {
        Ok(BufType::CaptureMplane)
    } else if node & CAP_META_CAPTURE != 0 {
        Err("a metadata node (a UVC camera gives its image on another /dev/video node)")
    } else {
        Err("not a video capture node (an output, codec or radio node)")
    }
}

/// Calls `next(0)`, `next(1)`, ... until it answers `None`, keeping at most
/// `max` entries; past `max` or `deadline` sets `truncated` and stops.
fn bounded<T>(
    max: usize,
    deadline: Instant,
    truncated: &mut bool,
    mut next: impl FnMut(u32) -> io::Result<Option<T>>,
) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    for index in 0..=u32::MAX {
        if Instant::now() >= deadline {
            *truncated = true;
            break;
        }
        let Some(item) = next(index)? else { break };
        if out.len() == max {
            *truncated = true;
            break;
        }
        out.push(item);
    }
    Ok(out)
}

/// The formats, sizes and intervals of an open capture node, within the
/// limits; the flag says whether anything was cut.
pub(crate) fn enumerate(
    en: &mut dyn Enumerate,
    limits: &DiscoverLimits,
    deadline: Instant,
) -> Result<(Vec<DiscoveredFormat>, bool), DiscoverError> {
    let mut truncated = false;
    let descs = bounded(limits.max_formats, deadline, &mut truncated, |i| {
        en.format(i)
    })
    .map_err(DiscoverError::EnumFormats)?;
    let mut formats = Vec::with_capacity(descs.len());
    for desc in descs {
        let fourcc = desc.fourcc;
        // A driver without size enumeration (ENOTTY) offers "any size".
        let sizes = bounded(limits.max_sizes, deadline, &mut truncated, |i| {
            en.size(fourcc, i)
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(sizes.len());
        for size in sizes {
            let (width, height) = match size {
                SizeRange::Discrete { width, height } => (width, height),
                SizeRange::Stepwise {
                    max_width,
                    max_height,
                    ..
                } => (max_width, max_height),
            };
            let intervals = bounded(limits.max_intervals, deadline, &mut truncated, |i| {
                en.interval(fourcc, width, height, i)
            })
            .unwrap_or_default();
            out.push(DiscoveredSize { size, intervals });
        }
        formats.push(DiscoveredFormat {
            fourcc,
            format: PixelFormat::from_fourcc(fourcc),
            description: desc.description,
            sizes: out,
        });
    }
    Ok((formats, truncated))
}

/// The `videoN` nodes of `dev`, in number order, at most `max`; the flag says
/// whether there were more.
pub(crate) fn video_nodes(dev: &Path, max: usize) -> Result<(Vec<PathBuf>, bool), DiscoverError> {
    let entries = std::fs::read_dir(dev).map_err(|source| DiscoverError::ListDev {
        dir: dev.to_path_buf(),
        source,
    })?;
    let mut numbered: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    numbered.sort();
    let more = numbered.len() > max;
    numbered.truncate(max);
    Ok((numbered.into_iter().map(|(_, p)| p).collect(), more))
}

/// The stable links under `dev` (`v4l/by-id`, then `v4l/by-path`), each with
/// the node it resolves to.
fn stable_links(dev: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for sub in STABLE_DIRS {
        let mut links: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(dev.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let link = e.path();
                let target = link.canonicalize().ok()?;
                Some((link, target))
            })
            .collect();
        links.sort();
        out.extend(links);
    }
    out
}

/// The most stable name of `node` among `links` (by-id first), else the node.
fn stable_path(node: &Path, links: &[(PathBuf, PathBuf)]) -> PathBuf {
    links
        .iter()
        .find(|(_, target)| target == node)
        .map_or_else(|| node.to_path_buf(), |(link, _)| link.clone())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn caps(capabilities: u32, device_caps: u32) -> Caps {
        Caps {
            driver: "uvcvideo".into(),
            card: "Cam".into(),
            bus_info: "usb-1".into(),
            capabilities,
            device_caps,
        }
    }

    /// A driver: its formats, each with sizes; every size with the same intervals.
    /// `endless` answers every index (a broken driver).
    struct FakeDriver {
        formats: Vec<(&'static [u8; 4], Vec<SizeRange>)>,
        intervals: Vec<IntervalRange>,
        endless: bool,
        asked: Vec<(u32, u32)>,
    }

    impl Enumerate for FakeDriver {
        fn format(&mut self, index: u32) -> io::Result<Option<FormatDesc>> {
            let i = index as usize;
            if self.endless {
                return Ok(Some(FormatDesc {
                    fourcc: *b"YUYV",
                    description: format!("loop {i}"),
                }));
            }
            Ok(self.formats.get(i).map(|(f, _)| FormatDesc {
                fourcc: **f,
                description: fourcc_text(**f),
            }))
        }

        fn size(&mut self, fourcc: [u8; 4], index: u32) -> io::Result<Option<SizeRange>> {
            if self.endless {
                return Ok(Some(SizeRange::Discrete {
                    width: 640,
                    height: 480,
                }));
            }
            Ok(self
                .formats
                .iter()
                .find(|(f, _)| **f == fourcc)
                .and_then(|(_, sizes)| sizes.get(index as usize).copied()))
        }

        fn interval(
            &mut self,
            _fourcc: [u8; 4],
            width: u32,
            height: u32,
            index: u32,
        ) -> io::Result<Option<IntervalRange>> {
            self.asked.push((width, height));
            if self.endless {
                return Ok(Some(IntervalRange::Discrete {
                    numerator: 1,
                    denominator: 30,
                }));
            }
            Ok(self.intervals.get(index as usize).copied())
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn formats_sizes_and_rates_are_listed_and_mapped() {
        let stepwise = SizeRange::Stepwise {
            min_width: 16,
            max_width: 1920,
            step_width: 2,
            min_height: 16,
            max_height: 1080,
            step_height: 1,
        };
        let mut driver = FakeDriver {
            formats: vec![
                (
                    b"MJPG",
                    vec![
                        SizeRange::Discrete {
                            width: 1280,
                            height: 720,
                        },
                        SizeRange::Discrete {
                            width: 640,
                            height: 480,
                        },
                    ],
                ),
                (b"H264", vec![]),
                (b"NV12", vec![stepwise]),
            ],
            intervals: vec![
                IntervalRange::Discrete {
                    numerator: 1,
                    denominator: 30,
                },
                IntervalRange::Stepwise {
                    min: (1, 60),
                    max: (1, 1),
                },
            ],
            endless: false,
            asked: Vec::new(),
        };
        let (formats, truncated) =
            enumerate(&mut driver, &DiscoverLimits::default(), later()).unwrap();
        assert!(!truncated);
        let names: Vec<(String, Option<PixelFormat>)> = formats
            .iter()
            .map(|f| (f.fourcc_text(), f.format))
            .collect();
        assert_eq!(
            names,
            vec![
                ("MJPG".into(), Some(PixelFormat::Mjpeg)),
                ("H264".into(), None),
                ("NV12".into(), Some(PixelFormat::Nv12)),
            ]
        );
        assert_eq!(formats[0].sizes.len(), 2);
        assert_eq!(formats[0].sizes[0].intervals, driver.intervals);
        assert!(formats[1].sizes.is_empty());
        assert_eq!(formats[2].sizes[0].size, stepwise);
        // A range's rates are asked at its largest size.
        assert_eq!(driver.asked.last(), Some(&(1920, 1080)));
    }

    #[test]
    fn an_endless_driver_is_cut_at_the_limits() {
        let mut driver = FakeDriver {
            formats: Vec::new(),
            intervals: Vec::new(),
            endless: true,
            asked: Vec::new(),
        };
        let limits = DiscoverLimits {
            max_formats: 3,
            max_sizes: 2,
            max_intervals: 4,
            ..DiscoverLimits::default()
        };
        let (formats, truncated) = enumerate(&mut driver, &limits, later()).unwrap();
        assert!(truncated);
        assert_eq!(formats.len(), 3);
        assert!(formats.iter().all(|f| f.sizes.len() == 2));
        assert!(
            formats
                .iter()
                .flat_map(|f| &f.sizes)
                .all(|s| s.intervals.len() == 4)
        );
    }

    #[test]
    fn a_spent_budget_stops_before_asking() {
        let mut driver = FakeDriver {
            formats: Vec::new(),
            intervals: Vec::new(),
            endless: true,
            asked: Vec::new(),
        };
        let (formats, truncated) =
            enumerate(&mut driver, &DiscoverLimits::default(), Instant::now()).unwrap();
        assert!(truncated);
        assert!(formats.is_empty());
    }

    #[test]
    fn only_video_capture_nodes_are_devices() {
        // Node capabilities win over the whole device's when DEVICE_CAPS is set.
        assert_eq!(
            capture_type(&caps(CAP_DEVICE_CAPS | CAP_META_CAPTURE, CAP_VIDEO_CAPTURE)),
            Ok(BufType::Capture)
        );
        let meta = capture_type(&caps(
            CAP_DEVICE_CAPS | CAP_VIDEO_CAPTURE | CAP_META_CAPTURE,
            CAP_META_CAPTURE,
        ))
        .unwrap_err();
        assert!(meta.contains("metadata node"), "{meta}");
        assert_eq!(
            capture_type(&caps(CAP_VIDEO_CAPTURE, 0)),
            Ok(BufType::Capture)
        );
        // Multi-planar nodes (rkisp, rk_hdmirx) are capture nodes of their own API;
        // a node with both speaks single-planar.
        assert_eq!(
            capture_type(&caps(CAP_VIDEO_CAPTURE_MPLANE, 0)),
            Ok(BufType::CaptureMplane)
        );
        assert_eq!(
            capture_type(&caps(
                CAP_DEVICE_CAPS | CAP_VIDEO_CAPTURE_MPLANE,
                CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE
            )),
            Ok(BufType::Capture)
        );
        assert_eq!(
            capture_type(&caps(0x2, 0)),
            Err("not a video capture node (an output, codec or radio node)")
        );
    }

    #[test]
    fn nodes_are_listed_in_number_order_and_capped() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["video10", "video2", "video0", "videox", "vbi0", "media0"] {
            std::fs::write(tmp.path().join(name), b"").unwrap();
        }
        let (nodes, more) = video_nodes(tmp.path(), 64).unwrap();
        let names: Vec<_> = nodes
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, vec!["video0", "video2", "video10"]);
        assert!(!more);
        let (nodes, more) = video_nodes(tmp.path(), 2).unwrap();
        assert_eq!(nodes.len(), 2);
        assert!(more);
        let e = video_nodes(&tmp.path().join("missing"), 2).unwrap_err();
        assert!(matches!(e, DiscoverError::ListDev { .. }), "{e}");
    }

    #[test]
    fn the_stable_path_prefers_by_id_then_by_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(dev.join("v4l/by-id")).unwrap();
        std::fs::create_dir_all(dev.join("v4l/by-path")).unwrap();
        for n in ["video0", "video1", "video2"] {
            std::fs::write(dev.join(n), b"").unwrap();
        }
        symlink("../../video0", dev.join("v4l/by-id/usb-Cam-video-index0")).unwrap();
        symlink("../../video0", dev.join("v4l/by-path/pci-usb-video-index0")).unwrap();
        symlink(
            "../../video1",
            dev.join("v4l/by-path/platform-video-index0"),
        )
        .unwrap();
        let links = stable_links(&dev);
        assert_eq!(
            stable_path(&dev.join("video0"), &links),
            dev.join("v4l/by-id/usb-Cam-video-index0")
        );
        assert_eq!(
            stable_path(&dev.join("video1"), &links),
            dev.join("v4l/by-path/platform-video-index0")
        );
        assert_eq!(stable_path(&dev.join("video2"), &links), dev.join("video2"));
    }

    #[test]
    fn the_sandbox_refuses_what_is_no_video_device() {
        // Files named like nodes are not V4L2 character devices: the sandbox
        // refuses them before anything opens them.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("video0"), b"").unwrap();
        symlink("/dev/null", tmp.path().join("video1")).unwrap();
        let found = discover_in(tmp.path(), &DiscoverLimits::default()).unwrap();
        assert!(found.devices.is_empty());
        assert!(!found.truncated);
        let reasons: Vec<&str> = found.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].contains("is not a character device"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("not a V4L2 device"), "{reasons:?}");
    }

    #[test]
    fn this_system_is_discovered_within_the_limits() {
        // Whatever this machine has (usually nothing; vivid in the VM test):
        // every device found is a capture node with a stable path.
        let found = discover(&DiscoverLimits::default()).unwrap();
        for d in &found.devices {
            assert!(d.path.is_absolute(), "{d:?}");
            assert!(d.node.starts_with("/dev"), "{d:?}");
        }
    }
}
