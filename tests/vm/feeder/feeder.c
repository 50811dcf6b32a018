/*
 * feeder: plays raw video frames into vivid's video output node so that they
 * come out of vivid's capture node (vivid's output->capture "Loop Video").
 * This is how the VM test shows the daemon real footage through its real
 * V4L2 capture backend.
 *
 *   feeder OUT_DEV CAP_DEV FRAMES_FILE WIDTH HEIGHT FOURCC SRC_FPS
 *
 * FRAMES_FILE holds packed frames of WIDTH x HEIGHT in FOURCC (NV12, YUYV or
 * RGB3), played at SRC_FPS (each one repeated to follow vivid's own rate),
 * looping. Both nodes are switched to vivid's HDMI input/output with the same
 * DV timings (640x480p60 or 1280x720p25) and format; the capture node's
 * "Loop Video" control is set and the OSD text is turned off.
 *
 * The output side is driven with plain mmap streaming ioctls: write() is not
 * supported by vivid's output on 6.1. Prints "feeder: streaming" once the
 * loop runs, then "feeder: frames=N fps=F" every 5 s. Runs until killed.
 *
 * Built statically with gcc (tests/vm/run.sh): no dependencies.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/v4l2-dv-timings.h>
#include <linux/videodev2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBUF 4

static void die(const char *what)
{
	fprintf(stderr, "feeder: %s failed: %s\n", what, strerror(errno));
	exit(1);
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do {
		r = ioctl(fd, req, arg);
	} while (r == -1 && errno == EINTR);
	return r;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Selects the capture input (or output) whose name contains "HDMI". */
static void select_hdmi(int fd, int output)
{
	for (unsigned i = 0; i < 16; i++) {
		if (output) {
			struct v4l2_output o = { .index = i };
			if (xioctl(fd, VIDIOC_ENUMOUTPUT, &o) == -1)
				break;
			if (strstr((char *)o.name, "HDMI")) {
				if (xioctl(fd, VIDIOC_S_OUTPUT, &i) == -1)
					die("VIDIOC_S_OUTPUT");
				return;
			}
		} else {
			struct v4l2_input in = { .index = i };
			if (xioctl(fd, VIDIOC_ENUMINPUT, &in) == -1)
				break;
			if (strstr((char *)in.name, "HDMI")) {
				if (xioctl(fd, VIDIOC_S_INPUT, &i) == -1)
					die("VIDIOC_S_INPUT");
				return;
			}
		}
	}
	fprintf(stderr, "feeder: no HDMI %s on this node\n", output ? "output" : "input");
	exit(1);
}

/* Sets the control named `name` (vivid's IDs differ between kernels). */
static void set_ctrl_by_name(int fd, const char *name, int bool_value, int menu_value)
{
	struct v4l2_queryctrl q = { .id = V4L2_CTRL_FLAG_NEXT_CTRL };
	while (xioctl(fd, VIDIOC_QUERYCTRL, &q) == 0) {
		if (strcmp((char *)q.name, name) == 0) {
			struct v4l2_control c = { .id = q.id };
			c.value = q.type == V4L2_CTRL_TYPE_BOOLEAN ? bool_value : menu_value;
			if (xioctl(fd, VIDIOC_S_CTRL, &c) == -1)
				die(name);
			return;
		}
		q.id |= V4L2_CTRL_FLAG_NEXT_CTRL;
	}
	fprintf(stderr, "feeder: control \"%s\" not found\n", name);
	exit(1);
}

static void set_timings(int fd, unsigned width)
{
	struct v4l2_dv_timings t720 = V4L2_DV_BT_CEA_1280X720P25;
	struct v4l2_dv_timings t480 = V4L2_DV_BT_DMT_640X480P60;
	struct v4l2_dv_timings *t = width == 1280 ? &t720 : &t480;
	if (xioctl(fd, VIDIOC_S_DV_TIMINGS, t) == -1)
		die("VIDIOC_S_DV_TIMINGS");
}

static struct v4l2_format set_format(int fd, enum v4l2_buf_type type, unsigned w, unsigned h,
				     uint32_t fourcc)
{
	struct v4l2_format f = { .type = type };
	f.fmt.pix.width = w;
	f.fmt.pix.height = h;
	f.fmt.pix.pixelformat = fourcc;
	f.fmt.pix.field = V4L2_FIELD_NONE;
	if (xioctl(fd, VIDIOC_S_FMT, &f) == -1)
		die("VIDIOC_S_FMT");
	if (f.fmt.pix.width != w || f.fmt.pix.height != h || f.fmt.pix.pixelformat != fourcc) {
		fprintf(stderr, "feeder: format refused: got %ux%u %.4s\n", f.fmt.pix.width,
			f.fmt.pix.height, (char *)&f.fmt.pix.pixelformat);
		exit(1);
	}
	return f;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: feeder OUT_DEV CAP_DEV FRAMES_FILE WIDTH HEIGHT FOURCC SRC_FPS\n");
		return 2;
	}
	unsigned w = (unsigned)atoi(argv[4]), h = (unsigned)atoi(argv[5]);
	double src_fps = atof(argv[7]);
	if (strlen(argv[6]) != 4 || w == 0 || h == 0 || src_fps <= 0) {
		fprintf(stderr, "feeder: bad arguments\n");
		return 2;
	}
	uint32_t fourcc = v4l2_fourcc(argv[6][0], argv[6][1], argv[6][2], argv[6][3]);
	size_t bpl, frame_size;
	if (fourcc == V4L2_PIX_FMT_NV12) {
		bpl = w;
		frame_size = (size_t)w * h * 3 / 2;
	} else if (fourcc == V4L2_PIX_FMT_YUYV) {
		bpl = (size_t)w * 2;
		frame_size = bpl * h;
	} else if (fourcc == V4L2_PIX_FMT_RGB24) {
		bpl = (size_t)w * 3;
		frame_size = bpl * h;
	} else {
		fprintf(stderr, "feeder: unsupported format %s\n", argv[6]);
		return 2;
	}

	int ffd = open(argv[3], O_RDONLY);
	if (ffd == -1)
		die(argv[3]);
	struct stat st;
	if (fstat(ffd, &st) == -1)
		die("fstat");
	size_t nframes = (size_t)st.st_size / frame_size;
	if (nframes == 0) {
		fprintf(stderr, "feeder: %s holds no whole frame\n", argv[3]);
		return 1;
	}
	const uint8_t *frames = mmap(NULL, nframes * frame_size, PROT_READ, MAP_PRIVATE, ffd, 0);
	if (frames == MAP_FAILED)
		die("mmap frames");

	/* Capture side: HDMI input, same timings and format, loop on, OSD off. */
	int cfd = open(argv[2], O_RDWR);
	if (cfd == -1)
		die(argv[2]);
	select_hdmi(cfd, 0);
	set_timings(cfd, w);
	set_format(cfd, V4L2_BUF_TYPE_VIDEO_CAPTURE, w, h, fourcc);
	set_ctrl_by_name(cfd, "Loop Video", 1, 2);
	set_ctrl_by_name(cfd, "OSD Text Mode", 2, 2);

	/* Output side. */
	int ofd = open(argv[1], O_RDWR);
	if (ofd == -1)
		die(argv[1]);
	select_hdmi(ofd, 1);
	set_timings(ofd, w);
	struct v4l2_format of = set_format(ofd, V4L2_BUF_TYPE_VIDEO_OUTPUT, w, h, fourcc);
	size_t out_bpl = of.fmt.pix.bytesperline;
	size_t rows = frame_size / bpl;

	struct v4l2_requestbuffers rb = {
		.count = NBUF, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT, .memory = V4L2_MEMORY_MMAP
	};
	if (xioctl(ofd, VIDIOC_REQBUFS, &rb) == -1)
		die("VIDIOC_REQBUFS");
	if (rb.count < 2) {
		fprintf(stderr, "feeder: only %u output buffers\n", rb.count);
		return 1;
	}
	uint8_t *bufs[NBUF];
	size_t lens[NBUF];
	for (unsigned i = 0; i < rb.count; i++) {
		struct v4l2_buffer b = { .index = i, .type = rb.type, .memory = rb.memory };
		if (xioctl(ofd, VIDIOC_QUERYBUF, &b) == -1)
			die("VIDIOC_QUERYBUF");
		lens[i] = b.length;
		bufs[i] = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, b.m.offset);
		if (bufs[i] == MAP_FAILED)
			die("mmap buffer");
		if (rows * out_bpl > lens[i]) {
			fprintf(stderr, "feeder: output buffer too small (%zu < %zu)\n", lens[i],
				rows * out_bpl);
			return 1;
		}
	}

	/* Vivid's own frame rate, to play the footage at SRC_FPS. */
	double out_fps = w == 1280 ? 25.0 : 60.0;
	uint64_t count = 0;
	for (unsigned i = 0; i < rb.count; i++) {
		struct v4l2_buffer b = { .index = i, .type = rb.type, .memory = rb.memory };
		size_t k = (size_t)((double)count * src_fps / out_fps) % nframes;
		for (size_t r = 0; r < rows; r++)
			memcpy(bufs[i] + r * out_bpl, frames + k * frame_size + r * bpl, bpl);
		b.bytesused = (uint32_t)(rows * out_bpl);
		b.field = V4L2_FIELD_NONE;
		if (xioctl(ofd, VIDIOC_QBUF, &b) == -1)
			die("VIDIOC_QBUF");
		count++;
	}
	int type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
	if (xioctl(ofd, VIDIOC_STREAMON, &type) == -1)
		die("VIDIOC_STREAMON");
	printf("feeder: streaming %zu frames of %ux%u %s from %s\n", nframes, w, h, argv[6], argv[3]);
	fflush(stdout);

	double t0 = now_s(), last = t0;
	uint64_t last_count = 0;
	for (;;) {
		struct v4l2_buffer b = { .type = rb.type, .memory = rb.memory };
		if (xioctl(ofd, VIDIOC_DQBUF, &b) == -1)
			die("VIDIOC_DQBUF");
		size_t k = (size_t)((double)count * src_fps / out_fps) % nframes;
		for (size_t r = 0; r < rows; r++)
			memcpy(bufs[b.index] + r * out_bpl, frames + k * frame_size + r * bpl, bpl);
		b.bytesused = (uint32_t)(rows * out_bpl);
		b.field = V4L2_FIELD_NONE;
		if (xioctl(ofd, VIDIOC_QBUF, &b) == -1)
			die("VIDIOC_QBUF");
		count++;
		double t = now_s();
		if (t - last >= 5.0) {
			printf("feeder: frames=%llu fps=%.1f\n", (unsigned long long)count,
			       (double)(count - last_count) / (t - last));
			fflush(stdout);
			last = t;
			last_count = count;
		}
	}
}
