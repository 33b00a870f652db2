"""Reference image files: their size read from the header, a huge one refused before it is
decoded, an exemplar read no larger than the networks use, a keyframe whole; a references
folder's pictures told apart (not coloured, keyframe, exemplar); and a video declaring huge
frames refused before it is decoded."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import vapoursynth as vs
from clips import decode_rgb, sample_clip_path, yuv_clip

from vsexcolor.filter.formats import colour_props
from vsexcolor.filter.luma import Luma
from vsexcolor.filter.ref_inputs import references
from vsexcolor.filter.reference import ReferenceError, image_size, read_image
from vsexcolor.filter.resolution import MAX_PIXELS
from vsexcolor.render.video import VideoError, probe

core = vs.core


def gradient(width: int, height: int) -> np.ndarray:
    """A smooth colour picture, BGR uint8 as OpenCV writes it."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack(np.broadcast_arrays(x, y, (x + y) / 2), axis=-1).astype(np.uint8)


def written(path: Path, image: np.ndarray, *params: int) -> Path:
    assert cv2.imwrite(str(path), image, list(params))
    return path


@pytest.mark.parametrize("name, params", [
    ("a.png", ()), ("a.jpg", ()), ("progressive.jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)), ("a.tif", ()),
    ("lossy.webp", (cv2.IMWRITE_WEBP_QUALITY, 80)), ("lossless.webp", (cv2.IMWRITE_WEBP_QUALITY, 101)),
    ("a.bmp", ()),
])
def test_an_images_size_is_read_from_its_header(tmp_path, name, params):
    assert image_size(written(tmp_path / name, gradient(53, 37), *params)) == (53, 37)


@pytest.mark.parametrize("name", ["gray16.png", "gray16.tif"])
def test_a_16_bit_images_size_is_read_from_its_header(tmp_path, name):
    assert image_size(written(tmp_path / name, gradient(53, 37)[..., 0].astype(np.uint16) * 257)) == (53, 37)


def png_declaring(width: int, height: int, path: Path) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` (what a decompression bomb does)."""
    data = bytearray(written(path, gradient(8, 8)).read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    path.write_bytes(bytes(data))
    return path


def jpeg_declaring(width: int, height: int, path: Path) -> Path:
    data = bytearray(written(path, gradient(8, 8)).read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("crafted", [png_declaring, jpeg_declaring])
def test_an_image_over_16384_a_side_is_refused_in_one_line_before_it_is_decoded(tmp_path, monkeypatch, crafted):
    path = crafted(20000, 20000, tmp_path / ("bomb.png" if crafted is png_declaring else "bomb.jpg"))
    assert path.stat().st_size < 2000
    monkeypatch.setattr(cv2, "imread", lambda *args: pytest.fail("decoded"))
    with pytest.raises(ReferenceError) as raised:
        read_image(path)
    message = str(raised.value)
    assert "\n" not in message
    assert str(path) in message and "20000x20000" in message and "16384" in message and "scale it down" in message


def test_a_16k_scan_is_within_the_cap(tmp_path):
    path = png_declaring(16384, 12288, tmp_path / "scan.png")
    assert image_size(path) == (16384, 12288)


def test_a_file_of_another_format_is_refused_saying_which_are_read(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("colours from the costume department")
    with pytest.raises(ReferenceError, match=r"is not a PNG, JPEG, TIFF, WebP or BMP image: save it as one"):
        read_image(path)


def test_a_jpeg_with_stray_bytes_between_its_segments_is_read_as_libjpeg_reads_it(tmp_path):
    data = written(tmp_path / "a.jpg", gradient(53, 37)).read_bytes()
    # Some cameras and tools leave bytes between segments; libjpeg skips them with a warning.
    stray = data[:2] + data[2:4 + int.from_bytes(data[4:6], "big")] + b"\0\0\0"
    path = tmp_path / "stray.jpg"
    path.write_bytes(stray + data[len(stray) - 3:])
    assert image_size(path) == (53, 37)
    assert read_image(path).shape == (37, 53, 3)


def test_a_tiff_whose_directory_lies_past_any_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "big.tif"
    path.write_bytes(b"II+\0" + struct.pack("<HHQ", 8, 0, 2**63 + 5))  # BigTIFF, first directory at 2^63 + 5
    with pytest.raises(ReferenceError, match=r"is not a PNG, JPEG, TIFF, WebP or BMP image: save it as one"):
        read_image(path)


def test_a_tiff_of_signed_samples_is_refused_saying_what_to_export(tmp_path):
    path = tmp_path / "signed.tif"
    assert cv2.imwrite(str(path), (gradient(53, 37).astype(np.int16) - 100))
    with pytest.raises(ReferenceError, match=r"holds int16 samples: export it with 8- or 16-bit ones$"):
        read_image(path)


def test_an_empty_ref_is_refused_rather_than_taken_for_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written(tmp_path / "000001.png", gradient(64, 48))
    clip = core.std.BlankClip(width=64, height=48, format=vs.YUV420P8, length=4)
    with pytest.raises(vs.Error, match=r"^colorize: ref must be an image path, a folder, .* got ''$"):
        references(clip, "", False, [], report=False)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_an_image_read_at_most_so_many_pixels_keeps_its_aspect_and_colours(tmp_path, suffix):
    image = gradient(640, 400)
    path = written(tmp_path / f"scan{suffix}", image)
    rgb = read_image(path, at_most=100 * 64)
    height, width = rgb.shape[:2]
    assert width * height <= 100 * 64 and width * height > 0.9 * 100 * 64
    assert abs(width / height - 640 / 400) < 0.03
    whole = read_image(path)
    assert whole.shape == (400, 640, 3)
    # The same picture, smaller: as the whole image brought to that size.
    expected = cv2.resize(whole, (width, height), interpolation=cv2.INTER_AREA)
    assert np.abs(rgb - expected).mean() < 2 / 255


def test_an_image_at_most_as_large_as_asked_is_read_whole(tmp_path):
    path = written(tmp_path / "small.png", gradient(64, 48))
    assert np.array_equal(read_image(path, at_most=64 * 48), read_image(path))


@pytest.mark.parametrize("given", ["path", "mapping", "folder"])
def test_an_exemplar_larger_than_the_networks_use_is_kept_at_their_largest_size(tmp_path, given):
    path = written(tmp_path / "000000.jpg", gradient(2560, 1920))  # 4.9 megapixels
    clip = core.std.BlankClip(width=64, height=48, format=vs.YUV420P8, length=4)
    ref = {"path": path, "mapping": {0: path}, "folder": tmp_path}[given]
    (keyed,) = references(clip, ref, False, [], report=False)
    height, width = keyed.rgb().shape[:2]
    assert not keyed.keyframe
    assert width * height <= MAX_PIXELS and width * height > 0.9 * MAX_PIXELS
    assert abs(width / height - 4 / 3) < 0.01


def test_a_picture_of_the_clips_size_is_read_whole_as_a_keyframe_may_be(tmp_path):
    path = written(tmp_path / "000000.png", gradient(2560, 1920))
    clip = core.std.BlankClip(width=2560, height=1920, format=vs.YUV420P8, length=4)
    for propagate in (False, True):
        (keyed,) = references(clip, {0: path}, propagate, [], report=False)
        assert keyed.rgb().shape == (1920, 2560, 3)


def test_a_keyframe_of_the_wrong_size_is_named_with_its_own_size(tmp_path):
    path = written(tmp_path / "scan.png", gradient(2560, 1920))
    clip = core.std.BlankClip(width=64, height=48, format=vs.YUV420P8, length=4)
    with pytest.raises(vs.Error, match=r"64x48 like the clip.*got '2560x1920'"):
        references(clip, path, True, [], report=False)


def test_a_reduced_jpeg_is_decoded_reduced(tmp_path, monkeypatch):
    # A JPEG is decoded at 1/2, 1/4 or 1/8 while that leaves enough pixels: the full size
    # never exists in memory.
    path = written(tmp_path / "scan.jpg", gradient(1600, 1200))
    imread, flags = cv2.imread, []
    monkeypatch.setattr(cv2, "imread", lambda name, flag: flags.append(flag) or imread(name, flag))
    rgb = read_image(path, at_most=150 * 100)
    assert flags == [cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION]
    assert rgb.shape[0] * rgb.shape[1] <= 150 * 100


# --- a video's frames ---------------------------------------------------------------------

def test_a_video_declaring_frames_over_8192x8192_is_refused_in_one_line(tmp_path):
    # A few bytes declaring 67.2 megapixels a frame: BestSource's cache would grow with them.
    path = tmp_path / "crafted.y4m"
    path.write_bytes(b"YUV4MPEG2 W8200 H8200 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    with pytest.raises(VideoError) as raised:
        probe(path, progress=False)
    message = str(raised.value)
    assert "\n" not in message
    assert str(path) in message and "8200x8200" in message and "scale it down" in message


def test_a_video_of_8192x8192_frames_is_within_the_cap(tmp_path):
    path = tmp_path / "crafted.y4m"
    path.write_bytes(b"YUV4MPEG2 W8192 H8192 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    with pytest.raises(VideoError, match="has no video frames"):  # it is read (and found cut short)
        probe(path, progress=False)


def test_a_references_folder_is_sorted_by_colour_and_lightness(tmp_path):
    # What a folder's sort decides, picture by picture: a gray picture (one channel as
    # `vsexcolor shots` writes it, or three equal ones) is "not coloured", as is one coloured
    # on under 1 % of it; one coloured on 2 % of it counts as coloured; a coloured picture of
    # the clip's size is a keyframe where its lightness is its frame's, else an exemplar.
    colour = decode_rgb(sample_clip_path("bikes"), 6, (64, 48))
    clip = yuv_clip(colour)
    gray = (colour.astype(np.float32) @ np.float32([0.2126, 0.7152, 0.0722])).round().astype(np.uint8)

    def coloured_on(n: int, side: int) -> np.ndarray:
        """Frame n gray (its BT.709 gray value kept), but a side x side square in its colours."""
        rgb = np.repeat(gray[n][..., None], 3, -1)
        rgb[8:8 + side, 8:8 + side] = colour[n][8:8 + side, 8:8 + side]
        return rgb

    def bgr(rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rgb[..., ::-1])

    written(tmp_path / "000000.png", bgr(colour[0]))  # its frame in colour
    written(tmp_path / "000001.png", gray[1])  # one channel
    written(tmp_path / "000002.png", bgr(coloured_on(2, 0)))  # three equal channels
    written(tmp_path / "000003.png", bgr(coloured_on(3, 4)))  # 16 of 3072 pixels coloured: 0.5 %
    written(tmp_path / "000004.png", bgr(coloured_on(4, 8)))  # 64 of 3072: 2 %
    written(tmp_path / "ref_5.png", bgr(colour[1]))  # another frame's colours
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
    with pytest.warns(UserWarning, match="vsexcolor: references in") as said:
        refs = references(clip, tmp_path, False, [luma])
    assert [(r.start, r.name, r.keyframe) for r in refs] == [
        (0, "000000.png", True), (4, "000004.png", True), (5, "ref_5.png", False)]
    assert "not coloured, left out: 000001.png, 000002.png, 000003.png" in str(said[0].message)
    written(tmp_path / "000001.png", bgr(colour[1][::2, ::2]))  # a colour picture of another size
    written(tmp_path / "000003.png", gray[3][::2, ::2])  # a gray one
    refs = references(clip, tmp_path, False, [luma], report=False)
    assert [(r.start, r.keyframe) for r in refs] == [(0, True), (1, False), (4, True), (5, False)]
