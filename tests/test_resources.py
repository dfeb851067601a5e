"""Resource defaults that keep a GPU busy: DataLoader workers are automatic per device."""

import os

from resources.models import EmbedderResource


def test_loader_workers_auto_per_device_and_explicit_values_win():
    assert EmbedderResource(device="cpu").loader_workers() == 0
    want = max(1, min(8, (os.cpu_count() or 2) - 1))
    assert EmbedderResource(device="cuda").loader_workers() == want
    assert EmbedderResource(device="cuda:1").loader_workers() == want
    assert EmbedderResource(device="cuda", num_workers=0).loader_workers() == 0
    assert EmbedderResource(device="cpu", num_workers=3).loader_workers() == 3
