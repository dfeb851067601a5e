"""`run --shards` parts with `__`: pool shards of registered pools only (a tryout passed a
SemDeDup range key and was told about pools)."""

import pytest

from mm_assets.core.mine.pool import PoolError
from mm_assets.core.storage import Store
from mm_assets.pool_cli import split_pool_spec


def test_a_range_key_is_not_taken_for_a_pool_shard(tmp_path):
    store = Store(str(tmp_path / "root"))
    assert split_pool_spec("0-3,7", store) == ("0-3,7", None)
    with pytest.raises(PoolError, match=r"neither a corpus shard nor a shard of a registered "
                                        r"pool \(pools: none\); SemDeDup range partitions"):
        split_pool_spec("0,image__r0001__p3fa2b1c9", store)
