import io

import numpy as np
import pytest
from PIL import Image

from mm_assets.core.dedup.hashing import (
    hamming,
    hash_image,
    list_hash,
    perceptual_hash,
    pixel_hash,
    text_hash,
)
from mm_assets.core.ingest.images import ImageError, decode, sniff_ext


@pytest.mark.parametrize("name", ["pil_sample_cmyk.jpg", "hopper_16bit.pgm", "12in16bit.tif",
                                  "p_trns_single.png", "chi.gif", "hopper_orientation_6.jpg",
                                  "uncompressed_la.png", "transparent.webp", "apng/delay.png",
                                  "hopper_bad_exif.jpg"])
def test_odd_modes_decode_to_rgba(pillow_images, name):
    im = decode((pillow_images / name).read_bytes())
    assert im.mode == "RGBA" and im.width > 0 and im.height > 0
    assert np.asarray(im).std() > 0  # real content, not a blank frame


def test_exif_orientation_is_applied(pillow_images):
    raw = Image.open(pillow_images / "hopper_orientation_6.jpg")
    im = decode((pillow_images / "hopper_orientation_6.jpg").read_bytes())
    assert (im.width, im.height) == (raw.height, raw.width)


@pytest.mark.parametrize("name,reason", [
    ("broken.png", "corrupt_image"),
    ("truncated_image.png", "truncated_image"),
    ("zero_width.gif", "corrupt_image"),  # Pillow refuses to identify it
    ("decompression_bomb.gif", "decompression_bomb"),
])
def test_broken_images_get_a_reason(pillow_images, name, reason):
    with pytest.raises(ImageError) as e:
        decode((pillow_images / name).read_bytes())
    assert e.value.reason == reason


def test_pixel_cap_and_empty_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "PNG")
    with pytest.raises(ImageError, match="decompression_bomb"):
        decode(buf.getvalue(), max_pixels=9_999)
    with pytest.raises(ImageError, match="empty_image"):
        decode(b"")


def test_content_decides_the_extension(pillow_images):
    assert sniff_ext((pillow_images / "hopper.webp").read_bytes()) == "webp"
    assert sniff_ext((pillow_images / "hopper.bmp").read_bytes()) == "bmp"


def test_same_pixels_different_bytes_share_the_pixel_hash(pillow_images):
    a = hash_image((pillow_images / "hopper.png").read_bytes(), 10**8)
    b = hash_image((pillow_images / "hopper.bmp").read_bytes(), 10**8)
    assert a.bytes_hash != b.bytes_hash
    assert a.pixel_hash == b.pixel_hash


def test_perceptual_hash_is_close_for_a_resize_and_far_for_another_image(pillow_images):
    hop = decode((pillow_images / "hopper.png").read_bytes())
    small = hop.resize((64, 64))
    other = decode((pillow_images / "flower.jpg").read_bytes())
    assert hamming(perceptual_hash(hop), perceptual_hash(small)) <= 8
    assert hamming(perceptual_hash(hop), perceptual_hash(other)) > 16
    assert pixel_hash(hop) != pixel_hash(small)


def test_text_hash_normalises_case_space_and_unicode():
    assert text_hash("Hello   World\n") == text_hash("hello world")
    assert text_hash("ｆｕｌｌ") == text_hash("full")  # NFKC
    assert text_hash("a") != text_hash("b")


def test_text_only_samples_have_no_list_hash():
    assert list_hash([]) is None
    assert list_hash(["x", "y"]) != list_hash(["y", "x"])
