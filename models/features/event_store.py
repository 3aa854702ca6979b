"""Event-driven user features in and out of the Feast online store (Feast's write API).

The applier reads a user's online row once (the base, before their first event), then
writes every fold of their events through `FeatureStore.write_to_online_store_async`, one
row per view holding every column of the view (Feast 0.67 writes what it is given: a missing
column would be stored as null). Rows are stamped with the time they are applied, strictly
later than the row before (`next_stamp`): Feast's Redis online store silently skips a row
stamped at or before the stored one, and materialized snapshots carry historical times.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from models.features.events import (
    FEATURES_VIEW,
    GENRE_AFFINITY,
    HISTORY_VIEW,
    RATING_COUNT,
    RATING_MEAN,
    BaseFeatures,
)
from models.features.runtime import OnlineFeatures, response_columns
from movierec.stages import IMPRESSED_AT, IMPRESSED_MOVIE_IDS, LIKED_MOVIE_IDS, SEEN_MOVIE_IDS

BASE_REFS: tuple[str, ...] = (
    f"{FEATURES_VIEW}:{RATING_COUNT}",
    f"{FEATURES_VIEW}:{RATING_MEAN}",
    f"{FEATURES_VIEW}:{GENRE_AFFINITY}",
    f"{HISTORY_VIEW}:{LIKED_MOVIE_IDS}",
    f"{HISTORY_VIEW}:{SEEN_MOVIE_IDS}",
    f"{HISTORY_VIEW}:{IMPRESSED_MOVIE_IDS}",
    f"{HISTORY_VIEW}:{IMPRESSED_AT}",
)
"""The online features events move (the columns of `user_features` and `user_history`)."""

ONE_MICROSECOND = timedelta(microseconds=1)


async def read_base(reader: OnlineFeatures, user_id: int) -> BaseFeatures:
    """The user's event-driven features as the online store holds them now."""
    response = await reader.store.get_online_features_async(
        list(BASE_REFS), {"user_id": [int(user_id)]}
    )
    row = {k: v[0] for k, v in response_columns(response, skip=("user_id",)).items()}
    return BaseFeatures.from_row(row)


def next_stamp(previous: datetime | None, now: datetime | None = None) -> datetime:
    """The stamp of the next write: now, but strictly after the previous write's."""
    now = now or datetime.now(UTC)
    if previous is not None and now <= previous:
        return previous + ONE_MICROSECOND
    return now


def user_row_fields(reader: OnlineFeatures, user_id: int) -> tuple[bytes, list[bytes]]:
    """The Redis hash of the user's online row and the fields the event-driven views hold in
    it (their features and timestamps), as Feast's Redis online store lays them out.

    Feast has no API to delete one entity's row of one view; `DELETE /users/{id}/events`
    removes these fields for a user the build did not know.
    """
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    config = reader.store.config
    key = _redis_key(
        config.project,
        EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=int(user_id))]),
        entity_key_serialization_version=config.entity_key_serialization_version,
    )
    fields = [_mmh3(ref) for ref in BASE_REFS]
    fields += [f"_ts:{view}".encode() for view in (FEATURES_VIEW, HISTORY_VIEW)]
    return key, fields


async def write_rows(
    reader: OnlineFeatures,
    user_id: int,
    rows: Mapping[str, Mapping[str, Any]],
    stamp: datetime,
) -> None:
    """Writes `fold_features`' rows (view -> every column) for the user, stamped `stamp`."""
    for view, values in rows.items():
        frame = pd.DataFrame(
            [{"user_id": int(user_id), "event_timestamp": stamp, **values}],
        )
        await reader.store.write_to_online_store_async(view, frame)
