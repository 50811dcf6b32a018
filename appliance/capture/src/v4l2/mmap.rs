//! The thin FFI part of the V4L2 backend: memory-mapped streaming I/O, the
//! enumeration ioctls (one index per call, so the caller bounds the loop: a
//! driver that never says "no more" cannot keep it going) and the monotonic
//! clock.
//!
//! The `v4l` crate's own mmap stream is not used because it panics in `Drop`
//! when `VIDIOC_STREAMOFF` fails for any reason other than `ENODEV` (with
//! `panic = "abort"` that would take the daemon and its outputs down), and
//! because it re-queues a buffer on every call, so a spurious `EAGAIN` from
//! `VIDIOC_DQBUF` would double-queue it. This module keeps the same ioctls but
//! owns the buffer bookkeeping: a buffer is re-queued exactly once, after its
//! bytes were copied out, and tear-down errors are logged, never fatal.
#![allow(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::os::fd::RawFd;
use v4l::device::Handle;

use v4l::v4l_sys::{
    v4l2_buffer, v4l2_capability, v4l2_fmtdesc, v4l2_format, v4l2_frmivalenum, v4l2_frmsizeenum,
    v4l2_plane, v4l2_requestbuffers, v4l2_streamparm,
};
use v4l::v4l2;

use super::negotiate::{IntervalRange, SizeRange};

/// `V4L2_MEMORY_MMAP`.
const MEMORY_MMAP: u32 = 1;
/// `VIDEO_MAX_PLANES`: the most planes a multi-planar buffer has.
pub(crate) const MAX_PLANES: usize = 8;

/// The buffer API a capture node speaks: single-planar (UVC, vivid's
/// default) or multi-planar (Rockchip ISP and HDMI-in, vivid `multiplanar=2`).
/// Every format, buffer and stream ioctl names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufType {
    /// `V4L2_BUF_TYPE_VIDEO_CAPTURE`: `fmt.pix`, one buffer a frame.
    Capture,
    /// `V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`: `fmt.pix_mp`, a `v4l2_plane`
    /// array a frame, each plane mapped by its own offset.
    CaptureMplane,
}

impl BufType {
    /// The `V4L2_BUF_TYPE_*` value.
    fn raw(self) -> u32 {
        match self {
            BufType::Capture => 1,
            BufType::CaptureMplane => 9,
        }
    }
}

/// Buffer flag: the driver reports the frame as corrupt.
pub(crate) const FLAG_ERROR: u32 = 0x0000_0040;
/// Mask of the timestamp-type bits in the buffer flags.
pub(crate) const FLAG_TIMESTAMP_MASK: u32 = 0x0000_e000;
/// Timestamp type: taken from `CLOCK_MONOTONIC`.
pub(crate) const FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;

/// `V4L2_FRMSIZE_TYPE_DISCRETE` / `V4L2_FRMIVAL_TYPE_DISCRETE`.
const TYPE_DISCRETE: u32 = 1;
/// `..._TYPE_CONTINUOUS`.
const TYPE_CONTINUOUS: u32 = 2;
/// `..._TYPE_STEPWISE`.
const TYPE_STEPWISE: u32 = 3;

/// What `VIDIOC_QUERYCAP` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Driver name (`uvcvideo`, `vivid`).
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Bus (`usb-0000:00:14.0-1`, `platform:vivid-000`).
    pub bus_info: String,
    /// Capabilities of the whole physical device.
    pub capabilities: u32,
    /// Capabilities of this node (valid when `capabilities` has `V4L2_CAP_DEVICE_CAPS`).
    pub device_caps: u32,
}

/// One entry of `VIDIOC_ENUM_FMT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatDesc {
    /// The FourCC.
    pub fourcc: [u8; 4],
    /// The driver's description (`Motion-JPEG`).
    pub description: String,
}

/// A NUL-terminated C string from a fixed-size field.
pub(crate) fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `EINVAL` ends an enumeration: `Ok(None)`.
fn end_on_einval<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `VIDIOC_QUERYCAP`.
pub(crate) fn query_caps(fd: RawFd) -> io::Result<Caps> {
    // SAFETY: v4l2_capability is a plain C struct of integers and byte arrays;
    // all-zero is a valid value.
    let mut cap: v4l2_capability = unsafe { std::mem::zeroed() };
    // SAFETY: VIDIOC_QUERYCAP fills the v4l2_capability we pass, which lives
    // for the duration of the call.
    unsafe {
        v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_QUERYCAP, (&raw mut cap).cast())?;
    }
    Ok(Caps {
        driver: c_text(&cap.driver),
        card: c_text(&cap.card),
        bus_info: c_text(&cap.bus_info),
        capabilities: cap.capabilities,
        device_caps: cap.device_caps,
    })
}

/// `VIDIOC_ENUM_FMT` of capture buffers of `buf_type` at `index`; `None`
/// past the last.
pub(crate) fn enum_format(
    fd: RawFd,
    buf_type: BufType,
    index: u32,
) -> io::Result<Option<FormatDesc>> {
    // SAFETY: plain C struct, all-zero is valid.
    let mut desc: v4l2_fmtdesc = unsafe { std::mem::zeroed() };
    desc.index = index;
    desc.type_ = buf_type.raw();
    // SAFETY: VIDIOC_ENUM_FMT reads the index and type and fills the
    // v4l2_fmtdesc we pass, which lives for the duration of the call.
    let r = unsafe { v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_ENUM_FMT, (&raw mut desc).cast()) };
    Ok(end_on_einval(r)?.map(|()| FormatDesc {
        fourcc: desc.pixelformat.to_le_bytes(),
        description: c_text(&desc.description),
    }))
}

/// `VIDIOC_ENUM_FRAMESIZES` of `fourcc` at `index`; `None` past the last.
pub(crate) fn enum_size(fd: RawFd, fourcc: [u8; 4], index: u32) -> io::Result<Option<SizeRange>> {
    // SAFETY: plain C struct (integers and a union of integers), all-zero is valid.
    let mut fs: v4l2_frmsizeenum = unsafe { std::mem::zeroed() };
    fs.index = index;
    fs.pixel_format = u32::from_le_bytes(fourcc);
    // SAFETY: VIDIOC_ENUM_FRAMESIZES fills the v4l2_frmsizeenum we pass, which
    // lives for the duration of the call.
    let r = unsafe {
        v4l2::ioctl(
            fd,
            v4l2::vidioc::VIDIOC_ENUM_FRAMESIZES,
            (&raw mut fs).cast(),
        )
    };
    if end_on_einval(r)?.is_none() {
        return Ok(None);
    }
    match fs.type_ {
        TYPE_DISCRETE => {
            // SAFETY: the driver set type DISCRETE, so `discrete` is the member it filled.
            let d = unsafe { fs.__bindgen_anon_1.discrete };
            Ok(Some(SizeRange::Discrete {
                width: d.width,
                height: d.height,
            }))
        }
        TYPE_CONTINUOUS | TYPE_STEPWISE => {
            // SAFETY: for CONTINUOUS and STEPWISE the driver filled `stepwise`.
            let s = unsafe { fs.__bindgen_anon_1.stepwise };
            Ok(Some(SizeRange::Stepwise {
                min_width: s.min_width,
                max_width: s.max_width,
                step_width: s.step_width,
                min_height: s.min_height,
                max_height: s.max_height,
                step_height: s.step_height,
            }))
        }
        other => Err(io::Error::other(format!(
            "the driver answered an unknown frame size type {other}"
        ))),
    }
}

/// `VIDIOC_ENUM_FRAMEINTERVALS` of `fourcc` at `width`x`height`, entry `index`;
/// `None` past the last.
pub(crate) fn enum_interval(
    fd: RawFd,
    fourcc: [u8; 4],
    width: u32,
    height: u32,
    index: u32,
) -> io::Result<Option<IntervalRange>> {
    // SAFETY: plain C struct (integers and a union of integers), all-zero is valid.
    let mut fi: v4l2_frmivalenum = unsafe { std::mem::zeroed() };
    fi.index = index;
    fi.pixel_format = u32::from_le_bytes(fourcc);
    fi.width = width;
    fi.height = height;
    // SAFETY: VIDIOC_ENUM_FRAMEINTERVALS fills the v4l2_frmivalenum we pass,
    // which lives for the duration of the call.
    let r = unsafe {
        v4l2::ioctl(
            fd,
            v4l2::vidioc::VIDIOC_ENUM_FRAMEINTERVALS,
            (&raw mut fi).cast(),
        )
    };
    if end_on_einval(r)?.is_none() {
        return Ok(None);
    }
    match fi.type_ {
        TYPE_DISCRETE => {
            // SAFETY: the driver set type DISCRETE, so `discrete` is the member it filled.
            let f = unsafe { fi.__bindgen_anon_1.discrete };
            Ok(Some(IntervalRange::Discrete {
                numerator: f.numerator,
                denominator: f.denominator,
            }))
        }
        TYPE_CONTINUOUS | TYPE_STEPWISE => {
            // SAFETY: for CONTINUOUS and STEPWISE the driver filled `stepwise`.
            let s = unsafe { fi.__bindgen_anon_1.stepwise };
            Ok(Some(IntervalRange::Stepwise {
                min: (s.min.numerator, s.min.denominator),
                max: (s.max.numerator, s.max.denominator),
            }))
        }
        other => Err(io::Error::other(format!(
            "the driver answered an unknown frame interval type {other}"
        ))),
    }
}

/// What `VIDIOC_S_FMT` settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatSet {
    /// The FourCC in force.
    pub fourcc: [u8; 4],
    /// Width in force.
    pub width: u32,
    /// Height in force.
    pub height: u32,
    /// `bytesperline` of each plane (one for single-planar buffers and for
    /// single-buffer formats on a multi-planar node).
    pub strides: Vec<u32>,
}

/// `VIDIOC_S_FMT` of capture buffers of `buf_type`: asks for `fourcc` at
/// `width`x`height` (any field order) and returns what the driver set.
pub(crate) fn set_format(
    fd: RawFd,
    buf_type: BufType,
    fourcc: [u8; 4],
    width: u32,
    height: u32,
) -> io::Result<FormatSet> {
    // SAFETY: v4l2_format is a plain C struct (integers, byte arrays and a
    // union of such structs); all-zero is a valid value.
    let mut fmt: v4l2_format = unsafe { std::mem::zeroed() };
    fmt.type_ = buf_type.raw();
    let code = u32::from_le_bytes(fourcc);
    match buf_type {
        BufType::Capture => {
            // The `pix` member is the one the driver reads for a single-planar type.
            fmt.fmt.pix.width = width;
            fmt.fmt.pix.height = height;
            fmt.fmt.pix.pixelformat = code;
        }
        BufType::CaptureMplane => {
            // The `pix_mp` member is the one the driver reads for a multi-planar type.
            fmt.fmt.pix_mp.width = width;
            fmt.fmt.pix_mp.height = height;
            fmt.fmt.pix_mp.pixelformat = code;
        }
    }
    // SAFETY: VIDIOC_S_FMT reads and fills the v4l2_format we pass, which
    // lives for the duration of the call.
    unsafe {
        v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_S_FMT, (&raw mut fmt).cast())?;
    }
    Ok(match buf_type {
        BufType::Capture => {
            // SAFETY: for a single-planar type the driver filled `pix`.
            let pix = unsafe { fmt.fmt.pix };
            FormatSet {
                fourcc: pix.pixelformat.to_le_bytes(),
                width: pix.width,
                height: pix.height,
                strides: vec![pix.bytesperline],
            }
        }
        BufType::CaptureMplane => {
            // SAFETY: for a multi-planar type the driver filled `pix_mp`.
            let pix = unsafe { fmt.fmt.pix_mp };
            let planes = usize::from(pix.num_planes).clamp(1, MAX_PLANES);
            FormatSet {
                fourcc: pix.pixelformat.to_le_bytes(),
                width: pix.width,
                height: pix.height,
                strides: pix.plane_fmt[..planes]
                    .iter()
                    .map(|p| p.bytesperline)
                    .collect(),
            }
        }
    })
}

/// `VIDIOC_S_PARM`: asks for a frame interval of `numerator / denominator`
/// seconds and returns the one in force.
pub(crate) fn set_interval(
    fd: RawFd,
    buf_type: BufType,
    numerator: u32,
    denominator: u32,
) -> io::Result<(u32, u32)> {
    // SAFETY: v4l2_streamparm is a plain C struct (integers in a union);
    // all-zero is a valid value.
    let mut parm: v4l2_streamparm = unsafe { std::mem::zeroed() };
    parm.type_ = buf_type.raw();
    // The `capture` member is the one the driver reads for a capture type.
    parm.parm.capture.timeperframe.numerator = numerator;
    parm.parm.capture.timeperframe.denominator = denominator;
    // SAFETY: VIDIOC_S_PARM reads and fills the v4l2_streamparm we pass,
    // which lives for the duration of the call.
    unsafe {
        v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_S_PARM, (&raw mut parm).cast())?;
    }
    // SAFETY: for a capture type the driver filled `capture`.
    let t = unsafe { parm.parm.capture.timeperframe };
    Ok((t.numerator, t.denominator))
}

/// One mapped plane of a driver buffer.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

/// What the driver filled in one plane of a dequeued buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PlaneUsed {
    /// Where the image data starts in the plane.
    pub data_offset: usize,
    /// Where it ends (V4L2's `bytesused` counts the offset in).
    pub bytesused: usize,
}

/// A filled buffer taken from the driver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dequeued {
    /// Buffer index (to re-queue).
    pub index: usize,
    /// Bytes of image data (all planes).
    pub bytesused: usize,
    /// Each plane's data (`planes` of them; one for single-planar buffers).
    pub used: [PlaneUsed; MAX_PLANES],
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    /// The driver's frame counter.
    pub sequence: u32,
    /// Driver timestamp (clock given by the flags), `None` when zero.
    pub timestamp: Option<Duration>,
}

/// Memory-mapped capture buffers of one device.
pub(crate) struct MmapStream {
    handle: Arc<Handle>,
    buf_type: BufType,
    /// Planes a buffer has (1 for single-planar buffers).
    planes: usize,
    /// The mapped planes of each buffer.
    bufs: Vec<Vec<Mapping>>,
    streaming: bool,
}

// SAFETY: the mappings are private to this stream (no other reference to them
// exists outside `&self`/`&mut self` borrows) and the kernel object behind the
// fd may be used from any thread; moving the stream to the capture thread is sound.
unsafe impl Send for MmapStream {}

impl std::fmt::Debug for MmapStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapStream")
            .field("buf_type", &self.buf_type)
            .field("buffers", &self.bufs.len())
            .field("planes", &self.planes)
            .field("streaming", &self.streaming)
            .finish()
    }
}

/// A `v4l2_buffer` of `buf_type` for buffer `index`; for a multi-planar type
/// its `m.planes` points at `planes` (which must outlive every ioctl given
/// the result) and `length` is their number.
fn buffer_for(buf_type: BufType, index: u32, planes: &mut [v4l2_plane]) -> v4l2_buffer {
    // SAFETY: v4l2_buffer is a plain C struct (integers, a timeval, a union of
    // integers/pointers); all-zero is a valid value for every field.
    let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
    buf.type_ = buf_type.raw();
    buf.memory = MEMORY_MMAP;
    buf.index = index;
    if buf_type == BufType::CaptureMplane {
        buf.m.planes = planes.as_mut_ptr();
        // `planes` is at most MAX_PLANES long.
        buf.length = u32::try_from(planes.len()).unwrap_or(0);
    }
    buf
}

/// An all-zero `v4l2_plane` array for one multi-planar buffer ioctl.
fn zeroed_planes() -> [v4l2_plane; MAX_PLANES] {
    // SAFETY: v4l2_plane is a plain C struct (integers and a union of
    // integers); all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn request_buffers(handle: &Handle, buf_type: BufType, count: u32) -> io::Result<u32> {
    // SAFETY: plain C struct, all-zero is valid.
    let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
    req.count = count;
    req.type_ = buf_type.raw();
    req.memory = MEMORY_MMAP;
    // SAFETY: VIDIOC_REQBUFS takes a pointer to a v4l2_requestbuffers, which
    // lives for the duration of the call.
    unsafe {
        v4l2::ioctl(
            handle.fd(),
            v4l2::vidioc::VIDIOC_REQBUFS,
            (&raw mut req).cast(),
        )?;
    }
    Ok(req.count)
}

impl MmapStream {
    /// Requests `count` driver buffers of `buf_type`, each of `planes`
    /// planes (1 for single-planar buffers), and maps every plane.
    pub(crate) fn new(
        handle: Arc<Handle>,
        buf_type: BufType,
        planes: usize,
        count: u32,
    ) -> io::Result<Self> {
        let planes = match buf_type {
            BufType::Capture => 1,
            BufType::CaptureMplane => planes.clamp(1, MAX_PLANES),
        };
        let granted = request_buffers(&handle, buf_type, count)?;
        let mut stream = Self {
            handle,
            buf_type,
            planes,
            bufs: Vec::with_capacity(granted as usize),
            streaming: false,
        };
        if granted < 2 {
            return Err(io::Error::other(format!(
                "the driver granted {granted} capture buffers; at least 2 are needed"
            )));
        }
        for index in 0..granted {
            let mut plane_info = zeroed_planes();
            let mut buf = buffer_for(buf_type, index, &mut plane_info[..planes]);
            // SAFETY: VIDIOC_QUERYBUF fills the v4l2_buffer we pass and, for a
            // multi-planar type, the `planes` entries its `m.planes` points at;
            // both live for the duration of the call.
            unsafe {
                v4l2::ioctl(
                    stream.handle.fd(),
                    v4l2::vidioc::VIDIOC_QUERYBUF,
                    (&raw mut buf).cast(),
                )?;
            }
            let places: Vec<(usize, u32)> = match buf_type {
                // SAFETY: for MMAP buffers of a single-planar type the driver
                // set the `offset` member of the union.
                BufType::Capture => vec![(buf.length as usize, unsafe { buf.m.offset })],
                BufType::CaptureMplane => plane_info[..planes]
                    .iter()
                    // SAFETY: for MMAP buffers of a multi-planar type the
                    // driver set each plane's `mem_offset` member.
                    .map(|p| (p.length as usize, unsafe { p.m.mem_offset }))
                    .collect(),
            };
            let mut mapped = Vec::with_capacity(places.len());
            for (len, offset) in places {
                // SAFETY: mapping `len` bytes of the device at the offset the
                // driver gave for this plane; the result is checked by `v4l2::mmap`.
                let ptr = unsafe {
                    v4l2::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        stream.handle.fd(),
                        libc::off_t::from(offset),
                    )
                };
                match ptr {
                    Ok(ptr) => mapped.push(Mapping {
                        ptr: ptr.cast(),
                        len,
                    }),
                    Err(e) => {
                        // What is mapped is unmapped when `stream` drops.
                        stream.bufs.push(mapped);
                        return Err(e);
                    }
                }
            }
            stream.bufs.push(mapped);
        }
        Ok(stream)
    }

    /// Number of mapped buffers.
    pub(crate) fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Gives buffer `index` to the driver to fill.
    pub(crate) fn queue(&mut self, index: usize) -> io::Result<()> {
        let index = u32::try_from(index).map_err(io::Error::other)?;
        let mut plane_info = zeroed_planes();
        let mut buf = buffer_for(self.buf_type, index, &mut plane_info[..self.planes]);
        // SAFETY: VIDIOC_QBUF reads the v4l2_buffer we pass (and the plane
        // array it points at, for a multi-planar type), valid for the call.
        unsafe {
            v4l2::ioctl(
                self.handle.fd(),
                v4l2::vidioc::VIDIOC_QBUF,
                (&raw mut buf).cast(),
            )
        }
    }

    /// Queues every buffer and starts streaming.
    pub(crate) fn start(&mut self) -> io::Result<()> {
        for index in 0..self.bufs.len() {
            self.queue(index)?;
        }
        let mut typ = self.buf_type.raw();
        // SAFETY: VIDIOC_STREAMON takes a pointer to the buffer type (an int).
        unsafe {
            v4l2::ioctl(
                self.handle.fd(),
                v4l2::vidioc::VIDIOC_STREAMON,
                (&raw mut typ).cast(),
            )?;
        }
        self.streaming = true;
        Ok(())
    }

    /// Waits up to `timeout_ms` for a filled buffer: `Ok(false)` on timeout.
    pub(crate) fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
        Ok(self.handle.poll(libc::POLLIN, timeout_ms)? > 0)
    }

    /// Takes a filled buffer (`WouldBlock` when none is ready yet).
    pub(crate) fn dequeue(&self) -> io::Result<Dequeued> {
        let mut plane_info = zeroed_planes();
        let mut buf = buffer_for(self.buf_type, 0, &mut plane_info[..self.planes]);
        // SAFETY: VIDIOC_DQBUF fills the v4l2_buffer we pass (and the plane
        // array it points at, for a multi-planar type), valid for the call.
        unsafe {
            v4l2::ioctl(
                self.handle.fd(),
                v4l2::vidioc::VIDIOC_DQBUF,
                (&raw mut buf).cast(),
            )?;
        }
        let index = buf.index as usize;
        if index >= self.bufs.len() {
            return Err(io::Error::other(format!(
                "the driver returned buffer {index} of {}",
                self.bufs.len()
            )));
        }
        let mut used = [PlaneUsed::default(); MAX_PLANES];
        match self.buf_type {
            BufType::Capture => {
                used[0] = PlaneUsed {
                    data_offset: 0,
                    bytesused: buf.bytesused as usize,
                };
            }
            BufType::CaptureMplane => {
                for (u, p) in used.iter_mut().zip(&plane_info[..self.planes]) {
                    *u = PlaneUsed {
                        data_offset: p.data_offset as usize,
                        bytesused: p.bytesused as usize,
                    };
                }
            }
        }
        let bytesused = used
            .iter()
            .map(|u| u.bytesused.saturating_sub(u.data_offset))
            .sum();
        let ts = buf.timestamp;
        let timestamp = match (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_usec)) {
            (Ok(0), Ok(0)) | (Err(_), _) | (_, Err(_)) => None,
            (Ok(sec), Ok(usec)) => Some(Duration::new(sec, usec.saturating_mul(1000))),
        };
        Ok(Dequeued {
            index,
            bytesused,
            used,
            flags: buf.flags,
            sequence: buf.sequence,
            timestamp,
        })
    }

    /// Planes a buffer has.
    pub(crate) fn planes(&self) -> usize {
        self.planes
    }

    /// The image data of plane `plane` of the dequeued buffer `buf`
    /// (clamped to the mapping).
    pub(crate) fn plane(&self, buf: &Dequeued, plane: usize) -> &[u8] {
        let (Some(m), Some(used)) = (
            self.bufs.get(buf.index).and_then(|b| b.get(plane)),
            buf.used.get(plane),
        ) else {
            return &[];
        };
        let end = used.bytesused.min(m.len);
        let start = used.data_offset.min(end);
        // SAFETY: the mapping is `m.len` bytes long and stays mapped while
        // `self` lives, and `start <= end <= m.len`; the buffer is dequeued
        // (the driver does not write it) until the caller re-queues it, which
        // needs the borrow to end.
        let all = unsafe { std::slice::from_raw_parts(m.ptr, end) };
        &all[start..]
    }
}

impl Drop for MmapStream {
    fn drop(&mut self) {
        if self.streaming {
            let mut typ = self.buf_type.raw();
            // SAFETY: VIDIOC_STREAMOFF takes a pointer to the buffer type (an int).
            let off = unsafe {
                v4l2::ioctl(
                    self.handle.fd(),
                    v4l2::vidioc::VIDIOC_STREAMOFF,
                    (&raw mut typ).cast(),
                )
            };
            if let Err(e) = off {
                tracing::debug!(error = %e, "VIDIOC_STREAMOFF failed (device gone?)");
            }
        }
        for m in self.bufs.drain(..).flatten() {
            // SAFETY: `m` was returned by mmap with this length and is not
            // referenced any more (no borrow of `self` outlives this call).
            if let Err(e) = unsafe { v4l2::munmap(m.ptr.cast(), m.len) } {
                tracing::warn!(error = %e, "munmap of a capture buffer failed");
            }
        }
        if let Err(e) = request_buffers(&self.handle, self.buf_type, 0) {
            tracing::debug!(error = %e, "releasing capture buffers failed (device gone?)");
        }
    }
}

/// The current `CLOCK_MONOTONIC` time, the clock V4L2 timestamps use.
pub(crate) fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusive
    // pointer we pass; CLOCK_MONOTONIC is always available on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(a > Duration::ZERO);
        assert!(b >= a);
    }
}
