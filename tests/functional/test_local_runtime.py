"""The local runtime leaves the process as it found it: moto, Powertools and thread pools unpatched, environment
restored."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

from kairos_local import moto_patches, powertools_patches
from kairos_local.embedded import embedded_aws


def test_embedded_aws_undoes_its_moto_patches_when_it_ends():
    # GIVEN moto as installed
    originals = (DynamoDBBackend.transact_write_items, Table.query, Table.all_items, ThreadPoolExecutor.submit)
    env = dict(os.environ)
    assert not moto_patches.active() and not powertools_patches.active()
    # WHEN embedded AWS runs (nested, as the demo's server inside a test would)
    with embedded_aws(api_key="k"):
        assert moto_patches.active()
        with moto_patches.patched():
            assert moto_patches.active()
        assert moto_patches.active()  # the inner context does not undo what the outer one still needs
    # THEN moto, Powertools and thread pools are back as installed, and so is the environment
    assert not moto_patches.active() and not powertools_patches.active()
    assert (DynamoDBBackend.transact_write_items, Table.query, Table.all_items, ThreadPoolExecutor.submit) == originals
    assert dict(os.environ) == env
