"""The MovieLens data layer: variants, parsers, sources, the parquet cache and splits.

Typical use::

    from models.data import load_dataset, stratified_split

    movielens = load_dataset("ml-100k")  # cache, GroupLens, or the RecBole wheel
    train, test = stratified_split(movielens.ratings, ratio=0.75, seed=42)

The tables follow `models.data.schema`.
"""

from models.data.errors import ChecksumError, DatasetError, SourceUnavailableError
from models.data.loader import Prepared, load_dataset, prepare
from models.data.parsers import parse_directory
from models.data.schema import MovieLens
from models.data.splits import leave_last_n_out, stratified_split, temporal_share_split
from models.data.variants import VARIANTS, Layout, Variant, get_variant

__all__ = [
    "VARIANTS",
    "ChecksumError",
    "DatasetError",
    "Layout",
    "MovieLens",
    "Prepared",
    "SourceUnavailableError",
    "Variant",
    "get_variant",
    "leave_last_n_out",
    "load_dataset",
    "parse_directory",
    "prepare",
    "stratified_split",
    "temporal_share_split",
]
